// Rewrites of forwarded packets that make the receiver see what was inspected (the ideas of
// Snort's normalizer): a TTL high enough to reach it, and no urgent data taken out of band.
// Each fixes the checksums it affects incrementally. Pure functions over bytes; any lcore.
#pragma once

#include <cstdint>

#include "decode/packet.h"

namespace imf::dp::action {

// Raises the IPv4 TTL / IPv6 hop limit of a decoded packet to `min_ttl` when it is lower, so a
// packet that was inspected cannot expire between the appliance and the server while a later copy
// gets through (TTL-based insertion). Returns whether it changed the packet.
bool raise_ttl(uint8_t* frame, const decode::PacketMeta& m, uint8_t min_ttl);

// Clears the URG flag and urgent pointer of a TCP segment. A receiver without SO_OOBINLINE takes
// the byte before the urgent pointer out of the stream its application reads; cleared, that byte
// stays in the stream, which is the stream that was scanned. Returns whether it changed the packet.
bool clear_urgent(uint8_t* frame, const decode::PacketMeta& m);

}  // namespace imf::dp::action
