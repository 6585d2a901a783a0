#include "ctl/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proto/protocol.h"

namespace imf::ctl {

namespace {

Reply unreachable(std::string why) {
  Reply r;
  r.kind = Reply::Kind::kUnreachable;
  r.error = std::move(why);
  return r;
}

}  // namespace

Reply call(const std::string& socket_path, const std::string& cmd, json::Value args,
           const std::function<void(const std::string&)>& progress, std::chrono::milliseconds silence) {
  sockaddr_un addr{};
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path))
    return unreachable("socket path '" + socket_path + "' is empty or too long");
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return unreachable(std::string("socket: ") + std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::string e = std::strerror(errno);
    ::close(fd);
    return unreachable("cannot connect to " + socket_path + ": " + e);
  }

  const int64_t id = static_cast<int64_t>(::getpid());
  std::string req = proto::request_line(id, cmd, std::move(args));
  size_t sent = 0;
  // The daemon may refuse (permission, too many connections) and close before reading all of a
  // large request: a failed send is only final once its answer has been read below.
  bool send_failed = false;
  while (sent < req.size()) {
    ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      send_failed = true;
      break;
    }
    sent += static_cast<size_t>(n);
  }

  std::string buf;
  size_t scanned = 0;
  char chunk[65536];
  for (;;) {
    size_t nl = buf.find('\n', scanned);
    if (nl == std::string::npos) {
      scanned = buf.size();
      pollfd p{fd, POLLIN, 0};
      int rc = ::poll(&p, 1, static_cast<int>(silence.count()));
      if (rc < 0 && errno == EINTR) continue;
      if (rc == 0) {
        ::close(fd);
        return unreachable("no answer from " + socket_path + " within " + std::to_string(silence.count() / 1000) +
                           " s");
      }
      ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fd);
        return unreachable(send_failed ? "connection to " + socket_path + " broke while sending the request"
                                       : "connection to " + socket_path + " closed before the response");
      }
      buf.append(chunk, static_cast<size_t>(n));
      continue;
    }
    std::string line = buf.substr(0, nl);
    buf.erase(0, nl + 1);
    scanned = 0;
    auto v = json::parse(line);
    if (!v || !v->is_object()) {
      ::close(fd);
      return unreachable("unreadable line from the daemon: " + (v ? std::string("not an object") : v.error()));
    }
    if (const json::Value* p = v->find("progress"); p && p->is_string()) {
      progress(p->as_string());
      continue;
    }
    ::close(fd);
    Reply r;
    const json::Value* ok = v->find("ok");
    if (ok && ok->is_bool() && ok->as_bool()) {
      r.kind = Reply::Kind::kOk;
      if (const json::Value* res = v->find("result")) r.result = *res;
      return r;
    }
    r.kind = Reply::Kind::kError;
    const json::Value* err = v->find("error");
    r.error = err && err->is_string() ? err->as_string() : "the daemon answered without a result";
    return r;
  }
}

}  // namespace imf::ctl
