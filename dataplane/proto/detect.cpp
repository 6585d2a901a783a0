#include "proto/detect.h"

#include <cstring>
#include <string_view>

namespace imf::dp::proto {

namespace {

bool mqtt_connect(std::string_view s) {
  if (s.size() < 8 || static_cast<uint8_t>(s[0]) != 0x10) return false;
  size_t i = 1;
  while (i < 5 && i < s.size() && (static_cast<uint8_t>(s[i]) & 0x80)) ++i;  // remaining length
  if (++i >= s.size()) return false;
  std::string_view rest = s.substr(i);
  return rest.substr(0, 6) == std::string_view("\0\4MQTT", 6) || rest.substr(0, 8) == std::string_view("\0\6MQIsdp", 8);
}

bool xml_stream(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return false;
  s.remove_prefix(b);
  if (s.substr(0, 3) == "\xef\xbb\xbf") s.remove_prefix(3);  // UTF-8 byte-order mark
  if (s.substr(0, 5) == "<?xml") return true;
  if (s.empty() || s[0] != '<') return false;
  size_t end = s.find_first_of(" \t\r\n>/");
  std::string_view name = s.substr(1, end == std::string_view::npos ? std::string_view::npos : end - 1);
  return name == "stream" || (name.size() > 7 && name.substr(name.size() - 7) == ":stream");
}

bool sip_request(std::string_view s) {
  size_t eol = s.find('\n');
  std::string_view line = s.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t sp = line.find(' ');
  if (sp == 0 || sp == std::string_view::npos) return false;
  for (size_t i = 0; i < sp; ++i) {
    if (line[i] < 'A' || line[i] > 'Z') return false;
  }
  return line.size() > 8 && line.substr(line.size() - 8) == " SIP/2.0";
}

bool irc_registration(std::string_view s) {
  for (std::string_view cmd : {"NICK ", "USER ", "PASS ", "CAP "}) {
    if (s.substr(0, cmd.size()) == cmd) return true;
  }
  return false;
}

}  // namespace

std::optional<Protocol> detect_protocol(const uint8_t* p, uint32_t n) {
  std::string_view s(reinterpret_cast<const char*>(p), n);
  if (mqtt_connect(s)) return Protocol::kMqtt;
  if (xml_stream(s)) return Protocol::kXmpp;
  if (sip_request(s)) return Protocol::kSip;
  if (irc_registration(s)) return Protocol::kIrc;
  return std::nullopt;
}

}  // namespace imf::dp::proto
