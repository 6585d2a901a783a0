#include "rules/artifact.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"

namespace imf::rules {

namespace {

constexpr char kMagic[8] = {'I', 'M', 'F', 'R', 'U', 'L', 'E', '2'};
constexpr char kMagicV1[8] = {'I', 'M', 'F', 'R', 'U', 'L', 'E', '1'};  // before rule conditions
constexpr uint32_t kMaxRules = 1u << 24;
// The fewest bytes one encoded rule takes: empty id, action, scope (and in version 2, empty
// category, three empty lists and the flag byte).
constexpr size_t kMinRuleBytesV1 = 4 + 1 + 1;
constexpr size_t kMinRuleBytes = kMinRuleBytesV1 + 4 + 3 * 4 + 1;

uint64_t fnv1a(const char* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<unsigned char>(p[i]);
    h *= 0x100000001b3ull;
  }
  return h;
}

template <typename T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void put_str(std::string& out, const std::string& s) {
  put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out += s;
}

void put_list(std::string& out, const std::vector<std::string>& l) {
  put<uint32_t>(out, static_cast<uint32_t>(l.size()));
  for (const std::string& s : l) put_str(out, s);
}

// Bounds-checked reader over the encoded bytes; the first failure sticks.
class Reader {
 public:
  explicit Reader(const std::string& b) : b_(b) {}
  template <typename T>
  T get() {
    T v{};
    if (!need(sizeof(T))) return v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str() {
    auto n = get<uint32_t>();
    if (!need(n)) return {};
    std::string s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::vector<std::string> list() {
    auto n = get<uint32_t>();
    std::vector<std::string> l;
    if (n > 4096) ok_ = false;
    for (uint32_t i = 0; i < n && ok_; ++i) l.push_back(str());
    return l;
  }
  bool ok() const { return ok_; }
  size_t pos() const { return pos_; }

 private:
  bool need(size_t n) {
    if (!ok_ || b_.size() - pos_ < n) ok_ = false;
    return ok_;
  }
  const std::string& b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::string encode_artifact(const RuleSetArtifact& a) {
  std::string out(kMagic, sizeof(kMagic));
  put<uint64_t>(out, a.version);
  put<uint64_t>(out, a.created_unix_ms);
  put_str(out, a.source);
  put_str(out, a.rules_text);
  put<uint32_t>(out, static_cast<uint32_t>(a.compiled.rules.size()));
  for (const RuleMeta& r : a.compiled.rules) {
    put_str(out, r.id);
    put<uint8_t>(out, static_cast<uint8_t>(r.action));
    put<uint8_t>(out, r.scope);
    put_str(out, r.cond.category);
    put_list(out, r.cond.channels);
    put_list(out, r.cond.with_markers);
    put_list(out, r.cond.without_markers);
    // Protocols in the upper bits: artifacts written before protocols existed hold 0 (every one).
    put<uint8_t>(out, static_cast<uint8_t>(r.cond.dry_run | r.cond.any_body << 1 | r.cond.protocols << 2));
  }
  put_str(out, a.compiled.database);
  put<uint64_t>(out, fnv1a(out.data(), out.size()));
  return out;
}

Result<RuleSetArtifact> decode_artifact(const std::string& bytes, const std::string& what) {
  auto bad = [&](const std::string& why) { return make_error(what + ": not a valid rule-set artifact: " + why); };
  if (bytes.size() < sizeof(kMagic) + 8) return bad("bad magic");
  bool v1 = std::memcmp(bytes.data(), kMagicV1, sizeof(kMagic)) == 0;
  if (!v1 && std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) return bad("bad magic");
  size_t body = bytes.size() - 8;
  uint64_t sum;
  std::memcpy(&sum, bytes.data() + body, 8);
  if (sum != fnv1a(bytes.data(), body)) return bad("checksum mismatch (truncated or altered)");

  std::string head = bytes.substr(0, body);
  Reader r(head);
  for (size_t i = 0; i < sizeof(kMagic); ++i) r.get<char>();
  RuleSetArtifact a;
  a.version = r.get<uint64_t>();
  a.created_unix_ms = r.get<uint64_t>();
  a.source = r.str();
  a.rules_text = r.str();
  auto n = r.get<uint32_t>();
  if (!r.ok() || n > kMaxRules) return bad("rule count out of range");
  // Room for as many rules as the bytes left can hold, not what the count claims: a damaged count
  // must not allocate gigabytes before the reads below find the artifact truncated.
  a.compiled.rules.reserve(std::min<size_t>(n, (head.size() - r.pos()) / (v1 ? kMinRuleBytesV1 : kMinRuleBytes)));
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    RuleMeta m;
    m.id = r.str();
    auto action = r.get<uint8_t>();
    m.scope = r.get<uint8_t>();
    if (!v1) {
      m.cond.category = r.str();
      m.cond.channels = r.list();
      m.cond.with_markers = r.list();
      m.cond.without_markers = r.list();
      auto bits = r.get<uint8_t>();
      m.cond.dry_run = bits & 1;
      m.cond.any_body = bits & 2;
      m.cond.protocols = static_cast<uint8_t>(bits >> 2);
    }
    if (action > static_cast<uint8_t>(Action::kDrop) || m.scope == 0 || (m.scope & ~(kScopePayload | kScopeTopic)) ||
        (m.cond.protocols & ~kAllProtocols))
      return bad("rule " + std::to_string(i) + " has an unknown action or scope");
    m.action = static_cast<Action>(action);
    a.compiled.rules.push_back(std::move(m));
  }
  a.compiled.database = r.str();
  if (!r.ok()) return bad("truncated");
  if (r.pos() != head.size()) return bad("trailing bytes");
  if (a.version == 0) return bad("version 0");
  return a;
}

Status write_artifact(const std::string& path, const RuleSetArtifact& a) {
  return write_file_atomic(path, encode_artifact(a));
}

Result<RuleSetArtifact> read_artifact(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return make_error(path + ": read failed");
  return decode_artifact(ss.str(), path);
}

}  // namespace imf::rules
