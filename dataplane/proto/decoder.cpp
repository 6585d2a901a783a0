#include "proto/decoder.h"

namespace imf::dp::proto {

const char* protocol_name(Protocol p) {
  switch (p) {
    case Protocol::kMqtt: return "mqtt";
    case Protocol::kXmpp: return "xmpp";
    case Protocol::kSip: return "sip";
    case Protocol::kIrc: return "irc";
  }
  return "?";
}

const char* message_kind_name(MessageKind k) {
  switch (k) {
    case MessageKind::kMqttPublish: return "publish";
    case MessageKind::kMqttWill: return "will";
    case MessageKind::kXmppChat: return "chat";
    case MessageKind::kXmppGroupchat: return "groupchat";
    case MessageKind::kXmppNormal: return "normal";
    case MessageKind::kXmppHeadline: return "headline";
    case MessageKind::kSipMessage: return "message";
    case MessageKind::kIrcPrivmsg: return "privmsg";
    case MessageKind::kIrcNotice: return "notice";
    case MessageKind::kIrcAction: return "action";
    case MessageKind::kIrcTopic: return "topic";
    case MessageKind::kIrcPart: return "part";
    case MessageKind::kIrcQuit: return "quit";
  }
  return "?";
}

}  // namespace imf::dp::proto
