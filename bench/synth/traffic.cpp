#include "traffic.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "capture.h"
#include "corpus.h"
#include "message_log_writer.h"
#include "messages.h"
#include "sessions.h"

namespace imf::bench::synth {

namespace {

struct SizeSummary {
  uint64_t p50 = 0, p90 = 0, p99 = 0, max = 0;
  double mean = 0;
};

// Nearest-rank percentiles of the size histogram.
SizeSummary summarize(const MessageStats& ms) {
  SizeSummary s;
  if (ms.messages == 0) return s;
  auto rank = [&](double p) { return static_cast<uint64_t>(std::ceil(p * static_cast<double>(ms.messages))); };
  uint64_t r50 = rank(0.50), r90 = rank(0.90), r99 = rank(0.99), seen = 0;
  for (uint64_t size = 0; size < ms.size_counts.size(); ++size) {
    if (!ms.size_counts[size]) continue;
    uint64_t before = seen;
    seen += ms.size_counts[size];
    if (before < r50 && seen >= r50) s.p50 = size;
    if (before < r90 && seen >= r90) s.p90 = size;
    if (before < r99 && seen >= r99) s.p99 = size;
    s.max = size;
  }
  s.mean = static_cast<double>(ms.payload_bytes) / static_cast<double>(ms.messages);
  return s;
}

Status write_json(const std::string& path, const TrafficOptions& o, const FrameStats& fs, const MessageStats& ms,
                  const FragmentStats& frag, uint64_t field_bytes, const Corpus& corpus) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return make_error(path + ": cannot create summary file");
  using ull = unsigned long long;
  SizeSummary s = summarize(ms);
  std::fprintf(f,
               "{\"profile\": \"%s\", \"flows\": %llu, \"messages\": %llu, \"planted\": %llu, \"packets\": %llu, "
               "\"frame_bytes\": %llu, \"field_bytes\": %llu, \"payload_bytes\": %llu,\n \"frames_by_size\": {",
               profile_name(o.profile), static_cast<ull>(o.flows), static_cast<ull>(ms.messages),
               static_cast<ull>(ms.planted), static_cast<ull>(fs.packets), static_cast<ull>(fs.frame_bytes),
               static_cast<ull>(field_bytes), static_cast<ull>(ms.payload_bytes));
  for (int i = 0; i < 6; ++i) {
    std::fprintf(f, "%s\"%s\": %llu", i ? ", " : "", FrameStats::kBucketNames[i], static_cast<ull>(fs.by_size[i]));
  }
  std::fprintf(f,
               "},\n \"message_size\": {\"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"max\": %llu, \"mean\": %.1f},\n"
               " \"seed\": %llu, \"queues\": %u, \"corpus_texts\": %llu, \"corpus_dropped\": %llu, "
               "\"match_fraction\": %.6g, \"mqtt_port\": %u,\n \"fragment\": %u, \"fragmented_datagrams\": %llu, "
               "\"fragments\": %llu, \"max_fragments_per_datagram\": %u}\n",
               static_cast<ull>(s.p50), static_cast<ull>(s.p90), static_cast<ull>(s.p99), static_cast<ull>(s.max),
               s.mean, static_cast<ull>(o.seed), o.queues, static_cast<ull>(corpus.texts()),
               static_cast<ull>(corpus.dropped()), o.match_fraction, o.mqtt_port, o.fragment,
               static_cast<ull>(frag.datagrams), static_cast<ull>(frag.fragments), frag.max_per_datagram);
  bool failed = std::ferror(f) != 0;
  failed = std::fclose(f) != 0 || failed;
  if (failed) return make_error(path + ": write error");
  return Ok{};
}

}  // namespace

const char* profile_name(Profile p) {
  switch (p) {
    case Profile::kMixed: return "mixed";
    case Profile::kFull: return "full";
    case Profile::kSmall: return "small";
  }
  return "?";
}

Status run_traffic(const TrafficOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  bool mqtt = o.profile != Profile::kSmall;

  Corpus corpus;
  std::vector<Trigger> triggers;
  if (mqtt) {
    auto c = Corpus::load(o.corpus, o.seed, 2 * kMaxMessage);
    if (!c) return make_error(c.error());
    corpus = std::move(c).value();
    if (o.match_fraction > 0) {
      auto t = load_triggers(o.triggers);
      if (!t) return make_error(t.error());
      triggers = std::move(t).value();
    }
  }

  auto created_capture = Capture::create(o.out, o.queues);
  if (!created_capture) return make_error(created_capture.error());
  std::unique_ptr<Capture> capture = std::move(created_capture).value();
  auto created_log = MessageLogWriter::create(o.out + ".mlog", static_cast<uint32_t>(o.flows * 2));
  if (!created_log) return make_error(created_log.error());
  std::unique_ptr<MessageLogWriter> mlog = std::move(created_log).value();

  SessionConfig cfg;
  cfg.flows = o.flows;
  cfg.messages = o.messages;
  cfg.match_fraction = o.match_fraction;
  cfg.sizes = o.profile == Profile::kFull ? SizeModel::kFull : SizeModel::kChat;
  cfg.seed = o.seed;
  cfg.server_port = o.mqtt_port;
  cfg.fragment = o.fragment;
  MessageStats ms;
  FragmentStats frag;
  if (mqtt) {
    BodyMaker bodies(corpus, triggers);
    generate_mqtt_sessions(cfg, bodies, *capture, *mlog, &ms, &frag);
  } else {
    generate_small(cfg, *capture);
  }

  uint64_t field_bytes = mlog->field_bytes();
  if (Status s = capture->close(); !s) return s;
  if (Status s = mlog->close(); !s) return s;
  const FrameStats& fs = capture->stats();
  if (Status s = write_json(o.out + ".json", o, fs, ms, frag, field_bytes, corpus); !s) return s;

  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr,
               "imf-synth: %s: %llu flows, %llu messages (%llu planted), %llu packets, %.1f MB of frames in %.2f s "
               "(%.2f Mpps) -> %s.{%s,mlog,json}\n",
               profile_name(o.profile), static_cast<unsigned long long>(o.flows),
               static_cast<unsigned long long>(ms.messages), static_cast<unsigned long long>(ms.planted),
               static_cast<unsigned long long>(fs.packets), static_cast<double>(fs.frame_bytes) / 1e6, secs,
               secs > 0 ? static_cast<double>(fs.packets) / secs / 1e6 : 0.0, o.out.c_str(),
               o.queues == 1 ? "pcap" : "q*.pcap");
  return Ok{};
}

}  // namespace imf::bench::synth
