// The control process's client of imfd's agent socket: one JSON request line, one response line,
// one connection per request (docs/control-protocol.md, "Dataplane agent").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "proto/json.h"

namespace imf::control {

struct DataplaneReply {
  enum class Kind : uint8_t {
    kOk,           // {"ok":true,...}: `body` is the whole response object
    kRejected,     // {"ok":false,"error":...}: the agent answered and refused; `error` says why
    kUnreachable,  // no connection, or it failed or timed out before a whole response line
  };
  Kind kind = Kind::kUnreachable;
  json::Value body;
  std::string error;
};

// An interface so the control actions can be tested without a dataplane.
class DataplaneLink {
 public:
  virtual ~DataplaneLink() = default;
  // Sends `request` and waits at most `timeout` for the whole exchange. Never throws.
  // Implementations must allow calls from several threads at once.
  virtual DataplaneReply call(const json::Value& request, std::chrono::milliseconds timeout) = 0;
  // Where the dataplane is, for messages.
  virtual std::string where() const = 0;
};

// The real link over a UNIX stream socket.
class UnixDataplaneLink : public DataplaneLink {
 public:
  explicit UnixDataplaneLink(std::string path) : path_(std::move(path)) {}
  DataplaneReply call(const json::Value& request, std::chrono::milliseconds timeout) override;
  std::string where() const override { return path_; }

 private:
  std::string path_;
};

}  // namespace imf::control
