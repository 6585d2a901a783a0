// Moves events from per-lcore rings to their outputs on a control thread (never a worker):
// the events file (plain JSON lines) and the records chain (hash-chained, durable; see
// control/records/chain.h). Workers enqueue without blocking; a full ring costs the event,
// counted as events_lost by the worker and written into the chain as a "records_lost" record,
// so a loss is never silent. The writer also runs the escalation policy: an enforced rule drop
// by a known account is a violation, and the k-th in the window moves the account one step up.
#pragma once

#include <rte_ring.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "policy/account_table.h"
#include "policy/measures.h"
#include "record/event.h"
#include "records/chain.h"

namespace imf::dp::record {

// One single-producer/single-consumer ring of Event per worker lcore.
class EventRing {
 public:
  static Result<EventRing> create(const std::string& name, uint32_t size, int socket);
  // Worker lcore only. Returns false when the ring is full.
  bool push(const Event& e) {
    return rte_ring_sp_enqueue_elem(ring_, const_cast<Event*>(&e), sizeof(Event)) == 0;  // copies; API lacks const
  }
  // Writer thread only.
  unsigned pop_burst(Event* out, unsigned n) {
    return rte_ring_sc_dequeue_burst_elem(ring_, out, sizeof(Event), n, nullptr);
  }

 private:
  explicit EventRing(rte_ring* r) : ring_(r) {}
  rte_ring* ring_;  // freed at EAL cleanup
};

struct WriterOutputs {
  std::string events_path;                       // "" none, "-" stdout
  std::unique_ptr<records::ChainWriter> chain;   // null: no records chain
  policy::AccountTable* accounts = nullptr;      // escalations change states here
  std::unique_ptr<policy::Escalator> escalator;  // null: no escalation
  std::function<uint64_t()> events_lost;         // workers' events_lost so far (summed)
};

class EventWriter {
 public:
  // Rings must outlive the writer. Errors name the events file.
  static Result<std::unique_ptr<EventWriter>> open(WriterOutputs out, std::vector<EventRing*> rings, Clock clock);
  ~EventWriter();

  void start();
  // Stops the thread after draining every ring once more; call after the workers stopped.
  void stop();
  uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  uint64_t record_errors() const { return record_errors_.load(std::memory_order_relaxed); }
  uint64_t escalations() const { return escalations_.load(std::memory_order_relaxed); }

 private:
  EventWriter(FILE* f, bool owned, WriterOutputs out, std::vector<EventRing*> rings, Clock clock)
      : file_(f), owned_(owned), out_(std::move(out)), rings_(std::move(rings)), clock_(clock) {}
  unsigned drain();
  void run();
  void write(const Event& e);
  void append_record(int64_t time_ns, const std::string& fields);
  void escalate(const Event& e, int64_t time_ns);
  void report_loss(int64_t time_ns);

  FILE* file_;
  bool owned_;
  WriterOutputs out_;
  uint64_t lost_reported_ = 0;
  std::atomic<uint64_t> record_errors_{0};
  std::atomic<uint64_t> escalations_{0};
  std::vector<EventRing*> rings_;
  Clock clock_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> written_{0};
  std::thread thread_;
};

}  // namespace imf::dp::record
