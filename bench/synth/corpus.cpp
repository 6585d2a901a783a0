#include "corpus.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "clean_text.h"

namespace imf::bench::synth {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Printable ASCII with single spaces: control characters and tabs are whitespace, other bytes
// (backspace overstrikes, non-ASCII) are dropped.
std::string normalize(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  bool space = false;
  for (char c : raw) {
    auto u = static_cast<unsigned char>(c);
    if (u == ' ' || u == '\t' || u == '\n' || u == '\r' || u == '\v' || u == '\f') {
      space = true;
    } else if (u > 0x20 && u < 0x7f) {
      if (space && !out.empty()) out.push_back(' ');
      space = false;
      out.push_back(c);
    }
  }
  return out;
}

bool is_percent_line(std::string_view line) { return line == "%" || line == "%\r"; }

// Splits one file into texts: fortune format when any line is a lone "%", else one per line.
void split_texts(std::string_view data, std::vector<std::string>* out) {
  bool fortune = false;
  for (size_t pos = 0; pos < data.size();) {
    size_t nl = data.find('\n', pos);
    std::string_view line = data.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (is_percent_line(line)) {
      fortune = true;
      break;
    }
    pos = nl == std::string_view::npos ? data.size() : nl + 1;
  }
  std::string current;
  for (size_t pos = 0; pos <= data.size();) {
    size_t nl = data.find('\n', pos);
    bool last = nl == std::string_view::npos;
    std::string_view line = data.substr(pos, last ? std::string_view::npos : nl - pos);
    if (fortune && !is_percent_line(line)) {
      current.append(line);
      current.push_back('\n');
    }
    if (!fortune || is_percent_line(line) || last) {
      std::string text = normalize(fortune ? std::string_view(current) : line);
      if (!text.empty()) out->push_back(std::move(text));
      current.clear();
    }
    if (last) break;
    pos = nl + 1;
  }
}

Status read_file(const std::string& path, std::vector<std::string>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open corpus file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return make_error(path + ": read error");
  split_texts(ss.str(), out);
  return Ok{};
}

void shuffle(Rng& rng, std::vector<size_t>& v) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace

Result<Corpus> Corpus::load(const std::vector<std::string>& paths, uint64_t seed, size_t min_bytes) {
  Corpus c;
  std::vector<std::string> texts;
  for (const std::string& path : paths) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return make_error(path + ": corpus path does not exist");
    if (S_ISREG(st.st_mode)) {
      if (Status s = read_file(path, &texts); !s) return make_error(s.error());
      ++c.files_;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) return make_error(path + ": corpus path is neither a file nor a directory");
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
      std::error_code type_ec;
      if (e.is_symlink(type_ec) || !e.is_regular_file(type_ec)) continue;
      std::string name = e.path().filename().string();
      if (ends_with(name, ".dat") || ends_with(name, ".u8") || name.front() == '.') continue;
      names.push_back(e.path().string());
    }
    if (ec) return make_error(path + ": cannot list corpus directory: " + ec.message());
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      if (Status s = read_file(n, &texts); !s) return make_error(s.error());
      ++c.files_;
    }
  }

  std::vector<size_t> usable;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (is_clean(texts[i])) {
      usable.push_back(i);
    } else {
      ++c.dropped_;
    }
  }
  c.texts_ = usable.size();
  if (usable.empty()) {
    std::string all;
    for (const std::string& path : paths) all.append(all.empty() ? "" : ", ").append(path);
    return make_error(all + ": no usable corpus text (" + std::to_string(texts.size()) +
                      " texts read, each holding a rule marker bigram or a 12-digit run)");
  }

  // Join shuffled texts; where a junction would form a marker or a long digit run, " / " breaks it.
  Rng rng(mix64(seed ^ 0xc0f0u));
  do {
    shuffle(rng, usable);
    for (size_t i : usable) {
      const std::string& t = texts[i];
      if (!c.text_.empty()) {
        size_t tail = std::min<size_t>(c.text_.size(), 48);
        std::string junction = c.text_.substr(c.text_.size() - tail) + ' ' + t.substr(0, 48);
        c.text_ += is_clean(junction) ? " " : " / ";
      }
      c.starts_.push_back(c.text_.size());
      c.text_ += t;
    }
  } while (c.text_.size() < min_bytes);
  if (!is_clean(c.text_)) return make_error("corpus: internal error: joined text is not clean");
  return c;
}

std::string_view Corpus::draw(Rng& rng, size_t len) const {
  size_t size = text_.size();
  if (len >= size) return text_;
  // Texts that start early enough to leave `len` bytes.
  size_t fit = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), size - len) - starts_.begin());
  size_t start = starts_[rng.below(fit)];
  size_t end = start + len;
  if (text_[end] != ' ') {
    size_t space = text_.rfind(' ', end);
    if (space != std::string::npos && space > start) end = space;
  }
  while (end > start && text_[end - 1] == ' ') --end;
  return std::string_view(text_).substr(start, end - start);
}

}  // namespace imf::bench::synth
