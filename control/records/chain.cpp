#include "records/chain.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>

#include "common/atomic_file.h"
#include "proto/json.h"

namespace imf::records {

namespace {

constexpr int64_t kNsPerSec = 1'000'000'000;
constexpr size_t kHashHex = 64;
const std::string kZeroHash(kHashHex, '0');

int64_t clock_ns(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
}

bool valid_source(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool is_hash(std::string_view s) {
  return s.size() == kHashHex &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool parse_u64(std::string_view s, uint64_t* v) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// ---- File names, head and anchor ----

// Joins text without a temporary string per '+'.
template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  (s.append(std::string_view(parts)), ...);
  return s;
}

// "record 7 was" / "records 7..9 were"
std::string span(uint64_t from, uint64_t to) {
  return from == to ? "record " + std::to_string(from) + " was"
                    : "records " + std::to_string(from) + ".." + std::to_string(to) + " were";
}

std::string file_name(const std::string& source, uint64_t first_seq) {
  char digits[24];
  std::snprintf(digits, sizeof(digits), "%012llu", static_cast<unsigned long long>(first_seq));
  return source + "-" + digits + ".jsonl";
}

struct ChainFile {
  uint64_t seq;  // first seq, from the name
  std::string name;
};

// The chain files of `source` in `dir`, by first seq. A missing directory is an empty chain
// when missing_ok.
Result<std::vector<ChainFile>> list_files(const std::string& dir, const std::string& source, bool missing_ok) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT && missing_ok) return std::vector<ChainFile>{};
    return sys_error(dir, "cannot read directory");
  }
  std::vector<ChainFile> files;
  std::string prefix = source + "-";
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (!n.starts_with(prefix) || !n.ends_with(".jsonl")) continue;
    std::string_view num = n.substr(prefix.size(), n.size() - prefix.size() - 6);
    uint64_t seq = 0;
    if (num.size() >= 12 && std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        parse_u64(num, &seq))
      files.push_back({seq, std::string(n)});
  }
  ::closedir(d);
  std::sort(files.begin(), files.end(), [](const ChainFile& a, const ChainFile& b) { return a.seq < b.seq; });
  return files;
}

// "SEQ HASH\n": the head and anchor files.
struct Mark {
  uint64_t seq = 0;
  std::string hash;
};

Result<std::optional<Mark>> read_mark(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<Mark>{};
    return sys_error(path, "cannot read");
  }
  char buf[128];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  Error e = sys_error(path, "cannot read");
  ::close(fd);
  if (n < 0) return e;
  std::string text(buf, static_cast<size_t>(n));
  Mark m;
  size_t sp = text.find(' ');
  if (sp == std::string::npos || !text.ends_with('\n') || !parse_u64(std::string_view(text).substr(0, sp), &m.seq) ||
      !is_hash(std::string_view(text).substr(sp + 1, text.size() - sp - 2)))
    return make_error(path + ": malformed: expected \"SEQ HASH\" and a newline");
  m.hash = text.substr(sp + 1, kHashHex);
  return std::optional<Mark>(m);
}

Status write_mark(const std::string& path, uint64_t seq, const std::string& hash) {
  return write_file_atomic(path, std::to_string(seq) + " " + hash + "\n");
}

// ---- Reading files ----

Status pread_all(int fd, std::string* buf, uint64_t offset, size_t n, const std::string& path) {
  buf->resize(n);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, buf->data() + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return sys_error(path, "read failed");
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  buf->resize(done);
  return Ok{};
}

// The last complete line of a file of `size` bytes, and how many bytes follow it (a torn line).
struct Tail {
  std::string line;       // empty when the file holds no complete line
  uint64_t complete = 0;  // bytes up to and including the last '\n'
};

Result<Tail> read_tail(int fd, uint64_t size, const std::string& path) {
  Tail t;
  std::string buf;
  // Read backwards in growing windows until the window holds the last '\n' and the one before it.
  for (uint64_t window = 4096;; window *= 2) {
    uint64_t start = size > window ? size - window : 0;
    if (Status st = pread_all(fd, &buf, start, size - start, path); !st) return make_error(st.error());
    size_t end = buf.rfind('\n');
    if (end == std::string::npos) {
      if (start == 0) return t;  // no complete line at all
      continue;
    }
    size_t begin = end == 0 ? std::string::npos : buf.rfind('\n', end - 1);
    if (begin == std::string::npos && start > 0) continue;
    begin = begin == std::string::npos ? 0 : begin + 1;
    t.line = buf.substr(begin, end - begin);
    t.complete = start + end + 1;
    return t;
  }
}

Result<std::string> read_first_line(int fd, const std::string& path) {
  std::string buf;
  for (size_t window = 4096;; window *= 2) {
    if (Status st = pread_all(fd, &buf, 0, window, path); !st) return make_error(st.error());
    size_t nl = buf.find('\n');
    if (nl != std::string::npos) return buf.substr(0, nl);
    if (buf.size() < window) return std::string();
  }
}

// The seq of a line as the writer lays it out ({"seq":N,...}); 0 when it is not there.
uint64_t leading_seq(std::string_view line) {
  constexpr std::string_view kPrefix = "{\"seq\":";
  if (!line.starts_with(kPrefix)) return 0;
  uint64_t seq = 0;
  auto r = std::from_chars(line.data() + kPrefix.size(), line.data() + line.size(), seq);
  return r.ec == std::errc() && r.ptr < line.data() + line.size() && *r.ptr == ',' ? seq : 0;
}

int64_t record_time(std::string_view line) {
  auto t = record_field(line, "time");
  if (!t) return INT64_MIN;
  auto ns = parse_time(*t, 0);
  return ns ? ns.value() : INT64_MIN;
}

// ---- Civil dates (Howard Hinnant's algorithms, proleptic Gregorian) ----

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  auto yoe = static_cast<unsigned>(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  auto doe = static_cast<unsigned>(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// Digits at s[pos, pos+n) as a number; false when any is not a digit.
bool digits(std::string_view s, size_t pos, size_t n, unsigned* v) {
  if (pos + n > s.size()) return false;
  *v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    *v = *v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return true;
}

void pseudonymize(json::Value* v, const Key& key) {
  if (v->is_array()) {
    for (json::Value& e : v->as_array()) pseudonymize(&e, key);
  } else if (v->is_object()) {
    for (auto& [k, e] : v->as_object()) {
      if (k == "account" && e.is_string()) {
        e = pseudonym(key, e.as_string());
      } else {
        pseudonymize(&e, key);
      }
    }
  }
}

}  // namespace

// ---- Time ----

std::string format_time(int64_t unix_ns) {
  int64_t secs = unix_ns / kNsPerSec - (unix_ns % kNsPerSec < 0);  // floor, also before 1970
  auto ms = static_cast<unsigned>((unix_ns - secs * kNsPerSec) / 1'000'000);
  int64_t days = secs / 86400 - (secs % 86400 < 0);
  auto sod = static_cast<unsigned>(secs - days * 86400);
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", static_cast<long long>(y), m, d, sod / 3600,
                sod / 60 % 60, sod % 60, ms);
  return buf;
}

Result<int64_t> parse_time(std::string_view text, int64_t now_ns) {
  auto bad = [&] {
    return make_error("cannot read time \"" + std::string(text) +
                      "\": use 2026-11-28T21:14:04Z, 2026-11-28T21:14:04.123Z, 2026-11-28, unix seconds "
                      "(1764364444) or a time relative to now (-45s, -30m, -2h, -7d)");
  };
  auto is_digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (text.size() >= 3 && text[0] == '-') {
    static constexpr std::pair<char, int64_t> kUnits[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    uint64_t n = 0;
    auto unit = std::find_if(std::begin(kUnits), std::end(kUnits), [&](auto& u) { return u.first == text.back(); });
    std::string_view num = text.substr(1, text.size() - 2);
    if (unit == std::end(kUnits) || !is_digits(num) || !parse_u64(num, &n)) return bad();
    int64_t back = 0;
    if (n > static_cast<uint64_t>(INT64_MAX / kNsPerSec / unit->second) ||
        __builtin_sub_overflow(now_ns, static_cast<int64_t>(n) * unit->second * kNsPerSec, &back))
      return bad();
    return back;
  }
  if (is_digits(text)) {
    uint64_t s = 0;
    if (!parse_u64(text, &s) || s > static_cast<uint64_t>(INT64_MAX / kNsPerSec)) return bad();
    return static_cast<int64_t>(s) * kNsPerSec;
  }
  // YYYY-MM-DD[THH:MM:SS[.fraction]Z]
  unsigned y, mo, d, h = 0, mi = 0, s = 0;
  if (!digits(text, 0, 4, &y) || text.size() < 10 || text[4] != '-' || !digits(text, 5, 2, &mo) || text[7] != '-' ||
      !digits(text, 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
    return bad();
  int64_t frac_ns = 0;
  if (text.size() > 10) {
    if (text[10] != 'T' || !digits(text, 11, 2, &h) || text.size() < 20 || text[13] != ':' ||
        !digits(text, 14, 2, &mi) || text[16] != ':' || !digits(text, 17, 2, &s) || h > 23 || mi > 59 || s > 59 ||
        text.back() != 'Z')
      return bad();
    std::string_view frac = text.substr(19, text.size() - 20);
    if (!frac.empty()) {
      if (frac[0] != '.' || frac.size() < 2 || frac.size() > 10 || !is_digits(frac.substr(1))) return bad();
      for (size_t i = 1; i < 10; ++i) frac_ns = frac_ns * 10 + (i < frac.size() ? frac[i] - '0' : 0);
    }
  }
  int64_t secs = days_from_civil(y, mo, d) * 86400 + int64_t{h} * 3600 + int64_t{mi} * 60 + s;
  return secs * kNsPerSec + frac_ns;
}

std::optional<std::string> record_field(std::string_view line, std::string_view name) {
  auto v = json::parse(line);
  if (!v) return std::nullopt;
  const json::Value* f = v.value().find(name);
  if (!f) return std::nullopt;
  if (f->is_string()) return f->as_string();
  if (f->is_number()) return json::to_string(*f);
  return std::nullopt;
}

// ---- ChainWriter ----

ChainWriter::ChainWriter(const ChainConfig& cfg) : cfg_(cfg), last_hash_(kZeroHash) {
  json::write_string(appliance_json_, cfg_.appliance);
}

ChainWriter::~ChainWriter() {
  (void)sync();  // nowhere to report from a destructor; flush() first to see errors
  close_file();
}

Result<std::unique_ptr<ChainWriter>> ChainWriter::open(const ChainConfig& cfg) {
  if (!valid_source(cfg.source))
    return make_error("records: source \"" + cfg.source + "\" must be lowercase letters, digits, '_' or '-'");
  if (Status st = make_dirs(cfg.dir, 0750); !st) return make_error(st.error());
  std::unique_ptr<ChainWriter> w(new ChainWriter(cfg));
  if (Status st = w->resume(); !st) return make_error(st.error());
  return w;
}

Status ChainWriter::resume() {
  std::string base = cfg_.dir + "/" + cfg_.source;
  auto anchor = read_mark(base + ".anchor");
  if (!anchor) return make_error(anchor.error());
  if (anchor.value()) {
    last_seq_ = anchor.value()->seq;
    last_hash_ = anchor.value()->hash;
  }
  auto files = list_files(cfg_.dir, cfg_.source, false);
  if (!files) return make_error(files.error());

  // Resume after the last complete line of the newest file that has one. Files left with no
  // complete line (created just before a crash, or holding only a torn line) are removed: they
  // are named for a seq the chain may not continue with.
  uint64_t discarded = 0;
  std::string bad_tail;  // the newest file ends in a line that is not a record
  while (!files.value().empty()) {
    std::string path = cfg_.dir + "/" + files.value().back().name;
    int fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0) return sys_error(path, "cannot open");
    struct stat st {};
    auto tail = ::fstat(fd, &st) == 0 ? read_tail(fd, static_cast<uint64_t>(st.st_size), path)
                                      : Result<Tail>(sys_error(path, "cannot stat"));
    if (!tail) {
      ::close(fd);
      return make_error(tail.error());
    }
    uint64_t torn = static_cast<uint64_t>(st.st_size) - tail.value().complete;
    if (torn > 0) {
      if (::ftruncate(fd, static_cast<off_t>(tail.value().complete)) != 0 || ::fsync(fd) != 0) {
        Error e = sys_error(path, "cannot truncate the torn last line");
        ::close(fd);
        return e;
      }
      discarded += torn;
    }
    if (tail.value().line.empty()) {
      ::close(fd);
      if (::unlink(path.c_str()) != 0) return sys_error(path, "cannot remove empty file");
      files.value().pop_back();
      continue;
    }
    auto first = read_first_line(fd, path);
    if (!first) {
      ::close(fd);
      return make_error(first.error());
    }
    fd_ = fd;
    file_path_ = path;
    file_size_ = tail.value().complete;
    file_first_ns_ = record_time(first.value());
    last_seq_ = leading_seq(tail.value().line);
    last_hash_ = sha256_hex(tail.value().line);
    if (last_seq_ == 0) bad_tail = path;
    break;
  }

  // The head is what was last made durable. If the files end before it, or differ at it, they
  // were cut or edited: continue from the head so the chain itself keeps the evidence.
  auto head = read_mark(base + ".head");
  if (!bad_tail.empty() && !(head && head.value()))
    return make_error(bad_tail + ": last line is not a record and there is no head file: cannot resume the chain");
  std::string mismatch;
  if (!head) {
    mismatch = "\"kind\":\"head_mismatch\",\"head_seq\":null,\"found_seq\":" + std::to_string(last_seq_);
  } else if (const auto& h = head.value()) {
    head_seq_ = h->seq;
    if (h->seq > last_seq_ || (h->seq == last_seq_ && h->hash != last_hash_)) {
      mismatch = "\"kind\":\"head_mismatch\",\"head_seq\":" + std::to_string(h->seq) +
                 ",\"found_seq\":" + (bad_tail.empty() ? std::to_string(last_seq_) : "null");
      last_seq_ = h->seq;
      last_hash_ = h->hash;
    }
  }
  last_sync_mono_ns_ = clock_ns(CLOCK_MONOTONIC);
  int64_t now = clock_ns(CLOCK_REALTIME);
  if (discarded > 0) {
    auto r = write_record(now, "\"kind\":\"recovered\",\"discarded_bytes\":" + std::to_string(discarded));
    if (!r) return make_error(r.error());
  }
  if (!mismatch.empty()) {
    auto r = write_record(now, mismatch);
    if (!r) return make_error(r.error());
  }
  return unsynced_ > 0 ? sync() : Status(Ok{});
}

void ChainWriter::close_file() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status ChainWriter::start_file(int64_t time_ns) {
  std::string path = cfg_.dir + "/" + file_name(cfg_.source, last_seq_ + 1);
  // O_EXCL: a file already holding this name is not ours to append to.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return sys_error(path, "cannot create");
  fd_ = fd;
  file_path_ = path;
  file_size_ = 0;
  file_first_ns_ = time_ns;
  return fsync_directory(cfg_.dir);  // the new name must survive a crash with the records in it
}

Status ChainWriter::sync() {
  if (fd_ >= 0 && unsynced_ > 0) {
    // fdatasync covers the data and the file size, all an append changes that matters.
    if (::fdatasync(fd_) != 0) return sys_error(file_path_, "fsync failed");
  }
  unsynced_ = 0;
  last_sync_mono_ns_ = clock_ns(CLOCK_MONOTONIC);
  if (head_seq_ != last_seq_) {
    if (Status st = write_mark(cfg_.dir + "/" + cfg_.source + ".head", last_seq_, last_hash_); !st) return st;
    head_seq_ = last_seq_;
  }
  return Ok{};
}

Status ChainWriter::flush() { return sync(); }

Status ChainWriter::apply_retention(int64_t now_ns) {
  if (cfg_.retention_seconds == 0) return Ok{};
  auto files = list_files(cfg_.dir, cfg_.source, false);
  if (!files) return make_error(files.error());
  __int128 keep_ns = static_cast<__int128>(cfg_.retention_seconds) * kNsPerSec;
  std::vector<std::string> doomed;
  Mark anchor;
  for (const ChainFile& f : files.value()) {
    std::string path = cfg_.dir + "/" + f.name;
    if (path == file_path_) break;
    // Only a contiguous run from the oldest file goes, so what remains is still one chain.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sys_error(path, "cannot open");
    struct stat st {};
    auto tail = ::fstat(fd, &st) == 0 ? read_tail(fd, static_cast<uint64_t>(st.st_size), path)
                                      : Result<Tail>(sys_error(path, "cannot stat"));
    ::close(fd);
    if (!tail) return make_error(tail.error());
    int64_t t = record_time(tail.value().line);
    uint64_t seq = leading_seq(tail.value().line);
    if (t == INT64_MIN || seq == 0 || static_cast<__int128>(now_ns) - t <= keep_ns) break;
    doomed.push_back(path);
    anchor = {seq, sha256_hex(tail.value().line)};
  }
  if (doomed.empty()) return Ok{};
  // The anchor goes first: after a crash part way, verify starts from it and skips the leftovers.
  if (Status st = write_mark(cfg_.dir + "/" + cfg_.source + ".anchor", anchor.seq, anchor.hash); !st) return st;
  for (const std::string& path : doomed) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error(path, "cannot delete");
  }
  return fsync_directory(cfg_.dir);
}

Result<uint64_t> ChainWriter::write_record(int64_t time_ns, std::string_view fields) {
  std::string line = "{\"seq\":" + std::to_string(last_seq_ + 1) + ",\"time\":\"" + format_time(time_ns) +
                     "\",\"appliance\":" + appliance_json_ + ",\"source\":\"" + cfg_.source + "\",";
  line += fields;
  if (!fields.empty()) line += ',';
  line += "\"prev\":\"" + last_hash_ + "\"}";
  std::string hash = sha256_hex(line);
  line += '\n';

  bool too_big = cfg_.rotate_bytes > 0 && file_size_ > 0 && file_size_ + line.size() > cfg_.rotate_bytes;
  bool too_old = cfg_.rotate_seconds > 0 && static_cast<__int128>(time_ns) - file_first_ns_ >=
                                                static_cast<__int128>(cfg_.rotate_seconds) * kNsPerSec;
  bool rotated = false;
  if (fd_ >= 0 && (too_big || too_old)) {
    if (Status st = sync(); !st) return make_error(st.error());
    close_file();
    rotated = true;
  }
  if (fd_ < 0) {
    if (Status st = start_file(time_ns); !st) return make_error(st.error());
  }

  if (Status w = write_all(fd_, line, file_path_); !w) {
    Error e = make_error(w.error());
    // Leave no torn line behind for the next append to follow.
    if (::ftruncate(fd_, static_cast<off_t>(file_size_)) != 0) e.message += " (and truncate failed)";
    return e;
  }
  file_size_ += line.size();
  last_seq_ += 1;
  last_hash_ = std::move(hash);
  unsynced_ += 1;

  if (rotated) {
    // Deleting old files must not cost records: a failure is itself recorded, and retried at the
    // next rotation.
    if (Status st = apply_retention(time_ns); !st) {
      std::string fields2 = "\"kind\":\"retention_failed\",\"error\":";
      json::write_string(fields2, st.error());
      if (auto r = write_record(time_ns, fields2); !r) return r;
    }
  }
  return last_seq_;
}

Result<uint64_t> ChainWriter::append(int64_t time_ns, std::string_view fields) {
  if (fields.find('\n') != std::string_view::npos) return make_error("records: fields must not contain a newline");
  auto seq = write_record(time_ns, fields);
  if (!seq) return seq;
  bool due = (cfg_.fsync_every > 0 && unsynced_ >= cfg_.fsync_every) ||
             (cfg_.fsync_interval_ms > 0 &&
              clock_ns(CLOCK_MONOTONIC) - last_sync_mono_ns_ >= int64_t{cfg_.fsync_interval_ms} * 1'000'000);
  if (due) {
    if (Status st = sync(); !st)
      return make_error("record " + std::to_string(last_seq_) + " written but not made durable: " + st.error());
  }
  return seq;
}

// ---- verify ----

VerifyReport verify_chain(const std::string& dir, const std::string& source) {
  VerifyReport r;
  size_t more = 0;
  auto problem = [&](const auto&... parts) {
    if (r.problems.size() < 20) {
      r.problems.push_back(cat(parts...));
    } else {
      ++more;
    }
  };
  std::string base = dir + "/" + source;
  // The head first: it only moves forward, so records read afterwards reach at least as far.
  auto head = read_mark(base + ".head");
  auto anchor = read_mark(base + ".anchor");
  // Problems name files relative to the chain directory.
  if (!head) problem(head.error().substr(dir.size() + 1));
  if (!anchor) problem(anchor.error().substr(dir.size() + 1));
  std::optional<Mark> a = anchor ? anchor.value() : std::nullopt;
  std::optional<Mark> h = head ? head.value() : std::nullopt;
  auto files = list_files(dir, source, false);
  if (!files) {
    problem(files.error());
    r.ok = false;
    return r;
  }

  uint64_t expect = a ? a->seq + 1 : 1;
  std::string prev_hash = a ? a->hash : kZeroHash;
  std::string prev_where;  // "FILE:LINE" of the line prev_hash belongs to
  bool head_checked = false;
  for (size_t fi = 0; fi < files.value().size(); ++fi) {
    const ChainFile& f = files.value()[fi];
    std::ifstream in(dir + "/" + f.name, std::ios::binary);
    if (!in) {
      // Retention may have deleted it since the listing; then a newer anchor covers it.
      auto now = read_mark(base + ".anchor");
      if (errno == ENOENT && now && now.value() && now.value()->seq >= f.seq && r.records == 0) {
        a = now.value();
        expect = a->seq + 1;
        prev_hash = a->hash;
        continue;
      }
      problem(f.name, ": cannot read: ", std::strerror(errno));
      continue;
    }
    ++r.files;
    std::string line;
    size_t ln = 0;
    while (std::getline(in, line)) {
      ++ln;
      std::string where = f.name + ":" + std::to_string(ln);
      if (in.eof()) {  // getline stopped at the end of the file, not at a '\n'
        problem(where, ": incomplete last line (no newline): a write was interrupted or the file was truncated");
        break;
      }
      std::string hash = sha256_hex(line);
      auto v = json::parse(line);
      const json::Value *seq_v = nullptr, *prev_v = nullptr, *src_v = nullptr;
      std::string missing;
      if (v && v.value().is_object()) {
        const json::Value& o = v.value();
        seq_v = o.find("seq");
        prev_v = o.find("prev");
        src_v = o.find("source");
        const json::Value* time_v = o.find("time");
        const json::Value* app_v = o.find("appliance");
        if (!seq_v || !seq_v->is_int() || seq_v->as_int() < 1)
          missing = "seq";
        else if (!time_v || !time_v->is_string())
          missing = "time";
        else if (!app_v || !app_v->is_string())
          missing = "appliance";
        else if (!src_v || !src_v->is_string())
          missing = "source";
        else if (!prev_v || !prev_v->is_string() || !is_hash(prev_v->as_string()))
          missing = "prev";
      }
      if (!v || !v.value().is_object() || !missing.empty()) {
        if (missing.empty()) {
          problem(where, ": not a JSON record");
        } else {
          problem(where, ": missing or malformed \"", missing, "\"");
        }
        // A damaged record still holding its seq takes its place in the chain (the next link then
        // shows it was edited); a line without one was inserted, and the chain skips over it.
        if (uint64_t damaged = leading_seq(line); damaged > 0) {
          expect = damaged + 1;
          prev_hash = hash;
          prev_where = where;
        }
        continue;
      }
      auto seq = static_cast<uint64_t>(seq_v->as_int());
      if (ln == 1 && seq != f.seq)
        problem(where, ": first record is seq ", std::to_string(seq), " but the file name says ", std::to_string(f.seq),
                ": the file was renamed or its first lines removed");
      if (src_v->as_string() != source)
        problem(where, ": source is \"", src_v->as_string(), "\", not \"", source, "\": copied from another chain");
      // Leftovers of a retention pass a crash interrupted: already covered by the anchor.
      if (r.records == 0 && a && seq <= a->seq) {
        if (seq == a->seq && hash != a->hash)
          problem(where, ": record ", std::to_string(seq), " differs from the anchor");
        continue;
      }
      std::string s = std::to_string(seq);
      if (seq != expect && r.records == 0 && !a) {
        problem(where, ": the chain starts at seq ", s, ", not 1: ", span(1, seq - 1), " removed");
      } else if (seq != expect) {
        std::string after = (r.records == 0 ? "the anchor's " : "") + std::to_string(expect - 1);
        if (seq > expect) {
          problem(where, ": seq ", s, " follows ", after, ": ", span(expect, seq - 1), " removed",
                  (ln == 1 && fi > 0 ? " (a file is missing?)" : ""));
        } else {
          problem(where, ": seq ", s, " follows ", after, ": lines were reordered or duplicated");
        }
      } else if (prev_v->as_string() != prev_hash) {
        if (prev_where.empty()) {
          problem(where, (a ? ": prev does not match the anchor: the first line was edited or the anchor"
                            : ": prev of the first record is not zeros: the chain's start was altered"));
        } else if (ln > 1) {
          std::string p = std::to_string(ln - 1);
          problem(where, ": prev does not match the hash of line ", p, ": line ", p,
                  " was edited or lines were reordered");
        } else {
          problem(where, ": prev does not match the hash of ", prev_where, ": that line was edited");
        }
      }
      if (r.records == 0) r.first_seq = seq;
      r.last_seq = seq;
      ++r.records;
      expect = seq + 1;
      prev_hash = hash;
      prev_where = where;
      if (h && seq == h->seq && !head_checked) {
        head_checked = true;
        if (hash != h->hash)
          problem(where, ": record ", s, " was edited (its hash differs from the head) or the head file was");
      }
    }
    if (ln == 0 && fi + 1 < files.value().size()) problem(f.name, ": empty file");
  }
  if (h && h->seq > r.last_seq && (!a || h->seq > a->seq)) {
    problem(source, ".head: head says seq ", std::to_string(h->seq), " but the last record is ",
            std::to_string(r.last_seq), ": records were removed from the end");
  } else if (!h && head && r.records > 0) {
    problem(source, ".head: missing: the end of the chain cannot be checked (removed?)");
  }
  if (more > 0) r.problems.push_back("... and " + std::to_string(more) + " more problems");
  r.ok = r.problems.empty();
  return r;
}

// ---- query ----

Result<std::vector<std::string>> query(const std::vector<ChainSource>& sources, const QueryFilter& f) {
  struct Match {
    int64_t time;
    std::string line;
  };
  std::vector<Match> matches;
  // A line holding the account holds its text verbatim when the account needs no JSON escape (our
  // writer escapes nothing else): such lines are found without parsing the rest.
  std::string_view needle;
  if (f.account && std::all_of(f.account->begin(), f.account->end(),
                               [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '/'; }))
    needle = *f.account;
  for (const ChainSource& src : sources) {
    auto files = list_files(src.dir, src.source, false);
    if (!files) return make_error(files.error());
    for (const ChainFile& cf : files.value()) {
      std::string path = src.dir + "/" + cf.name;
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        if (errno == ENOENT) continue;  // deleted by retention since the listing
        return sys_error(path, "cannot read");
      }
      std::string line;
      while (std::getline(in, line)) {
        if (in.eof()) break;  // torn last line
        if (!needle.empty() && line.find(needle) == std::string::npos) continue;
        auto v = json::parse(line);
        if (!v || !v.value().is_object()) continue;
        if (f.account) {
          const json::Value* acc = v.value().find("account");
          if (!acc || !acc->is_string() || acc->as_string() != *f.account) continue;
        }
        const json::Value* t = v.value().find("time");
        int64_t time = INT64_MIN;
        if (t && t->is_string()) {
          if (auto ns = parse_time(t->as_string(), 0)) time = ns.value();
        }
        if (time < f.since_ns) continue;
        if (f.pseudonym_key) {
          pseudonymize(&v.value(), *f.pseudonym_key);
          line = json::to_string(v.value());
        }
        matches.push_back({time, std::move(line)});
      }
    }
  }
  // Sources were read in order and each in seq order: a stable sort keeps that for equal times.
  std::stable_sort(matches.begin(), matches.end(), [](const Match& a, const Match& b) { return a.time < b.time; });
  size_t skip = f.limit > 0 && matches.size() > f.limit ? matches.size() - f.limit : 0;
  std::vector<std::string> out;
  out.reserve(matches.size() - skip);
  for (size_t i = skip; i < matches.size(); ++i) out.push_back(std::move(matches[i].line));
  return out;
}

// ---- ChainReader ----

ChainReader::ChainReader(std::string dir, std::string source, uint64_t after_seq)
    : dir_(std::move(dir)), source_(std::move(source)), last_seq_(after_seq) {}

ChainReader::~ChainReader() {
  if (fd_ >= 0) ::close(fd_);
}

// Opens the file to read next: the one after the open file, or at first the one holding
// last_seq_ + 1 (or the oldest, if retention took that one). Leaves fd_ < 0 when there is none.
Status ChainReader::open_next_file() {
  for (int attempt = 0; attempt < 3; ++attempt) {  // a listed file can vanish before open()
    auto files = list_files(dir_, source_, true);
    if (!files) return make_error(files.error());
    const ChainFile* pick = nullptr;
    for (const ChainFile& f : files.value()) {
      if (fd_ >= 0 || file_seq_ > 0) {
        if (f.seq > file_seq_) {
          pick = &f;
          break;
        }
      } else if (f.seq <= last_seq_ + 1 || !pick) {
        pick = &f;
      }
    }
    if (!pick) return Ok{};
    std::string path = dir_ + "/" + pick->name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) continue;
    if (fd < 0) return sys_error(path, "cannot open");
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    file_seq_ = pick->seq;
    offset_ = 0;
    return Ok{};
  }
  return Ok{};
}

Result<std::vector<std::string>> ChainReader::next(size_t max_lines) {
  std::vector<std::string> out;
  std::string buf;
  // Consumes complete lines of the open file from offset_; returns how many.
  auto read_lines = [&]() -> Result<size_t> {
    size_t consumed = 0;
    for (size_t window = size_t{64} << 10; out.size() < max_lines;) {
      if (Status st = pread_all(fd_, &buf, offset_, window, dir_); !st) return make_error(st.error());
      size_t pos = 0;
      for (size_t nl; out.size() < max_lines && (nl = buf.find('\n', pos)) != std::string::npos; pos = nl + 1) {
        std::string_view line(buf.data() + pos, nl - pos);
        uint64_t seq = leading_seq(line);
        if (seq == 0) {
          auto text = record_field(line, "seq");
          if (!text || !parse_u64(*text, &seq)) seq = 0;  // not a record: verify reports it
        }
        if (seq > last_seq_) {
          skipped_ += seq - last_seq_ - 1;
          last_seq_ = seq;
          out.emplace_back(line);
        }
        ++consumed;
      }
      offset_ += pos;
      if (pos > 0 || buf.size() < window) return consumed;  // progress, or the rest is a partial line
      window *= 2;                                          // a line longer than the window
    }
    return consumed;
  };
  while (out.size() < max_lines) {
    if (fd_ < 0) {
      if (Status st = open_next_file(); !st) return make_error(st.error());
      if (fd_ < 0) break;
    }
    auto got = read_lines();
    if (!got) return make_error(got.error());
    if (got.value() > 0) continue;
    // This file is exhausted unless the writer is still on it; it moves to a new file only after
    // finishing this one, so once a newer file exists, one more read drains this one.
    auto files = list_files(dir_, source_, true);
    if (!files) return make_error(files.error());
    bool newer = std::any_of(files.value().begin(), files.value().end(), [&](auto& f) { return f.seq > file_seq_; });
    if (!newer) break;
    got = read_lines();
    if (!got) return make_error(got.error());
    if (got.value() > 0) continue;
    if (Status st = open_next_file(); !st) return make_error(st.error());
  }
  return out;
}

}  // namespace imf::records
