// The rule model shared by the control side (parse, compile) and the dataplane (verdicts, events).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace imf::rules {

enum class Action : uint8_t { kAlert = 0, kDrop = 1 };

// Which parts of a message a rule scans; a bit set. `body` is any protocol's message body and
// `channel` its channel (MQTT topic, XMPP recipient or room, SIP To URI, IRC channel or nick);
// `payload` and `topic` are MQTT's names for them and mean the same.
enum Scope : uint8_t { kScopePayload = 1u << 0, kScopeTopic = 1u << 1 };
inline constexpr uint8_t kScopeBody = kScopePayload;
inline constexpr uint8_t kScopeChannel = kScopeTopic;

// The IM protocols a rule may be limited to, a bit each (the dataplane's protocol numbers).
enum ProtocolBit : uint8_t { kProtoMqtt = 1u << 0, kProtoXmpp = 1u << 1, kProtoSip = 1u << 2, kProtoIrc = 1u << 3 };
inline constexpr uint8_t kAllProtocols = kProtoMqtt | kProtoXmpp | kProtoSip | kProtoIrc;
inline constexpr const char* kProtocolNames[] = {"mqtt", "xmpp", "sip", "irc"};

// Pattern flags as written after the pattern; mapped to HS_FLAG_* by the compiler.
enum PatternFlag : uint8_t {
  kFlagCaseless = 1u << 0,   // i
  kFlagDotAll = 1u << 1,     // s
  kFlagMultiline = 1u << 2,  // m
  kFlagUtf8 = 1u << 3,       // u
};

// Whom and where a rule applies to beyond its pattern, and how it acts. Markers are by name:
// the dataplane maps them to the bits its account table uses.
struct RuleConditions {
  std::string category;                      // operator's label, e.g. "spam"; empty: none
  std::vector<std::string> channels;         // MQTT topic filters for MQTT, globs for the others; empty: every channel
  uint8_t protocols = 0;                     // ProtocolBit set; 0: every protocol
  std::vector<std::string> with_markers;     // the sending account must carry all of these
  std::vector<std::string> without_markers;  // ... and none of these
  bool dry_run = false;                      // a drop is recorded as would-drop; traffic passes
  bool any_body = false;                     // no pattern (`*`): every message in scope matches

  bool needs_account() const { return !with_markers.empty() || !without_markers.empty(); }
  bool operator==(const RuleConditions&) const = default;
};

struct Rule {
  std::string id;
  Action action = Action::kAlert;
  uint8_t scope = kScopePayload;
  RuleConditions cond;
  bool literal = false;
  std::string pattern;  // literal bytes, or the regex source without delimiters
  uint8_t flags = 0;
  uint32_t line = 0;  // line in the source file, for error messages
};

struct RuleSet {
  std::string source;  // file name the rules came from
  std::vector<Rule> rules;
};

const char* action_name(Action a);

}  // namespace imf::rules
