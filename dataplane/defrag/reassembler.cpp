#include "defrag/reassembler.h"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_jhash.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_random.h>

#include <algorithm>
#include <cstring>

#include "decode/checksum.h"

namespace imf::dp::defrag {

namespace {

constexpr uint32_t kNone = UINT32_MAX;
constexpr uint8_t kNoHeld = 0xff;
constexpr uint32_t kMaxDatagrams = 1u << 20;
constexpr uint32_t kIpv4Hdr = 20;
constexpr uint32_t kIpv6Hdr = 40;
constexpr uint32_t kFragHdr = 8;
constexpr uint32_t kTcpHdr = 20;
constexpr uint32_t kUdpHdr = 8;
constexpr uint32_t kMaxIpLength = 65535;    // IPv4 total length, IPv6 payload length
constexpr uint32_t kMaxFrame = UINT16_MAX;  // decode_packet's offsets are 16-bit
constexpr uint32_t kFrameBuffer = kMaxFrame + 1;

// The library never holds a datagram beyond one call of complete(), so its clock is irrelevant:
// every copy is fed at time 0 with a zero lifetime, and a purge "at time 1" empties its table.
constexpr uint64_t kLibraryTime = 0;
constexpr uint64_t kLibraryPurgeTime = 1;

// Copies for the library: at most kMaxFragments + 1 pieces (a lone piece is split in two) of at
// most 48 header bytes each plus 65535 data bytes in all, in 2 KiB segments: under 45 segments.
constexpr unsigned kCopyPoolSize = 63;

constexpr uint8_t kIp6HopByHop = 0, kIp6Routing = 43, kIp6Fragment = 44, kIp6Auth = 51, kIp6DestOpts = 60,
                  kIp6Mobility = 135, kIp6Hip = 139, kIp6Shim6 = 140;

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline void put16(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void put32(uint8_t* p, uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v);
}

// Whether decode_packet walks over `type` as an IPv6 extension header (the fragment header aside).
bool is_ipv6_ext(uint8_t type) {
  switch (type) {
    case kIp6HopByHop:
    case kIp6Routing:
    case kIp6DestOpts:
    case kIp6Auth:
    case kIp6Mobility:
    case kIp6Hip:
    case kIp6Shim6: return true;
    default: return false;
  }
}

// The length of the extension header of `type` (is_ipv6_ext) at `p`; 2 bytes must be readable.
uint32_t ipv6_ext_len(uint8_t type, const uint8_t* p) { return type == kIp6Auth ? (p[1] + 2u) * 4u : (p[1] + 1u) * 8u; }

// What receivers key a datagram by. Padding is zeroed: the whole struct is the rte_hash key.
struct Key {
  uint8_t version;
  uint8_t proto;  // IPv4 only
  uint8_t pad[2];
  uint32_t id;
  uint8_t src[16];
  uint8_t dst[16];
};
static_assert(sizeof(Key) == 40);

Key make_key(const decode::PacketMeta& meta) {
  Key k{};
  k.version = meta.ip_version;
  k.id = meta.frag_id;
  if (meta.ip_version == 4) {
    k.proto = meta.l4_proto;
    std::memcpy(k.src, meta.src_ip, 4);
    std::memcpy(k.dst, meta.dst_ip, 4);
  } else {
    std::memcpy(k.src, meta.src_ip, 16);
    std::memcpy(k.dst, meta.dst_ip, 16);
  }
  return k;
}

uint64_t saturating_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

}  // namespace

// One original fragment as add() sees it.
struct Reassembler::Fragment {
  const uint8_t* data;  // the fragment's data, inside the mbuf
  uint16_t offset;      // in the datagram
  uint16_t len;
  uint16_t l3;       // where the IP header is
  uint16_t hdr_end;  // IPv4: end of the IP header; IPv6: where the fragment header is
  uint16_t nh_pos;   // IPv6: the next-header byte that names the fragment header
  uint8_t n_ext;     // IPv6: extension headers before the fragment header
  bool more;

  bool parse(const uint8_t* frame, uint32_t frame_len, const decode::PacketMeta& meta);
  bool holds_transport_header(const uint8_t* frame, const decode::PacketMeta& meta) const;
};

struct Reassembler::Entry {
  struct Held {
    rte_mbuf* m;
    const uint8_t* data;  // its fragment data
    uint16_t offset;
    uint16_t l3;
    uint16_t hdr_end;
    uint16_t nh_pos;
  };
  // A run of the datagram the library is fed, from one original; sorted by offset, disjoint.
  struct Piece {
    uint16_t offset;
    uint16_t len;
    uint8_t held;
  };

  Key key;
  uint64_t deadline;
  uint32_t older;
  uint32_t newer;
  uint32_t end;      // valid when has_end
  uint32_t covered;  // bytes the pieces cover
  uint8_t n_held;
  uint8_t n_pieces;
  uint8_t first;  // the earliest-arrived held fragment at offset 0, or kNoHeld
  bool has_end;
  bool poisoned;
  Held held[kMaxFragments];
  Piece pieces[kMaxFragments];

  uint32_t extent() const { return n_pieces ? pieces[n_pieces - 1].offset + pieces[n_pieces - 1].len : 0u; }
};

// Fills the fragment from `meta` and checks it alone (policy 2 but the first-fragment rule).
// False: malformed.
bool Reassembler::Fragment::parse(const uint8_t* frame, uint32_t frame_len, const decode::PacketMeta& meta) {
  data = frame + meta.payload_offset;
  offset = meta.frag_offset;
  len = meta.payload_len;
  l3 = meta.l3_offset;
  more = meta.frag_more;
  if (uint32_t{meta.payload_offset} + len > frame_len) return false;
  if (len == 0) return false;
  if (more && len % 8 != 0) return false;
  uint32_t end = uint32_t{offset} + len;
  if (meta.ip_version == 4) {
    uint32_t ihl = meta.payload_offset - l3;
    if (ihl < kIpv4Hdr || !decode::ipv4_header_checksum_ok(frame, meta)) return false;
    if (end > kMaxIpLength - ihl) return false;
    hdr_end = meta.payload_offset;
    return true;
  }
  if (meta.ip_version != 6) return false;
  uint32_t fh = meta.frag_header;
  if (fh < l3 + kIpv6Hdr || fh + kFragHdr != meta.payload_offset) return false;
  if ((fh - l3 - kIpv6Hdr) + end > kMaxIpLength) return false;
  // Walk the unfragmentable part (decode_packet already bounded it).
  uint32_t nh = l3 + 6;
  uint32_t pos = l3 + kIpv6Hdr;
  uint8_t next = frame[nh];
  unsigned n = 0;
  while (pos < fh) {
    if (!is_ipv6_ext(next) || fh - pos < 2) return false;
    uint32_t l = ipv6_ext_len(next, frame + pos);
    if (l > fh - pos) return false;
    if (next == kIp6Routing && frame[pos + 3] != 0) return false;  // segments left: not the final destination
    nh = pos;
    next = frame[pos];
    pos += l;
    ++n;
  }
  if (pos != fh || next != kIp6Fragment) return false;
  hdr_end = static_cast<uint16_t>(fh);
  nh_pos = static_cast<uint16_t>(nh);
  n_ext = static_cast<uint8_t>(n);
  return true;
}

// Whether a first fragment (offset 0) holds the whole transport header: for IPv6 with the
// extension headers that precede it (RFC 8200 4.5, RFC 7112); TCP with its options (RFC 1858).
bool Reassembler::Fragment::holds_transport_header(const uint8_t* frame, const decode::PacketMeta& meta) const {
  uint8_t proto = meta.l4_proto;
  unsigned n = n_ext;
  uint32_t pos = 0;
  if (meta.ip_version == 6) {
    proto = frame[hdr_end];  // the fragment header's next header
    for (;;) {
      if (proto == kIp6Fragment) return false;  // a fragment inside a fragment
      if (!is_ipv6_ext(proto)) break;
      if (len - pos < 2) return false;
      uint32_t l = ipv6_ext_len(proto, data + pos);
      if (l > len - pos || ++n > decode::kMaxIpv6ExtHeaders) return false;
      proto = data[pos];
      pos += l;
    }
  }
  uint32_t rest = len - pos;
  if (proto == decode::kProtoTcp) {
    if (rest < kTcpHdr) return false;
    uint32_t hlen = (data[pos + 12] >> 4) * 4u;
    return hlen >= kTcpHdr && rest >= hlen;
  }
  if (proto == decode::kProtoUdp) return rest >= kUdpHdr;
  return true;
}

Reassembler::Reassembler(const Config& config, Counters& counters)
    : counters_(&counters),
      timeout_(config.timeout_ticks),
      config_max_(config.max_datagrams),
      oldest_(kNone),
      newest_(kNone) {}

Result<std::unique_ptr<Reassembler>> Reassembler::create(const Config& config, Counters& counters) {
  if (config.name.empty() || config.name.size() > kMaxNameLength)
    return make_error("defrag: name must have 1.." + std::to_string(kMaxNameLength) + " characters");
  if (config.max_datagrams == 0 || config.max_datagrams > kMaxDatagrams)
    return make_error("defrag: max_datagrams must be 1.." + std::to_string(kMaxDatagrams));
  if (config.timeout_ticks == 0) return make_error("defrag: timeout_ticks must be > 0");

  std::unique_ptr<Reassembler> r(new Reassembler(config, counters));
  const std::string pool_name = config.name + "_dfp";
  const std::string hash_name = config.name + "_dfh";
  r->pool_ = rte_pktmbuf_pool_create(pool_name.c_str(), kCopyPoolSize, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, config.socket);
  if (r->pool_ == nullptr) return make_error("defrag: mbuf pool " + pool_name + ": " + rte_strerror(rte_errno));

  // The library holds one datagram at a time (see complete()); a few entries are plenty.
  r->library_ = rte_ip_frag_table_create(4, 4, 4, 0, config.socket);
  if (r->library_ == nullptr) return make_error("defrag: rte_ip_frag_table_create failed");
  r->death_row_ = static_cast<rte_ip_frag_death_row*>(
      rte_zmalloc_socket("defrag_death_row", sizeof(rte_ip_frag_death_row), RTE_CACHE_LINE_SIZE, config.socket));

  rte_hash_parameters hp{};
  hp.name = hash_name.c_str();
  hp.entries = std::max<uint32_t>(config.max_datagrams, 8);  // rte_hash's minimum
  hp.key_len = sizeof(Key);
  hp.hash_func = rte_jhash;
  hp.hash_func_init_val = static_cast<uint32_t>(rte_rand());  // keys are chosen by senders
  hp.socket_id = config.socket;
  hp.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;  // room for every key, whatever their hashes
  r->index_ = rte_hash_create(&hp);
  if (r->index_ == nullptr) return make_error("defrag: hash " + hash_name + ": " + rte_strerror(rte_errno));

  r->entries_ = static_cast<Entry*>(
      rte_zmalloc_socket("defrag_entries", sizeof(Entry) * config.max_datagrams, RTE_CACHE_LINE_SIZE, config.socket));
  r->free_ = static_cast<uint32_t*>(
      rte_malloc_socket("defrag_free", sizeof(uint32_t) * config.max_datagrams, 0, config.socket));
  r->frame_ =
      static_cast<uint8_t*>(rte_malloc_socket("defrag_frame", kFrameBuffer, RTE_CACHE_LINE_SIZE, config.socket));
  if (r->death_row_ == nullptr || r->entries_ == nullptr || r->free_ == nullptr || r->frame_ == nullptr)
    return make_error("defrag: out of DPDK memory for " + std::to_string(config.max_datagrams) + " datagrams");
  for (uint32_t i = 0; i < config.max_datagrams; ++i) r->free_[i] = config.max_datagrams - 1 - i;
  r->n_free_ = config.max_datagrams;
  return r;
}

Reassembler::~Reassembler() {
  for (uint32_t i = oldest_; i != kNone; i = entries_[i].newer) free_held(entries_[i]);
  if (library_ != nullptr) rte_ip_frag_table_destroy(library_);
  if (death_row_ != nullptr) rte_ip_frag_free_death_row(death_row_, 0);
  rte_free(death_row_);
  rte_hash_free(index_);
  rte_mempool_free(pool_);
  rte_free(entries_);
  rte_free(free_);
  rte_free(frame_);
}

// ---- the ledger ---------------------------------------------------------------------------------

uint32_t Reassembler::find(const void* key, uint64_t now) {
  void* data;
  if (rte_hash_lookup_data(index_, key, &data) < 0) return kNone;
  auto idx = static_cast<uint32_t>(static_cast<Entry*>(data) - entries_);
  if (entries_[idx].deadline <= now) {  // expire() has not run yet: the old datagram must not complete
    drop_expired(idx);
    return kNone;
  }
  return idx;
}

uint32_t Reassembler::insert(const void* key, uint64_t now) {
  if (n_free_ == 0) expire(now);
  if (n_free_ == 0) return kNone;
  uint32_t idx = free_[n_free_ - 1];
  if (rte_hash_add_key_data(index_, key, &entries_[idx]) != 0) return kNone;
  --n_free_;
  Entry& e = entries_[idx];
  std::memcpy(&e.key, key, sizeof(Key));
  e.deadline = saturating_add(now, timeout_);
  e.end = 0;
  e.covered = 0;
  e.n_held = 0;
  e.n_pieces = 0;
  e.first = kNoHeld;
  e.has_end = false;
  e.poisoned = false;
  // Creation order is deadline order (one timeout for all, a clock that does not go back).
  e.older = newest_;
  e.newer = kNone;
  if (newest_ != kNone)
    entries_[newest_].newer = idx;
  else
    oldest_ = idx;
  newest_ = idx;
  return idx;
}

void Reassembler::release(uint32_t idx) {
  Entry& e = entries_[idx];
  rte_hash_del_key(index_, &e.key);
  if (e.older != kNone)
    entries_[e.older].newer = e.newer;
  else
    oldest_ = e.newer;
  if (e.newer != kNone)
    entries_[e.newer].older = e.older;
  else
    newest_ = e.older;
  free_[n_free_++] = idx;
}

void Reassembler::free_held(Entry& e) {
  for (unsigned i = 0; i < e.n_held; ++i) rte_pktmbuf_free(e.held[i].m);
  counters_->add(Counter::frag_dropped, e.n_held);
  e.n_held = 0;
  e.n_pieces = 0;
}

void Reassembler::poison(uint32_t idx) {
  Entry& e = entries_[idx];
  free_held(e);
  e.poisoned = true;  // keeps its key and deadline
}

void Reassembler::drop_expired(uint32_t idx) {
  Entry& e = entries_[idx];
  if (!e.poisoned) {
    counters_->add(Counter::frag_timeouts);
    free_held(e);
  }
  release(idx);
}

void Reassembler::expire(uint64_t now) {
  while (oldest_ != kNone && entries_[oldest_].deadline <= now) drop_expired(oldest_);
}

AddResult Reassembler::drop_one(rte_mbuf* m) {
  counters_->add(Counter::frag_dropped);
  rte_pktmbuf_free(m);
  return AddResult::kDropped;
}

AddResult Reassembler::drop_one(rte_mbuf* m, Counter reason) {
  counters_->add(reason);
  return drop_one(m);
}

AddResult Reassembler::drop_datagram(uint32_t idx, rte_mbuf* m, Counter reason, bool poison_key) {
  counters_->add(reason);
  if (m != nullptr) {
    counters_->add(Counter::frag_dropped);
    rte_pktmbuf_free(m);
  }
  if (poison_key) {
    poison(idx);
  } else {
    free_held(entries_[idx]);
    release(idx);
  }
  return AddResult::kDropped;
}

// ---- add ----------------------------------------------------------------------------------------

AddResult Reassembler::add(rte_mbuf* m, const decode::PacketMeta& meta, uint64_t now, Datagram* out) {
  counters_->add(Counter::ip_fragments);
  const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
  Fragment f{};
  if (!f.parse(frame, rte_pktmbuf_data_len(m), meta)) return drop_one(m, Counter::frag_invalid);

  Key key = make_key(meta);
  uint32_t idx = find(&key, now);
  if (idx != kNone && entries_[idx].poisoned) return drop_one(m);

  if (f.offset == 0 && !f.holds_transport_header(frame, meta)) {
    // The whole datagram goes; its key is poisoned so its other fragments follow it at once.
    if (idx == kNone) idx = insert(&key, now);
    if (idx == kNone) return drop_one(m, Counter::frag_invalid);
    return drop_datagram(idx, m, Counter::frag_invalid, true);
  }
  if (idx == kNone) {
    idx = insert(&key, now);
    if (idx == kNone) return drop_one(m, Counter::frag_table_full);
  }
  return merge(idx, m, f, out);
}

AddResult Reassembler::merge(uint32_t idx, rte_mbuf* m, const Fragment& f, Datagram* out) {
  Entry& e = entries_[idx];
  const uint32_t lo = f.offset;
  const uint32_t hi = lo + f.len;

  // The datagram's end: set by a last fragment; every fragment must agree with it.
  if (!f.more) {
    if ((e.has_end && e.end != hi) || e.extent() > hi) return drop_datagram(idx, m, Counter::frag_invalid, true);
  } else if (e.has_end && hi > e.end) {
    return drop_datagram(idx, m, Counter::frag_invalid, true);
  }

  // Compare with the bytes held and collect the runs nobody holds yet.
  Entry::Piece runs[kMaxFragments + 1];
  unsigned n_runs = 0;
  uint32_t cursor = lo;
  for (unsigned i = 0; i < e.n_pieces; ++i) {
    const Entry::Piece& p = e.pieces[i];
    uint32_t p_end = uint32_t{p.offset} + p.len;
    if (p_end <= lo) continue;
    if (p.offset >= hi) break;
    if (p.offset > cursor)
      runs[n_runs++] = {static_cast<uint16_t>(cursor), static_cast<uint16_t>(p.offset - cursor), 0};
    uint32_t a = std::max<uint32_t>(p.offset, lo);
    uint32_t b = std::min(p_end, hi);
    const Entry::Held& h = e.held[p.held];
    if (std::memcmp(f.data + (a - lo), h.data + (a - h.offset), b - a) != 0)
      return drop_datagram(idx, m, Counter::frag_overlaps, true);
    cursor = std::max(cursor, p_end);
  }
  if (cursor < hi) runs[n_runs++] = {static_cast<uint16_t>(cursor), static_cast<uint16_t>(hi - cursor), 0};

  bool brings_end = !f.more && !e.has_end;
  if (n_runs == 0 && !brings_end) return drop_one(m, Counter::frag_duplicates);
  if (e.n_held == kMaxFragments || e.n_pieces + n_runs > kMaxFragments)
    return drop_datagram(idx, m, Counter::frag_too_many, true);

  // Keep it.
  auto h_idx = e.n_held++;
  e.held[h_idx] = {m, f.data, f.offset, f.l3, f.hdr_end, f.nh_pos};
  if (f.offset == 0 && e.first == kNoHeld) e.first = h_idx;
  for (unsigned r = 0; r < n_runs; ++r) {
    // Insertion into the sorted pieces (at most kMaxFragments of them).
    unsigned at = e.n_pieces;
    while (at > 0 && e.pieces[at - 1].offset > runs[r].offset) {
      e.pieces[at] = e.pieces[at - 1];
      --at;
    }
    e.pieces[at] = {runs[r].offset, runs[r].len, h_idx};
    ++e.n_pieces;
    e.covered += runs[r].len;
  }
  if (brings_end) {
    e.has_end = true;
    e.end = hi;
  }
  // Disjoint pieces inside [0, end) covering end bytes: no hole.
  if (e.has_end && e.covered == e.end) return complete(idx, out);
  return AddResult::kHeld;
}

// ---- completion -----------------------------------------------------------------------------

bool Reassembler::append_bytes(rte_mbuf* head, const uint8_t* p, uint32_t n) {
  rte_mbuf* seg = rte_pktmbuf_lastseg(head);
  while (n > 0) {
    uint32_t room = rte_pktmbuf_tailroom(seg);
    if (room == 0) {
      rte_mbuf* next = rte_pktmbuf_alloc(pool_);
      if (next == nullptr) return false;
      next->data_off = 0;  // no headroom needed past the first segment
      seg->next = next;
      ++head->nb_segs;
      seg = next;
      continue;
    }
    uint32_t k = std::min(room, n);
    std::memcpy(rte_pktmbuf_mtod_offset(seg, uint8_t*, seg->data_len), p, k);
    seg->data_len = static_cast<uint16_t>(seg->data_len + k);
    head->pkt_len += k;
    p += k;
    n -= k;
  }
  return true;
}

// A copy of [offset, offset + len) of the datagram as a fragment the library accepts: no L2, a
// bare IPv4 header, or an IPv6 header directly followed by the fragment header (the library
// handles no other extension headers).
rte_mbuf* Reassembler::make_copy(const Entry& e, uint32_t offset, uint32_t len, bool more, const uint8_t* data) {
  if (offset % 8 != 0) return nullptr;  // pieces start at held fragments' offsets or ends
  rte_mbuf* c = rte_pktmbuf_alloc(pool_);
  if (c == nullptr) return nullptr;
  const Key& k = e.key;
  uint32_t hdr = k.version == 4 ? kIpv4Hdr : kIpv6Hdr + kFragHdr;
  auto* h = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(c, static_cast<uint16_t>(hdr)));
  std::memset(h, 0, hdr);
  if (k.version == 4) {
    h[0] = 0x45;
    put16(h + 2, kIpv4Hdr + len);
    put16(h + 4, k.id);
    put16(h + 6, (more ? RTE_IPV4_HDR_MF_FLAG : 0) | offset / 8);
    h[8] = 64;
    h[9] = k.proto;
    std::memcpy(h + 12, k.src, 4);
    std::memcpy(h + 16, k.dst, 4);
  } else {
    const Entry::Held& first = e.held[e.first];
    put32(h, 0x60000000);
    put16(h + 4, kFragHdr + len);
    h[6] = kIp6Fragment;
    h[7] = 64;
    std::memcpy(h + 8, k.src, 16);
    std::memcpy(h + 24, k.dst, 16);
    uint8_t* fh = h + kIpv6Hdr;
    fh[0] = rte_pktmbuf_mtod(first.m, const uint8_t*)[first.hdr_end];  // the datagram's next header
    put16(fh + 2, offset | (more ? 1u : 0u));
    put32(fh + 4, k.id);
  }
  c->l2_len = 0;
  c->l3_len = hdr;
  if (!append_bytes(c, data, len)) {
    rte_pktmbuf_free(c);
    return nullptr;
  }
  return c;
}

// Feeds the library a copy of every piece, in offset order, so the last piece (more-fragments
// clear) comes last: the library must return the datagram on it and on no other. Returns the
// library's mbuf, or nullptr when the library disagrees with the ledger (its table is then
// purged) or the copy pool runs dry.
rte_mbuf* Reassembler::reassemble_copies(const Entry& e) {
  struct Feed {
    uint32_t offset, len;
    const uint8_t* data;
  } feed[kMaxFragments + 1];
  unsigned n = 0;
  for (unsigned i = 0; i < e.n_pieces; ++i) {
    const Entry::Piece& p = e.pieces[i];
    const Entry::Held& h = e.held[p.held];
    feed[n++] = {p.offset, p.len, h.data + (p.offset - h.offset)};
  }
  // One piece (a last fragment lying inside the first): to the library that would not be a
  // fragmented datagram, so cut it at the last multiple of 8 (the last fragment's offset is one).
  if (n == 1) {
    uint32_t cut = (e.end - 1) & ~7u;
    if (cut == 0) return nullptr;
    feed[1] = {cut, e.end - cut, feed[0].data + cut};
    feed[0].len = cut;
    n = 2;
  }

  rte_mbuf* result = nullptr;
  bool ok = true;
  for (unsigned i = 0; i < n && ok; ++i) {
    bool last = i + 1 == n;
    rte_mbuf* c = make_copy(e, feed[i].offset, feed[i].len, !last, feed[i].data);
    if (c == nullptr) {
      ok = false;
      break;
    }
    rte_mbuf* r;
    if (e.key.version == 4) {
      r = rte_ipv4_frag_reassemble_packet(library_, death_row_, c, kLibraryTime, rte_pktmbuf_mtod(c, rte_ipv4_hdr*));
    } else {
      auto* ip = rte_pktmbuf_mtod(c, rte_ipv6_hdr*);
      r = rte_ipv6_frag_reassemble_packet(library_, death_row_, c, kLibraryTime, ip,
                                          reinterpret_cast<rte_ipv6_fragment_ext*>(ip + 1));
    }
    if (r != nullptr && !last) {
      rte_pktmbuf_free(r);
      ok = false;
    } else if (last) {
      result = r;
      ok = r != nullptr;
    }
  }
  if (!ok) rte_ip_frag_table_del_expired_entries(library_, death_row_, kLibraryPurgeTime);
  rte_ip_frag_free_death_row(death_row_, 0);
  return ok ? result : nullptr;
}

AddResult Reassembler::complete(uint32_t idx, Datagram* out) {
  Entry& e = entries_[idx];
  if (e.first == kNoHeld) return drop_datagram(idx, nullptr, Counter::frag_invalid, false);
  const Entry::Held& first = e.held[e.first];
  const uint8_t* ff = rte_pktmbuf_mtod(first.m, const uint8_t*);
  const bool v4 = e.key.version == 4;
  // The first fragment's L2 and IP headers; IPv6 without the fragment header.
  const uint32_t prefix = first.hdr_end;
  const uint32_t len = prefix + e.end;
  if (len > kMaxFrame) return drop_datagram(idx, nullptr, Counter::frag_invalid, false);

  rte_mbuf* r = reassemble_copies(e);
  if (r == nullptr) return drop_datagram(idx, nullptr, Counter::frag_invalid, false);

  // The library's datagram must be the ledger's: its length and rewritten header fields.
  const uint8_t* rh = rte_pktmbuf_mtod(r, const uint8_t*);
  const uint32_t lib_hdr = v4 ? kIpv4Hdr : kIpv6Hdr;
  bool agree = r->pkt_len == lib_hdr + e.end && r->data_len >= lib_hdr;
  if (agree && v4) agree = be16(rh + 2) == kIpv4Hdr + e.end && (be16(rh + 6) & 0x3fff) == 0;
  if (agree && !v4) agree = be16(rh + 4) == e.end && rh[6] == ff[first.hdr_end];
  uint8_t* dst = frame_ + prefix;
  if (agree) {
    const void* p = rte_pktmbuf_read(r, lib_hdr, e.end, dst);
    if (p == nullptr)
      agree = false;
    else if (p != dst)
      std::memcpy(dst, p, e.end);
  }
  rte_pktmbuf_free(r);
  if (!agree) return drop_datagram(idx, nullptr, Counter::frag_invalid, false);

  std::memcpy(frame_, ff, prefix);
  uint8_t* ip = frame_ + first.l3;
  if (v4) {
    // Total length, flags/offset (MF and offset cleared; DF and the reserved bit kept), checksum.
    uint32_t ihl = prefix - first.l3;
    put16(ip + 2, ihl + e.end);
    put16(ip + 6, be16(ip + 6) & ~0x3fffu);
    put16(ip + 10, 0);
    put16(ip + 10, static_cast<uint16_t>(~decode::checksum_fold(decode::checksum_add(ip, ihl, 0))));
  } else {
    put16(ip + 4, prefix - first.l3 - kIpv6Hdr + e.end);
    frame_[first.nh_pos] = ff[first.hdr_end];  // what followed the fragment header follows its predecessor
  }

  out->frame = frame_;
  out->len = len;
  out->n_fragments = e.n_held;
  for (unsigned i = 0; i < e.n_held; ++i) out->fragments[i] = e.held[i].m;
  counters_->add(Counter::frag_reassembled);
  e.n_held = 0;  // the caller owns them now
  e.n_pieces = 0;
  release(idx);
  return AddResult::kComplete;
}

}  // namespace imf::dp::defrag
