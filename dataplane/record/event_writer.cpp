#include "record/event_writer.h"

#include <rte_errno.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace imf::dp::record {

Result<EventRing> EventRing::create(const std::string& name, uint32_t size, int socket) {
  rte_ring* r = rte_ring_create_elem(name.c_str(), sizeof(Event), size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (!r) return make_error("cannot create event ring " + name + ": " + rte_strerror(rte_errno));
  return EventRing(r);
}

Result<std::unique_ptr<EventWriter>> EventWriter::open(const std::string& path, std::vector<EventRing*> rings,
                                                       Clock clock) {
  FILE* f = stdout;
  bool owned = false;
  if (path != "-") {
    f = std::fopen(path.c_str(), "a");
    if (!f) return make_error("cannot open events file " + path + ": " + std::strerror(errno));
    owned = true;
  }
  return std::unique_ptr<EventWriter>(new EventWriter(f, owned, std::move(rings), clock));
}

EventWriter::~EventWriter() {
  stop();
  if (owned_) std::fclose(out_);
}

void EventWriter::start() {
  thread_ = std::thread([this] { run(); });
}

void EventWriter::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_relaxed);
  thread_.join();
  drain();
  std::fflush(out_);
}

unsigned EventWriter::drain() {
  Event batch[32];
  unsigned total = 0;
  for (EventRing* ring : rings_) {
    while (unsigned n = ring->pop_burst(batch, 32)) {
      for (unsigned i = 0; i < n; ++i) {
        std::string line = event_to_json(batch[i], clock_);
        std::fwrite(line.data(), 1, line.size(), out_);
      }
      total += n;
    }
  }
  if (total) {
    std::fflush(out_);
    written_.fetch_add(total, std::memory_order_relaxed);
  }
  return total;
}

void EventWriter::run() {
  while (!stop_.load(std::memory_order_relaxed)) {
    if (drain() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace imf::dp::record
