#include "message_log_reader.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "message_log.h"
#include "rules/rule.h"

namespace imf::bench::scan {

namespace {

// The dataplane opens one Hyperscan stream per flow direction; more than this is a corrupt header.
constexpr uint32_t kMaxStreams = 1u << 24;
constexpr uint32_t kNoField = std::numeric_limits<uint32_t>::max();
constexpr size_t kSubjectPadding = 64;

Error fail(const std::string& path, const std::string& what) { return make_error(path + ": " + what); }

Error fail_chunk(const std::string& path, uint64_t index, uint64_t offset, const std::string& what) {
  return fail(path, "chunk " + std::to_string(index) + " at byte " + std::to_string(offset) + ": " + what);
}

const char* kind_name(uint8_t scope) { return scope == rules::kScopeTopic ? "topic" : "payload"; }

// Fields are numbered when they start; `started` records per start number what completion
// numbering needs.
struct StartedField {
  uint32_t stream;
  uint8_t scope;
  uint64_t len = 0;
  uint32_t completed_as = kNoField;
};

}  // namespace

Result<LoadedLog> load_message_log(const std::string& path) {
  LoadedLog log;
  log.path = path;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(path, "cannot open the message log");
    log.file.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) return fail(path, "read error");
  }
  const std::string& f = log.file;
  MessageLogHeader h;
  if (f.size() < sizeof h) {
    return fail(path, "too short for a message log header (" + std::to_string(f.size()) + " bytes)");
  }
  std::memcpy(&h, f.data(), sizeof h);
  if (std::memcmp(h.magic, kMessageLogMagic, sizeof h.magic) != 0) {
    return fail(path, "not a message log (bad magic; expected IMFMLOG1)");
  }
  if (h.reserved != 0) return fail(path, "header reserved field is not 0 (unsupported log version?)");
  if (h.n_streams > kMaxStreams) {
    return fail(path, "implausible stream count " + std::to_string(h.n_streams) + " (limit " +
                          std::to_string(kMaxStreams) + ")");
  }
  // Every chunk needs at least its record; this bounds the reservation below by the file size.
  if (h.n_chunks > (f.size() - sizeof h) / sizeof(ChunkRecord)) {
    return fail(path, "truncated: header says " + std::to_string(h.n_chunks) + " chunks but the file has room for " +
                          std::to_string((f.size() - sizeof h) / sizeof(ChunkRecord)));
  }
  log.n_streams = h.n_streams;
  log.n_messages = h.n_messages;
  log.chunks.reserve(h.n_chunks);

  std::vector<uint32_t> open(h.n_streams, kNoField);  // per stream: start number of its open field
  std::vector<StartedField> started;
  std::vector<uint32_t> completed;  // completion order -> start number
  uint64_t pos = sizeof h;
  uint64_t bytes = 0;
  for (uint64_t i = 0; i < h.n_chunks; ++i) {
    if (f.size() - pos < sizeof(ChunkRecord)) return fail_chunk(path, i, pos, "truncated chunk record");
    ChunkRecord c;
    std::memcpy(&c, f.data() + pos, sizeof c);
    if (c.len > f.size() - pos - sizeof c) {
      return fail_chunk(path, i, pos,
                        "truncated: " + std::to_string(c.len) + " data bytes announced, " +
                            std::to_string(f.size() - pos - sizeof c) + " left in the file");
    }
    if (c.stream >= h.n_streams) {
      return fail_chunk(
          path, i, pos,
          "stream " + std::to_string(c.stream) + " out of range (n_streams " + std::to_string(h.n_streams) + ")");
    }
    if (c.field > static_cast<uint8_t>(FieldKind::kTopic)) {
      return fail_chunk(path, i, pos, "unknown field kind " + std::to_string(c.field));
    }
    if ((c.flags & ~kChunkEndsField) != 0 || c.reserved != 0) {
      return fail_chunk(path, i, pos, "unknown flags or non-zero reserved bits");
    }
    uint8_t scope = c.field == static_cast<uint8_t>(FieldKind::kTopic) ? rules::kScopeTopic : rules::kScopePayload;
    uint32_t& cur = open[c.stream];
    if (cur == kNoField) {
      if (started.size() >= kNoField) return fail_chunk(path, i, pos, "too many fields");
      cur = static_cast<uint32_t>(started.size());
      started.push_back({c.stream, scope});
    } else if (started[cur].scope != scope) {
      return fail_chunk(path, i, pos,
                        "stream " + std::to_string(c.stream) + " starts a " + kind_name(scope) + " before its " +
                            kind_name(started[cur].scope) + " ended");
    }
    StartedField& sf = started[cur];
    sf.len += c.len;
    if (sf.len > std::numeric_limits<uint32_t>::max()) return fail_chunk(path, i, pos, "field longer than 4 GiB");
    bool ends = c.flags & kChunkEndsField;
    log.chunks.push_back({pos + sizeof c, c.len, c.stream, cur, scope, ends});
    if (ends) {
      sf.completed_as = static_cast<uint32_t>(completed.size());
      completed.push_back(cur);
      cur = kNoField;
    }
    bytes += c.len;
    pos += sizeof c + c.len;
  }
  if (pos != f.size()) {
    return fail(path, std::to_string(f.size() - pos) + " trailing bytes after the last of " +
                          std::to_string(h.n_chunks) + " chunks");
  }
  for (uint32_t s = 0; s < h.n_streams; ++s) {
    if (open[s] != kNoField) {
      return fail(path, "stream " + std::to_string(s) + ": the last " + kind_name(started[open[s]].scope) +
                            " never ends (truncated log?)");
    }
  }
  if (bytes != h.field_bytes) {
    return fail(path,
                "header says " + std::to_string(h.field_bytes) + " field bytes, chunks hold " + std::to_string(bytes));
  }
  uint64_t payloads = 0;
  for (const StartedField& sf : started) payloads += sf.scope == rules::kScopePayload;
  uint64_t topics = started.size() - payloads;
  if (payloads != h.n_messages || topics != h.n_messages) {
    return fail(path, "header says " + std::to_string(h.n_messages) + " messages, log holds " +
                          std::to_string(payloads) + " payloads and " + std::to_string(topics) + " topics");
  }
  log.field_bytes = bytes;

  // Lay the fields out contiguously in completion order, then copy the chunks into place.
  log.fields.reserve(completed.size());
  uint64_t off = 0;
  for (uint32_t start : completed) {
    const StartedField& sf = started[start];
    log.fields.push_back({off, static_cast<uint32_t>(sf.len), sf.stream, sf.scope});
    off += sf.len;
  }
  // PCRE2's JIT loads whole vectors and may read a little past a subject's end; the padding keeps
  // that inside the buffer for the last field (and keeps valgrind quiet).
  log.field_data.resize(off + kSubjectPadding);
  std::vector<uint32_t> written(log.fields.size(), 0);
  for (LogChunk& c : log.chunks) {
    c.field = started[c.field].completed_as;
    const LogField& lf = log.fields[c.field];
    std::memcpy(log.field_data.data() + lf.offset + written[c.field], f.data() + c.offset, c.len);
    written[c.field] += c.len;
  }
  return log;
}

}  // namespace imf::bench::scan
