// Per-lcore streaming scan of message fields against one rule generation.
//
// Each flow direction owns one Hyperscan stream, opened up front (StreamPool) so the fast path
// never allocates. A field (topic or payload) is scanned chunk by chunk as bytes arrive and ended
// with end_field(), which reports end-anchored matches and resets the stream for the next field:
// patterns never match across two fields or two messages.
#pragma once

#include <hs/hs.h>

#include <cstdint>
#include <memory>

#include "common/result.h"
#include "match/rule_generation.h"

namespace imf::dp::match {

enum class Field : uint8_t { kPayload = rules::kScopePayload, kTopic = rules::kScopeTopic };

// What rule conditions are tested against: the message's protocol and channel, and its sender's
// markers.
struct MessageContext {
  const char* topic = nullptr;  // the message's channel (as much as the inspector keeps)
  uint32_t topic_len = 0;
  uint64_t markers = 0;       // the sending account's markers
  bool sender_known = false;  // a client's own message with its account looked up
  uint8_t protocol = 0;       // proto::Protocol: the rule's protocols bit and how channels match
};

// Whether rule `i` of `gen` applies to the message (channel, markers). Any thread; pure.
bool rule_applies(const RuleGeneration& gen, uint32_t i, const MessageContext& m);

// Rule hits of one scan call. Enforced drop rules stop the scan at the first hit; a dry-run drop
// rule is reported like an alert.
struct ScanResult {
  static constexpr uint32_t kMaxHits = 8;
  uint16_t hits[kMaxHits];
  uint8_t n_hits = 0;
  bool drop = false;      // a drop rule matched; hits[n_hits - 1] is it
  bool overflow = false;  // more alert hits than kMaxHits in this call
  bool error = false;     // Hyperscan failed; the stream is unusable
};

// Streams for `count` flow directions, opened once. Owning lcore only.
class StreamPool {
 public:
  static Result<std::unique_ptr<StreamPool>> create(const RuleGeneration& gen, uint32_t count);
  ~StreamPool();
  StreamPool(const StreamPool&) = delete;
  StreamPool& operator=(const StreamPool&) = delete;

  hs_stream_t* get(uint32_t i) const { return streams_[i]; }
  uint32_t count() const { return count_; }

 private:
  StreamPool(uint32_t count) : count_(count), streams_(new hs_stream_t*[count]()) {}
  uint32_t count_;
  std::unique_ptr<hs_stream_t*[]> streams_;
};

class Matcher {
 public:
  // Clones the generation's scratch for this lcore. Setup thread.
  static Result<std::unique_ptr<Matcher>> create(const RuleGeneration& gen);

  // Scans `n` bytes of `field` on `stream`; hits of rules whose conditions `m` does not meet are
  // not reported. Owning lcore only; no allocation.
  ScanResult scan(hs_stream_t* stream, Field field, const uint8_t* p, uint32_t n, const MessageContext& m);

  // Ends the field: reports end-anchored matches and resets the stream.
  ScanResult end_field(hs_stream_t* stream, Field field, const MessageContext& m);

  // Judges the message against the rules without a pattern (once per message, after its topic).
  ScanResult judge_any_body(const MessageContext& m) const;

  // Resets a stream without reporting (a new flow reuses a slot).
  static void reset(hs_stream_t* stream);

  const RuleGeneration& generation() const { return gen_; }

 private:
  Matcher(const RuleGeneration& gen, hs_scratch_t* s) : gen_(gen), scratch_(s) {}
  const RuleGeneration& gen_;
  rules::HsScratch scratch_;
};

}  // namespace imf::dp::match
