// Internet checksums (RFC 1071) of decoded packets, and their incremental update (RFC 1624).
// Pure functions over bytes; any lcore may call them.
#pragma once

#include <cstdint>

#include "decode/packet.h"

namespace imf::dp::decode {

// One's-complement sum of `n` bytes at `p` added to `acc`, folded to 16 bits by checksum_fold().
// The byte order is the wire's: the result is compared with or stored as wire bytes.
uint64_t checksum_add(const uint8_t* p, uint32_t n, uint64_t acc);
uint16_t checksum_fold(uint64_t acc);

// Whether the IPv4 header of a decoded packet (kOk or kFragment) carries a correct checksum.
bool ipv4_header_checksum_ok(const uint8_t* frame, const PacketMeta& m);

// Whether the TCP or UDP checksum of a decoded packet (kOk) is correct, over the pseudo-header,
// header and payload. A UDP checksum of zero over IPv4 means "none" (RFC 768) and is accepted; over
// IPv6 it is invalid (RFC 8200 8.1).
bool l4_checksum_ok(const uint8_t* frame, const PacketMeta& m);

// Rewrites the checksum field at `field` (wire order) for one 16-bit word of the covered data
// changing from `old_word` to `new_word` (both as read from the wire, big-endian values).
void checksum_update16(uint8_t* field, uint16_t old_word, uint16_t new_word);

}  // namespace imf::dp::decode
