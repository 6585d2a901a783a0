"""A model of what a server application could read from imfd's output capture.

Per connection it takes the client->server packets with valid checksums (IPv4 header, TCP over the
pseudo-header), reassembles IP fragments (IPv4 and IPv6) three ways (first fragment copy wins, last
copy wins, scapy's defragment/defragment6), rebuilds the TCP byte stream from ISN+1 under both
overlap policies (first copy wins; last copy wins for bytes the server has not acknowledged yet),
stops at an RST at the exact next sequence number, handles URG both ways (urgent byte read out of
band, as a receiver without SO_OOBINLINE does; or inline) and TTL both ways (every packet arrives;
packets with TTL/hop limit <= 1 die at the first router), then parses the protocol's message
bodies out of each of those 24 variants. FIN is not honoured (a receiver that reads data beyond a
FIN is counted as possible).

    CAUGHT: no variant of a forbidden connection yields a body matching the forbidden pattern.
    PASSES: the canonical variant (first-wins fragments and bytes, URG out of band, TTL-1 packets
            dying: a Linux server behind a router) yields exactly the expected bodies, and imfd sent
            no RST on the connection (an RST in the output that is not in the input).

Pure Python on raw bytes; scapy only for its defragmenters.
"""

import itertools
import struct
from dataclasses import dataclass, field

import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import IP, defragment  # noqa: E402  Debian python3-scapy
from scapy.layers.inet6 import IPv6, defragment6  # noqa: E402

M32 = 0xFFFFFFFF
FRAG_POLICIES = ("first", "last", "scapy")
OVERLAP_POLICIES = ("first", "last")
URG_POLICIES = ("oob", "inline")
TTL_POLICIES = ("hop", "all")
CANONICAL = ("first", "first", "oob", "hop")
MAX_EXT_HEADERS = 256


def read_pcap(path):
    """[(time, frame bytes)] of a little- or big-endian microsecond/nanosecond pcap."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError(f"{path}: not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(e + "IIII", data, pos)
        pos += 16
        out.append((sec + frac / (1e9 if nano else 1e6), data[pos:pos + incl]))
        pos += incl
    return out


def inet_sum(b, s=0):
    if len(b) % 2:
        b += b"\0"
    s += sum(w for (w,) in struct.iter_unpack("!H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def walk6(nh, data):
    """(upper-layer protocol, its bytes) after the IPv6 extension headers at the start of data,
    or (None, b'') when the chain is malformed; a fragment header stops the walk (-> 44)."""
    pos = 0
    for _ in range(MAX_EXT_HEADERS):
        if nh in (0, 43, 60):
            if len(data) - pos < 8:
                return None, b""
            nh, pos = data[pos], pos + (data[pos + 1] + 1) * 8
        else:
            return nh, data[pos:]
    return None, b""


@dataclass
class L3:
    """One IP packet or fragment from a frame."""
    idx: int
    v: int
    src: bytes
    dst: bytes
    ttl: int
    ip_ok: bool
    proto: int  # upper-layer protocol (fragments: of the datagram)
    payload: bytes  # L4 bytes, or the fragment's bytes
    frag: tuple = None  # (ident, offset, more)
    ip: bytes = b""  # the IP packet (for scapy's defragmenters)
    frag_nh: int = None  # IPv6: next header in the fragment header


def parse_frame(idx, frame):
    """The IP packet of an Ethernet frame: behind any number of VLAN tags, a PPPoE session header
    or an MPLS label stack (a receiver that decapsulates them reads it)."""
    off = 12
    while frame[off:off + 2] in (b"\x81\x00", b"\x88\xa8", b"\x91\x00"):
        off += 4
    etype = frame[off:off + 2]
    ip = frame[off + 2:]
    if etype == b"\x88\x64" and len(ip) >= 8:  # PPPoE session
        etype = {b"\x00\x21": b"\x08\x00", b"\x00\x57": b"\x86\xdd"}.get(ip[6:8], b"")
        ip = ip[8:]
    elif etype == b"\x88\x47":  # MPLS
        pos = 0
        while pos + 4 <= len(ip) and not ip[pos + 2] & 1:
            pos += 4
        ip = ip[pos + 4:]
        etype = b"\x08\x00" if ip[:1] and ip[0] >> 4 == 4 else b"\x86\xdd"
    if etype == b"\x08\x00" and len(ip) >= 20 and ip[0] >> 4 == 4:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack_from("!H", ip, 2)[0]
        if ihl < 20 or total < ihl or total > len(ip):
            return None
        ip = ip[:total]
        ok = inet_sum(ip[:ihl]) == 0xFFFF
        fo = struct.unpack_from("!H", ip, 6)[0]
        ident = struct.unpack_from("!H", ip, 4)[0]
        frag = (ident, (fo & 0x1FFF) * 8, bool(fo & 0x2000)) if fo & 0x3FFF else None
        return L3(idx, 4, ip[12:16], ip[16:20], ip[8], ok, ip[9], ip[ihl:], frag, ip)
    if etype == b"\x86\xdd" and len(ip) >= 40 and ip[0] >> 4 == 6:
        plen = struct.unpack_from("!H", ip, 4)[0]
        if 40 + plen > len(ip):
            return None
        ip = ip[:40 + plen]
        nh, rest = walk6(ip[6], ip[40:])
        if nh is None:
            return None
        frag = None
        frag_nh = None
        if nh == 44:
            if len(rest) < 8:
                return None
            frag_nh = rest[0]
            fo, ident = struct.unpack_from("!HI", rest, 2)
            frag = (ident, fo & 0xFFF8, bool(fo & 1))
            rest = rest[8:]
            if frag[1] == 0 and not frag[2]:  # atomic fragment: an ordinary packet
                nh, rest = walk6(frag_nh, rest)
                frag = None
                if nh is None:
                    return None
            else:
                nh = None
        return L3(idx, 6, ip[8:24], ip[24:40], ip[7], True, nh, rest, frag, ip, frag_nh)
    return None


@dataclass
class Datagram:
    idx: int  # frame index that completed it
    v: int
    src: bytes
    dst: bytes
    ttl: int
    ip_ok: bool
    proto: int
    l4: bytes


def _scapy_defrag(group):
    try:
        if group[0].v == 4:
            pl = defragment([IP(q.ip) for q in group])
            whole = [p for p in pl if IP in p and p[IP].flags.MF == 0 and p[IP].frag == 0]
            if not whole:
                return None
            raw = bytes(whole[0][IP])
        else:
            p = defragment6([IPv6(q.ip) for q in group])
            if p is None:
                return None
            raw = bytes(p)
        q = parse_frame(0, b"\0" * 12 + (b"\x08\x00" if group[0].v == 4 else b"\x86\xdd") + raw)
        return None if q is None or q.frag is not None else q
    except Exception:  # noqa: BLE001  scapy gives up on some overlaps: no datagram that way
        return None


def reassemble(l3s, policy):
    """Datagrams in completion order; fragments reassembled with `policy`."""
    out, groups = [], {}
    for p in l3s:
        if p.frag is None:
            out.append(Datagram(p.idx, p.v, p.src, p.dst, p.ttl, p.ip_ok, p.proto, p.payload))
            continue
        key = (p.v, p.src, p.dst, p.frag[0], p.proto if p.v == 4 else None)
        g = groups.setdefault(key, [])
        g.append(p)
        total = next((q.frag[1] + len(q.payload) for q in g if not q.frag[2]), None)
        if total is None:
            continue
        have = bytearray(total)
        for q in g:
            for i in range(q.frag[1], min(total, q.frag[1] + len(q.payload))):
                have[i] = 1
        if not all(have):
            continue
        del groups[key]
        ttl, ok = min(q.ttl for q in g), all(q.ip_ok for q in g)
        if policy == "scapy":
            r = _scapy_defrag(g)
            if r is not None:
                out.append(Datagram(p.idx, p.v, p.src, p.dst, ttl, ok, r.proto, r.payload))
            continue
        buf, filled = bytearray(total), bytearray(total)
        for q in g:
            for i, b in enumerate(q.payload):
                pos = q.frag[1] + i
                if pos >= total or (policy == "first" and filled[pos]):
                    continue
                buf[pos], filled[pos] = b, 1
        if p.v == 4:
            proto, l4 = p.proto, bytes(buf)
        else:
            first = next((q for q in g if q.frag[1] == 0), g[0])
            proto, l4 = walk6(first.frag_nh, bytes(buf))
            if proto is None:
                continue
        out.append(Datagram(p.idx, p.v, p.src, p.dst, ttl, ok, proto, l4))
    return out


@dataclass
class Tcp:
    idx: int
    v: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    urgptr: int
    payload: bytes
    ttl: int


def tcp_of(d):
    """The TCP segment of a datagram when its IP header and TCP checksums are valid, else None."""
    if d.proto != 6 or not d.ip_ok or len(d.l4) < 20:
        return None
    if d.v == 4:
        pseudo = d.src + d.dst + struct.pack("!BBH", 0, 6, len(d.l4))
    else:
        pseudo = d.src + d.dst + struct.pack("!IxxxB", len(d.l4), 6)
    if inet_sum(pseudo + d.l4) != 0xFFFF:
        return None
    sport, dport, seq, ack, off, flags, _, _, urg = struct.unpack_from("!HHIIBBHHH", d.l4)
    hl = (off >> 4) * 4
    if hl < 20 or hl > len(d.l4):
        return None
    return Tcp(d.idx, d.v, d.src, d.dst, sport, dport, seq, ack, flags, urg, d.l4[hl:], d.ttl)


def _ip(text):
    import ipaddress
    return ipaddress.ip_address(text).packed


@dataclass
class ConnSpec:
    """What the model needs to know about one connection."""
    v: int
    c_ip: str
    c_port: int
    s_ip: str
    s_port: int
    base: int  # ISN + 1: the sequence number of stream offset 0
    preseen: bytes = b""  # bytes the server had before the capture began

    def __post_init__(self):
        self.c = (_ip(self.c_ip), self.c_port)
        self.s = (_ip(self.s_ip), self.s_port)


def spec_of(conn):
    """ConnSpec of a techniques.Conn."""
    return ConnSpec(6 if conn.v6 else 4, conn.c_ip, conn.cport, conn.s_ip, conn.sport, conn.base, conn.preseen)


class Capture:
    """One capture, parsed and reassembled three ways, segments grouped by connection."""

    def __init__(self, frames):
        l3s = [q for q in (parse_frame(i, f) for i, (_, f) in enumerate(frames)) if q is not None]
        self.segs = {}  # policy -> {(client, server): [Tcp] in order}
        for policy in FRAG_POLICIES:
            groups = {}
            for d in reassemble(l3s, policy):
                t = tcp_of(d)
                if t is None:
                    continue
                a, b = (t.src, t.sport), (t.dst, t.dport)
                groups.setdefault((a, b), []).append(t)
                if (b, a) != (a, b):
                    groups.setdefault((b, a), []).append(t)
            self.segs[policy] = groups

    def of(self, spec, policy):
        return self.segs[policy].get((spec.c, spec.s), [])

    def rsts(self, spec):
        """{(from client?, seq)} of the RST segments of a connection (first-wins fragments)."""
        return {((t.src, t.sport) == spec.c, t.seq) for t in self.of(spec, "first") if t.flags & 0x04}


def rebuild(spec, segs, overlap, urg, ttl):
    """(stream, stopped at an exact RST?) of one variant."""
    data, urgent = {}, set()
    for i, b in enumerate(spec.preseen):
        data[i] = b
    acked = len(spec.preseen)
    nxt = len(spec.preseen)
    stopped = False
    for t in segs:
        if ttl == "hop" and t.ttl <= 1:
            continue
        if (t.src, t.sport) != spec.c:  # server -> client: its ACK freezes the bytes below it
            if t.flags & 0x10:
                rel = (t.ack - spec.base) & M32
                if rel < 1 << 30:
                    acked = max(acked, rel)
            continue
        off = (t.seq - spec.base) & M32
        off = off - (1 << 32) if off >= 1 << 31 else off
        if t.flags & 0x04:
            if off == nxt:
                stopped = True
                break
            continue
        start = off + 1 if t.flags & 0x02 else off
        for i, b in enumerate(t.payload):
            pos = start + i
            if pos < 0 or pos > 1 << 24:
                continue
            if pos in data and (overlap == "first" or pos < acked):
                continue
            data[pos] = b
        if t.flags & 0x20 and t.urgptr:
            urgent.add(off + t.urgptr - 1)
        while nxt in data:
            nxt += 1
    stream = bytes(data[i] for i in range(nxt))
    if urg == "oob" and urgent:
        stream = bytes(b for i, b in enumerate(stream) if i not in urgent)
    return stream, stopped


@dataclass
class Judgement:
    leaked: list = field(default_factory=list)  # variants with a forbidden body
    streams: dict = field(default_factory=dict)  # variant -> stream
    bodies: dict = field(default_factory=dict)  # variant -> [body]
    imfd_rsts: int = 0  # RSTs on this connection in the output that are not in the input
    stopped: bool = False  # the canonical variant stopped at an exact RST

    @property
    def canonical_stream(self):
        return self.streams[CANONICAL]

    @property
    def canonical_bodies(self):
        return self.bodies[CANONICAL]


def judge(out_cap, in_cap, spec, proto, pattern):
    j = Judgement()
    in_rsts = in_cap.rsts(spec) if in_cap is not None else set()
    j.imfd_rsts = len(out_cap.rsts(spec) - in_rsts)
    for variant in itertools.product(FRAG_POLICIES, OVERLAP_POLICIES, URG_POLICIES, TTL_POLICIES):
        f, o, u, t = variant
        stream, stopped = rebuild(spec, out_cap.of(spec, f), o, u, t)
        bodies = proto.bodies(stream)
        j.streams[variant], j.bodies[variant] = stream, bodies
        if variant == CANONICAL:
            j.stopped = stopped
        if any(pattern.search(b) for b in bodies):
            j.leaked.append(variant)
    return j


def variant_name(v):
    return "frag={},tcp={},urg={},ttl={}".format(*v)
