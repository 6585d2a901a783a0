#include "daemon/version_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/atomic_file.h"

namespace imf::control {

namespace {

constexpr std::string_view kSuffix = ".imfrules";

bool parse_version(std::string_view s, uint64_t* v) {
  if (s.empty() || s.size() > 19 || (s.size() > 1 && s.front() == '0')) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && *v > 0;
}

Result<std::vector<std::string>> list_dir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return make_error(dir + ": cannot read directory: " + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  return names;
}

}  // namespace

Result<size_t> remove_temporaries(const std::string& dir) {
  auto names = list_dir(dir);
  if (!names) return make_error(names.error());
  size_t n = 0;
  for (const std::string& name : names.value()) {
    if (name.find(".tmp.") == std::string::npos) continue;
    std::string p = dir;
    p += "/";
    p += name;
    if (::unlink(p.c_str()) != 0) return make_error(p + ": cannot remove: " + std::strerror(errno));
    ++n;
  }
  return n;
}

Status VersionStore::init() const {
  if (Status s = make_dirs(dir_, 0750); !s) return s;
  auto removed = remove_temporaries(dir_);
  if (!removed) return make_error(removed.error());
  return Ok{};
}

std::string VersionStore::artifact_path(uint64_t version) const {
  return dir_ + "/" + std::to_string(version) + std::string(kSuffix);
}

Result<std::vector<uint64_t>> VersionStore::versions() const {
  auto names = list_dir(dir_);
  if (!names) return make_error(names.error());
  std::vector<uint64_t> out;
  for (const std::string& name : names.value()) {
    std::string_view n = name;
    if (n.size() <= kSuffix.size() || n.substr(n.size() - kSuffix.size()) != kSuffix) continue;
    uint64_t v = 0;
    if (parse_version(n.substr(0, n.size() - kSuffix.size()), &v)) out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::optional<uint64_t>> VersionStore::active() const {
  std::string path = dir_ + "/active";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<uint64_t>{};
    return make_error(path + ": cannot open: " + std::strerror(errno));
  }
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (n < 0) return make_error(path + ": cannot read: " + std::strerror(errno));
  std::string text(buf, static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  uint64_t v = 0;
  if (!parse_version(text, &v)) return make_error(path + ": does not hold a version number");
  return std::optional<uint64_t>(v);
}

Status VersionStore::set_active(uint64_t version) const {
  return write_file_atomic(dir_ + "/active", std::to_string(version) + "\n");
}

Result<uint64_t> VersionStore::next_version(uint64_t floor) const {
  auto vs = versions();
  if (!vs) return make_error(vs.error());
  auto act = active();
  if (!act) return make_error(act.error());
  uint64_t top = floor;
  if (!vs->empty()) top = std::max(top, vs->back());
  if (act.value()) top = std::max(top, *act.value());
  return top + 1;
}

Result<uint64_t> VersionStore::previous_version() const {
  auto vs = versions();
  if (!vs) return make_error(vs.error());
  auto act = active();
  if (!act) return make_error(act.error());
  if (!act.value()) return make_error("no version is active yet");
  uint64_t cur = *act.value();
  uint64_t best = 0;
  for (uint64_t v : vs.value()) {
    if (v < cur) best = v;
  }
  if (best == 0) return make_error("no kept version older than the active version " + std::to_string(cur));
  return best;
}

Result<std::vector<uint64_t>> VersionStore::prune(size_t keep) const {
  auto vs = versions();
  if (!vs) return make_error(vs.error());
  auto act = active();
  if (!act) return make_error(act.error());
  std::vector<uint64_t> deleted;
  if (vs->size() <= keep) return deleted;
  size_t old = vs->size() - keep;  // vs[0 .. old) are beyond the newest `keep`
  for (size_t i = 0; i < old; ++i) {
    uint64_t v = vs.value()[i];
    if (act.value() && v == *act.value()) continue;
    std::string p = artifact_path(v);
    if (::unlink(p.c_str()) != 0) return make_error(p + ": cannot remove: " + std::strerror(errno));
    deleted.push_back(v);
  }
  return deleted;
}

Status VersionStore::remove(uint64_t version) const {
  auto act = active();
  if (!act) return make_error(act.error());
  if (act.value() && *act.value() == version)
    return make_error("version " + std::to_string(version) + " is active and cannot be removed");
  std::string p = artifact_path(version);
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) return make_error(p + ": cannot remove: " + std::strerror(errno));
  return Ok{};
}

}  // namespace imf::control
