#!/usr/bin/python3
"""Checks each recorded capture against its ground-truth table, independently of the scripts that
recorded them: tshark's own dissectors (mqtt, xmpp, sip, irc) find the messages, and the rules
file, applied here with Python's re, must give exactly the table's events and withheld messages.

    /usr/bin/python3 tests/data/verify_truth.py                       all four committed captures
    /usr/bin/python3 tests/data/verify_truth.py PROTO [PCAP TRUTH]    one (PCAP/TRUTH default to tests/data/PROTO/)

PROTO is mqtt, xmpp, sip or irc. For each capture it checks:
  - the multiset of messages tshark decodes (direction, account, channel, kind, body, and the
    protocol's extra fields) equals deliver + withhold;
  - XMPP and IRC: the client connections (account and SASL mechanism; nicks, line ends, CAP) equal
    'connections'; SIP: the other requests and the responses equal pass + answers_to_withheld;
  - the rules file's hits on those messages, connection by connection in capture order (a drop
    blocks the rest of its TCP connection), equal 'events', and the withheld messages are exactly
    the dropped and blocked ones;
  - no packet completes two messages;
  - each drop's drop_segment_contains is in exactly one input packet of its direction, on the
    dropped connection, and every forbidden_raw string occurs in the input.
IRC lines split over two TCP segments: tshark's IRC dissector parses each segment on its own, so
the two pieces are joined (raw bytes) and that one line is split here. IRCv3 tags on a request,
which this tshark reads as the command, are taken off the same way.
Ends with 'N passed, M failed'; exit status 0 only when nothing failed.
"""

import base64
import collections
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, TCP, UDP, rdpcap  # noqa: E402  Debian python3-scapy

HERE = os.path.dirname(os.path.abspath(__file__))
CONNECTIONS = {}  # proto: multiset of what tshark shows of each client connection
FILES = {  # proto: (capture, truth, rules)
    "mqtt": ("offline.pcap", "offline.expect.json", "offline.rules"),
    "xmpp": ("offline.pcap", "truth.json", "offline.rules"),
    "sip": ("offline.pcap", "truth.json", "offline.rules"),
    "irc": ("offline.pcap", "truth.json", "offline.rules"),
}


class Msg:
    """One message as tshark decodes it. flow = (client ip, client port, server ip, server port, l4)."""

    def __init__(self, flow, frame, direction, account, channel, kind, body, **extra):
        self.flow, self.frame, self.dir, self.account, self.channel = flow, frame, direction, account, channel
        self.kind, self.body, self.extra = kind, body, extra  # body: bytes

    def bodies(self):
        """every text the payload scope covers"""
        return [self.body] + [b.encode() for b in self.extra.get("bodies", {}).values()]


def sha(b):
    import hashlib
    return hashlib.sha256(b).hexdigest()


# ------------------------------------------------------------------------------------------ tshark
def tshark(pcap, *args):
    p = subprocess.run(["tshark", "-r", pcap, "-o", "tcp.desegment_tcp_streams:TRUE", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if p.returncode:
        raise RuntimeError(f"tshark {' '.join(args)} failed: {p.stderr.decode(errors='replace')[-500:]}")
    return p.stdout


def pdml(pcap, *args):
    return ET.fromstring(tshark(pcap, "-T", "pdml", *args))


def field(parent, name):
    return parent.find(f".//field[@name='{name}']")


def show(parent, name, default=None):
    f = field(parent, name)
    return default if f is None else f.get("show")


def raw(f):
    return bytes.fromhex(f.get("value") or "")


def flow_of(pkt, server_port):
    ip = pkt.find("proto[@name='ip']")
    l4 = "tcp" if pkt.find("proto[@name='tcp']") is not None else "udp"
    sport, dport = int(show(pkt, f"{l4}.srcport")), int(show(pkt, f"{l4}.dstport"))
    src, dst = show(ip, "ip.src"), show(ip, "ip.dst")
    if dport == server_port:
        return (src, sport, dst, dport, l4), "up"
    return (dst, dport, src, sport, l4), "down"


def frame_no(pkt):
    return int(show(pkt, "frame.number"))


# ------------------------------------------------------------------------------------------ MQTT
def mqtt_messages(pcap, port):
    out = tshark(pcap, "-d", f"tcp.port=={port},mqtt", "-Y", "mqtt", "-T", "fields", "-E", "occurrence=a",
                 "-E", "aggregator=|", "-e", "frame.number", "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst",
                 "-e", "tcp.dstport", "-e", "mqtt.msgtype", "-e", "mqtt.clientid", "-e", "mqtt.username",
                 "-e", "mqtt.topic", "-e", "mqtt.msg").decode()
    accounts, msgs = {}, []
    for line in out.splitlines():
        fno, src, sp, dst, dp, types, cids, users, topics, bodies = line.split("\t")
        up = int(dp) == port
        flow = (src, int(sp), dst, int(dp), "tcp") if up else (dst, int(dp), src, int(sp), "tcp")
        types = types.split("|")
        if "1" in types:
            accounts[flow] = users.split("|")[0] if users else cids.split("|")[0]
        if "3" in types:
            for t, b in zip(topics.split("|"), bodies.split("|")):
                msgs.append(Msg(flow, int(fno), "c2b" if up else "b2s", None, t, "publish",
                                bytes.fromhex(b.replace(":", ""))))
    for m in msgs:
        m.account = accounts.get(m.flow)
    return msgs


# ------------------------------------------------------------------------------------------ XMPP
def xmpp_sasl_account(mech, b64, domain):
    data = base64.b64decode(b64 or "")
    if mech == "PLAIN":
        authz, authc, _ = data.split(b"\0", 2)
        return authz.decode() if authz else f"{authc.decode()}@{domain}"
    if mech.startswith("SCRAM-"):
        gs2, _, rest = data.partition(b",")
        authz, _, rest = rest.partition(b",")
        attrs = dict(kv.split(b"=", 1) for kv in rest.split(b",") if b"=" in kv)
        if authz.startswith(b"a="):
            return authz[2:].decode()
        return f"{attrs[b'n'].decode()}@{domain}"
    raise ValueError(f"SASL mechanism {mech} not handled")


def bare(jid):
    return jid.split("/", 1)[0]


def xmpp_messages(pcap, port):
    root = pdml(pcap, "-d", f"tcp.port=={port},xmpp", "-Y", "xmpp")
    accounts, domains, mechs, msgs = {}, {}, {}, []
    for pkt in root.iter("packet"):
        flow, d = flow_of(pkt, port)
        for x in pkt.iter("proto"):
            if x.get("name") != "xmpp":
                continue
            tags = [f for xm in x.findall("proto[@name='xml']") for f in xm.findall("field[@name='xml.tag']")]
            stanzas = [raw(t) for t in tags if raw(t).startswith(b"<message")]
            for t in tags:
                m = re.match(rb"<stream:stream[^>]*\bto=['\"]([^'\"]+)['\"]", raw(t))
                if m and d == "up":
                    domains[flow] = m.group(1).decode()
            for a in x.findall("field[@name='xmpp.auth']"):
                mech = a.find("field[@name='xmpp.attribute']").get("show")
                accounts[flow] = xmpp_sasl_account(mech, show(a, "xmpp.cdata", ""), domains.get(flow, ""))
                mechs[flow] = mech
            decoded = x.findall("field[@name='xmpp.message']")
            assert len(decoded) == len(stanzas), f"frame {frame_no(pkt)}: {len(decoded)} messages, {len(stanzas)} tags"
            for st in stanzas:
                el = ET.fromstring(st)  # the stanza's own bytes, parsed by expat: entities, CDATA
                mtype = el.get("type", "normal")
                body_els = [b for b in el if b.tag == "body"]
                subj = next((s for s in el if s.tag == "subject"), None)
                bodies = {b.get("{http://www.w3.org/XML/1998/namespace}lang", ""): b.text or "" for b in body_els}
                extra = {}
                if len(body_els) > 1:
                    extra["bodies"] = bodies
                if subj is not None:
                    extra["subject"] = subj.text or ""
                if d == "down":
                    extra["from"] = el.get("from")
                if mtype == "groupchat" and subj is not None and not body_els:
                    kind, body = "subject", subj.text or ""
                else:
                    kind, body = mtype, bodies.get("", "")
                if mtype == "groupchat" and d == "down":
                    channel = bare(el.get("from"))
                    extra["to"] = el.get("to")
                else:
                    channel = el.get("to")
                msgs.append(Msg(flow, frame_no(pkt), "c2s" if d == "up" else "s2c", None, channel, kind,
                                body.encode(), **extra))
    for m in msgs:
        m.account = accounts.get(m.flow)
    CONNECTIONS["xmpp"] = collections.Counter((accounts[f], mechs[f]) for f in accounts)
    return msgs


# ------------------------------------------------------------------------------------------ SIP
def sip_messages(pcap, port):
    root = pdml(pcap, "-d", f"tcp.port=={port},sip", "-d", f"udp.port=={port},sip", "-Y", "sip.Method == \"MESSAGE\"")
    msgs = []
    for pkt in root.iter("packet"):
        flow, d = flow_of(pkt, port)
        for s in pkt.iter("proto"):
            if s.get("name") != "sip" or show(s, "sip.Method") != "MESSAGE":
                continue
            def uh(prefix):
                u, h = show(s, f"sip.{prefix}.user"), show(s, f"sip.{prefix}.host")
                return None if h is None else (f"{u}@{h}" if u else h)
            account = uh("pai") or uh("from")
            bf = field(s, "sip.msg_body")
            body = b""
            if bf is not None:  # tshark hands the body to a media dissector: its lines are the leaves
                body = b"".join(raw(f) for f in bf.iter("field") if f is not bf and not list(f))
                assert len(body) == int(bf.get("size")), f"frame {frame_no(pkt)}: body of {len(body)} bytes, " \
                                                         f"tshark says {bf.get('size')}"
            ctype = show(s, "sip.Content-Type")
            extra = {"ruri": show(s, "sip.r-uri"), "content_type": ctype, "cseq": show(s, "sip.CSeq")}
            if ctype == "message/cpim":  # RFC 3862: message headers, blank line, MIME headers, blank line, content
                extra["inner_body"] = body.split(b"\r\n\r\n", 2)[2].decode()
            msgs.append(Msg(flow, frame_no(pkt), "c2s" if d == "up" else "s2c", account, uh("to"), "MESSAGE",
                            body, **extra))
    return msgs


def sip_others(pcap, port, server_ip):
    """(dir, method or status code, CSeq) of every SIP request but MESSAGE and every response"""
    out = tshark(pcap, "-d", f"tcp.port=={port},sip", "-d", f"udp.port=={port},sip", "-Y",
                 "sip && !(sip.Method == \"MESSAGE\")", "-T", "fields", "-E", "occurrence=f", "-e", "ip.src",
                 "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.CSeq").decode()
    got = collections.Counter()
    for line in out.splitlines():
        src, method, status, cseq = line.split("\t")
        got[("s2c" if src == server_ip else "c2s", method or status, cseq)] += 1
    return got


# ------------------------------------------------------------------------------------------ IRC
def irc_split(line):
    """(tags, prefix, command, params, trailer) of one raw line: only for a line that tshark's IRC
    dissector saw in two pieces (it parses each TCP segment on its own)."""
    tags, prefix = {}, None
    if line.startswith(b"@"):
        t, line = line[1:].split(b" ", 1)
        tags = dict(kv.split(b"=", 1) if b"=" in kv else (kv, b"") for kv in t.split(b";"))
    if line.startswith(b":"):
        prefix, line = line[1:].split(b" ", 1)
    head, sep, trailer = line.partition(b" :")
    words = head.split()
    return tags, prefix, words[0], words[1:], (trailer if sep else None)


def irc_messages(pcap, port):
    root = pdml(pcap, "-d", f"tcp.port=={port},irc", "-Y", f"tcp.port=={port} && tcp.len > 0")
    lines = []  # (flow, frame, up, tags, prefix, command, params, trailer)
    pending, upstream = {}, collections.defaultdict(bytes)
    for pkt in root.iter("packet"):
        flow, d = flow_of(pkt, port)
        payload = bytes.fromhex(show(pkt, "tcp.payload").replace(":", ""))
        if d == "up":
            upstream[flow] += payload
        parsed = []
        irc = pkt.find("proto[@name='irc']")
        for f in (irc.findall("field") if irc is not None else []):
            kind = f.get("name")  # irc.request or irc.response: one line each
            if kind not in ("irc.request", "irc.response"):
                continue
            sub = lambda n: [c for c in f.iter("field") if c.get("name") == f"{kind}.{n}"]  # noqa: E731
            cmd = raw(sub("command")[0]) if sub("command") else b""
            params = [raw(c) for c in sub("command_parameter")]
            trailer = raw(sub("trailer")[0]) if sub("trailer") else None
            prefix = raw(sub("prefix")[0]) if sub("prefix") else None
            tags = {}
            if cmd.startswith(b"@"):  # this tshark reads IRCv3 tags on a request as its command
                tags = dict(kv.split(b"=", 1) for kv in cmd[1:].split(b";"))
                cmd, params = params[0], params[1:]
            parsed.append([raw(f), tags, prefix, cmd, params, trailer])
        key = (flow, d)
        if key in pending and parsed:  # the rest of a line split over two segments
            whole = pending.pop(key) + parsed[0][0]
            parsed[0] = [whole, *irc_split(whole)]
        if parsed and not payload.endswith(b"\n"):
            pending[key] = parsed.pop()[0]
        for whole, tags, prefix, cmd, params, trailer in parsed:
            lines.append((flow, frame_no(pkt), d == "up", tags, prefix, cmd.decode(), [p.decode() for p in params],
                          trailer))
    nick, nicks, caps, msgs = {}, collections.defaultdict(list), collections.defaultdict(list), []
    for flow, frame, up, tags, prefix, cmd, params, trailer in lines:
        if up and cmd == "NICK":
            nick[flow] = params[0] if params else trailer.decode()
            nicks[flow].append(nick[flow])
            continue
        if up and cmd == "CAP" and params and params[0] == "REQ":
            caps[flow] += (trailer or b"").decode().split()
        if cmd not in ("PRIVMSG", "NOTICE", "TOPIC", "PART", "QUIT"):
            continue
        if not up and (prefix is None or b"!" not in prefix):
            continue  # the server's own notices (none expected)
        text = trailer if trailer is not None else (params[-1].encode() if len(params) > 1 else b"")
        if cmd == "TOPIC" and trailer is None and len(params) < 2:
            continue  # a topic query
        kind, channel = cmd, ("" if cmd == "QUIT" else params[0])
        if cmd == "PRIVMSG" and text.startswith(b"\x01ACTION ") and text.endswith(b"\x01"):
            kind, text = "ACTION", text[8:-1]
        extra = {}
        if tags:
            extra["tags"] = {k.decode(): v.decode() for k, v in tags.items()}
        if not up:
            extra["from"] = prefix.split(b"!")[0].decode()
        msgs.append(Msg(flow, frame, "c2s" if up else "s2c", nick.get(flow), channel, kind, text, **extra))
    eol = {f: "CRLF" if b"\r\n" in data else "LF" for f, data in upstream.items()}
    CONNECTIONS["irc"] = collections.Counter((tuple(nicks[f]), eol[f], tuple(caps[f])) for f in nicks)
    return msgs


# ------------------------------------------------------------------------------------------ the checks
def parse_rules(path):
    rules = []
    for line in open(path):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        rid, action, scope, rest = s.split(None, 3)
        while re.match(r"^[a-z-]+=\S+\s", rest):  # options
            rest = rest.split(None, 1)[1]
        flags = 0
        if rest.startswith('"'):
            end = rest.rindex('"')
            lit = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), rest[1:end])
            lit = lit.replace('\\"', '"').replace("\\\\", "\\")
            pat, fl = re.escape(lit), rest[end + 1:]
        else:
            end = rest.rindex("/")
            pat, fl = rest[1:end], rest[end + 1:]
        for c, f in (("i", re.I), ("s", re.S), ("m", re.M)):
            if c in fl:
                flags |= f
        rules.append((rid, action, scope.split(","), re.compile(pat.encode(), flags)))
    return rules


def counter_diff(want, got):
    def short(k):
        s = str(k)
        return s if len(s) < 400 else s[:400] + "..."
    lines = [f"  missing x{n}: {short(k)}" for k, n in (want - got).items()]
    lines += [f"  unexpected x{n}: {short(k)}" for k, n in (got - want).items()]
    return "\n".join(lines)


def truth_body(e):
    return e["sha256"] if "sha256" in e else sha(e["body"].encode())


EXTRA_KEYS = ("bodies", "subject", "from", "to", "ruri", "content_type", "inner_body", "cseq", "tags")


def key_of_truth(e, ck):
    extra = tuple((k, json.dumps(e[k], sort_keys=True)) for k in EXTRA_KEYS if k in e)
    return (e["dir"], e["account"], e[ck], e.get("kind", "publish"), truth_body(e), extra)


def key_of_msg(m):
    extra = tuple((k, json.dumps(m.extra[k], sort_keys=True)) for k in EXTRA_KEYS if k in m.extra)
    return (m.dir, m.account, m.channel, m.kind, sha(m.body), extra)


def check(proto, pcap, truth_path, rules_path):
    truth = json.load(open(truth_path))
    ck = "topic" if proto == "mqtt" else "channel"
    port = truth.get("mqtt_port") or truth["port"]
    results = []

    def test(name, fn):
        try:
            fn()
            results.append((name, None))
        except AssertionError as e:
            results.append((name, str(e)))

    msgs = {"mqtt": mqtt_messages, "xmpp": xmpp_messages, "sip": sip_messages, "irc": irc_messages}[proto](pcap, port)
    texts = {truth_body(e): (e.get("body") or e.get("note", ""))[:70]
             for e in truth["deliver"] + truth["withhold"]}

    def t_messages():
        want = collections.Counter(key_of_truth(e, ck) for e in truth["deliver"] + truth["withhold"])
        got = collections.Counter(key_of_msg(m) for m in msgs)
        assert want == got, f"{proto}: tshark's messages differ from the truth table:\n" + counter_diff(want, got)

    rules = parse_rules(rules_path)
    # the rules on tshark's messages, connection by connection in capture order
    events, dropped, blocked = collections.Counter(), collections.Counter(), set()
    drop_flows = {}
    for m in sorted(msgs, key=lambda m: m.frame):
        if m.flow in blocked:
            dropped[key_of_msg(m) + ("flow blocked",)] += 1
            continue
        for rid, action, scope, rx in rules:
            parts = (m.bodies() if "payload" in scope else []) + ([m.channel.encode()] if "topic" in scope else [])
            if any(rx.search(p) for p in parts):
                events[(rid, action, m.account, m.channel, m.dir)] += 1
                if action == "drop":
                    dropped[key_of_msg(m) + (rid,)] += 1
                    drop_flows[(rid, m.account, m.channel, m.dir)] = m.flow
                    if m.flow[4] == "tcp":
                        blocked.add(m.flow)
                    break

    def t_events():
        want = collections.Counter((e["rule"], e["action"], e["account"], e[ck], e["dir"]) for e in truth["events"])
        assert want == events, f"{proto}: rules on the capture give other events:\n" + counter_diff(want, events)

    def t_withheld():
        want = collections.Counter(key_of_truth(e, ck) + (e.get("why"),) for e in truth["withhold"])
        assert want == dropped, f"{proto}: withheld messages are not the dropped ones:\n" + counter_diff(want, dropped)

    pkts = rdpcap(pcap)

    def payload(p):
        if TCP in p:
            return bytes(p[TCP].payload)
        return bytes(p[IP].payload) if IP in p else b""

    servers = {p[IP].dst for p in pkts if IP in p and (TCP in p or UDP in p) and p.dport == port} | \
              {p[IP].src for p in pkts if IP in p and (TCP in p or UDP in p) and p.sport == port}
    up_dir = "c2b" if proto == "mqtt" else "c2s"

    def t_drop_segments():
        for e in truth["events"]:
            if "drop_segment_contains" not in e:
                continue
            needle = e["drop_segment_contains"].encode()
            hits = [p for p in pkts if IP in p and needle in payload(p)
                    and (p[IP].dst in servers) == (e["dir"] == up_dir)]
            assert len(hits) == 1, f"{e['rule']}: {len(hits)} input packets in direction {e['dir']} hold {needle!r}"
            flow = drop_flows.get((e["rule"], e["account"], e[ck], e["dir"]))
            p = hits[0]
            if flow and (TCP in p or UDP in p):
                ends = {(p[IP].src, p.sport), (p[IP].dst, p.dport)}
                assert ends == {(flow[0], flow[1]), (flow[2], flow[3])}, f"{e['rule']}: segment not on the dropped flow"

    def t_forbidden_raw():
        streams = collections.defaultdict(bytearray)
        for p in pkts:
            if TCP in p:
                streams[(p[IP].src, p.sport, p[IP].dst, p.dport)] += payload(p)
            elif IP in p:
                streams["ip"] += payload(p)
        for s in truth["forbidden_raw"]:
            assert any(s.encode() in b for b in streams.values()), f"forbidden text {s!r} is not in the input"

    def t_own_segments():
        # each message completes in a packet of its own, so a drop never takes another one along
        per = collections.Counter(m.frame for m in msgs)
        shared = sorted(f for f, n in per.items() if n > 1)
        assert not shared, f"frames {shared} each complete several messages"

    def t_connections():
        if proto == "xmpp":
            want = collections.Counter((c["account"], c["mechanism"]) for c in truth["connections"])
        elif proto == "irc":
            want = collections.Counter((tuple(c["nicks"]), c["eol"], tuple(c.get("cap", ()))) for c in truth["connections"])
        else:
            return
        got = CONNECTIONS[proto]
        assert want == got, f"{proto}: client connections differ:\n" + counter_diff(want, got)

    def t_sip_others():
        if proto != "sip":
            return
        want = collections.Counter((o["dir"], o["kind"], o["cseq"]) for o in truth["pass"] + truth["answers_to_withheld"])
        got = sip_others(pcap, port, truth["server_ip"])
        assert want == got, "sip: other requests and responses differ:\n" + counter_diff(want, got)

    test("messages", t_messages)
    if proto in ("xmpp", "irc"):
        test("connections", t_connections)
    if proto == "sip":
        test("other requests and responses", t_sip_others)
    test("one message per packet", t_own_segments)
    test("events", t_events)
    test("withheld", t_withheld)
    test("drop segments", t_drop_segments)
    test("forbidden raw", t_forbidden_raw)
    n = collections.Counter(m.dir for m in msgs)
    print(f"verify_truth: {proto}: {len(pkts)} packets, {len(msgs)} messages ({dict(n)}), "
          f"{sum(events.values())} events, {sum(dropped.values())} withheld")
    return results


def main(argv):
    args = argv[1:]
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    jobs = []
    if not args:
        jobs = [(p, None, None) for p in FILES]
    elif len(args) in (1, 3) and args[0] in FILES:
        jobs = [(args[0], *(args[1:] or (None, None)))]
    else:
        print(__doc__, file=sys.stderr)
        return 2
    passed = failed = 0
    for proto, pcap, truth in jobs:
        d = os.path.join(HERE, proto)
        pcap = pcap or os.path.join(d, FILES[proto][0])
        truth = truth or os.path.join(d, FILES[proto][1])
        rules = os.path.join(os.path.dirname(os.path.abspath(truth)), FILES[proto][2])
        if not os.path.exists(rules):
            rules = os.path.join(d, FILES[proto][2])
        for name, err in check(proto, pcap, truth, rules):
            if err is None:
                passed += 1
                print(f"PASS {proto}: {name}")
            else:
                failed += 1
                print(f"FAIL {proto}: {name}\n{err}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
