// The message log: every MQTT field the dataplane would scan in a synthesized capture, in capture
// order and cut exactly where the TCP segments cut it. imf-synth writes it next to the capture;
// imf-scanbench replays it through Hyperscan and PCRE2, so all three measure the same bytes.
//
// File layout (little endian, no padding between records):
//   MessageLogHeader
//   then n_chunks times: ChunkRecord followed by `len` bytes of field data.
// A field (one topic or one payload of one PUBLISH) is one or more chunks of the same `stream`,
// the last one flagged kChunkEndsField. Chunks of different streams interleave as the packets do.
#pragma once

#include <cstdint>

namespace imf::bench {

inline constexpr char kMessageLogMagic[8] = {'I', 'M', 'F', 'M', 'L', 'O', 'G', '1'};

struct MessageLogHeader {
  char magic[8];
  uint32_t n_streams;    // flow directions: stream = flow_index * 2 + (0 client->server, 1 server->client)
  uint32_t reserved;     // 0
  uint64_t n_messages;   // PUBLISH messages (each has one topic field and one payload field)
  uint64_t n_chunks;     // ChunkRecords that follow
  uint64_t field_bytes;  // sum of all chunk lengths
};
static_assert(sizeof(MessageLogHeader) == 40);

enum class FieldKind : uint8_t { kPayload = 0, kTopic = 1 };

inline constexpr uint8_t kChunkEndsField = 1;

struct ChunkRecord {
  uint32_t stream;
  uint8_t field;      // FieldKind
  uint8_t flags;      // kChunkEndsField
  uint16_t reserved;  // 0
  uint32_t len;       // bytes of field data that follow (0 only for an empty field's single chunk)
};
static_assert(sizeof(ChunkRecord) == 12);

}  // namespace imf::bench
