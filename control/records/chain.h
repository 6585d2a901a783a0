// The tamper-evident record log: append-only JSON lines, each carrying the SHA-256 of the line
// before it, one chain per writer ("source": "dataplane" written by imfd, "control" by
// imf-control). Records never contain message content (see digest.h for what they carry instead).
//
// Line format, exactly, members in this order:
//   {"seq":N,"time":"2026-11-28T21:14:04.123Z","appliance":"ID","source":"SRC",<fields>,"prev":"<64 hex>"}
// The hash of a line is the SHA-256 of its bytes without the trailing '\n'. `prev` of the first
// record ever is 64 '0's; seq starts at 1 and rises by 1 across files.
//
// Files in the chain directory, for source SRC:
//   SRC-<first seq, 12 digits zero padded>.jsonl   the records; a new file when the current one
//                                                  would exceed rotate_bytes or its first record
//                                                  is rotate_seconds older than the new record
//   SRC.head     "SEQ HASH\n" of the last record made durable, rewritten (atomically) after each
//                fsync: lets verify detect an edited or removed last line and a truncated tail
//   SRC.anchor   "SEQ HASH\n" of the last record of the newest file deleted by retention: the
//                chain continues from there
//
// What it proves: lines edited, removed, reordered or inserted after they were written break the
// chain and verify_chain() says where. It does not stop someone who can write the directory from
// rewriting the whole chain consistently; ship the head (or exports) elsewhere for that.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "records/digest.h"

namespace imf::records {

struct ChainConfig {
  std::string dir;                      // created (with parents, mode 0750) if missing
  std::string source;                   // [a-z0-9_-]+: file prefix and the "source" field
  std::string appliance;                // appliance id, the "appliance" field (JSON-escaped)
  uint64_t rotate_bytes = 64ull << 20;  // 0 = never rotate by size
  uint64_t rotate_seconds = 86400;      // 0 = never rotate by age
  uint64_t retention_seconds = 0;       // 0 = keep forever
  uint32_t fsync_every = 1;
  uint32_t fsync_interval_ms = 1000;
};

// Appends records to one chain. One writer per (dir, source) — two writers would fork the chain;
// not thread-safe: one thread appends (the record writer thread in imfd, the main loop in
// imf-control).
//
// Durability (fsync policy). The file is fsynced, and then the head file rewritten, when
//   - fsync_every > 0 and fsync_every records have been appended since the last fsync
//     (fsync_every = 1: append() returns only once its record is durable; a crash loses nothing
//     that append() reported written);
//   - fsync_interval_ms > 0 and at least that long (monotonic clock) has passed since the last
//     fsync, checked on each append() — an idle writer is not synced by time alone, so a caller
//     with fsync_every != 1 should also call flush() from a timer;
//   - on flush(), on rotation and in the destructor.
// A crash (power loss; a process crash alone loses nothing written) can lose the records appended
// since the last fsync: at most fsync_every - 1, or up to fsync_interval_ms' worth (plus the idle
// time until the next append/flush), or everything since the last flush()/close when both are 0.
// A crash can also tear the last line; open() repairs that (below). Each fsync with fsync_every = 1
// costs about three disk flushes (file, head file, directory).
//
// Retention: when a new file is started, whole files whose last record is more than
// retention_seconds older than the record being appended are deleted, oldest first and only a
// contiguous run from the oldest, never the current file; the anchor is written before deleting.
class ChainWriter {
 public:
  // Opens the chain, creating the directory if needed, and resumes after its last record:
  //   - the newest file's last line gives seq and prev (or the anchor if no file is left);
  //   - a torn last line (no '\n': a crash mid-write) is truncated away and a record
  //     "kind":"recovered","discarded_bytes":N is appended so the damage stays visible;
  //   - when the head file names a later seq than the last line found (records removed from the
  //     end), or the same seq with another hash (last line edited), the writer continues from the
  //     head — seq after the head's, prev = the head's hash — and appends
  //     "kind":"head_mismatch","head_seq":H,"found_seq":S. open() succeeds and the chain keeps the
  //     evidence: verify_chain() reports the gap or broken link there even after the head moves on.
  // A newest file ending in a line that is not a record is treated like a cut tail: resumed from
  // the head (found_seq null), or an error when there is no head file.
  // Errors: bad source name, directory or file I/O, the case above (messages name the path).
  static Result<std::unique_ptr<ChainWriter>> open(const ChainConfig& cfg);
  ~ChainWriter();  // fsyncs, updates the head file and closes
  ChainWriter(const ChainWriter&) = delete;
  ChainWriter& operator=(const ChainWriter&) = delete;

  // Appends one record stamped with time_ns (unix ns, written as UTC with milliseconds); `fields`
  // is JSON object member text without braces (e.g. "kind":"measure","account":"a"), produced
  // valid by the caller and not parsed here. Returns the record's seq.
  // Errors: a newline in `fields` or a failed write (the record is not written; a partial write
  // is truncated away). If the write succeeded but a due fsync or head update failed, the error
  // says so: the record is in the file (last_seq() counts it) but may not survive a crash.
  Result<uint64_t> append(int64_t time_ns, std::string_view fields);
  // fsyncs now and rewrites the head file. Errors: I/O.
  Status flush();
  uint64_t last_seq() const { return last_seq_; }
  const std::string& last_hash() const { return last_hash_; }

 private:
  explicit ChainWriter(const ChainConfig& cfg);
  Status resume();
  Status start_file(int64_t time_ns);
  Status sync();
  Status apply_retention(int64_t now_ns);
  Result<uint64_t> write_record(int64_t time_ns, std::string_view fields);
  void close_file();

  ChainConfig cfg_;
  std::string appliance_json_;  // the escaped "appliance" value, built once
  int fd_ = -1;
  std::string file_path_;
  uint64_t file_size_ = 0;
  int64_t file_first_ns_ = 0;  // time of the current file's first record (rotation by age)
  uint64_t last_seq_ = 0;
  std::string last_hash_;
  uint64_t unsynced_ = 0;  // records appended since the last fsync
  uint64_t head_seq_ = 0;  // what the head file says
  int64_t last_sync_mono_ns_ = 0;
};

// "2026-11-28T21:14:04.123Z" (UTC, milliseconds truncated). Pure functions, any thread.
std::string format_time(int64_t unix_ns);
// Parses "2026-11-28T21:14:04Z", "2026-11-28T21:14:04.123Z" (1 to 9 fraction digits),
// "2026-11-28" (midnight UTC), unix seconds ("1764364444"), or a time relative to now_ns:
// "-45s", "-30m", "-2h", "-7d". Errors quote the text and list the accepted forms.
Result<int64_t> parse_time(std::string_view text, int64_t now_ns);

// Field `name` of a record line as text: a string's value or a number's digits; nullopt when the
// line is not a JSON object or has no such string/number member.
std::optional<std::string> record_field(std::string_view line, std::string_view name);

struct VerifyReport {
  bool ok = true;
  uint64_t records = 0, files = 0;
  uint64_t first_seq = 0, last_seq = 0;
  // Each "FILE:LINE: what is wrong" (FILE without the directory), e.g.
  //   "control-000000000001.jsonl:17: seq 19 follows 17: record 18 was removed"
  //   "control-000000000001.jsonl:5: prev does not match the hash of line 4: line 4 was edited or lines were reordered"
  //   "control.head: head says seq 40 but the last record is 38: records were removed from the end"
  // At most 20, then one "... and N more problems".
  std::vector<std::string> problems;
};
// Verifies the chain of `source` in `dir`: every line is a JSON record with the required members
// and this source, seq rises by 1 (across files, from 1 or from the anchor), each prev is the
// hash of the line before, each file's name matches its first seq, and the head file matches.
// Safe to run while the writer appends (it reads the head before the files), though a line being
// written at that instant may show as incomplete. Any thread; reads files only.
VerifyReport verify_chain(const std::string& dir, const std::string& source);

struct QueryFilter {
  std::optional<std::string> account;  // exact match on the "account" member
  int64_t since_ns = INT64_MIN;        // time >= since
  const Key* pseudonym_key = nullptr;  // when set, every "account" string value (at any depth) in
                                       // the output is replaced by pseudonym()
  size_t limit = 0;                    // 0 = no limit, else keep the LAST `limit` matches
};
struct ChainSource {
  std::string dir, source;
};
// Matching records of all sources, merged by time (ties: source order, then seq), as JSON lines
// without '\n'. Lines that do not parse and a torn last line are skipped (verify_chain reports
// them). Pseudonymized lines are re-encoded, so they no longer hash to the chain.
// Errors: a source directory that cannot be read, or a file that cannot. Any thread; reads only.
Result<std::vector<std::string>> query(const std::vector<ChainSource>& sources, const QueryFilter& f);

// Follows a chain another process writes (imf-control tails imfd's dataplane chain): returns
// complete lines with seq > after_seq in order, following rotation. Records that can no longer
// be read — their file was deleted by retention before it was read, or the writer skipped seqs
// (see ChainWriter::open) — are passed over and counted in skipped(). The current file stays
// open, so retention deleting it mid-read loses nothing. A missing directory reads as empty.
// One thread at a time.
class ChainReader {
 public:
  ChainReader(std::string dir, std::string source, uint64_t after_seq);
  ~ChainReader();
  ChainReader(const ChainReader&) = delete;
  ChainReader& operator=(const ChainReader&) = delete;

  // Up to max_lines new complete lines (without '\n'); empty when there is nothing new. A line
  // still being written is returned by a later call. Lists the directory when the current file
  // is exhausted. Errors: read failures (the reader stays usable).
  Result<std::vector<std::string>> next(size_t max_lines);
  // The seq of the last line returned (after_seq before any).
  uint64_t last_seq() const { return last_seq_; }
  // Records passed over (seq gaps), see above.
  uint64_t skipped() const { return skipped_; }

 private:
  Status open_next_file();

  std::string dir_, source_;
  uint64_t last_seq_;
  uint64_t skipped_ = 0;
  int fd_ = -1;
  uint64_t file_seq_ = 0;  // first seq of the open file (from its name)
  uint64_t offset_ = 0;    // bytes of the open file consumed (complete lines only)
};

}  // namespace imf::records
