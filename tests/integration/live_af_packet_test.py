#!/usr/bin/python3
"""Live test of imfd as a bump in the wire, on DPDK net_af_packet ports over veth pairs.

Topology (namespace names carry the pid of this test so parallel runs do not clash):

    imflive-c<pid>            imflive-m<pid>               imflive-b<pid>
    client 10.79.0.1/24 c0 <-> m0  [imfd port 0]
                                   [imfd port 1] m1 <-> b0  broker 10.79.0.2/24

A real mosquitto broker runs in the broker namespace, a mosquitto_sub subscriber and the
mosquitto_pub publishers in the client namespace; every byte between them crosses imfd.

Usage (Debian's scapy only loads under this interpreter):
    /usr/bin/python3 live_af_packet_test.py IMFD SOURCE_DIR [--bridge-selftest] [--keep]

--bridge-selftest replaces imfd by a Linux bridge in the middle namespace. It only checks the
scaffolding (namespaces, broker, subscriber, captures, straddle placement): every assertion
about imfd (drops, resets, events, summary) is then expected to fail.
--keep keeps the temporary directory (logs, captures, summary) even when everything passed.

Needs root. Ends with a line `N passed, M failed`; exit status 0 only when nothing failed,
77 (meson: skipped) when not root or a tool is missing.
"""

import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from scapy.all import IP, TCP, rdpcap  # Debian python3-scapy
from netns_tools import Wire, nsrun, ping, stop_proc, tail, wait_for  # this directory

PID = os.getpid()
NS_C = f"imflive-c{PID}"
NS_M = f"imflive-m{PID}"
NS_B = f"imflive-b{PID}"
CLIENT_IP = "10.79.0.1"
BROKER_IP = "10.79.0.2"
MQTT_PORT = 1883

DROP_RULE = "live.forbidden"
ALERT_RULE = "live.alert"
FORBIDDEN = b"FORBIDDEN-PATTERN-7731"
ALERT_PATTERN = b"ALERT-MARKER-4242"

RULES_TEXT = f"""# rules of the live af_packet test
{DROP_RULE:<20} drop   payload  "{FORBIDDEN.decode()}"
{ALERT_RULE:<20} alert  payload  "{ALERT_PATTERN.decode()}"
"""

AF_PACKET_ARGS = "framecnt=4096,blocksz=4096,framesz=2048"
PUB_TIMEOUT = 15  # seconds a mosquitto_pub may take before it is killed


def log(msg):
    print(f"[live {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Live:
    def __init__(self, imfd, srcdir, bridge, keep):
        self.imfd = imfd
        self.srcdir = srcdir  # not needed yet: the rules are written to the temp dir
        self.bridge = bridge
        self.keep = keep
        self.tmp = tempfile.mkdtemp(prefix=f"imflive{PID}-")
        self.procs = []  # (name, Popen, logfile handle)
        self.imfd_proc = None
        self.sub_out = os.path.join(self.tmp, "sub.out")
        self.events = os.path.join(self.tmp, "events.jsonl")
        self.summary_path = os.path.join(self.tmp, "summary.json")
        self.rules = os.path.join(self.tmp, "live.rules")
        self.summary = None
        self.imfd_rc = None
        self.mss = None
        self.big_user = "carol"
        self.sub = None
        self.broker = None
        self.wire = Wire(NS_C, NS_M, NS_B, CLIENT_IP, BROKER_IP)

    # ------------------------------------------------------------------ setup / teardown
    def spawn(self, name, ns, cmd, stdout_path=None):
        out = open(stdout_path or os.path.join(self.tmp, f"{name}.stdout"), "wb")
        err = open(os.path.join(self.tmp, f"{name}.stderr"), "wb")
        p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, stdout=out, stderr=err,
                             stdin=subprocess.DEVNULL)
        self.procs.append((name, p, out, err))
        return p

    def setup_net(self):
        self.wire.setup()

    def start_middle(self):
        with open(self.rules, "w") as f:
            f.write(RULES_TEXT)
        if self.bridge:
            log("SELFTEST: Linux bridge in place of imfd")
            nsrun(NS_M, ["ip", "link", "add", "name", "br0", "type", "bridge"])
            nsrun(NS_M, ["ip", "link", "set", "m0", "master", "br0"])
            nsrun(NS_M, ["ip", "link", "set", "m1", "master", "br0"])
            nsrun(NS_M, ["ip", "link", "set", "br0", "up"])
        else:
            # DPDK 22.11 (Debian 12) rejects `--no-huge --in-memory` ("Option --legacy-mem is
            # not compatible with --in-memory": --no-huge implies legacy memory), so the shared
            # config is switched off with --no-shconf instead.
            cmd = [self.imfd, "--no-pci", "--no-huge", "--no-shconf", "-m", "512",
                   "--file-prefix", f"imflive{PID}", "-l", "0,1",
                   "--vdev", f"net_af_packet0,iface=m0,{AF_PACKET_ARGS}",
                   "--vdev", f"net_af_packet1,iface=m1,{AF_PACKET_ARGS}",
                   "--", "--rules", self.rules, "--events", self.events,
                   "--summary-json", self.summary_path]
            log("starting: ip netns exec " + NS_M + " " + " ".join(cmd))
            self.imfd_proc = self.spawn("imfd", NS_M, cmd)
        # Forwarding check: the client pings the broker through the bump in the wire.
        end = time.monotonic() + 40
        while time.monotonic() < end:
            if self.imfd_proc is not None and self.imfd_proc.poll() is not None:
                raise RuntimeError(f"imfd exited early with {self.imfd_proc.returncode}")
            if ping(NS_C, BROKER_IP):
                log("forwarding: ping through the middle namespace works")
                return
            time.sleep(0.3)
        # (imfd's output is printed at teardown.)
        raise RuntimeError("no forwarding within 40 s: ping 10.79.0.2 from the client fails")

    def start_broker(self):
        conf = os.path.join(self.tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {MQTT_PORT} {BROKER_IP}\n"
                    "allow_anonymous true\n"
                    "max_packet_size 4000000\n"
                    "persistence false\n"
                    "user root\n"
                    "log_dest stdout\n"
                    "log_type all\n"
                    "connection_messages true\n")
        self.broker = self.spawn("mosquitto", NS_B, ["mosquitto", "-c", conf])
        ok = wait_for(lambda: port_listening(NS_B), 10)
        if not ok:
            raise RuntimeError("mosquitto does not listen on 10.79.0.2:1883\n"
                               + tail(os.path.join(self.tmp, "mosquitto.stdout")))

    def start_subscriber(self):
        self.sub = self.spawn("mosquitto_sub", NS_C,
                              ["mosquitto_sub", "-h", BROKER_IP, "-p", str(MQTT_PORT),
                               "-V", "mqttv311", "-u", "watcher", "-i", f"live-sub-{PID}",
                               "-t", "#", "-v"], stdout_path=self.sub_out)
        # The subscription is live once a message published afterwards shows up.
        end = time.monotonic() + 20
        n = 0
        while time.monotonic() < end:
            n += 1
            marker = f"ready-{n}"
            self.publish("alice", "live/ready", marker, check=False, timeout=5)
            if wait_for(lambda: f"live/ready {marker}" in self.sub_text(), 1.0):
                log(f"subscriber ready after {n} probe(s)")
                return
            if self.sub.poll() is not None:
                break
        raise RuntimeError("subscriber never received a probe message\n"
                           f"sub stderr:\n{tail(os.path.join(self.tmp, 'mosquitto_sub.stderr'))}"
                           f"\nbroker:\n{tail(os.path.join(self.tmp, 'mosquitto.stdout'))}")

    def teardown(self):
        for name, p, out, err in reversed(self.procs):
            if p.poll() is None:
                stop_proc(p, signal.SIGTERM, timeout=3)
            out.close()
            err.close()
        self.wire.teardown()
        # EAL runtime directory of our own file prefix.
        shutil.rmtree(f"/var/run/dpdk/imflive{PID}", ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def sub_text(self):
        try:
            with open(self.sub_out, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def sub_bytes(self):
        try:
            with open(self.sub_out, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def publish(self, user, topic, message=None, file=None, check=True, timeout=PUB_TIMEOUT):
        """Runs mosquitto_pub (QoS 1, so exit 0 means the broker acknowledged it)."""
        cmd = ["ip", "netns", "exec", NS_C, "mosquitto_pub", "-h", BROKER_IP,
               "-p", str(MQTT_PORT), "-V", "mqttv311", "-q", "1", "-u", user, "-t", topic]
        cmd += ["-f", file] if file else ["-m", message]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=timeout)
            rc, so, se = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, so, se = "timeout", e.stdout or "", e.stderr or ""
        if check and rc != 0:
            raise AssertionError(f"mosquitto_pub {user} {topic} exited {rc}, stderr: {se!r}")
        return rc, so, se

    def clean_marker(self, label):
        """Publishes a clean marker and waits until the subscriber has printed it."""
        msg = f"marker {label} {time.monotonic_ns()}"
        rc, _, se = self.publish("alice", "chat/room1", msg, check=False)
        assert rc == 0, f"clean marker publish exited {rc}: {se!r}"
        line = f"chat/room1 {msg}"
        assert wait_for(lambda: line in self.sub_text(), 10), \
            f"subscriber did not receive clean marker {msg!r}"

    def start_capture(self, name):
        """tcpdump of MQTT traffic on both outer ends: c0 (client side) and b0 (broker side)."""
        caps = {}
        for side, ns, dev in (("client", NS_C, "c0"), ("broker", NS_B, "b0")):
            pcap = os.path.join(self.tmp, f"{name}-{dev}.pcap")
            p = self.spawn(f"tcpdump-{name}-{dev}", ns,
                           ["tcpdump", "-i", dev, "--immediate-mode", "-U", "-s", "0",
                            "-B", "8192", "-n", "-w", pcap, f"tcp port {MQTT_PORT}"])
            caps[side] = (p, pcap, os.path.join(self.tmp, f"tcpdump-{name}-{dev}.stderr"))
        for side, (p, pcap, errf) in caps.items():
            if not wait_for(lambda: "listening on" in tail(errf) or p.poll() is not None, 10) \
                    or p.poll() is not None:
                raise RuntimeError(f"tcpdump on the {side} side did not start: {tail(errf)}")
        return caps

    def stop_capture(self, caps):
        """Stops both captures, returns {'client': packets, 'broker': packets}."""
        time.sleep(0.5)  # let the last packets (RSTs) land
        out = {}
        for side, (p, pcap, _) in caps.items():
            stop_proc(p, signal.SIGINT, timeout=5)
            out[side] = rdpcap(pcap)
        return out

    def broker_has_established(self, client_port):
        p = nsrun(NS_B, ["ss", "-Htn", "state", "established",
                         f"( sport = :{MQTT_PORT} and dport = :{client_port} )"], check_rc=False)
        return bool(p.stdout.strip())

    def effective_mss(self):
        """Payload bytes per full segment on this path: 1460 minus 12 when both ends use
        TCP timestamps (the Linux default)."""
        ts = []
        for ns in (NS_C, NS_B):
            p = nsrun(ns, ["sysctl", "-n", "net.ipv4.tcp_timestamps"], check_rc=False)
            ts.append(p.stdout.strip() not in ("", "0"))
        return 1460 - (12 if all(ts) else 0)


def port_listening(ns):
    p = nsrun(ns, ["ss", "-Hltn", f"sport = :{MQTT_PORT}"], check_rc=False)
    return BROKER_IP in p.stdout


# ---------------------------------------------------------------------- capture analysis
def flows_of(pkts):
    """Client->broker streams in a capture: {client port: {'segs': [(seq, payload)],
    'rst_to_client': n, 'isn': seq of SYN}}."""
    flows = {}
    for pkt in pkts:
        if IP not in pkt or TCP not in pkt:
            continue
        ip, tcp = pkt[IP], pkt[TCP]
        if ip.src == CLIENT_IP and tcp.dport == MQTT_PORT:
            f = flows.setdefault(tcp.sport, {"segs": [], "rst_to_client": 0, "isn": None,
                                             "rst_from_client": 0})
            if tcp.flags & 0x02:
                f["isn"] = tcp.seq
            if tcp.flags & 0x04:
                f["rst_from_client"] += 1
            data = bytes(tcp.payload)
            # Strip Ethernet padding: trust the IP total length.
            data = data[: max(0, ip.len - ip.ihl * 4 - tcp.dataofs * 4)]
            if data:
                f["segs"].append((tcp.seq, data))
        elif ip.dst == CLIENT_IP and tcp.sport == MQTT_PORT:
            f = flows.setdefault(tcp.dport, {"segs": [], "rst_to_client": 0, "isn": None,
                                             "rst_from_client": 0})
            if tcp.flags & 0x04:
                f["rst_to_client"] += 1
    return flows


def stream_of(flow):
    """Reassembles the client->broker byte stream (first copy of each byte wins)."""
    if flow["isn"] is None or not flow["segs"]:
        return b""
    base = (flow["isn"] + 1) & 0xFFFFFFFF
    buf = {}
    for seq, data in flow["segs"]:
        off = (seq - base) & 0xFFFFFFFF
        for i, b in enumerate(data):
            buf.setdefault(off + i, b)
    out = bytearray()
    i = 0
    while i in buf:
        out.append(buf[i])
        i += 1
    return bytes(out)


def flow_of_user(pkts, user):
    """The client port whose MQTT CONNECT carries username `user` (v3.1.1 CONNECT: the
    username is the last field in our CONNECTs, no will, no password)."""
    want = len(user).to_bytes(2, "big") + user.encode()
    hits = []
    for port, f in flows_of(pkts).items():
        s = stream_of(f)
        if s[:1] == b"\x10" and want in s[:64]:
            hits.append((port, f, s))
    return hits


# ---------------------------------------------------------------------- the cases
def case_clean_delivered(t):
    rc, so, se = t.publish("alice", "chat/room1", "hello clean", check=False)
    assert rc == 0, f"mosquitto_pub exited {rc}, stderr {se!r}"
    assert wait_for(lambda: "chat/room1 hello clean\n" in t.sub_text(), 10), \
        "subscriber never printed 'chat/room1 hello clean'"


def case_alert_delivered(t):
    msg = f"status ok {ALERT_PATTERN.decode()} nothing to block"
    rc, _, se = t.publish("alice", "chat/alerts", msg, check=False)
    assert rc == 0, f"mosquitto_pub of an alert-only message exited {rc}, stderr {se!r}"
    assert wait_for(lambda: f"chat/alerts {msg}\n" in t.sub_text(), 10), \
        "alert-only message was not delivered (alert must only record)"


def check_blocked_and_reset(t, pkts, user, errors):
    """What the wire shows for a dropped message of `user`: the client sent the whole pattern,
    the broker never received it, a RST reached the client (from the broker's address) and
    one reached the broker (from the client's address), and the broker's socket is gone.
    Returns the client-side (port, flow, stream) or None."""
    hits = flow_of_user(pkts["client"], user)
    if len(hits) != 1:
        errors.append(f"expected one {user} connection in the client-side capture, found "
                      f"{len(hits)}")
        return None
    port, flow, stream = hits[0]
    if FORBIDDEN not in stream:
        errors.append(f"client-side capture does not show {user} sending the pattern "
                      f"({len(stream)} stream bytes) -- capture incomplete?")
    if flow["rst_to_client"] < 1:
        errors.append(f"no TCP RST from {BROKER_IP}:{MQTT_PORT} reached the client port {port}"
                      " on c0")
    bflow = flows_of(pkts["broker"]).get(port)
    if bflow is None:
        errors.append(f"{user}'s connection (client port {port}) missing from the broker-side "
                      "capture")
    else:
        if FORBIDDEN in stream_of(bflow):
            errors.append("the broker received the complete pattern (the segment completing "
                          "the match was not dropped)")
        if bflow["rst_from_client"] < 1:
            errors.append(f"no TCP RST from {CLIENT_IP}:{port} reached the broker on b0")
    if wait_for(lambda: not t.broker_has_established(port), 3) is False:
        errors.append(f"broker still has an established connection to client port {port}")
    log(f"{user}: RSTs seen: {flow['rst_to_client']} to the client, "
        f"{bflow['rst_from_client'] if bflow else 0} to the broker (client port {port})")
    return hits[0]


def case_forbidden_small(t):
    cap = t.start_capture("forbidden_small")
    msg = f"please ignore {FORBIDDEN.decode()} thanks"
    try:
        rc, so, se = t.publish("bob", "chat/room1", msg, check=False)
    finally:
        pkts = t.stop_capture(cap)
    log(f"forbidden small: mosquitto_pub rc={rc} stderr={se.strip()!r}")
    t.clean_marker("after-small")
    errors = []
    if FORBIDDEN.decode() in t.sub_text():
        errors.append("forbidden message was delivered to the subscriber")
    if rc == 0:
        errors.append(f"publisher was not reset: mosquitto_pub exited 0 (stderr {se!r})")
    elif rc == "timeout":
        errors.append("mosquitto_pub hung (no reset reached it)")
    check_blocked_and_reset(t, pkts, "bob", errors)
    assert not errors, "; ".join(errors)


def build_big_payload(t):
    """~100 KB payload with FORBIDDEN straddling a full-segment boundary of the PUBLISH."""
    size = 100 * 1024
    topic = "chat/bulk"
    mss = t.effective_mss()
    t.mss = mss
    # MQTT 3.1.1 PUBLISH, QoS 1: 0x32, remaining length (3-byte varint for 16 KiB..2 MiB),
    # topic length (2) + topic, packet id (2), payload. The PUBLISH starts a fresh segment:
    # the CONNECT before it was acknowledged with the CONNACK.
    header = 1 + 3 + 2 + len(topic) + 2
    k = 5  # straddle the boundary between segments 5 and 6 of the PUBLISH
    boundary = k * mss
    pat_off = boundary - header - len(FORBIDDEN) // 2
    filler = bytearray()
    i = 0
    while len(filler) < size:
        filler += f"bulk-{i:06d} ".encode()
        i += 1
    payload = bytes(filler[:pat_off]) + FORBIDDEN + bytes(filler[pat_off + len(FORBIDDEN):size])
    assert payload.count(FORBIDDEN) == 1 and len(payload) == size
    path = os.path.join(t.tmp, "big.payload")
    with open(path, "wb") as f:
        f.write(payload)
    return topic, path, payload, pat_off, header


def case_forbidden_straddle(t):
    topic, path, payload, pat_off, header = build_big_payload(t)
    cap = t.start_capture("forbidden_big")
    try:
        rc, so, se = t.publish(t.big_user, topic, file=path, check=False)
    finally:
        pkts = t.stop_capture(cap)
    log(f"forbidden big: mosquitto_pub rc={rc} stderr={se.strip()!r} (mss {t.mss}, pattern "
        f"at payload offset {pat_off})")
    t.clean_marker("after-big")
    text = t.sub_bytes()
    errors = []
    if FORBIDDEN in text or f"{topic} ".encode() in text:
        errors.append("the ~100 KB forbidden message reached the subscriber")
    if rc == 0:
        errors.append(f"publisher was not reset: mosquitto_pub exited 0 (stderr {se!r})")
    elif rc == "timeout":
        errors.append("mosquitto_pub hung (no reset reached it)")
    hit = check_blocked_and_reset(t, pkts, t.big_user, errors)
    if hit is not None:
        # Prove the straddle from what the client actually put on the wire.
        port, flow, stream = hit
        whole = [(seq, len(d)) for seq, d in flow["segs"] if FORBIDDEN in d]
        if whole:
            errors.append(f"straddle NOT achieved: segment(s) {whole} contain the whole pattern"
                          f"; segment sizes {[len(d) for _, d in flow['segs'][:12]]}")
        elif FORBIDDEN in stream:
            base = (flow["isn"] + 1) & 0xFFFFFFFF
            pos = stream.find(FORBIDDEN)
            cut = [((sq - base) & 0xFFFFFFFF) - pos for sq, d in flow["segs"]
                   if 0 < ((sq - base) & 0xFFFFFFFF) - pos < len(FORBIDDEN)]
            log(f"straddle proven: no single segment holds the pattern, stream offset {pos}, "
                f"a segment starts {sorted(set(cut))} bytes into it")
    assert not errors, "; ".join(errors)


def case_clean_big_delivered(t):
    """A clean ~100 KB message (about 70 segments) is reassembled, scanned and delivered intact."""
    size = 100 * 1024
    filler = bytearray()
    i = 0
    while len(filler) < size:
        filler += f"clean-{i:06d} ".encode()
        i += 1
    payload = bytes(filler[:size])
    path = os.path.join(t.tmp, "big-clean.payload")
    with open(path, "wb") as f:
        f.write(payload)
    rc, _, se = t.publish("erin", "chat/bulkclean", file=path, check=False)
    assert rc == 0, f"mosquitto_pub of a clean 100 KB message exited {rc}, stderr {se!r}"
    line = b"chat/bulkclean " + payload + b"\n"
    assert wait_for(lambda: line in t.sub_bytes(), 10), \
        "clean 100 KB message was not delivered intact"


def case_clean_after(t):
    rc, so, se = t.publish("dave", "chat/room2", "still flowing after drops", check=False)
    assert rc == 0, f"mosquitto_pub exited {rc}, stderr {se!r}"
    assert wait_for(lambda: "chat/room2 still flowing after drops\n" in t.sub_text(), 10), \
        "clean message after the drops was not delivered"
    assert t.sub is not None and t.sub.poll() is None, \
        "the subscriber's own connection died during the test"


def stop_imfd(t):
    if t.imfd_proc is None:
        return
    rc = stop_proc(t.imfd_proc, signal.SIGINT, timeout=15)
    t.imfd_rc = rc
    log(f"imfd exited with {rc}")
    try:
        with open(t.summary_path) as f:
            t.summary = json.load(f)
    except (OSError, ValueError) as e:
        t.summary = e


def case_imfd_clean_exit(t):
    assert t.imfd_proc is not None, "imfd was not run (bridge self-test)"
    assert t.imfd_rc == 0, (f"imfd exit status {t.imfd_rc} after SIGINT\nstderr:\n"
                            f"{tail(os.path.join(t.tmp, 'imfd.stderr'))}")


def read_events(t):
    evs = []
    with open(t.events) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    evs.append(json.loads(line))
                except ValueError:
                    raise AssertionError(f"events line {n} is not JSON: {line!r}")
    return evs


def case_events(t):
    assert os.path.exists(t.events), "no events file"
    evs = read_events(t)
    for ev in evs:
        txt = json.dumps(ev)
        assert FORBIDDEN.decode() not in txt and ALERT_PATTERN.decode() not in txt, \
            f"event leaks message content: {txt}"
    drops = [e for e in evs if e.get("rule") == DROP_RULE and e.get("action") == "drop"]
    errors = []
    for user, topic in (("bob", "chat/room1"), (t.big_user, "chat/bulk")):
        m = [e for e in drops if e.get("account") == user]
        if len(m) != 1:
            errors.append(f"expected 1 drop event of {DROP_RULE} for account {user}, got "
                          f"{len(m)}")
            continue
        e = m[0]
        fl = e.get("flow", {})
        if e.get("channel") != topic:
            errors.append(f"{user}: topic {e.get('topic')!r} != {topic!r}")
        if (fl.get("src"), fl.get("dst"), fl.get("dport"), fl.get("proto")) != \
                (CLIENT_IP, BROKER_IP, MQTT_PORT, "tcp"):
            errors.append(f"{user}: unexpected flow {fl}")
    alerts = [e for e in evs if e.get("rule") == ALERT_RULE and e.get("action") == "alert"
              and e.get("account") == "alice" and e.get("channel") == "chat/alerts"]
    if not alerts:
        errors.append(f"no alert event of {ALERT_RULE} for account alice")
    assert not errors, "; ".join(errors) + f"\nevents: {evs}"


def case_summary(t):
    s = t.summary
    assert isinstance(s, dict), f"summary not readable: {s!r}"
    c = s.get("counters", {})
    errors = []
    if c.get("resets_sent", 0) < 4:
        errors.append(f"counters.resets_sent = {c.get('resets_sent')} (< 4)")
    rules = {r.get("id"): r for r in s.get("rules", [])}
    if rules.get(DROP_RULE, {}).get("hits") != 2:
        errors.append(f"rules[{DROP_RULE}].hits = {rules.get(DROP_RULE, {}).get('hits')} != 2")
    # The alert message crosses imfd twice (publisher->broker, broker->subscriber).
    if not rules.get(ALERT_RULE, {}).get("hits", 0) >= 1:
        errors.append(f"rules[{ALERT_RULE}].hits = {rules.get(ALERT_RULE, {}).get('hits')}")
    ports = s.get("ports", [])
    if len(ports) != 2:
        errors.append(f"expected 2 ports, summary has {len(ports)}")
    for p in ports:
        if not (p.get("rx", 0) > 0 and p.get("tx", 0) > 0):
            errors.append(f"port {p.get('port')} rx/tx not both nonzero: {p}")
    assert not errors, "; ".join(errors) + f"\nsummary: {json.dumps(s)}"


# ---------------------------------------------------------------------- driver
def _sigterm(signum, frame):
    raise KeyboardInterrupt()


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    imfd, srcdir = os.path.abspath(args[0]), os.path.abspath(args[1])
    bridge = "--bridge-selftest" in flags
    # Exit 77 is meson's SKIP: the environment cannot run this test at all.
    if os.geteuid() != 0:
        print("live_af_packet_test: SKIP: needs root (namespaces, veths)", file=sys.stderr)
        return 77
    missing = [tool for tool in ("ip", "ethtool", "ss", "tcpdump", "mosquitto", "mosquitto_pub",
                                 "mosquitto_sub") if shutil.which(tool) is None]
    if missing:
        print(f"live_af_packet_test: SKIP: missing {' '.join(missing)}", file=sys.stderr)
        return 77
    if not bridge and not os.access(imfd, os.X_OK):
        print(f"live_af_packet_test: {imfd} is not an executable", file=sys.stderr)
        return 1

    t = Live(imfd, srcdir, bridge, "--keep" in flags)
    passed, failed = [], []

    def check(name, fn):
        t0 = time.monotonic()
        try:
            fn(t)
            passed.append(name)
            log(f"PASS {name} ({time.monotonic() - t0:.1f}s)")
        except Exception as e:  # noqa: BLE001 -- every failure is reported and counted
            failed.append(name)
            detail = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            log(f"FAIL {name}: {detail}")

    cases = [
        ("clean_delivered", case_clean_delivered),
        ("alert_delivered", case_alert_delivered),
        ("forbidden_dropped_and_reset", case_forbidden_small),
        ("forbidden_straddling_segments_dropped", case_forbidden_straddle),
        ("clean_big_delivered", case_clean_big_delivered),
        ("clean_after_drops", case_clean_after),
    ]
    final = [
        ("imfd_clean_exit", case_imfd_clean_exit),
        ("events", case_events),
        ("summary_counters", case_summary),
    ]
    start = time.monotonic()
    # SIGTERM (e.g. meson timeout) still tears everything down.
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        try:
            log(f"tmp dir {t.tmp}; namespaces {NS_C} {NS_M} {NS_B}")
            t.setup_net()
            t.start_middle()
            t.start_broker()
            t.start_subscriber()
        except Exception:  # noqa: BLE001
            log("SETUP FAILED:\n" + traceback.format_exc())
            failed.extend(n for n, _ in cases + final)
        else:
            for name, fn in cases:
                check(name, fn)
            stop_imfd(t)
            for name, fn in final:
                check(name, fn)
    except KeyboardInterrupt:
        log("interrupted")
        failed.append("interrupted")
    finally:
        if t.imfd_proc is not None and t.imfd_proc.poll() is None:
            stop_proc(t.imfd_proc, signal.SIGINT, timeout=10)
        t.teardown()
        if failed and t.imfd_proc is not None:
            log("imfd stdout (tail):\n" + tail(os.path.join(t.tmp, "imfd.stdout")))
            log("imfd stderr (tail):\n" + tail(os.path.join(t.tmp, "imfd.stderr")))
        if failed or t.keep:
            log(f"artifacts kept in {t.tmp}")
        else:
            shutil.rmtree(t.tmp, ignore_errors=True)
    log(f"wall time {time.monotonic() - start:.1f}s")
    print(f"{len(passed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
