// Recognising an IM protocol by a connection's first client bytes, for servers on ports the
// operator did not register (as Suricata's application-layer detection does). Pure; any lcore.
#pragma once

#include <cstdint>
#include <optional>

#include "proto/decoder.h"

namespace imf::dp::proto {

// The protocol whose opening the client's first bytes `p` (n > 0) are, or nothing: an MQTT CONNECT
// naming "MQTT" or "MQIsdp"; an XML stream header ("<?xml" or a <...stream ...> element); a SIP
// request line ("METHOD uri SIP/2.0"); an IRC registration command (NICK, USER, PASS, CAP). A
// client's first segment holds its first command whole in practice; bytes too few to tell are
// nothing.
std::optional<Protocol> detect_protocol(const uint8_t* p, uint32_t n);

}  // namespace imf::dp::proto
