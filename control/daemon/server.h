// The control socket: a UNIX stream socket speaking the JSON-lines protocol of
// docs/control-protocol.md. Each connection is served by its own thread, so a slow client or a
// long load only holds its own connection; idle and half-sent requests time out.
//
// Access: the socket file is mode 0660 (group `group` when configured), and every connection's
// peer is checked with SO_PEERCRED: uid 0, or a member (primary or supplementary, per the user and
// group databases) of `group`. Anyone else gets one error response and is disconnected.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/result.h"
#include "daemon/config.h"
#include "daemon/control.h"
#include "daemon/dispatch.h"

namespace imf::control {

struct ServerLimits {
  std::chrono::milliseconds idle{600000};    // no request started
  std::chrono::milliseconds partial{60000};  // a request line started but not finished
  std::chrono::milliseconds write{30000};    // a response the client does not read
  size_t max_connections = 64;
};

// Whether `peer` may use the control socket; `why` gets the error text when not. Any thread.
bool peer_allowed(const Peer& peer, const ControlConfig& config, std::string* why);

class Server {
 public:
  // Creates the socket file: replaces a stale one, refuses when another daemon answers on it or
  // when the path is not a socket. Setup thread.
  static Result<std::unique_ptr<Server>> listen(const ControlConfig& config, Control& control,
                                                ServerLimits limits = {});
  ~Server();  // closes and removes the socket file
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Accepts connections until `stop_fd` becomes readable. Main thread.
  void run(int stop_fd);
  // After run(): ends every connection's reads and waits up to `timeout` for their threads.
  // True when all ended (a command in progress still finishes and answers first).
  bool drain(std::chrono::milliseconds timeout);

 private:
  Server(int fd, const ControlConfig& config, Control& control, ServerLimits limits)
      : fd_(fd), config_(config), control_(control), limits_(limits) {}
  void serve(int fd, Peer peer);
  bool send_all(int fd, const std::string& data) const;

  int fd_;
  const ControlConfig& config_;
  Control& control_;
  ServerLimits limits_;

  std::mutex mu_;  // guards conns_
  std::condition_variable done_;
  std::set<int> conns_;  // fds of connections being served
};

}  // namespace imf::control
