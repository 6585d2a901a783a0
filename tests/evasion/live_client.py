#!/usr/bin/python3
"""Client of the live evasion test, run inside the client namespace by evasion_live_test.py.

    live_client.py IFACE ROUTER_MAC FIRST_PORT TECHNIQUE[,TECHNIQUE...]

Executes each technique's steps (techniques.py), forbidden variant then clean twin, on a raw
AF_PACKET socket: its own handshake (the SYN/ACK is sniffed on IFACE; the client kernel's RSTs are
suppressed by nftables in this namespace), and retransmission of whatever the server has not
acknowledged, as a real sender would (Deliver: up to TRIES sends, ACK_WAIT apart). Server steps of
the offline script are what the real server does here, so they are skipped. Prints one JSON line per
connection: technique, variant, role, IP version, client port, the stream the server must read for
a clean twin, and what the client saw (RSTs, stalls, why it gave up).
"""

import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import techniques as T  # noqa: E402  this directory

ACK_WAIT = 0.3  # seconds between retransmissions of unacknowledged data
TRIES = 4
SYN_WAIT = 0.5
SYN_TRIES = 4
M32 = T.M32


class Wire:
    """Raw frames out on IFACE; server->client TCP segments in, dispatched to their connection."""

    def __init__(self, iface):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((iface, 0))
        self.sock.settimeout(0.2)
        self.conns = {}  # (ip version, client port) -> Conn
        self.cv = threading.Condition()
        self.stop = False
        self.thread = threading.Thread(target=self._rx, daemon=True)
        self.thread.start()

    def send(self, frame):
        self.sock.send(frame)

    def _rx(self):
        while not self.stop:
            try:
                frame, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            self._segment(frame)

    def _segment(self, f):
        off = T.l2_len(f)
        et = f[off - 2:off]
        if et == b"\x08\x00":
            ihl = (f[off] & 15) * 4
            if f[off + 9] != 6 or struct.unpack_from("!H", f, off + 6)[0] & 0x3FFF:
                return
            v, l4 = 4, off + ihl
        elif et == b"\x86\xdd":
            l4, nh, _ = T.ipv6_ext_walk(f, off)
            if nh != 6:
                return
            v = 6
        else:
            return
        sport, dport, seq, ack, doff, flags, win = struct.unpack_from("!HHIIBBH", f, l4)
        c = self.conns.get((v, dport))
        if c is None or sport != c.sport:
            return
        tsval = None
        opts = f[l4 + 20:l4 + (doff >> 4) * 4]
        i = 0
        while i < len(opts):
            kind = opts[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if i + 1 >= len(opts) or opts[i + 1] < 2:
                break
            if kind == 8 and opts[i + 1] == 10:
                tsval = struct.unpack_from("!I", opts, i + 2)[0]
            i += opts[i + 1]
        with self.cv:
            lv = c.live
            if flags & 0x04:
                lv["rsts"] += 1
            elif flags & 0x12 == 0x12 and not lv["synack"]:
                c.s_isn = seq
                c.s_next = (seq + 1) & M32
                lv["synack"] = True
            if flags & 0x10 and not flags & 0x04:
                rel = (ack - c.base) & M32
                if rel < 1 << 30:
                    lv["acked"] = max(lv["acked"], rel)
                c.s_window = win
            if tsval is not None:
                c.ts_ecr = tsval
                c.s_tsval = tsval + 1
            self.cv.notify_all()

    def wait(self, pred, timeout):
        end = time.monotonic() + timeout
        with self.cv:
            while not pred():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
            return True


class LiveRunner:
    def __init__(self, wire, net):
        self.wire, self.net = wire, net

    def register(self, c):
        if not hasattr(c, "live"):
            c.live = {"synack": False, "acked": -1, "rsts": 0, "stalls": 0, "syn": None}
            self.wire.conns[(6 if c.v6 else 4, c.cport)] = c

    def dead(self, c):
        return c.aborted is not None or c.live["rsts"] > 0

    def send_segs(self, c, segs):
        for g in segs:
            for f in c.client_frames(g):
                self.wire.send(f)
            if "S" in g.flags and g.seq is None:
                c.live["syn"] = g

    def run(self, steps):
        for st in steps:
            c = getattr(st, "conn", None)
            if c is not None:
                self.register(c)
                if self.dead(c):
                    continue
            if isinstance(st, T.Send):
                self.send_segs(c, st.segs)
            elif isinstance(st, T.Deliver):
                self.deliver(c, st)
            elif isinstance(st, T.SynAck):
                for _ in range(SYN_TRIES):
                    if self.wire.wait(lambda: c.live["synack"] or c.live["rsts"], SYN_WAIT):
                        break
                    if c.live["syn"] is not None:
                        self.send_segs(c, [c.live["syn"]])
                if not c.live["synack"]:
                    c.aborted = "no SYN/ACK"
                elif c.live["acked"] < 0:
                    c.live["acked"] = 0
            elif isinstance(st, T.ForgeServerAck):
                frame = c.server_frame("A", ack=c.seq_of(st.upto), seq=c.s_next, from_client_side=True)
                self.wire.send(frame)
            elif isinstance(st, T.Wait):
                time.sleep(min(st.seconds, 0.2))
            elif isinstance(st, (T.ServerData, T.ServerAck, T.ServerRst)):
                pass  # the real server does its part
            else:
                raise TypeError(f"unknown step {st!r}")

    def deliver(self, c, st):
        end = max(g.end for g in st.segs)
        for attempt in range(TRIES):
            todo = sorted((g for g in st.segs if g.end > c.live["acked"]), key=lambda g: g.off)
            if not todo:
                return
            if attempt:
                c.live["stalls"] += 1
                if st.plain_retransmit:
                    todo = [T.unfragmented(g) for g in todo]
            self.send_segs(c, todo)
            if self.wire.wait(lambda: c.live["acked"] >= end or c.live["rsts"], ACK_WAIT):
                return
        c.notes.append(f"unacknowledged after {TRIES} sends: {st.note or 'data'}")


def main(argv):
    iface, router_mac, first_port, names = argv[1], argv[2], int(argv[3]), argv[4].split(",")
    my_mac = open(f"/sys/class/net/{iface}/address").read().strip()
    wire = Wire(iface)
    net = T.Net(first_port, c_mac=my_mac, s_mac=router_mac)
    runner = LiveRunner(wire, net)
    for name in names:
        tech = T.BY_NAME[name]
        for forbidden in (True, False):
            s = T.Session(tech.proto(), forbidden)
            before = len(net.conns)
            t0 = time.monotonic()
            try:
                runner.run(tech.run(s, net))
            except Exception as e:  # noqa: BLE001  report it with the connection
                for c in net.conns[before:]:
                    c.aborted = f"client error: {e!r}"
            time.sleep(0.05)
            for c in net.conns[before:]:
                lv = getattr(c, "live", {})
                print(json.dumps({
                    "technique": name, "variant": s.variant, "role": c.role, "v": 6 if c.v6 else 4,
                    "cport": c.cport, "expect": c.expect_stream.hex(), "aborted": c.aborted,
                    "rsts": lv.get("rsts", 0), "stalls": lv.get("stalls", 0), "notes": c.notes,
                    "seconds": round(time.monotonic() - t0, 2)}), flush=True)
    wire.stop = True
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
