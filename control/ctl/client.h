// imfctl's side of the control socket: connect, send one request, pass progress lines on, return
// the final response.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "proto/json.h"

namespace imf::ctl {

struct Reply {
  enum class Kind : uint8_t {
    kOk,           // "ok":true; `result` holds the result
    kError,        // "ok":false; `error` holds the daemon's message
    kUnreachable,  // no connection, or it broke or timed out before the final response
  };
  Kind kind = Kind::kUnreachable;
  json::Value result;
  std::string error;
};

// Sends `cmd` with `args` to the daemon at `socket_path` and waits for the final response, giving
// up after `silence` without any line from the daemon. Progress texts go to `progress`.
Reply call(const std::string& socket_path, const std::string& cmd, json::Value args,
           const std::function<void(const std::string&)>& progress, std::chrono::milliseconds silence);

}  // namespace imf::ctl
