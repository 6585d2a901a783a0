"""Evasion techniques against imfd: client->server TCP conversations that try to get a forbidden
message past the filter, each with a clean twin that must pass untouched.

The core is protocol-agnostic. A Session is the client's application bytes of one connection:
`setup` (for MQTT the CONNECT), the server's `reply` (CONNACK), a `prelude` sent after it (for
MQTT 5 the PUBLISH that sets a topic alias; usually nothing) and the `message` being judged (one
PUBLISH). A protocol object (here Mqtt) builds them and parses message bodies back out of a byte
stream (receiver.py uses that); XMPP/SIP/IRC sessions plug in by providing the same members
(name, port, setup(), reply(), prelude(), message(body), bodies(stream)).

A technique is a generator `fn(s, net)` yielding steps for one or more connections (`net.conn(s)`):
Send (frames sent once: insertions, probes), Deliver (data the sender keeps retransmitting until
the server acknowledges it), SynAck / ServerData / ServerAck / ServerRst (what the server sends;
offline they are written into the capture, live the real server sends them), Wait, ForgeServerAck.
The same generator drives both runners:
  - build_capture() writes an offline capture (both variants, each on its own 5-tuple), with the
    server's SYN/ACK and ACKs where a real server (behind a correct imfd) would send them;
  - live_client.py executes it on a veth against a real Linux server (generators are lazy, so a
    step may read what the live server announced, e.g. its window).

Debian's scapy (python3-scapy) builds the frames; it only loads under /usr/bin/python3.
"""

import re
import struct
from dataclasses import dataclass, field
from typing import Callable, Optional

import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import IP, TCP, IPOption_NOP  # noqa: E402  Debian python3-scapy
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop  # noqa: E402
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402

M32 = 0xFFFFFFFF

FORBIDDEN_BODY = b"get FREE MONEY now"
CLEAN_BODY = b"get FREE HONEY now"
FORBIDDEN_PATTERN = re.compile(rb"free\s+money", re.I)
RULE_ID = "evasion.free-money"
RULES = f"# evasion suite: the forbidden message\n{RULE_ID}  drop  payload  /free\\s+money/i\n"
KIDS_RULE_ID = "evasion.kids-money"
KIDS_RULES = f"# evasion suite: scoped to a channel\n{KIDS_RULE_ID}  drop  payload  channel=kids/#  /free\\s+money/i\n"

# imfd's escalation policy for the suite: every forbidden variant is a rule drop of one account, and
# escalation (suspending it) would reset the clean twins that follow.
POLICY = "# evasion suite: judge every connection by the rules alone\nescalation off\n"

# Addresses of both the offline captures and the live wire (private, test-only).
ADDR = {
    "c4": "10.91.1.1", "s4": "10.91.2.2",
    "c6": "fd00:91:1::1", "s6": "fd00:91:2::2",
    "cmac": "02:91:00:00:01:01", "smac": "02:91:00:00:02:01",
}
SERVER_WINDOW = 64240
RTO = 0.2  # seconds a sender waits before retransmitting (offline timestamps)


# ------------------------------------------------------------------------------------ MQTT session
def mqtt_varint(n, width=0):
    """MQTT variable byte integer; width > 0 pads it to that many bytes (non-minimal encoding)."""
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        if n or len(out) + 1 < width:
            b |= 0x80
        out.append(b)
        if not b & 0x80:
            return bytes(out)


def mqtt_string(b):
    return len(b).to_bytes(2, "big") + b


def read_varint(b, i):
    v, mult = 0, 1
    for _ in range(4):
        if i >= len(b):
            raise IndexError
        v += (b[i] & 127) * mult
        mult *= 128
        i += 1
        if not b[i - 1] & 128:
            return v, i
    raise ValueError("varint longer than 4 bytes")


class Mqtt:
    """MQTT 3.1.1 (level 4) or 5 client session: CONNECT [+ a PUBLISH establishing topic alias 1
    on kids/room], then one QoS 0 PUBLISH carrying the body being judged."""

    name = "mqtt"
    port = 1883

    def __init__(self, level=4, nonminimal=False, alias=False, topic=b"chat/room/general",
                 user=b"mallory", client_id=b"evasion-client", keepalive=60):
        self.level, self.nonminimal, self.alias = level, nonminimal, alias
        self.topic, self.user, self.client_id, self.keepalive = topic, user, client_id, keepalive

    def connect(self):
        vh = mqtt_string(b"MQTT") + bytes([self.level, 0x02 | 0x80]) + self.keepalive.to_bytes(2, "big")
        if self.level == 5:
            vh += b"\x00"  # no properties
        body = vh + mqtt_string(self.client_id) + mqtt_string(self.user)
        return b"\x10" + mqtt_varint(len(body)) + body

    def publish(self, topic, body, alias=None, width=0):
        vh = mqtt_string(topic)
        if self.level == 5:
            props = b"" if alias is None else b"\x23" + alias.to_bytes(2, "big")
            vh += mqtt_varint(len(props)) + props
        return b"\x30" + mqtt_varint(len(vh) + len(body), width) + vh + body

    def setup(self):
        return self.connect()

    def prelude(self):
        """What the client sends after the server's reply, before the judged message."""
        return self.publish(b"kids/room", b"hello kids", alias=1) if self.alias else b""

    def reply(self):
        if self.level == 5:
            props = b"\x22\x00\x0a"  # topic alias maximum 10
            return b"\x20" + mqtt_varint(3 + len(props)) + b"\x00\x00" + mqtt_varint(len(props)) + props
        return b"\x20\x02\x00\x00"

    def message(self, body):
        if self.alias:
            return self.publish(b"", body, alias=1)
        return self.publish(self.topic, body, width=4 if self.nonminimal else 0)

    def publishes(self, stream):
        """[(topic, body)] of the complete PUBLISH packets a broker would take from this client
        byte stream, in order, topic aliases resolved; stops at the first incomplete or malformed
        packet (where a broker would wait or disconnect)."""
        out, aliases, level, i = [], {}, 4, 0
        while i < len(stream):
            try:
                rl, j = read_varint(stream, i + 1)
            except (IndexError, ValueError):
                return out
            if j + rl > len(stream):
                return out
            typ, flags, body = stream[i] >> 4, stream[i] & 15, stream[j:j + rl]
            i = j + rl
            try:
                if typ == 1:
                    n = int.from_bytes(body[0:2], "big")
                    level = body[2 + n]
                elif typ == 3:
                    n = int.from_bytes(body[0:2], "big")
                    topic, k = body[2:2 + n], 2 + n
                    if len(topic) != n:
                        return out
                    if (flags >> 1) & 3:
                        k += 2
                    if level == 5:
                        plen, k2 = read_varint(body, k)
                        props, k = body[k2:k2 + plen], k2 + plen
                        p = 0
                        while p < len(props):
                            if props[p] == 0x23:  # topic alias
                                alias = int.from_bytes(props[p + 1:p + 3], "big")
                                if topic:
                                    aliases[alias] = topic
                                else:
                                    topic = aliases.get(alias, b"")
                                p += 3
                            else:
                                break  # other properties: not used by the suite
                    out.append((topic, body[k:]))
                elif typ in (0, 15):
                    return out  # reserved types: a broker disconnects
            except (IndexError, ValueError):
                return out
        return out

    def bodies(self, stream):
        return [b for _, b in self.publishes(stream)]


# ------------------------------------------------------------------------------------ the session
class Session:
    """One connection's application bytes; `forbidden` picks the body of `message`."""

    def __init__(self, proto, forbidden):
        self.proto, self.forbidden = proto, forbidden
        self.body = FORBIDDEN_BODY if forbidden else CLEAN_BODY
        self.hello = proto.setup()
        self.prelude = proto.prelude()
        self.setup = self.hello + self.prelude  # every client byte before the message
        self.reply = proto.reply()
        self.message = proto.message(self.body)
        fmsg, cmsg = proto.message(FORBIDDEN_BODY), proto.message(CLEAN_BODY)
        assert len(fmsg) == len(cmsg), "forbidden and clean messages must be the same length"
        # Index in `message` of the first byte where the forbidden and clean messages differ.
        self.diff = next(i for i in range(len(fmsg)) if fmsg[i] != cmsg[i])
        # Benign copy of the message (the twin's own message in the clean variant).
        self.decoy = cmsg
        # Benign copy with the same Internet checksum: two phrase bytes swapped within one 16-bit
        # lane ("FREE NOMEY"), so a datagram assembled either way passes the L4 checksum.
        m = bytearray(self.message)
        if forbidden:
            m[self.diff], m[self.diff + 2] = m[self.diff + 2], m[self.diff]
            assert not FORBIDDEN_PATTERN.search(bytes(m))
        self.neutral = bytes(m)
        self.off = len(self.setup)  # stream offset of the message
        self.stream = self.setup + self.message
        self.variant = "forbidden" if forbidden else "clean"


# ------------------------------------------------------------------------------------ segments
@dataclass
class FragPlan:
    """IP fragmentation of one segment. pieces: (start, end, source) over the fragmentable part
    (L4 header + data for IPv4), in sending order; source 'real' or 'alt' (the same bytes with the
    data replaced by `alt`, e.g. an overlapping benign copy). keep: IPv6 extension headers kept in
    the unfragmentable part before the fragment header."""
    pieces: list
    alt: bytes = b""
    keep: int = 0


@dataclass
class Seg:
    """One client segment. off: stream offset of its first data byte (0 = ISN+1; -1 = the SYN)."""
    off: int = 0
    data: bytes = b""
    flags: str = "PA"
    seq: Optional[int] = None  # absolute sequence number instead of off
    ack_delta: int = 0  # added to the client's proper acknowledgment number
    ttl: Optional[int] = None
    bad_l4: bool = False
    bad_ip: bool = False
    urgptr: int = 0
    tsval_delta: int = 0
    ipopts: bool = False
    ext: tuple = ()  # IPv6 extension headers before TCP: 'hbh' / 'dst'
    frag: Optional[FragPlan] = None
    window: int = 64240

    @property
    def end(self):
        return self.off + len(self.data) + (1 if "F" in self.flags else 0)


def pieces(total, first=24, size=8, start=0):
    """(start, end, 'real') pieces over [start, total): the first `first` bytes, then `size` each."""
    out, pos = [], start
    step = first
    while pos < total:
        end = min(total, pos + step)
        out.append((pos, end, "real"))
        pos, step = end, size
    return out


def inet_sum(b, s=0):
    if len(b) % 2:
        b += b"\0"
    for (w,) in struct.iter_unpack("!H", b):
        s += w
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ipv4_checksum(hdr):
    return ~inet_sum(hdr) & 0xFFFF


def l2_len(frame):
    """Offset of the IP header: after VLAN tags, a PPPoE session header or an MPLS label stack."""
    off = 12
    while frame[off:off + 2] in (b"\x81\x00", b"\x88\xa8", b"\x91\x00"):
        off += 4
    if frame[off:off + 2] == b"\x88\x64":  # PPPoE session: 6-byte header, 2-byte PPP protocol
        return off + 2 + 8
    if frame[off:off + 2] == b"\x88\x47":  # MPLS: labels up to the bottom of the stack
        off += 2
        while not frame[off + 2] & 1:
            off += 4
        return off + 4
    return off + 2


def encapsulate(frame, encap):
    """frame (Ethernet + optional VLAN tags + IP) with the IP packet carried in PPPoE or MPLS."""
    if not encap:
        return frame
    l3 = l2_len(frame)
    ip = frame[l3:]
    if encap == "pppoe":
        proto = b"\x00\x21" if ip[0] >> 4 == 4 else b"\x00\x57"
        shim = b"\x88\x64" + struct.pack("!BBHH", 0x11, 0, 0x0091, len(ip) + 2) + proto
    else:  # one MPLS label (16), bottom of stack, TTL 64
        shim = b"\x88\x47" + struct.pack("!I", 16 << 12 | 1 << 8 | 64)
    return frame[:l3 - 2] + shim + ip


def ipv6_ext_walk(frame, pos):
    """(offset of the upper-layer header, its protocol, [(offset, type) of each ext header])."""
    nh, off = frame[pos + 6], pos + 40
    exts = []
    while nh in (0, 43, 60, 44):
        exts.append((off, nh))
        if nh == 44:
            nh, off = frame[off], off + 8
        else:
            nh, off = frame[off], off + (frame[off + 1] + 1) * 8
    return off, nh, exts


# ------------------------------------------------------------------------------------ connections
class Conn:
    """One client connection (its own 5-tuple): builds its client frames and, offline, the server's."""

    def __init__(self, net, s, cport, v6=False, vlans=(), ts=False, role="judged", isn=None, encap=None):
        self.net, self.s, self.cport, self.sport = net, s, cport, s.proto.port
        self.v6, self.vlans, self.ts, self.role, self.encap = v6, tuple(vlans), ts, role, encap
        self.c_ip = ADDR["c6"] if v6 else ADDR["c4"]
        self.s_ip = ADDR["s6"] if v6 else ADDR["s4"]
        self.isn = (cport * 2654435761 + 0x1000) & M32 if isn is None else isn
        self.s_isn = (self.isn ^ 0x5A5A5A5A) & M32  # offline; live learns it
        self.s_next = (self.s_isn + 1) & M32  # the server's next sequence number, as the client knows it
        self.s_window = SERVER_WINDOW  # the window the server announced last
        self.tsval = 10_000_000 + cport * 1000
        self.ts_ecr = 0
        self.s_tsval = 50_000_000
        # What the receiver must read (clean variant); probes and noise are not judged that way.
        self.expect_stream = s.stream
        self.preseen = b""  # bytes the server had before the capture began (mid-stream pickup)
        # Offline server model: stream offsets it holds, what it acknowledged.
        self.have = set()
        self.fin_at = None
        self.next_off = 0  # the client's next stream offset (for its bare ACKs)
        self.aborted = None  # live: why the client gave up
        self.notes = []

    # --- identity
    @property
    def key(self):
        return (6 if self.v6 else 4, self.c_ip, self.cport, self.s_ip, self.sport)

    @property
    def base(self):
        return (self.isn + 1) & M32

    def seq_of(self, off):
        return (self.isn + 1 + off) & M32

    # --- frames
    def _l2(self, src, dst):
        l2 = Ether(src=src, dst=dst)
        for tpid, vid in self.vlans:
            l2 = l2 / (Dot1AD(vlan=vid) if tpid == 0x88A8 else Dot1Q(vlan=vid))
        return l2

    def _l3(self, src, dst, ttl, g=None):
        if self.v6:
            l3 = IPv6(src=src, dst=dst, hlim=ttl)
            for kind in (g.ext if g else ()):
                l3 = l3 / (IPv6ExtHdrHopByHop() if kind == "hbh" else IPv6ExtHdrDestOpt())
            return l3
        opts = [IPOption_NOP()] * 4 if g is not None and g.ipopts else []
        return IP(src=src, dst=dst, ttl=ttl, id=self.net.next_ip_id(),
                  flags=0 if g is not None and g.frag else "DF", options=opts)

    def client_frames(self, g):
        """The frames of client segment g (several when fragmented)."""
        seq = g.seq if g.seq is not None else self.seq_of(g.off)
        ack = (self.s_next + g.ack_delta) & M32 if "A" in g.flags else 0
        if "S" in g.flags:
            opts = [("MSS", 1460)]
            if self.ts:
                opts += [("NOP", None), ("NOP", None), ("Timestamp", (self.tsval, 0))]
        elif self.ts:
            opts = [("NOP", None), ("NOP", None), ("Timestamp", ((self.tsval + g.tsval_delta) & M32, self.ts_ecr))]
        else:
            opts = []
        if self.ts:
            self.tsval += 1
        tcp = TCP(sport=self.cport, dport=self.sport, seq=seq, ack=ack, flags=g.flags, window=g.window,
                  urgptr=g.urgptr, options=opts)
        pkt = self._l2(self.net.c_mac, self.net.s_mac) / self._l3(self.c_ip, self.s_ip, g.ttl or 64, g) / tcp
        if g.data:
            pkt = pkt / Raw(g.data)
        frame = bytearray(encapsulate(bytes(pkt), self.encap))
        l3 = l2_len(frame)
        if self.v6:
            l4, _, exts = ipv6_ext_walk(frame, l3)
        else:
            l4, exts = l3 + (frame[l3] & 15) * 4, []
        if g.bad_l4:
            frame[l4 + 16] ^= 0x5A
            frame[l4 + 17] ^= 0x5A
        if g.bad_ip and not self.v6:
            frame[l3 + 10] ^= 0x5A
            frame[l3 + 11] ^= 0x5A
        if g.frag is None:
            return [bytes(frame)]
        return self._fragment(bytes(frame), l3, l4, exts, g)

    def _fragment(self, frame, l3, l4, exts, g):
        plan = g.frag
        out = []
        if not self.v6:
            hdr, body = bytearray(frame[l3:l4]), frame[l4:]
            hdr[0] = 0x45  # options are not copied into fragments
            hdr = hdr[:20]
            alt = body[:len(body) - len(plan.alt)] + plan.alt if plan.alt else body
            for start, end, src in plan.pieces:
                data = (alt if src == "alt" else body)[start:end]
                h = bytearray(hdr)
                struct.pack_into("!H", h, 2, 20 + len(data))
                more = end < len(body)
                struct.pack_into("!H", h, 6, (0x2000 if more else 0) | (start // 8))
                struct.pack_into("!H", h, 10, 0)
                struct.pack_into("!H", h, 10, ipv4_checksum(bytes(h)))
                out.append(frame[:l3] + bytes(h) + data)
            return out
        # IPv6: unfragmentable part = header + the first `keep` extension headers.
        cut = exts[plan.keep][0] if plan.keep < len(exts) else l4
        nh_pos = l3 + 6 if plan.keep == 0 else exts[plan.keep - 1][0]
        unfrag = bytearray(frame[l3:cut])
        next_nh = frame[nh_pos]
        unfrag[nh_pos - l3] = 44
        body = frame[cut:]
        alt = body[:len(body) - len(plan.alt)] + plan.alt if plan.alt else body
        ident = self.net.next_ip_id() | 0x91000000
        for start, end, src in plan.pieces:
            data = (alt if src == "alt" else body)[start:end]
            more = end < len(body)
            fh = struct.pack("!BBHI", next_nh, 0, (start // 8) << 3 | (1 if more else 0), ident)
            h = bytearray(unfrag)
            struct.pack_into("!H", h, 4, len(h) - 40 + 8 + len(data))
            out.append(frame[:l3] + bytes(h) + fh + data)
        return out

    def server_frame(self, flags, data=b"", window=None, ack=None, seq=None, from_client_side=False):
        """A server->client frame (offline: what the server sends; live: a forged one)."""
        s_seq = self.s_next if seq is None else seq
        if ack is None:
            ack = self.seq_of(self.rcv_end())
        opts = []
        if self.ts:
            opts = [("NOP", None), ("NOP", None), ("Timestamp", (self.s_tsval, self.tsval - 1))]
            self.s_tsval += 1
            self.ts_ecr = self.s_tsval - 1
        if "S" in flags:
            opts = [("MSS", 1460)] + opts
        tcp = TCP(sport=self.sport, dport=self.cport, seq=s_seq, ack=ack, flags=flags,
                  window=self.s_window if window is None else window, options=opts)
        src_mac, dst_mac = (self.net.c_mac, self.net.s_mac) if from_client_side else (self.net.s_mac, self.net.c_mac)
        pkt = self._l2(src_mac, dst_mac) / self._l3(self.s_ip, self.c_ip, 63) / tcp
        if data:
            pkt = pkt / Raw(data)
        pkt = encapsulate(bytes(pkt), self.encap)
        if seq is None:
            self.s_next = (self.s_next + len(data) + (1 if ("S" in flags or "F" in flags) else 0)) & M32
        return bytes(pkt)

    # --- offline server model
    def rcv_end(self):
        n = 0
        while n in self.have:
            n += 1
        if self.fin_at is not None and n == self.fin_at:
            n += 1
        return n

    def receive(self, g):
        if g.off < 0:
            return
        for i in range(len(g.data)):
            self.have.add(g.off + i)
        if "F" in g.flags:
            self.fin_at = g.off + len(g.data)

    def assume_established(self):
        """Mid-stream pickup: the handshake and `preseen` happened before the capture."""
        self.preseen = self.s.setup
        for i in range(len(self.preseen)):
            self.have.add(i)
        self.next_off = len(self.preseen)


# ------------------------------------------------------------------------------------ steps
@dataclass
class Send:
    """Client segments sent once. reaches: a receiver behind a correct imfd gets them (offline
    server model only)."""
    conn: Conn
    segs: list
    reaches: bool = False
    note: str = ""


@dataclass
class Deliver:
    """Client data the sender retransmits until acknowledged. stalls: 'forbidden' or 'always' when
    a correct imfd drops it (then offline the server acknowledges nothing new and the sender
    retransmits once after RTO)."""
    conn: Conn
    segs: list
    stalls: str = ""
    note: str = ""
    plain_retransmit: bool = False  # retransmissions unfragmented


@dataclass
class SynAck:
    conn: Conn


@dataclass
class ServerData:
    conn: Conn
    data: bytes


@dataclass
class ServerAck:
    conn: Conn
    window: Optional[int] = None


@dataclass
class ServerRst:
    conn: Conn


@dataclass
class Wait:
    seconds: float


@dataclass
class ForgeServerAck:
    """A server->client ACK forged by the client (sent on the client's side of imfd)."""
    conn: Conn
    upto: int


def send(c, *segs, reaches=False, note=""):
    return Send(c, list(segs), reaches, note)


def deliver(c, *segs, stalls="", note="", plain_retransmit=False):
    return Deliver(c, list(segs), stalls, note, plain_retransmit)


def unfragmented(g):
    """The same segment without IP fragmentation."""
    return Seg(**{**g.__dict__, "frag": None})


def handshake(c, syn_data=b""):
    yield send(c, Seg(-1, syn_data, flags="S"))
    yield SynAck(c)
    yield send(c, Seg(0, flags="A"))


def open_session(s, c):
    """Handshake, the setup bytes delivered, the server's reply, the prelude."""
    yield from handshake(c)
    yield deliver(c, Seg(0, s.hello))
    if s.reply:
        yield ServerData(c, s.reply)
    if s.prelude:
        yield deliver(c, Seg(len(s.hello), s.prelude))


class Net:
    """Allocates connections (client ports) for one capture or one live run."""

    def __init__(self, first_port=20000, c_mac=ADDR["cmac"], s_mac=ADDR["smac"]):
        self.port, self.conns, self.c_mac, self.s_mac = first_port, [], c_mac, s_mac
        self.ip_id = 0x100

    def conn(self, s, **kw):
        c = Conn(self, s, self.port, **kw)
        self.port += 1
        self.conns.append(c)
        return c

    def next_ip_id(self):
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        return self.ip_id


# ------------------------------------------------------------------------------------ techniques
def t_baseline(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield deliver(c, Seg(s.off, s.message))


def t_split_every_byte(s, n):
    for k in range(1, len(s.message)):
        c = n.conn(s)
        yield from open_session(s, c)
        yield deliver(c, Seg(s.off, s.message[:k]), Seg(s.off + k, s.message[k:]), note=f"split at {k}")


def t_one_byte_segments(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield deliver(c, *[Seg(s.off + i, s.message[i:i + 1]) for i in range(len(s.message))])


def t_out_of_order(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    m, a, b = s.message, len(s.message) // 3, 2 * len(s.message) // 3
    third = [Seg(s.off, m[:a]), Seg(s.off + a, m[a:b]), Seg(s.off + b, m[b:])]
    yield send(c, third[2], third[1], note="last two thirds first, reversed")
    yield deliver(c, third[0])
    yield Wait(RTO)
    yield deliver(c, third[1], third[2], note="retransmitted in order after RTO")


def t_overlap_full_benign_first(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, s.decoy), reaches=True, note="benign copy")
    yield deliver(c, Seg(s.off, s.message), stalls="forbidden", note="same sequence, real bytes")


def t_overlap_full_forbidden_first(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, s.message), note="real bytes first")
    yield deliver(c, Seg(s.off, s.decoy), note="benign copy at the same sequence")


def t_overlap_partial_benign_first(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    d = s.diff
    yield send(c, Seg(s.off, s.decoy[:d + 3]), reaches=True, note="benign head")
    yield deliver(c, Seg(s.off + d - 2, s.message[d - 2:]), stalls="forbidden", note="real tail overlapping it")


def t_overlap_partial_forbidden_first(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    d = s.diff
    yield send(c, Seg(s.off, s.message[:d + 3]), reaches=True, note="real head")
    yield deliver(c, Seg(s.off + d - 2, s.decoy[d - 2:]), stalls="forbidden", note="benign tail overlapping it")


def t_rst_out_of_window(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off + 50 * SERVER_WINDOW, flags="R"), note="RST far outside the window")
    yield deliver(c, Seg(s.off, s.message))


def t_rst_in_window(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off + 1000, flags="R"), reaches=True, note="RST in window, not exact")
    yield ServerAck(c)  # RFC 5961 challenge ACK
    yield deliver(c, Seg(s.off, s.message))


def t_rst_low_ttl(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, flags="R", ttl=1), reaches=True, note="exact RST with TTL 1")
    yield send(c, Seg(s.off, s.message))
    yield ServerRst(c)
    c.expect_stream = s.setup  # the RST (TTL raised by imfd) closes the connection at the receiver


def t_fin_out_of_window(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off + 50 * SERVER_WINDOW, flags="FA"), note="FIN far outside the window")
    yield deliver(c, Seg(s.off, s.message))


def t_fin_bad_checksum(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, flags="FA", bad_l4=True), note="exact FIN, bad TCP checksum")
    yield deliver(c, Seg(s.off, s.message))


def t_bad_l4_checksum(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, s.decoy, bad_l4=True), note="benign copy, bad TCP checksum")
    yield deliver(c, Seg(s.off, s.message))


def t_bad_ip_checksum(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, s.decoy, bad_ip=True), note="benign copy, bad IPv4 header checksum")
    yield deliver(c, Seg(s.off, s.message))


def t_low_ttl(s, n, v6=False):
    c = n.conn(s, v6=v6)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, s.decoy, ttl=1), reaches=True, note="benign copy, TTL 1")
    yield deliver(c, Seg(s.off, s.message), stalls="forbidden")


def t_low_hoplimit6(s, n):
    yield from t_low_ttl(s, n, v6=True)


def t_no_ack(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, s.decoy, flags="P"), note="benign copy without ACK")
    yield deliver(c, Seg(s.off, s.message))


def t_unsent_ack(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, s.decoy, ack_delta=100_000), note="benign copy acknowledging unsent data")
    yield deliver(c, Seg(s.off, s.message))


def t_zero_window(s, n):
    c = n.conn(s)
    c.s_window = len(s.setup)  # a receive window the setup fills exactly (windows never shrink)
    yield from handshake(c)
    c.s_window = 0  # the server's application is not reading: its ACK of the setup closes the window
    yield deliver(c, Seg(0, s.setup))
    yield send(c, Seg(s.off, s.decoy), note="benign copy into the zero window")
    yield ServerAck(c)  # the application reads: window update
    yield ServerData(c, s.reply)
    yield deliver(c, Seg(s.off, s.message))


def t_beyond_window(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    # Live, the window is what the server announced last (the generator runs lazily).
    filler = s.proto.message(b"x" * (c.s_window + 3000))
    at = s.off + len(filler)
    yield send(c, Seg(at, s.decoy), note="benign copy beyond the window, where the message will be")
    chunks = [Seg(s.off + i, filler[i:i + 1400]) for i in range(0, len(filler), 1400)]
    for i in range(0, len(chunks), 8):
        yield deliver(c, *chunks[i:i + 8])
    yield deliver(c, Seg(at, s.message))
    c.expect_stream = s.setup + filler + s.message


def t_paws(s, n):
    c = n.conn(s, ts=True)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, s.decoy, tsval_delta=-100_000), note="benign copy with an old TSval")
    yield deliver(c, Seg(s.off, s.message), stalls="forbidden")


def t_paws_forged_ack(s, n):
    c = n.conn(s, ts=True)
    yield from open_session(s, c)
    yield send(c, Seg(s.off, s.decoy, tsval_delta=-100_000), note="benign copy with an old TSval")
    yield ForgeServerAck(c, s.off + len(s.message))
    yield deliver(c, Seg(s.off, s.message), stalls="forbidden")


def t_data_after_fin(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield deliver(c, Seg(s.off, flags="FA"), note="FIN at the end of the setup")
    yield deliver(c, Seg(s.off, s.message), stalls="always", note="the message beyond the FIN")
    c.expect_stream = s.setup


def t_syn_new_isn(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    new_isn = (c.seq_of(s.off) + 100_000) & M32
    yield send(c, Seg(seq=new_isn, flags="S"), note="SYN with a new ISN above the old data")
    yield ServerAck(c)  # challenge ACK
    yield deliver(c, Seg(s.off, s.message), note="data at the old sequence")


def t_urgent(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    body = s.body[:11] + b"X" + s.body[11:]  # "get FREE MO" X "NEY now"
    m = s.proto.message(body)
    x = m.index(body) + 11
    trailer = b"\xc0\x00"  # PINGREQ
    yield deliver(c, Seg(s.off, m + trailer, flags="PAU", urgptr=x + 1), note="extra byte X marked urgent")
    c.expect_stream = s.setup + m + trailer


def t_syn_data(s, n):
    c = n.conn(s)
    yield from handshake(c, syn_data=s.stream)
    yield deliver(c, Seg(0, s.stream), note="retransmitted after the handshake")


def t_syn_data_decoy(s, n):
    c = n.conn(s)
    decoy = s.setup + s.decoy
    yield from handshake(c, syn_data=decoy)
    yield deliver(c, Seg(0, s.stream), stalls="forbidden", note="real data after the handshake")


# --- IP fragments
def _frag_session(s, n, v6, plan_fn, invalid=False, overlap=False):
    c = n.conn(s, v6=v6)
    yield from open_session(s, c)
    total = 20 + len(s.message)
    plan = plan_fn(s, total)
    if invalid:
        yield send(c, Seg(s.off, s.message, frag=plan), note="fragments a correct imfd drops")
        yield Wait(RTO)
        yield deliver(c, Seg(s.off, s.message), note="retransmitted unfragmented")
    elif overlap:
        # Linux drops every datagram with overlapping fragments, equal bytes or not: the sender's
        # retransmissions go unfragmented, so a clean twin can still arrive.
        yield deliver(c, Seg(s.off, s.message, frag=plan), stalls="forbidden", plain_retransmit=True)
    else:
        yield deliver(c, Seg(s.off, s.message, frag=plan))


def plan_tiny(s, total):
    return FragPlan(pieces(total, 24, 8))


def plan_out_of_order(s, total):
    p = pieces(total, 24, 16)
    return FragPlan([p[i] for i in (2, 0, 3, 1) if i < len(p)])


def plan_reversed(s, total):
    return FragPlan(list(reversed(pieces(total, 24, 16))))


def _overlap_plan(s, total, benign_first):
    d = 20 + s.diff
    x = d & ~7
    head = pieces(x - 8, 24, 8)
    a = (x - 8, min(x + 8, total))
    b = (x, min(x + 16, total))
    tail = pieces(total, 8, 8, start=b[1]) if b[1] < total else []
    first, second = ("alt", "real") if benign_first else ("real", "alt")
    return FragPlan(head + [(a[0], a[1], first), (b[0], b[1], second)] + tail, alt=s.neutral)


def plan_overlap_benign_first(s, total):
    return _overlap_plan(s, total, True)


def plan_overlap_forbidden_first(s, total):
    return _overlap_plan(s, total, False)


def plan_duplicate(s, total):
    p = pieces(total, 24, 8)
    return FragPlan(p[:3] + [p[2]] + p[3:])


def plan_first_no_header(s, total):
    return FragPlan([(0, 8, "real"), (8, 24, "real")] + pieces(total, 16, 16, start=24))


def plan_atomic(s, total):
    return FragPlan([(0, total, "real")])


def _frag_too_many(s, n, v6):
    c = n.conn(s, v6=v6)
    yield from handshake(c)
    total = 20 + len(s.stream)
    plan = FragPlan(pieces(total, 24, 8))
    assert len(plan.pieces) > 8
    yield send(c, Seg(0, s.stream, frag=plan), note=f"{len(plan.pieces)} fragments")
    yield Wait(RTO)
    yield deliver(c, Seg(0, s.stream), note="retransmitted unfragmented")


def _frag_after_ext(s, n):
    c = n.conn(s, v6=True)
    yield from open_session(s, c)
    total = 20 + len(s.message)
    yield deliver(c, Seg(s.off, s.message, ext=("hbh", "dst"), frag=FragPlan(pieces(total, 24, 16), keep=2)))


def _ext_chain(s, n, count, dropped):
    c = n.conn(s, v6=True)
    yield from open_session(s, c)
    g = Seg(s.off, s.message, ext=("dst",) * count)
    if dropped:
        yield send(c, g, note=f"{count} destination-options headers")
        yield Wait(RTO)
        yield deliver(c, Seg(s.off, s.message), note="retransmitted without them")
    else:
        yield deliver(c, g)


def _vlan(s, n, vlans=(), encap=None):
    c = n.conn(s, vlans=vlans, encap=encap)
    yield from open_session(s, c)
    yield deliver(c, Seg(s.off, s.message))


def t_ip_options(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield deliver(c, Seg(s.off, s.message, ipopts=True))


def t_plain(s, n):
    """The session as is (for techniques that live in the protocol bytes)."""
    c = n.conn(s)
    yield from open_session(s, c)
    yield deliver(c, Seg(s.off, s.message))


def t_midstream(s, n):
    c = n.conn(s, role="probe")
    c.assume_established()
    yield send(c, Seg(s.off, s.message), note="no handshake in the capture")
    yield Wait(1.0)
    r = n.conn(s)
    yield from open_session(s, r)
    yield deliver(r, Seg(s.off, s.message), note="the client reconnects")


FLOOD_SYNS = 200
FLOOD_FLOWS = 16


def t_syn_flood(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    for _ in range(FLOOD_SYNS):
        f = n.conn(s, role="noise")
        yield send(f, Seg(-1, flags="S"))
        yield SynAck(f)
    yield deliver(c, Seg(s.off, s.message))


def t_pause(s, n):
    c = n.conn(s)
    yield from open_session(s, c)
    yield Wait(600)
    yield deliver(c, Seg(s.off, s.message))


def t_seq_wrap(s, n):
    c = n.conn(s, isn=(M32 - s.off - 5) & M32)
    yield from open_session(s, c)
    yield deliver(c, Seg(s.off, s.message), note="sequence numbers wrap inside the message")


@dataclass
class Technique:
    name: str
    layer: str
    what: str  # what the attacker does
    stops: str  # what stops it (imfd's design)
    run: Callable
    proto: Callable = Mqtt
    rules: str = RULES
    options: tuple = ()
    offline: bool = True
    live: bool = False
    gap: bool = False  # not covered by the design: run only with --gaps
    twin: bool = True  # False: the carrier itself is refused by design, no clean twin can pass
    extra: dict = field(default_factory=dict)


def _frag(v6, plan_fn, invalid=False, overlap=False):
    return lambda s, n: _frag_session(s, n, v6, plan_fn, invalid, overlap)


TECHNIQUES = [
    Technique("baseline", "MQTT", "the forbidden PUBLISH in one segment", "the rule", t_baseline, live=True),
    Technique("split_every_byte", "TCP", "the PUBLISH split in two at every byte position, one connection each",
              "streaming scan across segments", t_split_every_byte),
    Technique("one_byte_segments", "TCP", "the PUBLISH in 1-byte segments", "streaming scan", t_one_byte_segments),
    Technique("out_of_order", "TCP", "last thirds first, then in order after RTO",
              "segments ahead of the expected sequence dropped", t_out_of_order),
    Technique("overlap_full_benign_first", "TCP", "benign copy, then the real bytes at the same sequence",
              "retransmission compared with the retained bytes", t_overlap_full_benign_first, live=True),
    Technique("overlap_full_forbidden_first", "TCP", "real bytes, then a benign copy at the same sequence",
              "first copy inspected", t_overlap_full_forbidden_first, live=True),
    Technique("overlap_partial_benign_first", "TCP", "benign head, then a real tail overlapping it",
              "overlap compared with the retained bytes", t_overlap_partial_benign_first, live=True),
    Technique("overlap_partial_forbidden_first", "TCP", "real head, then a benign tail overlapping it",
              "overlap compared with the retained bytes", t_overlap_partial_forbidden_first, live=True),
    Technique("rst_out_of_window", "TCP", "forged RST far outside the window, then the message",
              "RST outside the window dropped, state kept", t_rst_out_of_window, live=True),
    Technique("rst_in_window", "TCP", "forged RST in the window but not exact, then the message",
              "RFC 5961: forwarded, state kept", t_rst_in_window, live=True),
    Technique("rst_low_ttl", "TCP/IP", "exact RST with TTL 1 (dies before the server), then the message",
              "TTL raised, inspection continues after an RST", t_rst_low_ttl),
    Technique("fin_out_of_window", "TCP", "forged FIN far outside the window, then the message",
              "FIN counts only at the end of the in-order data", t_fin_out_of_window, live=True),
    Technique("fin_bad_checksum", "TCP", "exact FIN with a bad TCP checksum, then the message",
              "checksum verified", t_fin_bad_checksum, live=True),
    Technique("bad_l4_checksum", "TCP", "benign copy with a bad TCP checksum, then the real bytes",
              "checksum verified, never decoded", t_bad_l4_checksum, live=True),
    Technique("bad_ip_checksum", "IPv4", "benign copy with a bad IPv4 header checksum, then the real bytes",
              "header checksum verified", t_bad_ip_checksum, live=True),
    Technique("low_ttl", "IPv4", "benign copy with TTL 1 (dies at the router), then the real bytes",
              "TTL raised to --min-ttl; the different real copy dropped", t_low_ttl, live=True),
    Technique("low_hoplimit6", "IPv6", "benign copy with hop limit 1, then the real bytes",
              "hop limit raised; the different real copy dropped", t_low_hoplimit6, live=True),
    Technique("no_ack", "TCP", "benign copy without the ACK flag, then the real bytes",
              "data without ACK dropped", t_no_ack, live=True),
    Technique("unsent_ack", "TCP", "benign copy acknowledging unsent data, then the real bytes",
              "ACK of unsent data dropped", t_unsent_ack, live=True),
    Technique("zero_window", "TCP", "benign copy into a window the setup closed, then the real bytes after the update",
              "data beyond the window dropped", t_zero_window),
    Technique("beyond_window", "TCP", "benign copy beyond the window where the message will be, then 67 KB, then it",
              "data beyond the window dropped", t_beyond_window, live=True),
    Technique("paws", "TCP", "benign copy with an old timestamp (PAWS), then the real bytes",
              "the different real copy dropped", t_paws, live=True),
    Technique("paws_forged_ack", "TCP", "PAWS copy, a forged server ACK from the client side, then the real bytes",
              "segments on the wrong side's port dropped", t_paws_forged_ack, offline=False, live=True),
    Technique("data_after_fin", "TCP", "FIN, then the message at and beyond the FIN",
              "data beyond the FIN dropped", t_data_after_fin, live=True),
    Technique("syn_new_isn", "TCP", "SYN with a new ISN mid-connection, then data at the old sequence",
              "SYN forwarded, state kept until a SYN/ACK", t_syn_new_isn, live=True),
    Technique("urgent", "TCP", "an extra byte marked urgent inside the phrase (read out of band)",
              "URG flag and pointer cleared", t_urgent, live=True),
    Technique("syn_data", "TCP", "the whole session on the SYN, again after the handshake",
              "SYN data inspected", t_syn_data, live=True),
    Technique("syn_data_decoy", "TCP", "benign session on the SYN, the real one after the handshake",
              "SYN data retained; the different copy dropped", t_syn_data_decoy, live=True),
    Technique("frag4_tiny", "IPv4", "8-byte fragments after a first one holding the TCP header",
              "reassembly before inspection", _frag(False, plan_tiny), live=True),
    Technique("frag4_out_of_order", "IPv4", "fragments out of order", "reassembly",
              _frag(False, plan_out_of_order), live=True),
    Technique("frag4_reversed", "IPv4", "fragments last to first", "reassembly", _frag(False, plan_reversed)),
    Technique("frag4_overlap_benign_first", "IPv4", "overlapping fragments, benign bytes first (same checksum)",
              "overlap with different bytes drops the datagram",
              _frag(False, plan_overlap_benign_first, overlap=True), live=True),
    Technique("frag4_overlap_forbidden_first", "IPv4", "overlapping fragments, real bytes first",
              "overlap with different bytes drops the datagram",
              _frag(False, plan_overlap_forbidden_first, overlap=True), live=True),
    Technique("frag4_duplicate", "IPv4", "a fragment sent twice", "equal duplicate dropped alone",
              _frag(False, plan_duplicate)),
    Technique("frag4_first_no_header", "IPv4", "first fragment of 8 bytes (no full TCP header)",
              "datagram dropped (the sender retransmits)", _frag(False, plan_first_no_header, invalid=True)),
    Technique("frag4_too_many", "IPv4", "10 fragments of one segment", "more than 8 fragments: dropped",
              lambda s, n: _frag_too_many(s, n, False)),
    Technique("frag6_tiny", "IPv6", "8-byte fragments after a first one holding the TCP header",
              "reassembly before inspection", _frag(True, plan_tiny), live=True),
    Technique("frag6_out_of_order", "IPv6", "fragments out of order", "reassembly",
              _frag(True, plan_out_of_order), live=True),
    Technique("frag6_reversed", "IPv6", "fragments last to first", "reassembly", _frag(True, plan_reversed)),
    Technique("frag6_overlap_benign_first", "IPv6", "overlapping fragments, benign bytes first (same checksum)",
              "overlap with different bytes drops the datagram",
              _frag(True, plan_overlap_benign_first, overlap=True), live=True),
    Technique("frag6_overlap_forbidden_first", "IPv6", "overlapping fragments, real bytes first",
              "overlap with different bytes drops the datagram",
              _frag(True, plan_overlap_forbidden_first, overlap=True), live=True),
    Technique("frag6_duplicate", "IPv6", "a fragment sent twice", "equal duplicate dropped alone",
              _frag(True, plan_duplicate)),
    Technique("frag6_first_no_header", "IPv6", "first fragment of 8 bytes (no full TCP header)",
              "datagram dropped (the sender retransmits)", _frag(True, plan_first_no_header, invalid=True)),
    Technique("frag6_too_many", "IPv6", "10 fragments of one segment", "more than 8 fragments: dropped",
              lambda s, n: _frag_too_many(s, n, True)),
    Technique("frag6_atomic", "IPv6", "atomic fragment (offset 0, no more fragments)",
              "an ordinary packet", _frag(True, plan_atomic)),
    Technique("frag6_after_ext", "IPv6", "fragment header after hop-by-hop and destination options",
              "extension headers walked, then reassembly", _frag_after_ext),
    Technique("ext6_chain_8", "IPv6", "8 destination-options headers before TCP", "header chain walked",
              lambda s, n: _ext_chain(s, n, 8, False)),
    Technique("ext6_chain_32", "IPv6", "32 destination-options headers before TCP", "header chain walked",
              lambda s, n: _ext_chain(s, n, 32, False)),
    Technique("ext6_chain_33", "IPv6", "33 destination-options headers before TCP",
              "more than 32: dropped (the sender retransmits)", lambda s, n: _ext_chain(s, n, 33, True)),
    Technique("vlan_8021q", "Ethernet", "the connection on an 802.1Q VLAN", "VLAN tag decoded",
              lambda s, n: _vlan(s, n, ((0x8100, 91),))),
    Technique("vlan_qinq", "Ethernet", "the connection on QinQ (802.1ad + 802.1Q)", "two tags decoded",
              lambda s, n: _vlan(s, n, ((0x88A8, 100), (0x8100, 91)))),
    Technique("ip_options", "IPv4", "IPv4 header with options (IHL 6)", "IHL honoured", t_ip_options),
    Technique("seq_wrap", "TCP", "sequence numbers wrap around 2^32 inside the message", "modular sequence arithmetic",
              t_seq_wrap),
    Technique("mqtt_nonminimal_length", "MQTT", "PUBLISH remaining length in 4 bytes (non-minimal)",
              "remaining length decoded correctly", t_plain, proto=lambda: Mqtt(nonminimal=True)),
    Technique("mqtt5_topic_alias", "MQTT", "alias 1 set on kids/room, then empty topic + alias 1 (rule channel=kids/#)",
              "aliases resolved", t_plain, proto=lambda: Mqtt(level=5, alias=True), rules=KIDS_RULES),
    Technique("midstream", "flow", "the message on a connection whose handshake imfd never saw, then a reconnect",
              "--midstream reset (default)", t_midstream),
    Technique("syn_flood", "flow", f"{FLOOD_SYNS} SYNs (--flows {FLOOD_FLOWS}) between the setup and the message",
              "half-open flows evicted first", t_syn_flood, options=("--flows", str(FLOOD_FLOWS))),
    Technique("pause_10min", "flow", "10 minutes of silence (capture time) before the message",
              "established flows age after --flow-idle (3600 s)", t_pause),
    Technique("vlan_triple", "Ethernet", "the connection under three VLAN tags",
              "more than two tags: dropped (the clean twin cannot pass either)",
              lambda s, n: _vlan(s, n, ((0x88A8, 100), (0x8100, 91), (0x8100, 92))), twin=False),
    Technique("pppoe", "Ethernet", "the connection inside a PPPoE session (as on DSL access networks)",
              "IP inside PPPoE sessions decoded", lambda s, n: _vlan(s, n, encap="pppoe")),
    Technique("mpls", "Ethernet", "the connection under an MPLS label",
              "IP under MPLS label stacks decoded", lambda s, n: _vlan(s, n, encap="mpls")),
]

BY_NAME = {t.name: t for t in TECHNIQUES}


# ------------------------------------------------------------------------------------ offline capture
class OfflineScript:
    """Writes the frames of a technique's steps with timestamps: 1 ms apart, Wait advances the clock."""

    def __init__(self, t0=1_780_000_000.0):
        self.t = t0
        self.frames = []  # (time, bytes)

    def emit(self, frame):
        self.t += 0.001
        self.frames.append((self.t, frame))

    def client(self, c, g):
        for f in c.client_frames(g):
            self.emit(f)
        if g.off >= 0 and g.seq is None:
            c.next_off = max(c.next_off, g.end)

    def run(self, steps):
        for st in steps:
            if isinstance(st, Send):
                for g in st.segs:
                    self.client(st.conn, g)
                    if st.reaches:
                        st.conn.receive(g)
            elif isinstance(st, Deliver):
                c = st.conn
                stalls = st.stalls == "always" or (st.stalls == "forbidden" and c.s.forbidden)
                for g in st.segs:
                    self.client(c, g)
                    if not stalls:
                        c.receive(g)
                self.emit(c.server_frame("A"))
                if stalls:  # the sender retransmits once after RTO, in vain
                    self.t += RTO
                    for g in st.segs:
                        self.client(c, unfragmented(g) if st.plain_retransmit else g)
                    self.emit(c.server_frame("A"))
            elif isinstance(st, SynAck):
                c = st.conn
                c.s_next = c.s_isn
                self.emit(c.server_frame("SA"))
            elif isinstance(st, ServerData):
                c = st.conn
                self.emit(c.server_frame("PA", st.data))
                self.client(c, Seg(c.next_off, flags="A"))
            elif isinstance(st, ServerAck):
                c = st.conn
                c.s_window = SERVER_WINDOW if st.window is None else st.window
                self.emit(c.server_frame("A"))
            elif isinstance(st, ServerRst):
                self.emit(st.conn.server_frame("R"))
            elif isinstance(st, ForgeServerAck):
                c = st.conn
                self.emit(c.server_frame("A", ack=c.seq_of(st.upto), seq=c.s_next, from_client_side=True))
            elif isinstance(st, Wait):
                self.t += st.seconds
            else:
                raise TypeError(f"unknown step {st!r}")


def build_capture(tech, first_port=20000):
    """Frames of both variants of a technique (forbidden first) and their connections."""
    net = Net(first_port)
    script = OfflineScript()
    conns = []
    for forbidden in (True, False):
        s = Session(tech.proto(), forbidden)
        before = len(net.conns)
        script.run(tech.run(s, net))
        script.t += 1.0
        conns += net.conns[before:]
    return script.frames, conns


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, b in frames:
            sec = int(t)
            f.write(struct.pack("<IIII", sec, int(round((t - sec) * 1e6)), len(b), len(b)))
            f.write(b)
