// The control protocol's envelope (docs/control-protocol.md): one JSON object per line.
//   request   {"v":1,"id":ID,"cmd":"rules.load","args":{...}}
//   progress  {"v":1,"id":ID,"progress":"compiling 10000 rules"}
//   response  {"v":1,"id":ID,"ok":true,"result":{...}}  or  {"v":1,"id":ID,"ok":false,"error":"..."}
// Shared by imf-control and imfctl. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "proto/json.h"

namespace imf::proto {

inline constexpr int64_t kVersion = 1;

struct Request {
  json::Value id;  // echoed in every line answering this request; null when absent
  std::string cmd;
  json::Value args;  // always an object
};

// Parses and checks one request line (without its newline). `*id` is set as soon as the id is
// known, so an error response can still name the request. Errors: malformed JSON, a missing or
// unsupported "v", a missing or non-string "cmd", "args" not an object, an unknown member.
Result<Request> parse_request(std::string_view line, json::Value* id);

// Response and progress lines, each ending in '\n'.
std::string ok_line(const json::Value& id, json::Value result);
std::string error_line(const json::Value& id, const std::string& error);
std::string progress_line(const json::Value& id, const std::string& text);
std::string request_line(const json::Value& id, const std::string& cmd, json::Value args);

// What a command accepts in "args": name, JSON type, whether required.
struct Field {
  const char* name;
  json::Type type;  // kInt also accepts nothing else; kString only strings; kBool only booleans
  bool required;
};

// Checks `args` against `fields`: every required field present, each with its type, and no other
// member. Errors name the command and field, e.g. "rules.show: args.version must be an integer",
// "rules.load: unknown field 'txt' in args (allowed: text, source, path)".
Status check_args(const std::string& cmd, const json::Value& args, std::initializer_list<Field> fields);

// Typed lookups for args already checked by check_args.
// get_string points into `args` (nullptr when absent).
const std::string* get_string(const json::Value& args, std::string_view name);
std::optional<int64_t> get_int(const json::Value& args, std::string_view name);
bool get_bool(const json::Value& args, std::string_view name, bool fallback);

}  // namespace imf::proto
