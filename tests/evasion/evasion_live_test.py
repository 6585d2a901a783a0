#!/usr/bin/python3
"""Evasion suite, live: the insertion techniques against a real Linux receiver, through imfd on
DPDK net_af_packet ports between network namespaces.

    evl-c<pid>              evl-m<pid>                  evl-r<pid>                 evl-s<pid>
    client c0 ------------- m0 [imfd] m1 -------------- r0 router r1 ------------- s0 server
    10.91.1.1/24                                        10.91.1.2  10.91.2.1       10.91.2.2/24
    fd00:91:1::1/64                                     fd00:91:1::2 fd00:91:2::1  fd00:91:2::2/64

The router (ip_forward on, IPv4 and IPv6) sits between imfd and the server, so a packet with TTL or
hop limit 1 really dies before the server. The server application (live_server.py) is a plain
Python TCP listener recording every byte each connection's application reads (no SO_OOBINLINE).
The client (live_client.py) is scapy-built raw frames on c0: its own handshake, retransmission of
what the server has not acknowledged; the client kernel's RSTs are dropped by nftables in the
client namespace. Every veth end has its offloads off (tx, tso, gso, gro as the README asks, and rx,
so that no veth version can mark a packet CHECKSUM_UNNECESSARY: the server verifies TCP checksums).

Each technique: a forbidden variant that must never appear in what the server application read,
and a clean twin that must be read exactly (and not reset).

    /usr/bin/python3 evasion_live_test.py IMFD SOURCE_ROOT [--only a,b] [--bridge-selftest] [--capture] [--keep]

--bridge-selftest replaces imfd by a Linux bridge: the forbidden variants then show which
techniques work against this receiver at all (expected to fail). --capture records c0 and s0 with
tcpdump into the kept artifacts directory. Needs root; exit 77 (meson: skip)
without it or without ip/nft/ethtool. Ends with `N passed, M failed`; exit 0 only when nothing
failed. Private addresses only on the test veths; everything is torn down at the end.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import techniques as T  # noqa: E402  this directory
from netns_tools import PING_SNIPPET, delete_namespaces, nsrun, run, stop_proc, tail, wait_for  # noqa: E402  ../integration

PID = os.getpid()
NS = {k: f"evl-{k}{PID}" for k in ("c", "m", "r", "s")}
AF_PACKET_ARGS = "framecnt=8192,blocksz=4096,framesz=2048"
FIRST_PORT = 21000
CLIENT_TIMEOUT = 240

# Counters shown after the run (the whole run: every technique shares one imfd).
SHOW_COUNTERS = ("rule_drops", "resets_sent", "checksum_bad_ip", "checksum_bad_l4", "ttl_raised", "ip_fragments",
                 "frag_reassembled", "frag_overlaps", "tcp_out_of_order", "tcp_retransmits", "tcp_overlap_mismatch",
                 "tcp_no_ack", "tcp_bad_ack", "tcp_beyond_window", "tcp_data_after_fin", "tcp_wrong_side",
                 "tcp_syn_new_isn", "tcp_rst_in_window", "tcp_rst_out_of_window", "tcp_urgent_cleared",
                 "blocked_flow_drops", "mqtt_malformed")

CONNECT_SNIPPET = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0)
s.close()
"""


def log(msg):
    print(f"[evasion-live {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Topology:
    def __init__(self):
        self.created = []

    def setup(self):
        for ns in NS.values():
            run(["ip", "netns", "add", ns])
            self.created.append(ns)
            nsrun(ns, ["ip", "link", "set", "lo", "up"])
        c, m, r, s = NS["c"], NS["m"], NS["r"], NS["s"]
        nsrun(c, ["ip", "link", "add", "c0", "type", "veth", "peer", "name", "m0", "netns", m])
        nsrun(m, ["ip", "link", "add", "m1", "type", "veth", "peer", "name", "r0", "netns", r])
        nsrun(r, ["ip", "link", "add", "r1", "type", "veth", "peer", "name", "s0", "netns", s])
        # The middle namespace's own kernel stays silent on m0/m1.
        for dev in ("m0", "m1"):
            nsrun(m, ["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"], check_rc=False)
        for ns, dev in ((c, "c0"), (m, "m0"), (m, "m1"), (r, "r0"), (r, "r1"), (s, "s0")):
            nsrun(ns, ["ip", "link", "set", dev, "mtu", "1500"])
            nsrun(ns, ["ethtool", "-K", dev, "rx", "off", "tx", "off", "tso", "off", "gso", "off", "gro", "off"])
            nsrun(ns, ["ip", "link", "set", dev, "up"])
        for ns, dev, a4, a6 in ((c, "c0", "10.91.1.1/24", "fd00:91:1::1/64"),
                                (r, "r0", "10.91.1.2/24", "fd00:91:1::2/64"),
                                (r, "r1", "10.91.2.1/24", "fd00:91:2::1/64"),
                                (s, "s0", "10.91.2.2/24", "fd00:91:2::2/64")):
            nsrun(ns, ["ip", "addr", "add", a4, "dev", dev])
            nsrun(ns, ["ip", "-6", "addr", "add", a6, "dev", dev, "nodad"])
        nsrun(c, ["ip", "route", "add", "10.91.2.0/24", "via", "10.91.1.2"])
        nsrun(c, ["ip", "-6", "route", "add", "fd00:91:2::/64", "via", "fd00:91:1::2"])
        nsrun(s, ["ip", "route", "add", "10.91.1.0/24", "via", "10.91.2.1"])
        nsrun(s, ["ip", "-6", "route", "add", "fd00:91:1::/64", "via", "fd00:91:2::1"])
        nsrun(r, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        nsrun(r, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        # Strict reverse-path filter: a forged "server" packet from the client side dies here.
        for k in ("all", "r0"):
            nsrun(r, ["sysctl", "-qw", f"net.ipv4.conf.{k}.rp_filter=1"])
        # The client kernel knows nothing of scapy's connections: its RSTs must not reach anyone.
        nsrun(c, ["nft", "add table inet evasion"])
        nsrun(c, ["nft", "add chain inet evasion out { type filter hook output priority 0 ; policy accept ; }"])
        nsrun(c, ["nft", "add rule inet evasion out tcp flags & rst == rst drop"])

    def mac(self, ns, dev):
        return nsrun(ns, ["cat", f"/sys/class/net/{dev}/address"]).stdout.strip()

    def teardown(self):
        delete_namespaces(self.created)
        self.created = []


class LiveEvasion:
    def __init__(self, imfd, bridge, tmp):
        self.imfd, self.bridge, self.tmp = imfd, bridge, tmp
        self.topo = Topology()
        self.procs = []
        self.imfd_proc = None
        self.server_log = os.path.join(tmp, "server.jsonl")
        self.summary_path = os.path.join(tmp, "summary.json")
        self.rules = os.path.join(tmp, "evasion.rules")
        self.policy = os.path.join(tmp, "evasion.policy")

    def spawn(self, name, ns, cmd):
        out = open(os.path.join(self.tmp, f"{name}.stdout"), "wb")
        err = open(os.path.join(self.tmp, f"{name}.stderr"), "wb")
        p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.procs.append((p, out, err))
        return p

    def start(self):
        self.topo.setup()
        with open(self.rules, "w") as f:
            f.write(T.RULES)
        with open(self.policy, "w") as f:
            f.write(T.POLICY)
        if self.bridge:
            log("SELFTEST: Linux bridge in place of imfd")
            m = NS["m"]
            nsrun(m, ["ip", "link", "add", "br0", "type", "bridge"])
            nsrun(m, ["ip", "link", "set", "m0", "master", "br0"])
            nsrun(m, ["ip", "link", "set", "m1", "master", "br0"])
            nsrun(m, ["sysctl", "-qw", "net.ipv6.conf.br0.disable_ipv6=1"], check_rc=False)
            nsrun(m, ["ip", "link", "set", "br0", "up"])
        else:
            cmd = [self.imfd, "--no-pci", "--no-huge", "--no-shconf", "-m", "512", "--file-prefix", f"imfevl{PID}",
                   "-l", "0,1", "--vdev", f"net_af_packet0,iface=m0,{AF_PACKET_ARGS}",
                   "--vdev", f"net_af_packet1,iface=m1,{AF_PACKET_ARGS}", "--",
                   "--rules", self.rules, "--events", os.path.join(self.tmp, "events.jsonl"),
                   "--summary-json", self.summary_path, "--policy", self.policy, "--accounts", "16",
                   "--flows", "4096"]
            log("imfd: " + " ".join(cmd))
            self.imfd_proc = self.spawn("imfd", NS["m"], cmd)
        self.spawn("server", NS["s"], ["/usr/bin/python3", os.path.join(HERE, "live_server.py"), self.server_log,
                                       str(T.Mqtt.port), T.ADDR["s4"], T.ADDR["s6"]])
        if not wait_for(lambda: '"listening"' in tail(self.server_log, 5), 10):
            raise RuntimeError("server app did not start: " + tail(os.path.join(self.tmp, "server.stderr")))
        # Forwarding through the bump in the wire and the router, both IP versions; neighbours warm.
        end = time.monotonic() + 40
        while True:
            if self.imfd_proc is not None and self.imfd_proc.poll() is not None:
                raise RuntimeError(f"imfd exited early with {self.imfd_proc.returncode}:\n"
                                   + tail(os.path.join(self.tmp, "imfd.stderr")))
            ok4 = nsrun(NS["c"], ["/usr/bin/python3", "-c", PING_SNIPPET, T.ADDR["s4"]], check_rc=False).returncode == 0
            ok = ok4 and all(nsrun(NS["c"], ["/usr/bin/python3", "-c", CONNECT_SNIPPET, a, str(T.Mqtt.port)],
                                   check_rc=False).returncode == 0 for a in (T.ADDR["s4"], T.ADDR["s6"]))
            if ok:
                log("forwarding: client reaches the server over IPv4 and IPv6")
                return
            if time.monotonic() > end:
                raise RuntimeError("no forwarding within 40 s")
            time.sleep(0.3)

    def start_captures(self):
        for ns, dev in ((NS["c"], "c0"), (NS["m"], "m1"), (NS["s"], "s0")):
            pcap = os.path.join(self.tmp, f"{dev}.pcap")
            self.spawn(f"tcpdump-{dev}", ns, ["tcpdump", "-i", dev, "-U", "-s", "0", "-n", "-w", pcap])
        time.sleep(1.0)

    def run_client(self, names):
        router_mac = self.topo.mac(NS["r"], "r0")
        cmd = ["ip", "netns", "exec", NS["c"], "/usr/bin/python3", os.path.join(HERE, "live_client.py"), "c0",
               router_mac, str(FIRST_PORT), ",".join(names)]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=CLIENT_TIMEOUT)
        with open(os.path.join(self.tmp, "client.stderr"), "wb") as f:
            f.write(p.stderr)
        if p.returncode != 0:
            raise RuntimeError(f"client exited {p.returncode}:\n{p.stderr.decode(errors='replace')[-2000:]}")
        return [json.loads(line) for line in p.stdout.decode().splitlines() if line.strip()]

    def server_reads(self):
        """{(ip version, client port): {'data': bytes, 'late': bytes, 'eof': bool, 'reset': bool}}"""
        reads = {}
        with open(self.server_log) as f:
            for line in f:
                e = json.loads(line)
                if "peer" not in e:
                    continue
                ip, port = e["peer"]
                r = reads.setdefault((6 if ":" in ip else 4, port), {"data": b"", "late": b"", "eof": False,
                                                                      "reset": False})
                if e["ev"] == "data":
                    r["data"] += bytes.fromhex(e["hex"])
                elif e["ev"] == "late":
                    r["late"] += bytes.fromhex(e["hex"])
                elif e["ev"] == "eof":
                    r["eof"] = True
                elif e["ev"] == "reset":
                    r["reset"] = True
        return reads

    def stop_imfd(self):
        if self.imfd_proc is None:
            return None
        rc = stop_proc(self.imfd_proc, signal.SIGINT, timeout=10)
        try:
            with open(self.summary_path) as f:
                return rc, json.load(f)
        except (OSError, ValueError):
            return rc, None

    def teardown(self):
        for p, out, err in reversed(self.procs):
            if p.poll() is None:
                stop_proc(p, signal.SIGTERM, timeout=3)
            out.close()
            err.close()
        self.topo.teardown()
        shutil.rmtree(f"/var/run/dpdk/imfevl{PID}", ignore_errors=True)


def judge(conns, reads):
    """Rows per technique: (name, forbidden verdict, clean verdict, notes, ok)."""
    pattern = T.FORBIDDEN_PATTERN
    rows = {}
    for c in conns:
        if c["role"] == "noise":
            continue
        row = rows.setdefault(c["technique"], {"forbidden": [], "clean": [], "notes": []})
        r = reads.get((c["v"], c["cport"]), {"data": b"", "late": b"", "eof": False, "reset": False})
        got = r["data"] + r["late"]
        how = []
        if c["aborted"]:
            how.append(c["aborted"])
        if c["rsts"]:
            how.append(f"{c['rsts']} RST to client")
        if c["stalls"]:
            how.append(f"{c['stalls']} retransmissions")
        if r["late"]:
            how.append(f"{len(r['late'])} bytes read after EOF")
        if c["variant"] == "forbidden":
            leaked = bool(pattern.search(got)) or any(pattern.search(b) for b in T.Mqtt().bodies(got))
            row["forbidden"].append(("LEAKED" if leaked else "CAUGHT", how))
        else:
            want = bytes.fromhex(c["expect"])
            if got == want and not c["rsts"]:
                row["clean"].append(("PASS", how))
            else:
                why = how + ([f"read {len(got)} of {len(want)} bytes" + (", differs" if got != want[:len(got)]
                                                                         else "")] if got != want else [])
                row["clean"].append(("FAIL", why))
    out = []
    for name, row in rows.items():
        f = "CAUGHT" if row["forbidden"] and all(v == "CAUGHT" for v, _ in row["forbidden"]) else "LEAKED"
        cl = "PASS" if row["clean"] and all(v == "PASS" for v, _ in row["clean"]) else "FAIL"
        notes = []
        for label, items in (("forbidden", row["forbidden"]), ("clean", row["clean"])):
            for _, how in items:
                if how:
                    notes.append(f"{label}: {', '.join(how)}")
        out.append((name, f, cl, "; ".join(notes), f == "CAUGHT" and cl == "PASS"))
    return out


def _sigterm(signum, frame):
    raise KeyboardInterrupt()


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    only = None
    if "--only" in argv:
        v = argv[argv.index("--only") + 1]
        only = v.split(",")
        args = [a for a in args if a != v]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    imfd = os.path.abspath(args[0])
    bridge = "--bridge-selftest" in flags
    if os.geteuid() != 0:
        print("evasion_live_test: SKIP: needs root (namespaces, veths)", file=sys.stderr)
        return 77
    missing = [t for t in ("ip", "ethtool", "nft") if shutil.which(t) is None]
    if missing:
        print(f"evasion_live_test: SKIP: missing {' '.join(missing)}", file=sys.stderr)
        return 77
    if not bridge and not os.access(imfd, os.X_OK):
        print(f"evasion_live_test: {imfd} is not an executable", file=sys.stderr)
        return 1
    names = [t.name for t in T.TECHNIQUES if t.live]
    if only:
        names = [n for n in only if n in T.BY_NAME and T.BY_NAME[n].live]
    tmp = tempfile.mkdtemp(prefix=f"imf-evasion-live{PID}-")
    t = LiveEvasion(imfd, bridge, tmp)
    start = time.monotonic()
    rows, failed_setup, summary, imfd_rc = [], None, None, None
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        try:
            log(f"tmp dir {tmp}; namespaces {' '.join(NS.values())}")
            t.start()
            if "--capture" in flags:
                t.start_captures()
            t0 = time.monotonic()
            conns = t.run_client(names)
            log(f"client: {len(conns)} connections in {time.monotonic() - t0:.1f}s")
            time.sleep(1.0)  # the server application's last reads
            rows = judge(conns, t.server_reads())
            res = t.stop_imfd()
            if res is not None:
                imfd_rc, summary = res
        except KeyboardInterrupt:
            failed_setup = "interrupted"
        except Exception:  # noqa: BLE001
            failed_setup = traceback.format_exc()
    finally:
        if t.imfd_proc is not None and t.imfd_proc.poll() is None:
            stop_proc(t.imfd_proc, signal.SIGINT, timeout=10)
        t.teardown()
    if failed_setup:
        log("FAILED: " + failed_setup)
        log("imfd stderr (tail):\n" + tail(os.path.join(tmp, "imfd.stderr")))
    w = max([len(r[0]) for r in rows] + [9])
    print(f"\n{'technique':<{w}}  {'forbidden':<9}  {'clean':<5}  notes")
    print(f"{'-' * w}  {'-' * 9}  {'-' * 5}  {'-' * 40}")
    for name, f, cl, notes, _ in rows:
        print(f"{name:<{w}}  {f:<9}  {cl:<5}  {notes}")
    if summary is not None:
        c = summary.get("counters", {})
        shown = "  ".join(f"{k}={c[k]}" for k in SHOW_COUNTERS if k in c)
        absent = [k for k in SHOW_COUNTERS if k not in c]
        print(f"\nimfd counters (whole run): {shown}" + (f"\n  absent: {' '.join(absent)}" if absent else ""))
    passed = [r for r in rows if r[4]]
    failed = [r for r in rows if not r[4]]
    n_failed = len(failed) + (1 if failed_setup else 0)
    if imfd_rc not in (None, 0):
        log(f"imfd exit status {imfd_rc} after SIGINT")
        n_failed += 1
    missing_rows = set(names) - {r[0] for r in rows}
    if missing_rows and not failed_setup:
        log(f"no result for {sorted(missing_rows)}")
        n_failed += len(missing_rows)
    if n_failed or "--keep" in flags or "--capture" in flags:
        log(f"artifacts kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"wall time {time.monotonic() - start:.1f}s")
    print(f"{len(passed)} passed, {n_failed} failed", flush=True)
    return 1 if n_failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
