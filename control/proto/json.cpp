#include "proto/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <unordered_set>

namespace imf::json {

const char* type_name(Type t) {
  switch (t) {
    case Type::kNull: return "null";
    case Type::kBool: return "a boolean";
    case Type::kInt: return "an integer";
    case Type::kDouble: return "a number";
    case Type::kString: return "a string";
    case Type::kArray: return "an array";
    case Type::kObject: return "an object";
  }
  return "?";
}

const Value* Value::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : as_object()) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value& Value::set(std::string_view key, Value v) {
  if (is_null()) v_ = Object{};
  Object& o = as_object();
  for (auto& [k, old] : o) {
    if (k == key) {
      old = std::move(v);
      return old;
    }
  }
  o.emplace_back(std::string(key), std::move(v));
  return o.back().second;
}

namespace {

class Parser {
 public:
  Parser(std::string_view text, const ParseLimits& limits) : s_(text), limits_(limits) {}

  Result<Value> run() {
    Value v;
    skip_ws();
    if (!value(&v, 0)) return make_error(error_);
    skip_ws();
    if (pos_ != s_.size()) {
      fail("unexpected bytes after the value");
      return make_error(error_);
    }
    return v;
  }

 private:
  bool fail(const std::string& what) {
    if (error_.empty()) error_ = "malformed JSON at byte " + std::to_string(pos_) + ": " + what;
    return false;
  }

  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool literal(std::string_view word, Value v, Value* out) {
    if (s_.substr(pos_, word.size()) != word) return fail("expected a value");
    pos_ += word.size();
    *out = std::move(v);
    return true;
  }

  bool value(Value* out, size_t depth) {
    if (pos_ >= s_.size()) return fail("unexpected end of input, expected a value");
    switch (s_[pos_]) {
      case '{': return object(out, depth + 1);
      case '[': return array(out, depth + 1);
      case '"': {
        std::string str;
        if (!string(&str)) return false;
        *out = std::move(str);
        return true;
      }
      case 't': return literal("true", true, out);
      case 'f': return literal("false", false, out);
      case 'n': return literal("null", nullptr, out);
      default: return number(out);
    }
  }

  // Small objects are searched linearly; from kIndexFrom members on, `seen` holds every key.
  static bool duplicate(const Object& obj, std::unordered_set<std::string>* seen, const std::string& key) {
    constexpr size_t kIndexFrom = 16;
    if (obj.size() < kIndexFrom) {
      for (const auto& [k, unused] : obj) {
        if (k == key) return true;
      }
      return false;
    }
    if (seen->empty()) {
      for (const auto& [k, unused] : obj) seen->insert(k);
    }
    return !seen->insert(key).second;
  }

  bool object(Value* out, size_t depth) {
    if (depth > limits_.max_depth) return fail("nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    ++pos_;  // '{'
    Object obj;
    std::unordered_set<std::string> seen;  // filled only for large objects
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      *out = std::move(obj);
      return true;
    }
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected a member name in double quotes");
      std::string key;
      if (!string(&key)) return false;
      if (duplicate(obj, &seen, key)) return fail("member \"" + key + "\" given twice");
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') return fail("expected ':' after a member name");
      ++pos_;
      skip_ws();
      Value v;
      if (!value(&v, depth)) return false;
      obj.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        *out = std::move(obj);
        return true;
      }
      return fail("expected ',' or '}' in an object");
    }
  }

  bool array(Value* out, size_t depth) {
    if (depth > limits_.max_depth) return fail("nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    ++pos_;  // '['
    Array arr;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      *out = std::move(arr);
      return true;
    }
    for (;;) {
      skip_ws();
      Value v;
      if (!value(&v, depth)) return false;
      arr.push_back(std::move(v));
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        *out = std::move(arr);
        return true;
      }
      return fail("expected ',' or ']' in an array");
    }
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool hex4(uint32_t* cp) {
    if (s_.size() - pos_ < 4) return fail("\\u needs four hex digits");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(s_[pos_ + i]);
      if (h < 0) return fail("\\u needs four hex digits");
      v = v * 16 + static_cast<uint32_t>(h);
    }
    pos_ += 4;
    *cp = v;
    return true;
  }

  static void put_utf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  bool string(std::string* out) {
    ++pos_;  // '"'
    for (;;) {
      // Copy the run of plain bytes at once: large strings (rule files, CSV) are mostly plain.
      size_t run = pos_;
      while (run < s_.size() && s_[run] != '"' && s_[run] != '\\' && static_cast<unsigned char>(s_[run]) >= 0x20) ++run;
      out->append(s_.data() + pos_, run - pos_);
      pos_ = run;
      if (pos_ >= s_.size()) return fail("unterminated string");
      char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c != '\\') return fail("control character in a string (must be escaped)");
      if (++pos_ >= s_.size()) return fail("unterminated string");
      char e = s_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xdc00 && cp <= 0xdfff) return fail("lone low surrogate in \\u escape");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo = 0;
            if (s_.substr(pos_, 2) != "\\u") return fail("high surrogate not followed by a low surrogate");
            pos_ += 2;
            if (!hex4(&lo)) return false;
            if (lo < 0xdc00 || lo > 0xdfff) return fail("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          put_utf8(out, cp);
          break;
        }
        default: --pos_; return fail(std::string("unknown escape '\\") + e + "'");
      }
    }
  }

  bool number(Value* out) {
    size_t start = pos_;
    size_t i = pos_;
    auto digits = [&] {
      size_t b = i;
      while (i < s_.size() && s_[i] >= '0' && s_[i] <= '9') ++i;
      return i - b;
    };
    if (i < s_.size() && s_[i] == '-') ++i;
    if (i >= s_.size() || s_[i] < '0' || s_[i] > '9') return fail("expected a value");
    if (s_[i] == '0') {
      ++i;
      if (i < s_.size() && s_[i] >= '0' && s_[i] <= '9') return fail("leading zero in a number");
    } else {
      digits();
    }
    bool integral = true;
    if (i < s_.size() && s_[i] == '.') {
      integral = false;
      ++i;
      if (digits() == 0) {
        pos_ = i;
        return fail("expected digits after '.'");
      }
    }
    if (i < s_.size() && (s_[i] == 'e' || s_[i] == 'E')) {
      integral = false;
      ++i;
      if (i < s_.size() && (s_[i] == '+' || s_[i] == '-')) ++i;
      if (digits() == 0) {
        pos_ = i;
        return fail("expected digits in the exponent");
      }
    }
    const char* b = s_.data() + start;
    const char* e = s_.data() + i;
    if (integral) {
      int64_t v = 0;
      auto r = std::from_chars(b, e, v);
      if (r.ec == std::errc() && r.ptr == e) {
        *out = v;
        pos_ = i;
        return true;
      }
    }
    double d = 0;
    auto r = std::from_chars(b, e, d);
    if (r.ec != std::errc() || r.ptr != e || !std::isfinite(d)) return fail("number out of range");
    *out = d;
    pos_ = i;
    return true;
  }

  std::string_view s_;
  ParseLimits limits_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

Result<Value> parse(std::string_view text, const ParseLimits& limits) { return Parser(text, limits).run(); }

void write_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void write(std::string& out, const Value& v) {
  switch (v.type()) {
    case Type::kNull: out += "null"; return;
    case Type::kBool: out += v.as_bool() ? "true" : "false"; return;
    case Type::kInt: {
      char b[24];
      auto r = std::to_chars(b, b + sizeof(b), v.as_int());
      out.append(b, r.ptr);
      return;
    }
    case Type::kDouble: {
      double d = v.as_double();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      char b[32];
      auto r = std::to_chars(b, b + sizeof(b), d);  // shortest form that reads back exactly
      out.append(b, r.ptr);
      return;
    }
    case Type::kString: write_string(out, v.as_string()); return;
    case Type::kArray: {
      out.push_back('[');
      bool first = true;
      for (const Value& e : v.as_array()) {
        if (!first) out.push_back(',');
        first = false;
        write(out, e);
      }
      out.push_back(']');
      return;
    }
    case Type::kObject: {
      out.push_back('{');
      bool first = true;
      for (const auto& [k, e] : v.as_object()) {
        if (!first) out.push_back(',');
        first = false;
        write_string(out, k);
        out.push_back(':');
        write(out, e);
      }
      out.push_back('}');
      return;
    }
  }
}

std::string to_string(const Value& v) {
  std::string out;
  write(out, v);
  return out;
}

}  // namespace imf::json
