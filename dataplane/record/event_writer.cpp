#include "record/event_writer.h"

#include <rte_errno.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace imf::dp::record {

namespace {

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<EventRing> EventRing::create(const std::string& name, uint32_t size, int socket) {
  rte_ring* r = rte_ring_create_elem(name.c_str(), sizeof(Event), size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (!r) return make_error("cannot create event ring " + name + ": " + rte_strerror(rte_errno));
  return EventRing(r);
}

Result<std::unique_ptr<EventWriter>> EventWriter::open(WriterOutputs out, std::vector<EventRing*> rings, Clock clock) {
  FILE* f = nullptr;
  bool owned = false;
  if (out.events_path == "-") {
    f = stdout;
  } else if (!out.events_path.empty()) {
    f = std::fopen(out.events_path.c_str(), "a");
    if (!f) return make_error("cannot open events file " + out.events_path + ": " + std::strerror(errno));
    owned = true;
  }
  return std::unique_ptr<EventWriter>(new EventWriter(f, owned, std::move(out), std::move(rings), clock));
}

EventWriter::~EventWriter() {
  stop();
  if (owned_) std::fclose(file_);
}

void EventWriter::start() {
  thread_ = std::thread([this] { run(); });
}

void EventWriter::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_relaxed);
  thread_.join();
  drain();
  report_loss(wall_ns());
  if (file_) std::fflush(file_);
  if (out_.chain && !out_.chain->flush()) record_errors_.fetch_add(1, std::memory_order_relaxed);
}

void EventWriter::append_record(int64_t time_ns, const std::string& fields) {
  if (!out_.chain) return;
  // A failed append is counted and reported in stats; the writer keeps going with the next.
  if (!out_.chain->append(time_ns, fields)) record_errors_.fetch_add(1, std::memory_order_relaxed);
}

// A violation: the k-th enforced drop by the account within the window moves it one step up.
void EventWriter::escalate(const Event& e, int64_t time_ns) {
  std::string_view account(e.account, e.account_len);
  auto row = out_.accounts->get(account);
  imf::policy::AccountState cur = row ? row->state : imf::policy::AccountState::kNone;
  int64_t until = row ? row->until_s : 0;
  auto t = out_.escalator->on_violation(account, cur, time_ns);
  if (!t) return;
  if (!out_.accounts->set_measure(account, policy::pack_measure(cur, until), policy::pack_measure(t->to, t->until_s)))
    return;  // changed meanwhile (an operator's measure wins)
  escalations_.fetch_add(1, std::memory_order_relaxed);
  std::string f = "\"kind\":\"state_change\",\"cause\":\"violations\",\"account\":";
  append_json_string(f, e.account, e.account_len);
  f += ",\"state_before\":\"";
  f += imf::policy::state_name(t->from);
  f += "\",\"state_after\":\"";
  f += imf::policy::state_name(t->to);
  f += "\",\"until\":" + std::to_string(t->until_s) + ",\"rule\":";
  append_json_string(f, e.rule, e.rule_len);
  f += ",\"rules_version\":" + std::to_string(e.version);
  append_record(time_ns, f);
}

void EventWriter::write(const Event& e) {
  std::string fields = event_fields(e);
  if (file_) {
    std::string line = event_line(e, clock_, fields);
    std::fwrite(line.data(), 1, line.size(), file_);
  }
  int64_t time_ns = event_time_ns(e, clock_);
  append_record(time_ns, fields);
  auto m = static_cast<inspect::Measure>(e.measure);
  if (m == inspect::Measure::kRuleDrop && !e.to_client && e.account_known && out_.escalator && out_.accounts)
    escalate(e, time_ns);
}

// Workers count events their full ring refused; the chain says how many, once per change.
void EventWriter::report_loss(int64_t time_ns) {
  if (!out_.events_lost) return;
  uint64_t lost = out_.events_lost();
  if (lost == lost_reported_) return;
  append_record(time_ns, "\"kind\":\"records_lost\",\"count\":" + std::to_string(lost - lost_reported_) +
                             ",\"total\":" + std::to_string(lost));
  lost_reported_ = lost;
}

unsigned EventWriter::drain() {
  Event batch[32];
  unsigned total = 0;
  for (EventRing* ring : rings_) {
    while (unsigned n = ring->pop_burst(batch, 32)) {
      for (unsigned i = 0; i < n; ++i) write(batch[i]);
      total += n;
    }
  }
  if (total) {
    if (file_) std::fflush(file_);
    written_.fetch_add(total, std::memory_order_relaxed);
  }
  return total;
}

void EventWriter::run() {
  auto last_tick = std::chrono::steady_clock::now();
  while (!stop_.load(std::memory_order_relaxed)) {
    if (drain() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    // Once a second: losses into the chain, the chain to disk, old violation windows forgotten.
    auto now = std::chrono::steady_clock::now();
    if (now - last_tick < std::chrono::seconds(1)) continue;
    last_tick = now;
    int64_t wall = wall_ns();
    report_loss(wall);
    if (out_.chain && !out_.chain->flush()) record_errors_.fetch_add(1, std::memory_order_relaxed);
    if (out_.escalator) out_.escalator->prune(wall);
  }
}

}  // namespace imf::dp::record
