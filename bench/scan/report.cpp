#include "report.h"

#include <algorithm>
#include <cinttypes>

#include "rules/rule.h"

namespace imf::bench::scan {

namespace {

struct Rates {
  double messages_per_sec = 0;
  double bytes_per_sec = 0;
  double ns_per_byte = 0;
  double ns_per_message = 0;
};

// All rates are per thread CPU second over every pass.
Rates rates(const ModeResult& m) {
  Rates r;
  const PassCounts& t = m.total;
  if (m.cpu_seconds > 0) {
    r.messages_per_sec = static_cast<double>(t.messages) / m.cpu_seconds;
    r.bytes_per_sec = static_cast<double>(t.field_bytes) / m.cpu_seconds;
  }
  if (t.field_bytes > 0) r.ns_per_byte = m.cpu_seconds * 1e9 / static_cast<double>(t.field_bytes);
  if (t.messages > 0) r.ns_per_message = m.cpu_seconds * 1e9 / static_cast<double>(t.messages);
  return r;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "\"";
}

// Appends `"key": value` pairs, comma-separated, to one JSON object under construction.
class JsonObject {
 public:
  JsonObject& add_raw(const char* key, const std::string& value) {
    out_ += first_ ? "{" : ", ";
    first_ = false;
    out_ += json_string(key) + ": " + value;
    return *this;
  }
  JsonObject& add(const char* key, uint64_t v) { return add_raw(key, std::to_string(v)); }
  JsonObject& add(const char* key, bool v) { return add_raw(key, v ? "true" : "false"); }
  JsonObject& add(const char* key, const std::string& v) { return add_raw(key, json_string(v)); }
  JsonObject& add(const char* key, double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return add_raw(key, buf);
  }
  std::string str() const { return first_ ? "{}" : out_ + "}"; }

 private:
  std::string out_;
  bool first_ = true;
};

JsonObject counts_json(const PassCounts& c, bool with_messages_with_hits) {
  JsonObject o;
  o.add("messages", c.messages)
      .add("fields", c.fields)
      .add("field_bytes", c.field_bytes)
      .add("scan_calls", c.scan_calls)
      .add("hit_pairs", c.hit_pairs);
  if (with_messages_with_hits) o.add("messages_with_hits", c.messages_with_hits);
  return o.add("scan_errors", c.scan_errors);
}

std::string mode_json(const ModeResult& m) {
  Rates r = rates(m);
  JsonObject o = counts_json(m.pass, true);
  o.add("complete_pass", m.complete_pass)
      .add("passes", static_cast<uint64_t>(m.passes))
      .add("compile_seconds", m.info.compile_seconds)
      .add("db_bytes", m.info.db_bytes)
      .add("scratch_bytes", m.info.scratch_bytes)
      .add("stream_bytes", m.info.stream_bytes)
      .add("streams", m.info.streams)
      .add("cpu_seconds", m.cpu_seconds)
      .add("wall_seconds", m.wall_seconds)
      .add("messages_per_sec", r.messages_per_sec)
      .add("bytes_per_sec", r.bytes_per_sec)
      .add("ns_per_byte", r.ns_per_byte)
      .add("ns_per_message", r.ns_per_message)
      .add_raw("total", counts_json(m.total, false).str());
  return o.str();
}

std::string hit_list(const CrossCheck& c) {
  std::string s;
  for (const auto& [name, hits] : c.hit_pairs) s += (s.empty() ? "" : " ") + name + "=" + std::to_string(hits);
  return s;
}

}  // namespace

CrossCheck cross_check(const std::vector<ModeResult>& modes, const LoadedLog& log) {
  CrossCheck c;
  if (modes.size() < 2) return c;
  c.compared = true;
  c.fields = log.fields.size();
  for (const ModeResult& m : modes) c.fields = std::min(c.fields, m.fields_reached);
  for (uint64_t i = 0; i < c.fields; ++i) c.messages += log.fields[i].scope == rules::kScopePayload;
  for (const ModeResult& m : modes) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < c.fields; ++i) sum += m.field_hits[i];
    c.hit_pairs.emplace_back(m.name, sum);
  }
  for (uint64_t i = 0; i < c.fields && c.agree; ++i) {
    for (const ModeResult& m : modes) {
      if (m.field_hits[i] != modes[0].field_hits[i]) {
        c.agree = false;
        c.first_difference = i;
        break;
      }
    }
  }
  return c;
}

void print_table(std::FILE* out, const BenchReport& r) {
  const LoadedLog& log = *r.log;
  std::fprintf(out, "rules: %zu from %s\n", r.n_rules, r.rules_path.c_str());
  std::fprintf(out, "log:   %s: %" PRIu64 " messages, %zu fields, %zu chunks, %" PRIu64 " field bytes, %u streams\n",
               log.path.c_str(), log.n_messages, log.fields.size(), log.chunks.size(), log.field_bytes, log.n_streams);
  std::fprintf(out, "\n%-10s %9s %11s %10s %6s %8s %12s %9s %8s %9s %10s %9s\n", "mode", "compile_s", "db_bytes",
               "scratch", "passes", "cpu_s", "msgs/s", "MB/s", "ns/byte", "ns/msg", "hit_pairs", "msgs_hit");
  for (const ModeResult& m : r.modes) {
    Rates rt = rates(m);
    std::string passes = m.complete_pass ? std::to_string(m.passes) : "part";
    std::fprintf(
        out, "%-10s %9.3f %11" PRIu64 " %10" PRIu64 " %6s %8.2f %12.0f %9.1f %8.3f %9.0f %10" PRIu64 " %9" PRIu64 "\n",
        m.name.c_str(), m.info.compile_seconds, m.info.db_bytes, m.info.scratch_bytes, passes.c_str(), m.cpu_seconds,
        rt.messages_per_sec, rt.bytes_per_sec / 1e6, rt.ns_per_byte, rt.ns_per_message, m.pass.hit_pairs,
        m.pass.messages_with_hits);
  }
  std::fprintf(out, "\nhit_pairs and msgs_hit count the first pass");
  for (const ModeResult& m : r.modes) {
    if (!m.complete_pass) {
      std::fprintf(out, "; %s stopped at the time limit after %" PRIu64 " of %" PRIu64 " messages", m.name.c_str(),
                   m.pass.messages, log.n_messages);
    }
  }
  std::fprintf(out, ". Rates are per thread CPU second.\n");
  for (const ModeResult& m : r.modes) {
    if (m.info.streams != 0) {
      std::fprintf(out, "%s: %" PRIu64 " streams of %" PRIu64 " bytes each (%.1f MB)\n", m.name.c_str(), m.info.streams,
                   m.info.stream_bytes, static_cast<double>(m.info.streams * m.info.stream_bytes) / 1e6);
    }
  }
  if (r.check.compared) {
    std::fprintf(out, "cross-check over the first %" PRIu64 " fields (%" PRIu64 " messages): %s: %s\n", r.check.fields,
                 r.check.messages, hit_list(r.check).c_str(), r.check.agree ? "agree" : "DISAGREE");
  }
}

bool print_warnings(const BenchReport& r) {
  bool warned = false;
  if (r.check.compared && !r.check.agree) {
    const LogField& f = r.log->fields[r.check.first_difference];
    std::string per_mode;
    for (const ModeResult& m : r.modes) {
      per_mode += " " + m.name + "=" + std::to_string(m.field_hits[r.check.first_difference]);
    }
    std::fprintf(stderr,
                 "imf-scanbench: warning: modes disagree on hit_pairs over the first %" PRIu64
                 " fields: %s; first "
                 "differing field #%" PRIu64 " (%s of stream %u, %u bytes):%s\n",
                 r.check.fields, hit_list(r.check).c_str(), r.check.first_difference,
                 f.scope == rules::kScopeTopic ? "topic" : "payload", f.stream, f.len, per_mode.c_str());
    warned = true;
  }
  for (const ModeResult& m : r.modes) {
    if (m.total.scan_errors != 0) {
      std::fprintf(stderr, "imf-scanbench: warning: %s: %" PRIu64 " scan calls failed\n", m.name.c_str(),
                   m.total.scan_errors);
      warned = true;
    }
  }
  return warned;
}

std::string to_json(const BenchReport& r) {
  const LoadedLog& log = *r.log;
  JsonObject modes;
  for (const ModeResult& m : r.modes) modes.add_raw(m.name.c_str(), mode_json(m));
  JsonObject logj;
  logj.add("messages", log.n_messages)
      .add("fields", static_cast<uint64_t>(log.fields.size()))
      .add("chunks", static_cast<uint64_t>(log.chunks.size()))
      .add("field_bytes", log.field_bytes)
      .add("streams", static_cast<uint64_t>(log.n_streams));
  JsonObject top;
  top.add("rules", static_cast<uint64_t>(r.n_rules))
      .add("rules_file", r.rules_path)
      .add("mlog", log.path)
      .add_raw("log", logj.str())
      .add_raw("modes", modes.str());
  if (r.check.compared) {
    JsonObject hits;
    for (const auto& [name, n] : r.check.hit_pairs) hits.add(name.c_str(), n);
    JsonObject check;
    check.add("agree", r.check.agree)
        .add("fields", r.check.fields)
        .add("messages", r.check.messages)
        .add_raw("hit_pairs", hits.str());
    top.add_raw("cross_check", check.str());
  }
  return top.str() + "\n";
}

}  // namespace imf::bench::scan
