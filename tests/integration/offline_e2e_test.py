#!/usr/bin/python3
"""End-to-end test of `imfd --offline` on captures recorded from real MQTT clients.

    /usr/bin/python3 offline_e2e_test.py IMFD SOURCE_DIR [--keep]

Inputs (made by scripts/record-mqtt-captures.sh):
  tests/data/mqtt/offline.pcap, offline.rules, offline.expect.json
  config/sample/mqtt-sample.pcap with config/rules/example.rules

Checks imfd's output capture (tshark and an independent scapy reassembly + MQTT parser), its event
lines and its summary JSON against the expectations, and that bad rule files are refused.
Debian's scapy only loads under /usr/bin/python3. Ends with a line `N passed, M failed`; exit status
0 only when nothing failed.
"""

import collections
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, TCP, Ether, rdpcap  # noqa: E402  Debian python3-scapy

MQTT_PORT = 1883
IMFD_TIMEOUT = 120

# What the bundled sample was designed to hit with config/rules/example.rules
# (see config/sample/README.md and session_sample in scripts/record-mqtt-captures.sh).
SAMPLE_EVENTS = [
    ("spam.free-money", "drop", "mallory", "chat/random"),
    ("spam.work-from-home", "alert", "carol-tablet", "chat/general"),
    ("spam.work-from-home", "alert", "board", "chat/general"),  # broker's copy to the lobby screen
    ("phish.verify-account", "drop", "eve-bot", "chat/dev"),
    ("phish.topic-login", "alert", "alice", "chat/login-verify"),
    ("malware.exe-link", "drop", "oscar-pc", "chat/dev"),
    ("abuse.doxxing-marker", "alert", "bob", "chat/random"),
    ("abuse.threat", "drop", "trent", "chat/random"),
]
SAMPLE_RULES = {r for r, _, _, _ in SAMPLE_EVENTS}
SAMPLE_DROPPED_TEXT = [
    b"FREE MONEY for everyone who clicks my profile",
    b"anyone there? reply please",  # mallory's next line, on the blocked flow
    b"verify your account at http://secure-login.example.test/reset",
    b"http://files.example.test/tool-setup.exe",
    b"i know where you live",
]


# ------------------------------------------------------------------------------------------ helpers
def sha(b):
    return hashlib.sha256(b).hexdigest()


def show(b, n=60):
    s = b[:n].decode("utf-8", "replace")
    return repr(s + ("..." if len(b) > n else "")) + (f" ({len(b)} bytes)" if len(b) > n else "")


def run(cmd, timeout=IMFD_TIMEOUT, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **kw)


def run_imfd(imfd, workdir, name, pcap, rules, extra=()):
    """Runs imfd --offline; returns a dict with rc, stdout, stderr and the output paths."""
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    r = {
        "out": os.path.join(d, "out.pcap"),
        "events": os.path.join(d, "events.jsonl"),
        "summary": os.path.join(d, "summary.json"),
    }
    cmd = [imfd, "--offline", "-r", pcap, "-w", r["out"], "--rules", rules, "--events", r["events"],
           "--summary-json", r["summary"], *extra]
    p = run(cmd)
    r.update(cmd=cmd, rc=p.returncode, stdout=p.stdout.decode(errors="replace"),
             stderr=p.stderr.decode(errors="replace"))
    with open(os.path.join(d, "stderr.txt"), "w") as f:
        f.write(r["stderr"])
    return r


def tshark_publishes(pcap):
    """[(dir, topic, body)] of every PUBLISH tshark decodes (TCP reassembly on)."""
    p = run(["tshark", "-r", pcap, "-o", "tcp.desegment_tcp_streams:TRUE", "-d", f"tcp.port=={MQTT_PORT},mqtt",
             "-Y", "mqtt.msgtype==3", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
             "-e", "tcp.dstport", "-e", "mqtt.topic", "-e", "mqtt.msg"])
    assert p.returncode == 0, f"tshark failed: {p.stderr.decode(errors='replace')}"
    out = []
    for line in p.stdout.decode().splitlines():
        dport, topics, msgs = line.split("\t")
        topics, msgs = topics.split("|"), msgs.split("|")
        assert len(topics) == len(msgs), f"tshark topic/message count mismatch: {line[:200]}"
        for t, m in zip(topics, msgs):
            # FT_BYTES fields print as hex, with or without ':' separators depending on the version
            out.append(("c2b" if dport == str(MQTT_PORT) else "b2s", t, bytes.fromhex(m.replace(":", ""))))
    return out


class Pkt:
    __slots__ = ("idx", "raw", "src", "dst", "sport", "dport", "seq", "ack", "flags", "payload", "key", "dir")

    def __init__(self, idx, p):
        self.idx = idx
        self.raw = bytes(p)
        ip, tcp = p[IP], p[TCP]
        self.src, self.dst, self.sport, self.dport = ip.src, ip.dst, tcp.sport, tcp.dport
        self.seq, self.ack, self.flags = tcp.seq, tcp.ack, int(tcp.flags)
        self.payload = bytes(tcp.payload)[: max(0, ip.len - ip.ihl * 4 - tcp.dataofs * 4)]
        if self.dport == MQTT_PORT:
            self.dir, self.key = "c2b", (self.src, self.sport, self.dst, self.dport)
        else:
            self.dir, self.key = "b2s", (self.dst, self.dport, self.src, self.sport)

    @property
    def rst(self):
        return bool(self.flags & 0x04)


def read_pkts(pcap):
    """All frames as Pkt (TCP/IPv4 to or from the MQTT port); asserts there is nothing else."""
    pkts = []
    for i, p in enumerate(rdpcap(pcap)):
        assert Ether in p and IP in p and TCP in p, f"{pcap}: frame {i + 1} is not Ethernet/IPv4/TCP"
        q = Pkt(i, p)
        assert MQTT_PORT in (q.sport, q.dport), f"{pcap}: frame {i + 1} is not MQTT"
        pkts.append(q)
    return pkts


def by_flow(pkts):
    flows = collections.OrderedDict()
    for p in pkts:
        flows.setdefault(p.key, []).append(p)
    return flows


def reassemble(pkts, direction):
    """In-order bytes of one direction from the SYN on, up to the first hole."""
    isn, data = None, {}
    for p in pkts:
        if p.dir != direction:
            continue
        if p.flags & 0x02:
            isn = p.seq
        elif p.payload and isn is not None:
            off = (p.seq - isn - 1) & 0xFFFFFFFF
            data.setdefault(off, p.payload)
    out, pos = bytearray(), 0
    while True:
        # overlaps (retransmissions) are tolerated: take any segment covering pos
        seg = next(((o, b) for o, b in data.items() if o <= pos < o + len(b)), None)
        if seg is None:
            return bytes(out)
        o, b = seg
        out += b[pos - o:]
        pos = o + len(b)


def varint(b, i):
    v, mult = 0, 1
    while True:
        if i >= len(b):
            raise IndexError
        v += (b[i] & 127) * mult
        mult *= 128
        i += 1
        if not b[i - 1] & 128:
            return v, i


def mqtt_packets(stream):
    """(type, flags, body) of every complete MQTT control packet at the start of stream."""
    i = 0
    while i < len(stream):
        try:
            rl, j = varint(stream, i + 1)
        except IndexError:
            return
        if j + rl > len(stream):
            return  # incomplete (cut by a drop)
        yield stream[i] >> 4, stream[i] & 15, stream[j:j + rl]
        i = j + rl


def u16str(b, i):
    n = int.from_bytes(b[i:i + 2], "big")
    return b[i + 2:i + 2 + n], i + 2 + n


def parse_connect(body):
    """(protocol level, client id, username or None)"""
    _, i = u16str(body, 0)
    level, flags = body[i], body[i + 1]
    i += 4  # level, flags, keep alive
    if level == 5:
        n, i = varint(body, i)
        i += n
    cid, i = u16str(body, i)
    if flags & 0x04:  # will
        if level == 5:
            n, i = varint(body, i)
            i += n
        _, i = u16str(body, i)
        _, i = u16str(body, i)
    user = None
    if flags & 0x80:
        user, i = u16str(body, i)
    return level, cid.decode(), None if user is None else user.decode()


def parse_publish(flags, body, level):
    topic, i = u16str(body, 0)
    if (flags >> 1) & 3:
        i += 2
    if level == 5:
        n, i = varint(body, i)
        i += n
    return topic.decode(), body[i:]


def scapy_publishes(pkts):
    """[(dir, account, topic, body)] of every complete PUBLISH, by my own reassembly and parser."""
    out = []
    for key, fp in by_flow(pkts).items():
        c2b = list(mqtt_packets(reassemble(fp, "c2b")))
        if not c2b or c2b[0][0] != 1:
            continue
        level, cid, user = parse_connect(c2b[0][2])
        account = user if user is not None else cid
        for d, packets in (("c2b", c2b), ("b2s", mqtt_packets(reassemble(fp, "b2s")))):
            for typ, flags, body in packets:
                if typ == 3:
                    out.append((d, account, *parse_publish(flags, body, level)))
    return out


def expected_hash(e):
    return e["sha256"] if "sha256" in e else sha(e["body"].encode())


def expected_text(e):
    return e["body"] if "body" in e else f"<{e.get('note', 'big')} {e['len']} bytes {e['sha256'][:12]}>"


def counter_diff(want, got, fmt=str):
    lines = []
    for k, n in (want - got).items():
        lines.append(f"  missing x{n}: {fmt(k)}")
    for k, n in (got - want).items():
        lines.append(f"  unexpected x{n}: {fmt(k)}")
    return "\n".join(lines)


def read_events(path):
    evs = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            assert line.endswith(b"\n"), f"event line {n} not newline-terminated"
            try:
                evs.append((line, json.loads(line)))
            except ValueError as e:
                raise AssertionError(f"event line {n} is not JSON ({e}): {line[:200]!r}")
    return evs


def rule_ids(path):
    ids = []
    for line in open(path):
        s = line.strip()
        if s and not s.startswith("#"):
            ids.append(tuple(s.split()[:2]))
    return ids


# ------------------------------------------------------------------------------------------ the tests
class OfflineE2E:
    def __init__(self, imfd, src, workdir):
        self.imfd, self.src, self.work = imfd, src, workdir
        data = os.path.join(src, "tests", "data", "mqtt")
        self.in_pcap = os.path.join(data, "offline.pcap")
        self.rules = os.path.join(data, "offline.rules")
        self.expect = json.load(open(os.path.join(data, "offline.expect.json")))
        self.sample_pcap = os.path.join(src, "config", "sample", "mqtt-sample.pcap")
        self.example_rules = os.path.join(src, "config", "rules", "example.rules")
        self._run = self._sample = self._out = self._in = None

    # lazily computed, shared by the tests
    def imfd_run(self):
        if self._run is None:
            self._run = run_imfd(self.imfd, self.work, "offline", self.in_pcap, self.rules)
        return self._run

    def ok_run(self):
        r = self.imfd_run()
        assert r["rc"] == 0, f"imfd exited {r['rc']}; stderr:\n{r['stderr'][-2000:]}"
        assert os.path.exists(r["out"]), "no output capture written"
        return r

    def in_pkts(self):
        if self._in is None:
            self._in = read_pkts(self.in_pcap)
        return self._in

    def out_pkts(self):
        if self._out is None:
            self._out = read_pkts(self.ok_run()["out"])
        return self._out

    def events(self):
        return read_events(self.ok_run()["events"])

    def summary(self):
        with open(self.ok_run()["summary"]) as f:
            return json.load(f)

    def drop_events(self):
        return [e for e in self.expect["events"] if e["action"] == "drop"]

    def drop_points(self):
        """{flow key: index in the flow's input packets of the segment that completes the match}"""
        flows = by_flow(self.in_pkts())
        points = {}
        for e in self.drop_events():
            needle = e["drop_segment_contains"].encode()
            cands = [(k, i) for k, fp in flows.items() for i, p in enumerate(fp)
                     if p.dir == e["dir"] and needle in p.payload]
            assert len(cands) == 1, f"{e['rule']}: {len(cands)} input segments hold {needle!r}"
            points[cands[0][0]] = cands[0][1]
        return points

    # ---- input sanity: the test data must be able to make imfd fail
    def test_input_capture_matches_expectations(self):
        pkts = self.in_pkts()
        assert not any(p.rst for p in pkts), "input capture already holds RSTs"
        want = collections.Counter((e["dir"], e["account"], e["topic"], expected_hash(e))
                                   for e in self.expect["deliver"] + self.expect["withhold"])
        got = collections.Counter((d, a, t, sha(b)) for d, a, t, b in scapy_publishes(pkts))
        assert got == want, "input capture differs from offline.expect.json:\n" + counter_diff(want, got)
        streams = b"".join(reassemble(fp, d) for fp in by_flow(pkts).values() for d in ("c2b", "b2s"))
        for s in self.expect["forbidden_raw"]:
            assert s.encode() in streams, f"forbidden text {s!r} is not even in the input"
        self.drop_points()  # each drop segment is unique

    def test_tshark_fields(self):
        p = run(["tshark", "-G", "fields"])
        names = {ln.split("\t")[2] for ln in p.stdout.decode(errors="replace").splitlines()
                 if ln.startswith("F\t")}
        missing = {"mqtt.msgtype", "mqtt.topic", "mqtt.msg"} - names
        assert not missing, f"this tshark lacks fields {missing}"

    # ---- the run
    def test_exit_status_zero(self):
        r = self.imfd_run()
        assert r["rc"] == 0, f"imfd exited {r['rc']}; stderr:\n{r['stderr'][-2000:]}"
        for k in ("out", "events", "summary"):
            assert os.path.exists(r[k]), f"imfd wrote no {k} file"

    def test_delivered_messages_tshark(self):
        got = collections.Counter((d, t, sha(b)) for d, t, b in tshark_publishes(self.ok_run()["out"]))
        want = collections.Counter((e["dir"], e["topic"], expected_hash(e)) for e in self.expect["deliver"])
        texts = {expected_hash(e): expected_text(e) for e in self.expect["deliver"] + self.expect["withhold"]}
        assert got == want, "PUBLISH messages in imfd's output (tshark) differ:\n" + counter_diff(
            want, got, lambda k: f"{k[0]} {k[1]} {texts.get(k[2], k[2][:12])}")

    def test_delivered_messages_independent(self):
        out = scapy_publishes(self.out_pkts())
        got = collections.Counter((d, a, t, sha(b)) for d, a, t, b in out)
        want = collections.Counter((e["dir"], e["account"], e["topic"], expected_hash(e))
                                   for e in self.expect["deliver"])
        texts = {expected_hash(e): expected_text(e) for e in self.expect["deliver"] + self.expect["withhold"]}
        assert got == want, "PUBLISH messages in imfd's output (own parser) differ:\n" + counter_diff(
            want, got, lambda k: f"{k[0]} {k[1]} {k[2]} {texts.get(k[3], k[3][:12])}")
        n_tshark = len(tshark_publishes(self.ok_run()["out"]))
        assert len(out) == n_tshark == len(self.expect["deliver"]), \
            f"PUBLISH counts: own parser {len(out)}, tshark {n_tshark}, expected {len(self.expect['deliver'])}"

    def test_withheld_messages_absent(self):
        outpath = self.ok_run()["out"]
        bodies = {sha(b) for _, _, b in tshark_publishes(outpath)} | \
                 {sha(b) for _, _, _, b in scapy_publishes(self.out_pkts())}
        for e in self.expect["withhold"]:
            assert expected_hash(e) not in bodies, f"withheld message delivered: {e['topic']} {expected_text(e)}"
        raw = open(outpath, "rb").read()
        for s in self.expect["forbidden_raw"]:
            assert s.encode() not in raw, f"forbidden text {s!r} occurs in the output capture"

    def test_events_multiset(self):
        evs = self.events()
        got, want = collections.Counter(), collections.Counter()
        for line, j in evs:
            for k in ("ts", "lcore", "flow", "account", "protocol", "message", "channel", "rule", "action"):
                assert k in j, f"event without '{k}': {line!r}"
            f = j["flow"]
            assert f.get("proto") == "tcp", line
            if f["dport"] == MQTT_PORT:
                d = "c2b"
            else:
                assert f["sport"] == MQTT_PORT, f"event flow has no MQTT port: {line!r}"
                d = "b2s"
            got[(j["rule"], j["action"], j["account"], j["channel"], d)] += 1
        want = collections.Counter((e["rule"], e["action"], e["account"], e["topic"], e["dir"])
                                   for e in self.expect["events"])
        assert got == want, "events differ (rule, action, account, topic, direction):\n" + counter_diff(want, got)

    def test_events_flow_addresses(self):
        # src/sport are the sender of the matching message; ports identify the recorded connection
        ports = {}
        for fp in by_flow(self.in_pkts()).values():
            c2b = list(mqtt_packets(reassemble(fp, "c2b")))
            if c2b and c2b[0][0] == 1:
                level, cid, user = parse_connect(c2b[0][2])
                ports.setdefault(user if user is not None else cid, set()).add(fp[0].key[1])
        for line, j in self.events():
            f = j["flow"]
            client_port = f["sport"] if f["dport"] == MQTT_PORT else f["dport"]
            assert client_port in ports.get(j["account"], ()), \
                f"event names account {j['account']!r} but its flow is another connection: {line!r}"
            assert {f["src"], f["dst"]} == {"10.78.0.1", "10.78.0.2"}, line
            assert (f["src"] == "10.78.0.1") == (f["dport"] == MQTT_PORT), line
            assert f.get("vlan") == 0, line

    def test_events_hold_no_content(self):
        texts = []
        for e in self.expect["deliver"] + self.expect["withhold"]:
            if "body" in e:
                texts.append(e["body"].encode())
        for _, _, _, b in scapy_publishes(self.in_pkts()):
            if len(b) > 1000:  # pieces of the big bodies
                texts += [b[i:i + 40] for i in range(0, len(b) - 40, 997)]
        texts += [s.encode() for s in self.expect["forbidden_raw"]]
        for line, _ in self.events():
            for t in texts:
                assert t not in line, f"event line holds message content {t[:40]!r}: {line[:200]!r}"

    def test_summary_rules(self):
        s = self.summary()
        ids = rule_ids(self.rules)
        assert [(r["id"], r["action"]) for r in s["rules"]] == ids, f"summary rules {s['rules']} vs file {ids}"
        hits = collections.Counter(e["rule"] for e in self.expect["events"])
        got = {r["id"]: r["hits"] for r in s["rules"]}
        assert got == {i: hits.get(i, 0) for i, _ in ids}, f"rule hits {got} vs expected {dict(hits)}"
        ev_hits = collections.Counter(j["rule"] for _, j in self.events())
        assert got == {i: ev_hits.get(i, 0) for i, _ in ids}, f"rule hits {got} vs event lines {dict(ev_hits)}"

    def test_summary_counters(self):
        s = self.summary()
        c = s["counters"]
        needed = {"rx_packets", "forwarded", "dropped", "resets_sent", "rule_drops", "rule_alerts", "flows_created",
                  "mqtt_connects", "mqtt_publishes", "tx_dropped", "reset_alloc_failed", "events_lost",
                  "scan_errors", "mqtt_malformed", "hits_overflow", "flows_midstream", "tcp_out_of_order",
                  "decode_truncated", "decode_bad_header", "blocked_flow_drops"}
        assert needed <= set(c), f"summary lacks counters {sorted(needed - set(c))}"
        n_in, n_out = len(self.in_pkts()), len(self.out_pkts())
        n_drop = len(self.drop_events())
        n_alert = len(self.expect["events"]) - n_drop
        n_rst = sum(p.rst for p in self.out_pkts())
        checks = {
            "rx_packets == packets in the input": (c["rx_packets"], n_in),
            "forwarded + dropped == rx_packets": (c["forwarded"] + c["dropped"], c["rx_packets"]),
            "packets in the output == forwarded + resets_sent": (n_out, c["forwarded"] + c["resets_sent"]),
            "resets_sent == 2 x drop verdicts": (c["resets_sent"], 2 * n_drop),
            "RST segments in the output == resets_sent": (n_rst, c["resets_sent"]),
            "rule_drops == drop verdicts": (c["rule_drops"], n_drop),
            "rule_alerts == alert verdicts": (c["rule_alerts"], n_alert),
            "flows_created == connections": (c["flows_created"], len(by_flow(self.in_pkts()))),
            "mqtt_connects == CONNECTs": (c["mqtt_connects"], len(by_flow(self.in_pkts()))),
            "mqtt_publishes == delivered + blocked": (c["mqtt_publishes"], len(self.expect["deliver"]) + n_drop),
            "ports rx == rx_packets": (sum(p["rx"] for p in s["ports"]), c["rx_packets"]),
            "ports tx == packets in the output": (sum(p["tx"] for p in s["ports"]), n_out),
        }
        for k in ("tx_dropped", "reset_alloc_failed", "events_lost", "scan_errors", "mqtt_malformed",
                  "hits_overflow", "flows_midstream", "tcp_out_of_order", "decode_truncated", "decode_bad_header"):
            checks[f"{k} == 0"] = (c[k], 0)
        bad = [f"{k}: {a} != {b}" for k, (a, b) in checks.items() if a != b]
        assert not bad, "summary counters inconsistent:\n  " + "\n  ".join(bad)

    def test_flows_forwarded_unchanged_and_blocked_after_drop(self):
        ins, outs = by_flow(self.in_pkts()), by_flow([p for p in self.out_pkts() if not p.rst])
        points = self.drop_points()
        assert set(outs) <= set(ins), f"output holds flows not in the input: {set(outs) - set(ins)}"
        problems = []
        total_dropped = 0
        for key, fp in ins.items():
            cut = points.get(key, len(fp))
            total_dropped += len(fp) - cut
            want = [p.raw for p in fp[:cut]]
            got = [p.raw for p in outs.get(key, [])]
            if got != want:
                n = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                problems.append(f"flow {key}: {len(got)} packets out, expected the first {cut} of {len(fp)} "
                                f"unchanged; first difference at packet {n}")
        assert not problems, "\n".join(problems)
        c = self.summary()["counters"]
        assert c["dropped"] == total_dropped, f"dropped {c['dropped']} != {total_dropped} packets of blocked flows"

    def test_resets(self):
        ins = by_flow(self.in_pkts())
        rsts = collections.defaultdict(list)
        for p in self.out_pkts():
            if p.rst:
                rsts[p.key].append(p)
        points = self.drop_points()
        assert set(rsts) == set(points), f"RSTs on flows {sorted(rsts)}, drops on {sorted(points)}"
        problems = []
        for key, i in points.items():
            d = ins[key][i]  # the dropped segment (client -> broker in this capture)
            de = Ether(d.raw)
            toward_receiver = [p for p in rsts[key] if p.src == d.src and p.sport == d.sport]
            toward_sender = [p for p in rsts[key] if p.src == d.dst and p.sport == d.dport]
            if len(toward_receiver) != 1 or len(toward_sender) != 1:
                problems.append(f"{key}: {len(toward_receiver)} RST onward, {len(toward_sender)} back (want 1+1)")
                continue
            r, s = toward_receiver[0], toward_sender[0]
            if r.seq != d.seq:
                problems.append(f"{key}: onward RST seq {r.seq} != dropped segment seq {d.seq}")
            if s.seq != d.ack:
                problems.append(f"{key}: RST back seq {s.seq} != dropped segment ack {d.ack}")
            re_, se = Ether(r.raw), Ether(s.raw)
            if (re_.src, re_.dst) != (de.src, de.dst) or (se.src, se.dst) != (de.dst, de.src):
                problems.append(f"{key}: RST MAC addresses not those of the connection")
            for name, e in (("onward", re_), ("back", se)):
                ip_sum, tcp_sum = e[IP].chksum, e[TCP].chksum
                e2 = Ether(e.build())
                del e2[IP].chksum
                del e2[TCP].chksum
                e2 = Ether(e2.build())
                if (ip_sum, tcp_sum) != (e2[IP].chksum, e2[TCP].chksum):
                    problems.append(f"{key}: {name} RST has a bad IP/TCP checksum")
            # the RSTs follow the last forwarded packet of their flow
            outs = self.out_pkts()
            last_fwd = max((p.idx for p in outs if p.key == key and not p.rst), default=-1)
            if min(r.idx, s.idx) < last_fwd:
                problems.append(f"{key}: RST written before the flow's last forwarded packet")
        assert not problems, "\n".join(problems)

    # ---- the bundled sample
    def test_sample_events(self):
        r = run_imfd(self.imfd, self.work, "sample", self.sample_pcap, self.example_rules)
        assert r["rc"] == 0, f"imfd exited {r['rc']} on the sample; stderr:\n{r['stderr'][-2000:]}"
        evs = read_events(r["events"])
        rules = {j["rule"] for _, j in evs}
        assert rules == SAMPLE_RULES, f"sample hit rules {sorted(rules)}, designed for {sorted(SAMPLE_RULES)}"
        got = collections.Counter((j["rule"], j["action"], j["account"], j["channel"]) for _, j in evs)
        want = collections.Counter(SAMPLE_EVENTS)
        assert got == want, "sample events differ:\n" + counter_diff(want, got)
        s = json.load(open(r["summary"]))
        n_drop = sum(1 for e in SAMPLE_EVENTS if e[1] == "drop")
        assert s["counters"]["resets_sent"] == 2 * n_drop, s["counters"]
        raw = open(r["out"], "rb").read()
        for t in SAMPLE_DROPPED_TEXT:
            assert t in open(self.sample_pcap, "rb").read(), f"sample input lacks {t!r}"
            assert t not in raw, f"dropped sample text {t!r} is in the output"
        n_in = len(tshark_publishes(self.sample_pcap))
        n_out = len(tshark_publishes(r["out"]))
        assert n_out == n_in - len(SAMPLE_DROPPED_TEXT), f"sample: {n_in} messages in, {n_out} out"

    # ---- bad rule files
    def bad_rules(self, name, text, line, rule_id):
        path = os.path.join(self.work, f"{name}.rules")
        with open(path, "w") as f:
            f.write(text)
        r = run_imfd(self.imfd, self.work, name, self.in_pcap, path)
        err = r["stderr"]
        assert r["rc"] == 1, f"imfd exited {r['rc']} (want 1) on {name}; stderr: {err[-500:]}"
        assert f":{line}:" in err, f"stderr lacks ':{line}:': {err[-500:]!r}"
        assert rule_id in err, f"stderr lacks the rule id {rule_id!r}: {err[-500:]!r}"
        assert f"{name}.rules" in err, f"stderr lacks the file name: {err[-500:]!r}"

    def test_bad_rules_unknown_action(self):
        self.bad_rules("bad-action", '# line 1\nok.rule   drop   payload  "fine"\n'
                                     'bad.action  block  payload  "x"\n', 3, "bad.action")

    def test_bad_rules_unknown_scope(self):
        self.bad_rules("bad-scope", '\n\nok.rule drop payload "fine"\nbad.scope drop text "x"\n', 4, "bad.scope")

    def test_bad_rules_backreference(self):
        self.bad_rules("bad-backref", '# refs\nbad.backref  drop  payload  /(ab)\\1/\n', 2, "bad.backref")

    def test_bad_rules_duplicate_id(self):
        self.bad_rules("bad-dup", 'dup.id drop payload "a"\n# again\ndup.id alert payload "b"\n', 3, "dup.id")

    def test_bad_option_exit_1(self):
        r = run_imfd(self.imfd, self.work, "bad-option", self.in_pcap, self.rules, extra=["--ooo", "sometimes"])
        assert r["rc"] == 1, f"imfd exited {r['rc']} (want 1) on --ooo sometimes"
        assert r["stderr"].strip(), "no reason on stderr"


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    keep = "--keep" in argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    imfd, src = os.path.abspath(args[0]), os.path.abspath(args[1])
    work = tempfile.mkdtemp(prefix="imf-offline-e2e-")
    t = OfflineE2E(imfd, src, work)
    tests = [n for n in dir(OfflineE2E) if n.startswith("test_")]
    order = ["test_tshark_fields", "test_input_capture_matches_expectations", "test_exit_status_zero"]
    tests = order + sorted(n for n in tests if n not in order)
    passed, failed = [], []
    for name in tests:
        try:
            getattr(t, name)()
        except Exception as e:  # noqa: BLE001  report every failure, keep going
            failed.append(name)
            msg = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            print(f"FAIL {name}: {msg}", flush=True)
        else:
            passed.append(name)
            print(f"PASS {name}", flush=True)
    if failed or keep:
        print(f"work directory kept: {work}", flush=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(passed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
