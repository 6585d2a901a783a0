// IP reassembly for one worker lcore, with DPDK's ip_frag library, under the appliance's policy.
//
// imfd judges a fragmented datagram as a whole: the reassembler holds the original fragments
// until the datagram is complete, hands the worker one unfragmented frame to inspect together
// with the originals, and the worker forwards the originals byte for byte when the frame passes
// and frees them when it is blocked. Reassembly itself is done by rte_ip_frag on copies (from a
// small mbuf pool of the module's own), because the library rewrites and chains the mbufs it is
// given. The reassembler keeps its own ledger of the originals, which decides everything below,
// and feeds the library only once the ledger holds a complete datagram, all its pieces in one
// go. So the library holds nothing between calls: no second copy of pending data, no timeouts,
// evictions or bucket collisions of its own to disagree with the ledger, and no need to remove
// one datagram from its table, which its API cannot do.
//
// Policy (the worker's documentation quotes this):
//  1. Every fragment given to add() counts ip_fragments. Every original fragment the module frees
//     counts frag_dropped, in addition to the counter that names the reason.
//  2. Malformed fragments are dropped alone (frag_invalid): an IPv4 header checksum that is
//     wrong; no data; more-fragments set with a data length that is not a multiple of 8; a
//     fragment ending beyond what the reassembled length field can hold (IPv4: offset + length >
//     65535 - header length; IPv6: unfragmentable extension headers + offset + length > 65535,
//     RFC 8200 4.5); an IPv6 unfragmentable part holding a routing header with segments left > 0.
//     A first fragment (offset 0) that does not hold the whole transport header (TCP: 20 bytes
//     and its data offset; UDP: 8 bytes; IPv6: and every extension header between the fragment
//     header and the transport header, at most kMaxIpv6ExtHeaders in all, none of them another
//     fragment header) drops the whole datagram (frag_invalid) and poisons its key (see 3):
//     RFC 8200 4.5 / RFC 7112 for IPv6, RFC 1858 for IPv4 (tiny fragments that split the
//     transport header). A fragment that contradicts the datagram's end (a second last fragment
//     ending elsewhere, data beyond the end, a last fragment ending before data already held)
//     also drops the whole datagram (frag_invalid) and poisons its key.
//  3. Overlaps are decided against the originals already held for the datagram, byte by byte.
//     A fragment whose every byte is already held with the same value, and that tells nothing
//     new (a last fragment whose end is already known, or a fragment with more-fragments set),
//     is a duplicate: dropped alone (frag_duplicates); the datagram goes on. A fragment that
//     overlaps held bytes with different values drops the whole datagram (frag_overlaps): which
//     copy a receiver keeps differs between stacks, so only consistent bytes may pass. A
//     fragment that overlaps with equal bytes and brings new ones (or the datagram's end) is
//     kept: all originals are forwarded, so every receiver's reassembly yields the bytes that
//     were inspected, and the library is fed only the new, non-overlapping pieces. After a
//     datagram is dropped for an overlap, too many fragments or the reasons in 2, its key stays
//     poisoned until the datagram's timeout: later fragments of it are dropped (frag_dropped
//     only) rather than starting a new datagram that a receiver still holding the old pieces
//     would complete differently. A poisoned key takes a place among max_datagrams.
//  4. A datagram needing more than kMaxFragments originals (duplicates dropped alone don't
//     count), or more than kMaxFragments non-overlapping pieces for the library, is dropped whole
//     (frag_too_many) and its key poisoned.
//  5. No room for a new datagram (max_datagrams pending or poisoned, none timed out): the new
//     fragment is dropped (frag_table_full). Pending datagrams are never evicted early.
//  6. A datagram still incomplete timeout_ticks after its first fragment is dropped whole
//     (frag_timeouts), by expire() or by the next add() of its key, whichever comes first.
//  7. Complete: frag_reassembled once, and add() returns kComplete with the Datagram. The ledger
//     (originals covering [0, end) exactly, with a last fragment) and the library's result must
//     agree; if they ever do not, everything is dropped (fail closed, frag_invalid). So is a
//     datagram whose reassembled frame would exceed 65535 bytes, which decode_packet cannot
//     describe (its offsets are 16-bit).
//  8. Keys: IP version, source, destination, identification, and for IPv4 the protocol, as
//     receivers key them (RFC 791, RFC 8200).
//
// Cost: one hash lookup and a memcmp of overlapping bytes per fragment; on completion one copy
// of the datagram into pool mbufs for the library and one copy out into the frame buffer.
#pragma once

#include <rte_config.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "decode/packet.h"
#include "stats/counters.h"

struct rte_hash;
struct rte_ip_frag_death_row;
struct rte_ip_frag_tbl;
struct rte_mbuf;
struct rte_mempool;

namespace imf::dp::defrag {

// Original fragments one datagram may need: the ip_frag library's limit (8 in Debian's build).
inline constexpr unsigned kMaxFragments = RTE_LIBRTE_IP_FRAG_MAX_FRAG;
// Longest Config::name.
inline constexpr size_t kMaxNameLength = 16;

struct Config {
  // Unique per reassembler in the process, 1..kMaxNameLength characters. The module's DPDK
  // objects are named after it: the copy pool is "<name>_dfp", the key index "<name>_dfh".
  std::string name;
  uint32_t max_datagrams = 1024;  // datagrams pending (or keys poisoned) at once, 1..1048576
  // An incomplete datagram is dropped whole this long after its first fragment; > 0.
  uint64_t timeout_ticks = 0;
  int socket = 0;  // NUMA socket for all memory (SOCKET_ID_ANY allowed)
};

// A reassembled datagram as one unfragmented frame plus the fragments it came from.
struct Datagram {
  // The first fragment's L2 header, its IP header rewritten as unfragmented (IPv4: options kept,
  // MF and offset cleared, DF kept, total length and checksum fixed; IPv6: its unfragmentable
  // extension headers kept, the fragment header removed, the preceding next header and the
  // payload length fixed), then the whole L4 datagram. decode_packet() gives kOk on it. (The
  // first fragment: the earliest to arrive of those at offset 0, which may be several when they
  // overlap with equal bytes.) Valid until the next add(), expire() or destruction.
  const uint8_t* frame = nullptr;
  uint32_t len = 0;
  rte_mbuf* fragments[kMaxFragments] = {};  // the originals in arrival order; the caller owns them
  uint8_t n_fragments = 0;
};

enum class AddResult : uint8_t {
  kHeld,      // the fragment is held; the datagram is not complete yet
  kDropped,   // the fragment (and maybe its datagram's other fragments) was freed; see the counters
  kComplete,  // the datagram is complete: *out is set and the caller owns its fragments
};

class Reassembler {
 public:
  // Creates the copy pool, the ip_frag table, the key index and the frame buffer; no memory is
  // allocated after this. Setup thread. `counters` must outlive the reassembler. Errors: a bad
  // config, a name already in use, out of DPDK memory.
  static Result<std::unique_ptr<Reassembler>> create(const Config& config, Counters& counters);
  // Frees every fragment held (each counts frag_dropped) and the module's DPDK objects. Owning
  // lcore, or any thread once that lcore no longer uses the reassembler.
  ~Reassembler();
  Reassembler(const Reassembler&) = delete;
  Reassembler& operator=(const Reassembler&) = delete;

  // Owning lcore only. Takes ownership of `m`, a frame for which decode::decode_packet() over
  // its first segment (rte_pktmbuf_mtod, rte_pktmbuf_data_len) returned kFragment with `meta`.
  // `now_ticks` is the caller's clock (TSC inline, capture time offline), in the unit of
  // Config::timeout_ticks; it should not go backwards (if it does, a datagram may be dropped
  // later than its timeout, never earlier). On kComplete, *out holds the datagram and the caller
  // owns out->fragments; otherwise *out is untouched.
  AddResult add(rte_mbuf* m, const decode::PacketMeta& meta, uint64_t now_ticks, Datagram* out);

  // Owning lcore only. Drops the datagrams whose timeout has passed at `now_ticks` and forgets
  // poisoned keys whose time is up. A few nanoseconds when nothing is due; call it every ~100 us.
  void expire(uint64_t now_ticks);

  // Datagrams pending plus keys poisoned. Owning lcore only.
  uint32_t in_use() const { return config_max_ - n_free_; }

 private:
  struct Entry;
  struct Fragment;

  Reassembler(const Config& config, Counters& counters);

  uint32_t find(const void* key, uint64_t now);
  uint32_t insert(const void* key, uint64_t now);
  void release(uint32_t idx);
  void free_held(Entry& e);
  void poison(uint32_t idx);
  void drop_expired(uint32_t idx);
  AddResult drop_one(rte_mbuf* m);
  AddResult drop_one(rte_mbuf* m, Counter reason);
  AddResult drop_datagram(uint32_t idx, rte_mbuf* m, Counter reason, bool poison_key);
  AddResult merge(uint32_t idx, rte_mbuf* m, const Fragment& f, Datagram* out);
  AddResult complete(uint32_t idx, Datagram* out);
  rte_mbuf* reassemble_copies(const Entry& e);
  rte_mbuf* make_copy(const Entry& e, uint32_t offset, uint32_t len, bool more, const uint8_t* data);
  bool append_bytes(rte_mbuf* head, const uint8_t* p, uint32_t n);

  Counters* counters_;
  uint64_t timeout_;
  uint32_t config_max_;
  rte_hash* index_ = nullptr;    // key -> entry
  rte_mempool* pool_ = nullptr;  // copies for the library
  rte_ip_frag_tbl* library_ = nullptr;
  rte_ip_frag_death_row* death_row_ = nullptr;
  Entry* entries_ = nullptr;
  uint32_t* free_ = nullptr;  // stack of unused entry indices
  uint32_t n_free_ = 0;
  uint32_t oldest_;  // entries in use, oldest first (by creation, hence by deadline)
  uint32_t newest_;
  uint8_t* frame_ = nullptr;
};

}  // namespace imf::dp::defrag
