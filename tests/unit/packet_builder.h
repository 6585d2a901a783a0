// Test-only builders for frames (Ethernet / 802.1Q / IPv4 / IPv6 / TCP / UDP) and MQTT packets.
//
// Everything returns plain byte vectors, so tests need neither mbufs nor EAL. Lengths and
// checksums come out right by default; to build a malformed frame, build a good one and patch it
// with put_be16()/put_be32() at the offsets the kOff* constants give.
//
// Header-only; depends on the standard library alone.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace imf::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;
using Ip4 = std::array<uint8_t, 4>;
using Ip6 = std::array<uint8_t, 16>;

// Layout constants for patching built frames (offsets relative to the header they name).
inline constexpr size_t kEthHdrLen = 14;
inline constexpr size_t kVlanTagLen = 4;
inline constexpr size_t kIpv4HdrLen = 20;  // without options
inline constexpr size_t kIpv6HdrLen = 40;
inline constexpr size_t kTcpHdrLen = 20;  // without options
inline constexpr size_t kUdpHdrLen = 8;
inline constexpr size_t kOffIpv4TotalLen = 2;    // in the IPv4 header
inline constexpr size_t kOffIpv4Frag = 6;        // flags + fragment offset
inline constexpr size_t kOffIpv6PayloadLen = 4;  // in the IPv6 header
inline constexpr size_t kOffTcpDataOffset = 12;  // high nibble, in 32-bit words
inline constexpr size_t kOffUdpLen = 4;

inline constexpr uint16_t kEtherIpv4 = 0x0800;
inline constexpr uint16_t kEtherIpv6 = 0x86dd;
inline constexpr uint16_t kEtherArp = 0x0806;
inline constexpr uint16_t kEtherVlan = 0x8100;

inline constexpr uint8_t kIpProtoTcp = 6;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kIpv6HopByHop = 0;
inline constexpr uint8_t kIpv6Routing = 43;
inline constexpr uint8_t kIpv6Fragment = 44;
inline constexpr uint8_t kIpv6DestOpts = 60;

// Overwrites 2 bytes at `off` with `v` in network order.
inline void put_be16(Bytes& b, size_t off, uint16_t v) {
  b.at(off) = static_cast<uint8_t>(v >> 8);
  b.at(off + 1) = static_cast<uint8_t>(v);
}

// Overwrites 4 bytes at `off` with `v` in network order.
inline void put_be32(Bytes& b, size_t off, uint32_t v) {
  put_be16(b, off, static_cast<uint16_t>(v >> 16));
  put_be16(b, off + 2, static_cast<uint16_t>(v));
}

// Returns the bytes of `s` (no terminator).
inline Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

// Appends `tail` to `b` and returns `b`, for concatenating packets into one buffer.
inline Bytes& append(Bytes& b, const Bytes& tail) {
  b.insert(b.end(), tail.begin(), tail.end());
  return b;
}

// Builds one Ethernet frame. Set up L2/L3/L4 with the chained setters, then call build().
// Defaults: untagged Ethernet, IPv4 10.0.0.1 -> 10.0.0.2, TCP 40000 -> 1883 with ACK, no payload.
class PacketBuilder {
 public:
  // Sets the source and destination MAC addresses.
  PacketBuilder& eth(const Mac& src, const Mac& dst) {
    src_mac_ = src;
    dst_mac_ = dst;
    return *this;
  }
  // Adds an 802.1Q tag with this TCI (PCP/DEI/VID) in front of the EtherType.
  PacketBuilder& vlan(uint16_t tci) {
    vlan_ = tci;
    return *this;
  }
  // Makes a non-IP frame with this EtherType; the frame body is then only the payload().
  PacketBuilder& ethertype(uint16_t type) {
    raw_ethertype_ = type;
    return *this;
  }
  // Uses IPv4 with these addresses (the default).
  PacketBuilder& ipv4(const Ip4& src, const Ip4& dst) {
    ip_version_ = 4;
    src4_ = src;
    dst4_ = dst;
    return *this;
  }
  // Adds IPv4 options (zero-padded to a multiple of 4 bytes; at most 40 bytes).
  PacketBuilder& ipv4_options(const Bytes& options) {
    ip_options_ = options;
    while (ip_options_.size() % 4) ip_options_.push_back(0);
    return *this;
  }
  // Sets the IPv4 flags/fragment field: DF, MF and the offset in 8-byte units (13 bits).
  PacketBuilder& ipv4_fragment(bool dont_fragment, bool more_fragments, uint16_t offset_units) {
    frag_ =
        static_cast<uint16_t>((dont_fragment ? 0x4000 : 0) | (more_fragments ? 0x2000 : 0) | (offset_units & 0x1fff));
    return *this;
  }
  // Uses IPv6 with these addresses.
  PacketBuilder& ipv6(const Ip6& src, const Ip6& dst) {
    ip_version_ = 6;
    src6_ = src;
    dst6_ = dst;
    return *this;
  }
  // Appends an IPv6 extension header of `type` (hop-by-hop, routing, fragment, dest options...).
  // `body` follows the next-header and length bytes and is zero-padded to a multiple of 8 bytes
  // in all; for a fragment header pass its 6 bytes (offset/flags, identification).
  PacketBuilder& ipv6_ext(uint8_t type, const Bytes& body = {}) {
    ext_.push_back({type, body});
    return *this;
  }
  // Uses TCP with these fields (the default protocol). `flags` are the wire flag bits.
  PacketBuilder& tcp(uint16_t src_port, uint16_t dst_port, uint32_t seq = 0, uint32_t ack = 0, uint8_t flags = 0x10) {
    proto_ = kIpProtoTcp;
    src_port_ = src_port;
    dst_port_ = dst_port;
    seq_ = seq;
    ack_ = ack;
    tcp_flags_ = flags;
    return *this;
  }
  // Adds TCP options (zero-padded to a multiple of 4; the data offset follows).
  PacketBuilder& tcp_options(const Bytes& options) {
    tcp_options_ = options;
    while (tcp_options_.size() % 4) tcp_options_.push_back(0);
    return *this;
  }
  // Sets the TCP window (default 65535).
  PacketBuilder& tcp_window(uint16_t window) {
    window_ = window;
    return *this;
  }
  // Uses UDP with these ports.
  PacketBuilder& udp(uint16_t src_port, uint16_t dst_port) {
    proto_ = kIpProtoUdp;
    src_port_ = src_port;
    dst_port_ = dst_port;
    return *this;
  }
  // Uses another IP protocol number; the payload() follows the IP header(s) directly.
  PacketBuilder& ip_proto(uint8_t proto) {
    proto_ = proto;
    return *this;
  }
  // Carries `data` right after the IP header(s) under protocol number `proto`, with no L4 header
  // built or checksum filled, even for TCP and UDP: the bytes of a fragment after the first.
  PacketBuilder& raw_l4(uint8_t proto, const Bytes& data) {
    proto_ = proto;
    raw_l4_ = true;
    payload_ = data;
    return *this;
  }
  // Sets the L4 payload (or the whole body of a non-IP frame).
  PacketBuilder& payload(const Bytes& data) {
    payload_ = data;
    return *this;
  }
  // Sets the payload from text.
  PacketBuilder& payload(std::string_view text) { return payload(to_bytes(text)); }
  // Pads the frame with zeros to at least `frame_len` bytes (e.g. 60, Ethernet's minimum without
  // FCS); the IP length fields still describe the unpadded packet.
  PacketBuilder& pad_to(size_t frame_len) {
    pad_to_ = frame_len;
    return *this;
  }

  // Offset of the L3 header in the built frame.
  size_t l3_offset() const { return kEthHdrLen + (vlan_ ? kVlanTagLen : 0); }
  // Offset of the L4 header in the built frame (after IPv4 options / IPv6 extension headers).
  size_t l4_offset() const {
    if (ip_version_ == 4) return l3_offset() + kIpv4HdrLen + ip_options_.size();
    size_t off = l3_offset() + kIpv6HdrLen;
    for (const Ext& e : ext_) off += ext_len(e);
    return off;
  }
  // Offset of the L4 payload in the built frame.
  size_t payload_offset() const { return l4_offset() + l4_header_len(); }

  // Returns the frame. IP lengths, the IPv4 header checksum and the TCP/UDP checksums are set.
  Bytes build() const {
    Bytes f;
    f.insert(f.end(), dst_mac_.begin(), dst_mac_.end());
    f.insert(f.end(), src_mac_.begin(), src_mac_.end());
    if (vlan_) {
      push16(f, kEtherVlan);
      push16(f, *vlan_);
    }
    if (raw_ethertype_) {
      push16(f, *raw_ethertype_);
      f.insert(f.end(), payload_.begin(), payload_.end());
      return padded(std::move(f));
    }
    push16(f, ip_version_ == 4 ? kEtherIpv4 : kEtherIpv6);

    Bytes l4 = l4_segment();
    if (ip_version_ == 4) {
      size_t ip_start = f.size();
      size_t ihl = kIpv4HdrLen + ip_options_.size();
      f.push_back(static_cast<uint8_t>(0x40 | (ihl / 4)));
      f.push_back(0);  // DSCP/ECN
      push16(f, static_cast<uint16_t>(ihl + l4.size()));
      push16(f, 0x1234);  // identification
      push16(f, frag_);
      f.push_back(64);  // TTL
      f.push_back(proto_);
      push16(f, 0);  // checksum, below
      f.insert(f.end(), src4_.begin(), src4_.end());
      f.insert(f.end(), dst4_.begin(), dst4_.end());
      f.insert(f.end(), ip_options_.begin(), ip_options_.end());
      put_be16(f, ip_start + 10, fold(sum(f.data() + ip_start, ihl)));
      fill_l4_checksum(l4, src4_.data(), dst4_.data(), 4);
    } else {
      size_t ext_total = 0;
      for (const Ext& e : ext_) ext_total += ext_len(e);
      push32(f, 0x60000000);  // version, traffic class, flow label
      push16(f, static_cast<uint16_t>(ext_total + l4.size()));
      f.push_back(ext_.empty() ? proto_ : ext_.front().type);
      f.push_back(64);  // hop limit
      f.insert(f.end(), src6_.begin(), src6_.end());
      f.insert(f.end(), dst6_.begin(), dst6_.end());
      for (size_t i = 0; i < ext_.size(); ++i) {
        const Ext& e = ext_[i];
        size_t len = ext_len(e);
        f.push_back(i + 1 < ext_.size() ? ext_[i + 1].type : proto_);
        f.push_back(static_cast<uint8_t>(len / 8 - 1));
        Bytes body = e.body;
        body.resize(len - 2, 0);
        f.insert(f.end(), body.begin(), body.end());
      }
      fill_l4_checksum(l4, src6_.data(), dst6_.data(), 16);
    }
    f.insert(f.end(), l4.begin(), l4.end());
    return padded(std::move(f));
  }

 private:
  struct Ext {
    uint8_t type;
    Bytes body;
  };

  static size_t ext_len(const Ext& e) { return (e.body.size() + 2 + 7) / 8 * 8; }
  size_t l4_header_len() const {
    if (raw_l4_) return 0;
    if (proto_ == kIpProtoTcp) return kTcpHdrLen + tcp_options_.size();
    if (proto_ == kIpProtoUdp) return kUdpHdrLen;
    return 0;
  }
  static void push16(Bytes& b, uint16_t v) {
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
  }
  static void push32(Bytes& b, uint32_t v) {
    push16(b, static_cast<uint16_t>(v >> 16));
    push16(b, static_cast<uint16_t>(v));
  }
  static uint32_t sum(const uint8_t* p, size_t n, uint32_t acc = 0) {
    for (size_t i = 0; i + 1 < n; i += 2) acc += uint32_t{p[i]} << 8 | p[i + 1];
    if (n % 2) acc += uint32_t{p[n - 1]} << 8;
    return acc;
  }
  static uint16_t fold(uint32_t acc) {
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return static_cast<uint16_t>(~acc);
  }

  Bytes l4_segment() const {
    Bytes s;
    if (raw_l4_) {
    } else if (proto_ == kIpProtoTcp) {
      push16(s, src_port_);
      push16(s, dst_port_);
      push32(s, seq_);
      push32(s, ack_);
      s.push_back(static_cast<uint8_t>(((kTcpHdrLen + tcp_options_.size()) / 4) << 4));
      s.push_back(tcp_flags_);
      push16(s, window_);
      push16(s, 0);  // checksum
      push16(s, 0);  // urgent pointer
      s.insert(s.end(), tcp_options_.begin(), tcp_options_.end());
    } else if (proto_ == kIpProtoUdp) {
      push16(s, src_port_);
      push16(s, dst_port_);
      push16(s, static_cast<uint16_t>(kUdpHdrLen + payload_.size()));
      push16(s, 0);  // checksum
    }
    s.insert(s.end(), payload_.begin(), payload_.end());
    return s;
  }

  // Sets the TCP/UDP checksum over the pseudo-header and `seg`.
  void fill_l4_checksum(Bytes& seg, const uint8_t* src, const uint8_t* dst, size_t addr_len) const {
    size_t at = proto_ == kIpProtoTcp ? 16 : proto_ == kIpProtoUdp ? 6 : 0;
    if (at == 0 || raw_l4_) return;
    uint32_t acc = sum(src, addr_len);
    acc = sum(dst, addr_len, acc);
    acc += proto_;
    acc += static_cast<uint32_t>(seg.size() & 0xffff) + static_cast<uint32_t>(seg.size() >> 16);
    uint16_t c = fold(sum(seg.data(), seg.size(), acc));
    if (proto_ == kIpProtoUdp && c == 0) c = 0xffff;
    put_be16(seg, at, c);
  }

  Bytes padded(Bytes f) const {
    if (f.size() < pad_to_) f.resize(pad_to_, 0);
    return f;
  }

  Mac src_mac_{0x02, 0, 0, 0, 0, 0x01};
  Mac dst_mac_{0x02, 0, 0, 0, 0, 0x02};
  std::optional<uint16_t> vlan_;
  std::optional<uint16_t> raw_ethertype_;
  uint8_t ip_version_ = 4;
  Ip4 src4_{10, 0, 0, 1};
  Ip4 dst4_{10, 0, 0, 2};
  Ip6 src6_{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  Ip6 dst6_{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  Bytes ip_options_;
  uint16_t frag_ = 0x4000;  // DF, as most TCP stacks send
  std::vector<Ext> ext_;
  uint8_t proto_ = kIpProtoTcp;
  bool raw_l4_ = false;
  uint16_t src_port_ = 40000;
  uint16_t dst_port_ = 1883;
  uint32_t seq_ = 0;
  uint32_t ack_ = 0;
  uint8_t tcp_flags_ = 0x10;
  uint16_t window_ = 65535;
  Bytes tcp_options_;
  Bytes payload_;
  size_t pad_to_ = 0;
};

// ---- MQTT ---------------------------------------------------------------------------------------

// MQTT control packet types (high nibble of the fixed header).
inline constexpr uint8_t kMqttConnect = 1, kMqttConnack = 2, kMqttPublish = 3, kMqttPuback = 4, kMqttSubscribe = 8,
                         kMqttSuback = 9, kMqttPingreq = 12, kMqttPingresp = 13, kMqttDisconnect = 14, kMqttAuth = 15;

// Encodes `n` as an MQTT variable byte integer (1..4 bytes for n <= 268435455; larger values
// produce the 5-byte encodings the decoder must reject).
inline Bytes mqtt_varint(uint64_t n) {
  Bytes out;
  do {
    uint8_t b = n & 0x7f;
    n >>= 7;
    if (n) b |= 0x80;
    out.push_back(b);
  } while (n);
  return out;
}

// Encodes a 2-byte length followed by `s` (MQTT's UTF-8 string / binary data).
inline Bytes mqtt_string(std::string_view s) {
  // Reserved up front: GCC 12 at -O3 otherwise warns of a bogus overflow when inserting into the
  // 2-byte vector (-Warray-bounds).
  Bytes out;
  out.reserve(2 + s.size());
  out.push_back(static_cast<uint8_t>(s.size() >> 8));
  out.push_back(static_cast<uint8_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

// Builds a packet of `type` (1..15) with fixed-header `flags` (low nibble) and `body` as its
// variable header + payload, e.g. mqtt_simple(kMqttPingreq) or mqtt_simple(kMqttSubscribe, b, 2).
inline Bytes mqtt_simple(uint8_t type, const Bytes& body = {}, uint8_t flags = 0) {
  Bytes out{static_cast<uint8_t>(type << 4 | (flags & 0x0f))};
  append(out, mqtt_varint(body.size()));
  append(out, body);
  return out;
}

// Fields of a CONNECT; see mqtt_connect(). Fill the fields directly or chain the with_*()
// setters: mqtt_connect(MqttConnectSpec{}.with_level(5).with_client_id("c").with_username("u")).
struct MqttConnectSpec {
  uint8_t level = 4;  // 3 (MQTT 3.1, "MQIsdp"), 4 (3.1.1) or 5; other values go out as given
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::optional<std::string> will_topic;  // sets the will flag
  std::string will_payload;
  Bytes properties;       // v5 only: CONNECT property bytes, without their length prefix
  Bytes will_properties;  // v5 only, with a will: will property bytes, without their length
  uint16_t keep_alive = 60;
  bool clean_session = true;

  MqttConnectSpec& with_level(uint8_t v) {
    level = v;
    return *this;
  }
  MqttConnectSpec& with_client_id(std::string v) {
    client_id = std::move(v);
    return *this;
  }
  MqttConnectSpec& with_username(std::string v) {
    username = std::move(v);
    return *this;
  }
  MqttConnectSpec& with_password(std::string v) {
    password = std::move(v);
    return *this;
  }
  // Sets the will flag with this topic and payload.
  MqttConnectSpec& with_will(std::string topic, std::string payload) {
    will_topic = std::move(topic);
    will_payload = std::move(payload);
    return *this;
  }
  MqttConnectSpec& with_properties(Bytes v) {
    properties = std::move(v);
    return *this;
  }
  MqttConnectSpec& with_will_properties(Bytes v) {
    will_properties = std::move(v);
    return *this;
  }
};

// Builds a complete CONNECT packet from `spec`.
inline Bytes mqtt_connect(const MqttConnectSpec& spec) {
  Bytes body = mqtt_string(spec.level == 3 ? "MQIsdp" : "MQTT");
  body.push_back(spec.level);
  uint8_t flags = 0;
  if (spec.clean_session) flags |= 0x02;
  if (spec.will_topic) flags |= 0x04;
  if (spec.username) flags |= 0x80;
  if (spec.password) flags |= 0x40;
  body.push_back(flags);
  body.push_back(static_cast<uint8_t>(spec.keep_alive >> 8));
  body.push_back(static_cast<uint8_t>(spec.keep_alive));
  if (spec.level == 5) {
    append(body, mqtt_varint(spec.properties.size()));
    append(body, spec.properties);
  }
  append(body, mqtt_string(spec.client_id));
  if (spec.will_topic) {
    if (spec.level == 5) {
      append(body, mqtt_varint(spec.will_properties.size()));
      append(body, spec.will_properties);
    }
    append(body, mqtt_string(*spec.will_topic));
    append(body, mqtt_string(spec.will_payload));
  }
  if (spec.username) append(body, mqtt_string(*spec.username));
  if (spec.password) append(body, mqtt_string(*spec.password));
  return mqtt_simple(kMqttConnect, body);
}

// Builds a CONNECT of protocol `level` (3, 4 or 5) with the common fields only.
inline Bytes mqtt_connect(uint8_t level, std::string_view client_id, std::optional<std::string> username = std::nullopt,
                          std::optional<std::string> password = std::nullopt) {
  MqttConnectSpec spec;
  spec.level = level;
  spec.client_id = std::string(client_id);
  spec.username = std::move(username);
  spec.password = std::move(password);
  return mqtt_connect(spec);
}

// Builds a PUBLISH for protocol `level` (v5 adds the property block `properties`, which may be
// empty); the packet id is present for qos 1 and 2 only. `qos` 3 is encoded as given.
inline Bytes mqtt_publish(uint8_t level, std::string_view topic, std::string_view payload, uint8_t qos = 0,
                          uint16_t packet_id = 1, const Bytes& properties = {}) {
  Bytes body = mqtt_string(topic);
  if (qos != 0) {
    body.push_back(static_cast<uint8_t>(packet_id >> 8));
    body.push_back(static_cast<uint8_t>(packet_id));
  }
  if (level == 5) {
    append(body, mqtt_varint(properties.size()));
    append(body, properties);
  }
  body.insert(body.end(), payload.begin(), payload.end());
  return mqtt_simple(kMqttPublish, body, static_cast<uint8_t>((qos & 3) << 1));
}

}  // namespace imf::test
