#include "record/event.h"

#include <arpa/inet.h>

#include <cstdio>
#include <ctime>

#include "proto/decoder.h"
#include "records/digest.h"

namespace imf::dp::record {

namespace {

// Length of the valid UTF-8 sequence at p (n bytes available), or 0 if invalid.
uint32_t utf8_len(const unsigned char* p, uint32_t n) {
  unsigned char c = p[0];
  uint32_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) {
    len = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4;
    cp = c & 0x07;
  } else
    return 0;
  if (len > n) return 0;
  for (uint32_t i = 1; i < len; ++i) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;  // overlong, surrogate
  return len;
}

}  // namespace

void append_json_string(std::string& out, const char* s, uint32_t n) {
  out.push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(s);
  for (uint32_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
      ++i;
    } else if (uint32_t k = utf8_len(p + i, n - i); k > 0) {
      out.append(s + i, k);
      i += k;
    } else {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
    }
  }
  out.push_back('"');
}

namespace {

std::string ip_text(const uint8_t* ip, uint8_t version) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(version == 4 ? AF_INET : AF_INET6, ip, buf, sizeof(buf));
  return buf;
}

}  // namespace

int64_t event_time_ns(const Event& e, const Clock& clock) {
  return clock.base_realtime_ns +
         static_cast<int64_t>(static_cast<double>(e.tsc - clock.base_tsc) * 1e9 / static_cast<double>(clock.tsc_hz));
}

std::string event_fields(const Event& e) {
  using inspect::Measure;
  auto measure = static_cast<Measure>(e.measure);
  std::string out;
  out.reserve(512);
  out += measure == Measure::kLapsed ? "\"kind\":\"state_change\",\"cause\":\"expired\"" : "\"kind\":\"measure\"";
  out += ",\"action\":\"";
  out += inspect::measure_name(measure);
  out += "\",\"lcore\":" + std::to_string(e.lcore);
  out += ",\"flow\":{\"proto\":\"";
  out += e.l4_proto == 17 ? "udp" : "tcp";
  out += "\",\"src\":\"" + ip_text(e.src_ip, e.ip_version) + "\",\"sport\":" + std::to_string(e.src_port) +
         ",\"dst\":\"" + ip_text(e.dst_ip, e.ip_version) + "\",\"dport\":" + std::to_string(e.dst_port) +
         ",\"vlan\":" + std::to_string(e.vlan) + "}";
  out += e.to_client ? ",\"direction\":\"to_client\"" : ",\"direction\":\"to_server\"";
  out += ",\"account\":";
  if (e.account_known) {
    append_json_string(out, e.account, e.account_len);
  } else {
    out += "null";
  }
  out += ",\"protocol\":";
  out += e.protocol < proto::kProtocolCount
             ? std::string("\"") + proto::protocol_name(static_cast<proto::Protocol>(e.protocol)) + "\""
             : std::string("null");
  out += ",\"message\":";
  out += e.has_message
             ? std::string("\"") + proto::message_kind_name(static_cast<proto::MessageKind>(e.message_kind)) + "\""
             : std::string("null");
  out += ",\"channel\":";
  append_json_string(out, e.channel, e.channel_len);
  if (inspect::measure_has_rule(measure)) {
    out += ",\"rule\":";
    append_json_string(out, e.rule, e.rule_len);
    out += ",\"rules_version\":" + std::to_string(e.version);
    out += ",\"category\":";
    append_json_string(out, e.category, e.category_len);
  } else {
    out += ",\"rule\":null,\"rules_version\":null,\"category\":null";
  }
  out += ",\"state_before\":\"";
  out += imf::policy::state_name(static_cast<imf::policy::AccountState>(e.state_before));
  out += "\",\"state_after\":\"";
  out += imf::policy::state_name(static_cast<imf::policy::AccountState>(e.state_after));
  out += "\",\"until\":" + std::to_string(e.until_s);
  if (e.has_digest) {
    out += ",\"digest\":\"hmac-sha256:" + records::to_hex(e.digest, sizeof(e.digest));
    out += "\",\"digest_bytes\":" + std::to_string(e.digest_bytes);
  } else {
    out += ",\"digest\":null,\"digest_bytes\":0";
  }
  return out;
}

std::string event_to_json(const Event& e, const Clock& clock) { return event_line(e, clock, event_fields(e)); }

std::string event_line(const Event& e, const Clock& clock, std::string_view fields) {
  int64_t ns = event_time_ns(e, clock);
  time_t secs = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char ts[48];
  std::snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>((ns % 1000000000) / 1000));
  std::string out = "{\"ts\":\"";
  out += ts;
  out += "\",";
  out += fields;
  out += "}\n";
  return out;
}

}  // namespace imf::dp::record
