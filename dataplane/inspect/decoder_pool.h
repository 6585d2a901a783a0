// The state of the larger protocol decoders (XMPP, SIP, IRC), one pair (both directions) per flow
// of those protocols, from a per-lcore pool made at setup. MQTT's small decoder lives in the flow
// state itself; the others would triple every flow's size if they did.
//
// Owning lcore only; no allocation after construction.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>

#include "proto/decoder.h"
#include "proto/irc.h"
#include "proto/sip.h"
#include "proto/xmpp.h"

namespace imf::dp::inspect {

class DecoderPool {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  explicit DecoderPool(uint32_t pairs) : pairs_(pairs), blocks_(new Block[pairs]), free_(new uint32_t[pairs]) {
    for (uint32_t i = 0; i < pairs; ++i) free_[i] = pairs - 1 - i;
    n_free_ = pairs;
  }

  // A fresh pair of decoders of protocol `p` (not MQTT), or kNone when the pool is exhausted.
  uint32_t acquire(proto::Protocol p) {
    if (n_free_ == 0) return kNone;
    uint32_t i = free_[--n_free_];
    Block& b = blocks_[i];
    for (int d = 0; d < 2; ++d) {
      switch (p) {
        case proto::Protocol::kXmpp: new (b.bytes[d]) proto::XmppDecoder(); break;
        case proto::Protocol::kSip: new (b.bytes[d]) proto::SipDecoder(); break;
        case proto::Protocol::kIrc: new (b.bytes[d]) proto::IrcDecoder(); break;
        case proto::Protocol::kMqtt: break;
      }
    }
    return i;
  }
  void release(uint32_t i) { free_[n_free_++] = i; }  // the decoders are trivially destructible

  // Direction `dir`'s decoder of pair `i`, acquired for protocol D's.
  template <typename D>
  D& get(uint32_t i, uint8_t dir) {
    static_assert(sizeof(D) <= kLargest);
    return *std::launder(reinterpret_cast<D*>(blocks_[i].bytes[dir]));
  }

  uint32_t in_use() const { return pairs_ - n_free_; }
  size_t memory_bytes() const { return size_t{pairs_} * (sizeof(Block) + sizeof(uint32_t)); }

 private:
  static constexpr size_t kLargest =
      std::max({sizeof(proto::XmppDecoder), sizeof(proto::SipDecoder), sizeof(proto::IrcDecoder)});
  static_assert(std::is_trivially_destructible_v<proto::XmppDecoder> &&
                std::is_trivially_destructible_v<proto::SipDecoder> &&
                std::is_trivially_destructible_v<proto::IrcDecoder>);
  struct alignas(64) Block {
    alignas(64) unsigned char bytes[2][(kLargest + 63) / 64 * 64];
  };

  uint32_t pairs_;
  std::unique_ptr<Block[]> blocks_;
  std::unique_ptr<uint32_t[]> free_;
  uint32_t n_free_ = 0;
};

}  // namespace imf::dp::inspect
