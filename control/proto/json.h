// A small JSON value type, parser and writer for the control protocol (docs/control-protocol.md).
//
// Numbers are kept as int64 when they are integers that fit, else as double. Objects keep their
// members in insertion order and never hold a key twice. Strings are bytes: the parser decodes
// escapes (\uXXXX, surrogate pairs -> UTF-8) and passes any other byte >= 0x20 through, so a rule
// file's raw bytes survive a round trip even where they are not UTF-8.
// No global state; values are not shared between threads unless the caller synchronizes.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/result.h"

namespace imf::json {

class Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;

enum class Type : uint8_t { kNull, kBool, kInt, kDouble, kString, kArray, kObject };

const char* type_name(Type t);

class Value {
 public:
  Value() = default;
  Value(std::nullptr_t) {}  // NOLINT(google-explicit-constructor)
  Value(bool b) : v_(b) {}  // NOLINT(google-explicit-constructor)
  template <std::integral T>
  requires(!std::same_as<T, bool>) Value(T i) {  // NOLINT(google-explicit-constructor)
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(int64_t)) {
      if (i > static_cast<uint64_t>(INT64_MAX)) {
        v_ = static_cast<double>(i);
        return;
      }
    }
    v_ = static_cast<int64_t>(i);
  }
  Value(double d) : v_(d) {}                         // NOLINT(google-explicit-constructor)
  Value(const char* s) : v_(std::string(s)) {}       // NOLINT(google-explicit-constructor)
  Value(std::string s) : v_(std::move(s)) {}         // NOLINT(google-explicit-constructor)
  Value(std::string_view s) : v_(std::string(s)) {}  // NOLINT(google-explicit-constructor)
  Value(Array a) : v_(std::move(a)) {}               // NOLINT(google-explicit-constructor)
  Value(Object o) : v_(std::move(o)) {}              // NOLINT(google-explicit-constructor)

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_number() const { return type() == Type::kInt || type() == Type::kDouble; }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  // Accessors: the caller checks the type first; a wrong type throws std::bad_variant_access
  // (an impossible state in correct code).
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_double() const { return is_int() ? static_cast<double>(as_int()) : std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const Array& as_array() const { return std::get<Array>(v_); }
  Array& as_array() { return std::get<Array>(v_); }
  const Object& as_object() const { return std::get<Object>(v_); }
  Object& as_object() { return std::get<Object>(v_); }

  // The member `key` of an object; nullptr when absent or when this is not an object.
  const Value* find(std::string_view key) const;
  // Sets member `key` of an object (this becomes an empty object first if it is null).
  Value& set(std::string_view key, Value v);

  bool operator==(const Value& o) const { return v_ == o.v_; }

 private:
  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> v_;
};

struct ParseLimits {
  size_t max_depth = 64;  // arrays and objects nested deeper are refused
};

// Parses exactly one JSON value (surrounding whitespace allowed). Errors read
// "malformed JSON at byte N: what was expected"; duplicate object keys and nesting beyond
// `limits.max_depth` are errors too.
Result<Value> parse(std::string_view text, const ParseLimits& limits = {});

// Appends the compact encoding of `v` (no newline; control characters escaped, so the text
// never holds a raw newline). Non-finite doubles become null.
void write(std::string& out, const Value& v);
std::string to_string(const Value& v);
void write_string(std::string& out, std::string_view s);

}  // namespace imf::json
