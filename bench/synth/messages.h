// Message bodies: a size drawn from the profile's distribution, corpus text of that size, and
// for the planted fraction one rule trigger inserted at a word boundary.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "clean_text.h"
#include "common/result.h"
#include "corpus.h"
#include "rng.h"

namespace imf::bench::synth {

inline constexpr uint32_t kMaxMessage = 100 * 1024;

enum class SizeModel : uint8_t {
  kChat,  // 97% lognormal (median 60 B, sigma 0.8), 3% Pareto tail (500 B, alpha 1.1); max 100 KiB
  kFull,  // log-uniform 4 KiB .. 100 KiB
};

// A payload size in bytes, 1 .. kMaxMessage.
uint32_t draw_message_size(Rng& rng, SizeModel model);

struct Trigger {
  std::string rule_id;
  std::string text;
  TextProfile profile;  // of text alone
};

// Reads "rule_id<TAB>trigger" lines (blank lines and '#' lines skipped). Errors name file and line.
Result<std::vector<Trigger>> load_triggers(const std::string& path);

// Builds bodies from one corpus. One thread.
class BodyMaker {
 public:
  BodyMaker(const Corpus& corpus, const std::vector<Trigger>& triggers) : corpus_(corpus), triggers_(triggers) {}

  // A body of about `size` bytes (at most `size`, or the trigger's length when that is longer).
  // With `plant`, one uniformly chosen trigger sits at a word boundary, and the body holds no other
  // marker or long digit run, so it matches exactly that trigger's rule. The view is valid until
  // the next call.
  std::string_view make(Rng& rng, uint32_t size, bool plant);

 private:
  const Corpus& corpus_;
  const std::vector<Trigger>& triggers_;
  std::string buf_;
};

}  // namespace imf::bench::synth
