#include "daemon/dataplane_link.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace imf::control {

namespace {

constexpr size_t kMaxResponse = 64ull << 20;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

DataplaneReply unreachable(const std::string& path, const std::string& why) {
  DataplaneReply r;
  r.kind = DataplaneReply::Kind::kUnreachable;
  r.error = "dataplane at " + path + ": " + why;
  return r;
}

// Waits for `events` on `fd` until `deadline`; false on timeout or error.
bool wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}

}  // namespace

DataplaneReply UnixDataplaneLink::call(const json::Value& request, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  sockaddr_un addr{};
  if (path_.empty() || path_.size() >= sizeof(addr.sun_path)) return unreachable(path_, "socket path too long");
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return unreachable(path_, std::string("socket: ") + std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.c_str(), path_.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    // A UNIX socket whose backlog is full answers EAGAIN; anything else means nobody listens.
    if (errno != EAGAIN && errno != EINPROGRESS)
      return unreachable(path_, std::string("connect: ") + std::strerror(errno));
    if (!wait_for(fd.get(), POLLOUT, deadline)) return unreachable(path_, "connect timed out");
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return unreachable(path_, std::string("connect: ") + std::strerror(err));
  }

  std::string out = json::to_string(request);
  out.push_back('\n');
  size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = ::send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!wait_for(fd.get(), POLLOUT, deadline)) return unreachable(path_, "request timed out");
      continue;
    }
    return unreachable(path_, std::string("send: ") + std::strerror(errno));
  }

  std::string in;
  char buf[65536];
  size_t scanned = 0;
  for (;;) {
    size_t nl = in.find('\n', scanned);
    if (nl != std::string::npos) {
      in.resize(nl);
      break;
    }
    scanned = in.size();
    if (in.size() > kMaxResponse) return unreachable(path_, "response line too long");
    if (!wait_for(fd.get(), POLLIN, deadline))
      return unreachable(path_, "no response within " + std::to_string(timeout.count()) + " ms");
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return unreachable(path_, std::string("recv: ") + std::strerror(errno));
    if (n == 0) return unreachable(path_, "connection closed before a response");
    in.append(buf, static_cast<size_t>(n));
  }

  auto parsed = json::parse(in);
  if (!parsed || !parsed->is_object()) {
    DataplaneReply r;
    r.kind = DataplaneReply::Kind::kRejected;
    r.error = "dataplane sent an unreadable response: " + (parsed ? std::string("not an object") : parsed.error());
    return r;
  }
  DataplaneReply r;
  const json::Value* ok = parsed->find("ok");
  if (ok && ok->is_bool() && ok->as_bool()) {
    r.kind = DataplaneReply::Kind::kOk;
    r.body = std::move(parsed.value());
    return r;
  }
  r.kind = DataplaneReply::Kind::kRejected;
  const json::Value* err = parsed->find("error");
  r.error = err && err->is_string() ? err->as_string() : "dataplane refused without a reason";
  r.body = std::move(parsed.value());
  return r;
}

}  // namespace imf::control
