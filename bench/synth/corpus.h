// Human-written text for message bodies: fortune files (texts separated by lines holding only
// "%") or plain files (one text per non-empty line), from files or directories.
//
// Each text is whitespace-normalized to printable ASCII; texts that are not clean (clean_text.h)
// are dropped, so no body drawn from the corpus can match a synthesized rule.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "rng.h"

namespace imf::bench::synth {

class Corpus {
 public:
  // Loads every path. A directory contributes its regular files in name order, except *.dat
  // (fortune indexes), *.u8 and symlinks (duplicates of the plain files). The texts are shuffled
  // with `seed` and joined, repeated until at least `min_bytes` long. Errors name the path.
  static Result<Corpus> load(const std::vector<std::string>& paths, uint64_t seed, size_t min_bytes);

  // Whole texts, starting at a random one, cut at the last word boundary within `len` bytes
  // (exactly `len` only if there is none). The view lives as long as the corpus.
  std::string_view draw(Rng& rng, size_t len) const;

  size_t texts() const { return texts_; }
  size_t dropped() const { return dropped_; }
  size_t files() const { return files_; }

 private:
  std::string text_;            // the texts joined by single spaces
  std::vector<size_t> starts_;  // offset of each text in text_
  size_t texts_ = 0;
  size_t dropped_ = 0;
  size_t files_ = 0;
};

}  // namespace imf::bench::synth
