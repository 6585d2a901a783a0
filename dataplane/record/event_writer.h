// Moves events from per-lcore rings to the events file on a control thread (never a worker):
// workers enqueue without blocking; a full ring costs the event, counted as events_lost.
#pragma once

#include <rte_ring.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "record/event.h"

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

class EventWriter {
 public:
  // `path` "-" writes to stdout. Rings must outlive the writer.
  static Result<std::unique_ptr<EventWriter>> open(const std::string& path, std::vector<EventRing*> rings, Clock clock);
  ~EventWriter();

  void start();
  // Stops the thread after draining every ring once more; call after the workers stopped.
  void stop();
  uint64_t written() const { return written_.load(std::memory_order_relaxed); }

 private:
  EventWriter(FILE* f, bool owned, std::vector<EventRing*> rings, Clock clock)
      : out_(f), owned_(owned), rings_(std::move(rings)), clock_(clock) {}
  unsigned drain();
  void run();

  FILE* out_;
  bool owned_;
  std::vector<EventRing*> rings_;
  Clock clock_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> written_{0};
  std::thread thread_;
};

}  // namespace imf::dp::record
