#include "daemon/server.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "common/atomic_file.h"
#include "daemon/version_store.h"
#include "proto/protocol.h"

namespace imf::control {

namespace {

constexpr size_t kReadChunk = 1 << 20;

bool in_group(const Peer& peer, gid_t gid) {
  if (peer.gid == gid) return true;
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwuid_r(peer.uid, &pw, buf.data(), buf.size(), &found) != 0 || !found) return false;
  if (found->pw_gid == gid) return true;
  int n = 64;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));
    if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &n) < 0) return false;
  }
  for (int i = 0; i < n; ++i) {
    if (groups[static_cast<size_t>(i)] == gid) return true;
  }
  return false;
}

// A UNIX socket address for `path`, or an error when it does not fit.
Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return make_error("socket path '" + path + "' is empty or longer than " +
                      std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  return addr;
}

}  // namespace

bool peer_allowed(const Peer& peer, const ControlConfig& config, std::string* why) {
  if (peer.uid == 0) return true;
  if (!config.group.empty() && in_group(peer, config.gid)) return true;
  *why = "permission denied: uid " + std::to_string(peer.uid) +
         (config.group.empty() ? " is not root (no group is configured)" : " is not root or in group " + config.group);
  return false;
}

Result<std::unique_ptr<Server>> Server::listen(const ControlConfig& config, Control& control, ServerLimits limits) {
  auto addr = unix_address(config.socket);
  if (!addr) return make_error(addr.error());
  const std::string& path = config.socket;
  if (size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0) {
    if (Status s = make_dirs(path.substr(0, slash), 0755); !s) return make_error(s.error());
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return make_error(path + " exists and is not a socket; not replacing it");
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live =
        probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&addr.value()), sizeof(sockaddr_un)) == 0;
    if (probe >= 0) ::close(probe);
    if (live) return make_error("another process is listening on " + path + " (is imf-control already running?)");
    ::unlink(path.c_str());  // stale: left by a daemon that did not exit cleanly
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error("control socket: " + std::string(std::strerror(errno)));
  // umask makes the file 0660 from the start; nobody can connect before the chown.
  mode_t old = ::umask(0117);
  int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr.value()), sizeof(sockaddr_un));
  ::umask(old);
  if (rc != 0) {
    std::string e = std::strerror(errno);
    ::close(fd);
    return make_error(path + ": bind: " + e);
  }
  auto fail = [&](const std::string& what) {
    std::string e = std::strerror(errno);
    ::close(fd);
    ::unlink(path.c_str());
    return make_error(path + ": " + what + ": " + e);
  };
  if (!config.group.empty() && ::chown(path.c_str(), static_cast<uid_t>(-1), config.gid) != 0)
    return fail("cannot give the socket to group " + config.group);
  if (::chmod(path.c_str(), 0660) != 0) return fail("chmod");
  if (::listen(fd, 64) != 0) return fail("listen");
  return std::unique_ptr<Server>(new Server(fd, config, control, limits));
}

Server::~Server() {
  ::close(fd_);
  ::unlink(config_.socket.c_str());
}

bool Server::send_all(int fd, const std::string& data) const {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      int rc = ::poll(&p, 1, static_cast<int>(limits_.write.count()));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) return false;  // the client stopped reading
      continue;
    }
    return false;
  }
  return true;
}

void Server::run(int stop_fd) {
  for (;;) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("control socket poll: {}", std::strerror(errno));
      return;
    }
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      ::close(c);
      continue;
    }
    Peer peer{cred.uid, cred.gid, cred.pid};
    {
      std::lock_guard lock(mu_);
      if (conns_.size() >= limits_.max_connections) {
        send_all(c, proto::error_line(nullptr, "too many connections (" + std::to_string(limits_.max_connections) +
                                                   "); try again later"));
        ::close(c);
        continue;
      }
      conns_.insert(c);
    }
    std::thread([this, c, peer] { serve(c, peer); }).detach();
  }
}

bool Server::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  for (int c : conns_) ::shutdown(c, SHUT_RD);
  return done_.wait_for(lock, timeout, [&] { return conns_.empty(); });
}

void Server::serve(int fd, Peer peer) {
  // Checked here, not in the accept loop: the user and group lookups may be slow (NSS).
  std::string why;
  if (!peer_allowed(peer, config_, &why)) {
    spdlog::warn("control socket: refused pid {} uid {}: {}", peer.pid, peer.uid, why);
    send_all(fd, proto::error_line(nullptr, why));
    std::lock_guard lock(mu_);
    conns_.erase(fd);
    ::close(fd);
    done_.notify_all();
    return;
  }
  const uint64_t max = config_.max_request_bytes;
  std::string buf;
  size_t scanned = 0;       // bytes of buf already searched for '\n'
  bool discarding = false;  // dropping the rest of an oversized line
  bool alive = true;
  auto emit = [&](const std::string& line) {
    if (alive) alive = send_all(fd, line);
  };
  std::vector<char> chunk(kReadChunk);
  while (alive) {
    bool partial = !buf.empty() || discarding;
    auto wait = partial ? limits_.partial : limits_.idle;
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(wait.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) {
      emit(proto::error_line(
          nullptr, partial ? "request line not finished within " + std::to_string(wait.count() / 1000) + " s; closing"
                           : "idle for " + std::to_string(wait.count() / 1000) + " s; closing"));
      break;
    }
    ssize_t n = ::recv(fd, chunk.data(), chunk.size(), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n == 0 && !discarding && !buf.empty() && buf.size() <= max) {
      // The client closed its side after a last request without '\n' (printf '%s' | socat): answer it.
      std::string_view line(buf);
      if (line.back() == '\r') line.remove_suffix(1);
      if (!line.empty()) emit(handle_request(control_, line, peer, emit));
      break;
    }
    if (n <= 0) break;
    buf.append(chunk.data(), static_cast<size_t>(n));

    while (alive) {
      size_t nl = buf.find('\n', scanned);
      if (nl == std::string::npos) {
        scanned = buf.size();
        if (discarding) {
          buf.clear();
          scanned = 0;
        } else if (buf.size() > max) {
          emit(proto::error_line(nullptr, "request line longer than max_request_bytes (" + std::to_string(max) +
                                              " bytes); it is discarded"));
          discarding = true;
          buf.clear();
          scanned = 0;
        }
        break;
      }
      if (discarding) {
        discarding = false;
      } else if (nl > max) {
        emit(proto::error_line(nullptr, "request line longer than max_request_bytes (" + std::to_string(max) +
                                            " bytes); it is discarded"));
      } else {
        std::string_view line(buf.data(), nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (!line.empty()) emit(handle_request(control_, line, peer, emit));
      }
      buf.erase(0, nl + 1);
      scanned = 0;
    }
  }
  {
    // Under the lock, so drain() never shuts down a number the next accept reuses.
    std::lock_guard lock(mu_);
    conns_.erase(fd);
    ::close(fd);
  }
  done_.notify_all();
}

}  // namespace imf::control
