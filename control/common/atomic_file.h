// Writing files so that a crash loses nothing acknowledged: whole-file replacement (a temporary
// file beside the target, fsync, rename over the target, fsync of the directory: after a crash the
// target holds the old or the new contents, never a mix), complete writes, and the errno errors
// every caller words the same way. Any thread.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace imf {

// "PATH: WHAT: <strerror(errno)>".
inline Error sys_error(const std::string& path, const char* what) {
  return make_error(path + ": " + what + ": " + std::strerror(errno));
}

// Writes all of `bytes` to `fd`, across short writes and EINTR. Errors name `path`.
inline Status write_all(int fd, std::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return sys_error(path, "write failed");
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Ok{};
}

// mkdir -p with `mode` for the directories created. Errors name the path.
inline Status make_dirs(const std::string& path, unsigned mode) {
  if (path.empty()) return make_error("empty directory path");
  for (size_t pos = path.find('/', 1);; pos = path.find('/', pos + 1)) {
    std::string part = path.substr(0, pos);
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) return sys_error(part, "cannot create directory");
    if (pos == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return make_error(path + ": not a directory");
  return Ok{};
}

// The directory holding `path` ("." for a bare name).
inline std::string parent_directory(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Makes the entries of `dir` (a file created or renamed in it) durable.
inline Status fsync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error(dir, "cannot open directory to fsync");
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return sys_error(dir, "directory fsync failed");
  return Ok{};
}

// Replaces `path` with what `fill` writes to the temporary file's descriptor (for contents too
// large to build in memory first); `fill` names the temporary file in its errors. On any error the
// target is untouched and the temporary file removed.
inline Status write_file_atomic_streamed(const std::string& path,
                                         const std::function<Status(int fd, const std::string& tmp)>& fill) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return sys_error(path, "cannot create temporary file");
  auto fail = [&](Status s) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  if (Status s = fill(fd, tmp); !s) return fail(s);
  if (::fsync(fd) != 0) return fail(sys_error(path, "fsync failed"));
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = sys_error(path, "rename failed");
    ::unlink(tmp.c_str());
    return e;
  }
  return fsync_directory(parent_directory(path));
}

inline Status write_file_atomic(const std::string& path, const std::string& bytes) {
  return write_file_atomic_streamed(path, [&](int fd, const std::string& tmp) { return write_all(fd, bytes, tmp); });
}

}  // namespace imf
