#include "messages.h"

#include <cmath>
#include <fstream>

namespace imf::bench::synth {

uint32_t draw_message_size(Rng& rng, SizeModel model) {
  double size;
  if (model == SizeModel::kFull) {
    static const double kLo = std::log(4096.0), kHi = std::log(static_cast<double>(kMaxMessage));
    size = std::exp(kLo + rng.uniform() * (kHi - kLo));
  } else if (rng.chance(0.97)) {
    size = 60.0 * std::exp(0.8 * rng.normal());
  } else {
    size = 500.0 / std::pow(1.0 - rng.uniform(), 1.0 / 1.1);
  }
  if (size < 1.0) return 1;
  if (size >= kMaxMessage) return kMaxMessage;
  return static_cast<uint32_t>(std::lround(size));
}

Result<std::vector<Trigger>> load_triggers(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open trigger file");
  std::vector<Trigger> out;
  std::string line;
  uint64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.front() == '#') continue;
    size_t tab = line.find('\t');
    if (tab == 0 || tab == std::string::npos || tab + 1 == line.size()) {
      return make_error(path + ":" + std::to_string(line_no) + ": expected 'rule_id<TAB>trigger'");
    }
    Trigger t{line.substr(0, tab), line.substr(tab + 1), {}};
    t.profile = profile_text(t.text);
    out.push_back(std::move(t));
  }
  if (in.bad()) return make_error(path + ": read error");
  if (out.empty()) return make_error(path + ": no triggers");
  return out;
}

std::string_view BodyMaker::make(Rng& rng, uint32_t size, bool plant) {
  if (!plant) return corpus_.draw(rng, size);

  const Trigger& t = triggers_[rng.below(triggers_.size())];
  if (size <= t.text.size() + 1) return t.text;
  std::string_view text = corpus_.draw(rng, size - t.text.size() - 1);
  bool phone = t.profile.longest_digit_run >= kPhoneDigits;
  // A neighbour word can extend the trigger's digit run; then try another boundary.
  for (int attempt = 0; attempt < 8; ++attempt) {
    size_t p = rng.below(text.size() + 1);
    size_t at = p == 0 ? 0 : text.find(' ', p);
    if (at == std::string_view::npos) at = text.size();
    buf_.clear();
    if (at == 0) {
      buf_.append(t.text);
      if (!text.empty()) buf_.append(" ").append(text);
    } else {
      buf_.append(text.substr(0, at)).append(" ").append(t.text).append(text.substr(at));
    }
    TextProfile got = profile_text(buf_);
    bool runs_ok = phone ? got.longest_digit_run == t.profile.longest_digit_run : got.longest_digit_run < kPhoneDigits;
    if (got.markers == t.profile.markers && runs_ok) return buf_;
  }
  return t.text;
}

}  // namespace imf::bench::synth
