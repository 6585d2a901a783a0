#!/usr/bin/python3
"""The SIP session that scripts/record-sip-captures.sh records with sipp (Debian's sip-tester):
pairs of SIP MESSAGE (RFC 3428) scenarios, one UAC (alice's side, client namespace) and one UAS
(bob's side, server namespace) per run, over UDP and TCP.

    /usr/bin/python3 sip_session.py OUT_DIR GAP_MS

Writes OUT_DIR/runs.json (the runs: name, transport, UAC port, scenario files), OUT_DIR/<run>-uac.xml,
OUT_DIR/<run>-uas.xml and OUT_DIR/plan.json: every MESSAGE the runs carry, in order, as the truth
table lists it, and every other request and response. The texts below are what sipp sends: it strips leading blanks from scenario lines
and ends every line with CRLF, so each header and body line is written flush left here and a folded
header's continuation starts with [fold] (sipp -key fold "   ").
"""

import json
import os
import sys

OUT, GAP_MS = sys.argv[1], int(sys.argv[2])
UAC_IP, UAS_IP = "10.80.0.1", "10.80.0.2"

plan = []
runs = []
others = []  # every SIP request but MESSAGE, and every response: what passes besides the messages


def crlf(lines):
    return "".join(line + "\r\n" for line in lines)


class Run:
    """One sipp call: a fixed sequence of transactions between the UAC and the UAS."""

    def __init__(self, name, transport, uac_port, note):
        self.name, self.transport, self.uac_port, self.note = name, transport, uac_port, note
        self.uac, self.uas = [], []  # scenario commands
        self.cseq = {"uac": 0, "uas": 0}
        runs.append(self)

    # --- the texts
    def request(self, side, method, headers, body_lines=(), ruri=None):
        """headers: lines after the request line, with {via} {cid} {cseq} {tag} placeholders."""
        self.cseq[side] += 1
        ruri = ruri or ("sip:bob@imf.test" if side == "uac" else "sip:alice@imf.test")
        sub = {"via": f"[transport] [local_ip]:[local_port];branch=z9hG4bK-{self.name}-{side}-{self.cseq[side]}",
               "cid": "[call_id]",
               "cseq": str(self.cseq[side]), "tag": f"{self.name}-{side}-[call_number]"}
        lines = [f"{method} {ruri} SIP/2.0"] + [h.format(**sub) for h in headers] + [""] + list(body_lines)
        return "\n".join(lines)

    @staticmethod
    def ok(from_to=None):
        """sipp's [last_From:] turns a folded header's CRLF into a bare LF, which its own parser then
        refuses: the answer to a request with folded From/To names them itself (from_to)."""
        from_to = from_to or ["[last_From:]", "[last_To:];tag=ok-[call_number]"]
        return "\n".join(["SIP/2.0 200 OK", "[last_Via:]", *from_to, "[last_Call-ID:]", "[last_CSeq:]",
                          "Content-Length: 0", ""])

    # --- one transaction, sent by one side and answered 200 by the other
    def transaction(self, side, method, text, from_to=None):
        other = "uas" if side == "uac" else "uac"
        d = "c2s" if side == "uac" else "s2c"
        cseq = f"{self.cseq[side]} {method}"
        if method != "MESSAGE":
            others.append({"dir": d, "kind": method, "cseq": cseq, "run": self.name})
        others.append({"dir": "s2c" if d == "c2s" else "c2s", "kind": "200", "cseq": cseq, "run": self.name})
        if self.uac:  # the sender waits before each request but the first; the other side is receiving
            getattr(self, side).append(("pause", GAP_MS))
        getattr(self, side).append(("send", text))
        getattr(self, side).append(("recv_response", "200"))
        getattr(self, other).append(("recv_request", method))
        getattr(self, other).append(("send", self.ok(from_to)))

    def message(self, side, headers, body_lines, account, channel, content_type="text/plain", ruri=None,
                inner_body=None, note=None, from_to=None, **extra):
        text = self.request(side, "MESSAGE", headers, body_lines, ruri)
        self.transaction(side, "MESSAGE", text, from_to)
        e = {"dir": "c2s" if side == "uac" else "s2c", "account": account, "channel": channel, "kind": "MESSAGE",
             "body": crlf(body_lines), "ruri": ruri or ("sip:bob@imf.test" if side == "uac" else "sip:alice@imf.test"),
             "content_type": content_type, "cseq": f"{self.cseq[side]} MESSAGE", "transport": self.transport,
             "run": self.name}
        if content_type == "message/cpim":  # RFC 3862: message headers, blank line, MIME headers, blank line, text
            e["inner_body"] = e["body"].split("\r\n\r\n", 2)[2]
            assert inner_body is None or inner_body == e["inner_body"]
        if note:
            e["note"] = note
        e.update(extra)
        plan.append(e)

    # --- the scenario files
    def write(self):
        for side in ("uac", "uas"):
            out = ['<?xml version="1.0" encoding="ISO-8859-1" ?>', f'<scenario name="imfrec {self.name} {side}">']
            for kind, arg in getattr(self, side):
                if kind == "send":
                    out.append(f"  <send>\n    <![CDATA[\n{arg}\n    ]]>\n  </send>")
                elif kind == "recv_response":
                    out.append(f'  <recv response="{arg}"/>')
                elif kind == "recv_request":
                    out.append(f'  <recv request="{arg}"/>')
                elif kind == "pause":
                    out.append(f'  <pause milliseconds="{arg}"/>')
            out.append("</scenario>")
            with open(os.path.join(OUT, f"{self.name}-{side}.xml"), "w") as f:
                f.write("\n".join(out) + "\n")


def std(frm="<sip:alice@imf.test>", to="<sip:bob@imf.test>", ctype="text/plain", extra=()):
    return ["Via: SIP/2.0/{via}", f"From: {frm};tag={{tag}}", f"To: {to}", "Call-ID: {cid}", "CSeq: {cseq} MESSAGE",
            "Max-Forwards: 70", *extra, f"Content-Type: {ctype}", "Content-Length: [len]"]


def bob_std(extra=()):
    return std(frm="<sip:bob@imf.test>", to="<sip:alice@imf.test>", extra=extra)


def filler(tag, n):
    lines, i = [], 0
    while sum(len(s) + 2 for s in lines) < n:
        lines.append(f"{tag} line {i:03d}: quarterly figures attached, nothing to act on")
        i += 1
    return lines


CPIM = ["From: Alice <im:alice@imf.test>", "To: Bob <im:bob@imf.test>", "DateTime: 2024-05-06T10:00:00Z",
        "Subject: minutes", "", "Content-Type: text/plain; charset=utf-8", "", "CPIM wrapped hello, bob"]

# ================================================================ 1. UDP: alice <-> bob
r = Run("udp-main", "udp", 5070, "one UDP flow: OPTIONS, REGISTER, MESSAGEs both ways, one IP-fragmented")
r.transaction("uac", "OPTIONS", r.request("uac", "OPTIONS", [
    "Via: SIP/2.0/{via}", "From: <sip:alice@imf.test>;tag={tag}", "To: <sip:bob@imf.test>", "Call-ID: {cid}",
    "CSeq: {cseq} OPTIONS", "Max-Forwards: 70", "Accept: text/plain, message/cpim", "Content-Length: 0"]))
r.transaction("uac", "REGISTER", r.request("uac", "REGISTER", [
    "Via: SIP/2.0/{via}", "From: <sip:alice@imf.test>;tag={tag}", "To: <sip:alice@imf.test>", "Call-ID: {cid}",
    "CSeq: {cseq} REGISTER", "Max-Forwards: 70", "Contact: <sip:alice@[local_ip]:[local_port]>", "Expires: 600",
    "Content-Length: 0"], ruri="sip:imf.test"))
r.message("uac", std(extra=["Subject: lunch"]), ["Hi bob, are you free for a call later?"],
          "alice@imf.test", "bob@imf.test")
r.message("uac", ["v: SIP/2.0/{via}", "f: <sip:alice@imf.test>;tag={tag}", "t: <sip:bob@imf.test>", "i: {cid}",
                  "CSeq: {cseq} MESSAGE", "Max-Forwards: 70", "c: text/plain", "l: [len]"],
          ["compact header forms work too"], "alice@imf.test", "bob@imf.test", note="compact headers f t i c l v")
r.message("uac", ["VIA: SIP/2.0/{via}", "from: <sip:alice@imf.test>;tag={tag}", "tO: <sip:bob@imf.test>",
                  "call-ID: {cid}", "cseq: {cseq} MESSAGE", "max-forwards: 70", "CONTENT-TYPE: text/plain",
                  "content-length: [len]"],
          ["header names in any case"], "alice@imf.test", "bob@imf.test", note="lower/upper/mixed-case header names")
r.message("uac", ["Via: SIP/2.0/{via}", 'From: "Alice Liddell"', "[fold]<sip:alice@imf.test>;tag={tag}",
                  "To:", "[fold]<sip:bob@imf.test>", "Call-ID: {cid}", "CSeq: {cseq} MESSAGE", "Max-Forwards: 70",
                  "Subject: a header folded", "[fold]over two lines", "Content-Type: text/plain",
                  "Content-Length: [len]"],
          ["folded From, To and Subject headers"], "alice@imf.test", "bob@imf.test",
          from_to=['From: "Alice Liddell" <sip:alice@imf.test>;tag=udp-main-uac-[call_number]',
                   "To: <sip:bob@imf.test>;tag=ok-[call_number]"],
          note="From, To and Subject folded (CRLF + spaces)")
r.message("uac", std(extra=['P-Asserted-Identity: "Alice Smith" <sip:alice.smith@corp.imf.test>']),
          ["sent through the corporate gateway"], "alice.smith@corp.imf.test", "bob@imf.test",
          note="P-Asserted-Identity names the account; From says alice@imf.test")
r.message("uac", std(ctype="message/cpim"), CPIM, "alice@imf.test", "bob@imf.test", content_type="message/cpim",
          inner_body="CPIM wrapped hello, bob\r\n", note="RFC 3862 message/cpim wrapping text/plain")
r.message("uac", std(), filler("alice", 3000), "alice@imf.test", "bob@imf.test",
          note="about 3 KB in one UDP datagram: IP-fragmented by the kernel (3 fragments)")
r.message("uas", bob_std(), ["thanks alice, got them all"], "bob@imf.test", "alice@imf.test")
r.message("uac", std(), ["alice: this one is suspicious-but-allowed, deliver it"], "alice@imf.test",
          "bob@imf.test")

# ================================================================ 2. TCP: one connection, MESSAGEs both ways
r = Run("tcp-main", "tcp", 0, "one TCP connection, several MESSAGEs each way")
r.message("uac", std(extra=["Subject: status"]), ["Hi bob, this time over TCP"], "alice@imf.test", "bob@imf.test")
r.message("uac", ["v: SIP/2.0/{via}", "f: <sip:alice@imf.test>;tag={tag}", "t: <sip:bob@imf.test>", "i: {cid}",
                  "CSeq: {cseq} MESSAGE", "Max-Forwards: 70", "c: text/plain", "l: [len]"],
          ["compact headers on a stream"], "alice@imf.test", "bob@imf.test", note="compact headers f t i c l v")
r.message("uas", bob_std(), ["bob here, TCP works"], "bob@imf.test", "alice@imf.test")
r.message("uac", std(ctype="message/cpim"), CPIM[:-1] + ["CPIM over TCP, bob"], "alice@imf.test",
          "bob@imf.test", content_type="message/cpim", inner_body="CPIM over TCP, bob\r\n",
          note="RFC 3862 message/cpim wrapping text/plain")
r.message("uac", std(extra=["P-Asserted-Identity: <sip:alice.smith@corp.imf.test>"]),
          ["asserted identity over TCP"], "alice.smith@corp.imf.test", "bob@imf.test",
          note="P-Asserted-Identity names the account")
r.message("uac", std(), filler("report", 3000), "alice@imf.test", "bob@imf.test",
          note="about 3 KB: spans three TCP segments")
r.message("uas", bob_std(), ["see you tomorrow"], "bob@imf.test", "alice@imf.test")

# ================================================================ 3. planted rule hits, each on a flow of its own
r = Run("tcp-mallory", "tcp", 0, "mallory's TCP connection: a clean MESSAGE, a hit, one more that the drop cuts off")
mal = lambda: std(frm="<sip:mallory@evil.test>")  # noqa: E731
r.message("uac", mal(), ["hi bob, quick question"], "mallory@evil.test", "bob@imf.test")
r.message("uac", ["v: SIP/2.0/{via}", "f: <sip:mallory@evil.test>;tag={tag}", "t: <sip:bob@imf.test>", "i: {cid}",
                  "CSeq: {cseq} MESSAGE", "Max-Forwards: 70", "c: text/plain", "l: [len]"],
          ["FREE   MONEY waiting for you, reply now"], "mallory@evil.test", "bob@imf.test", note="compact headers")
r.message("uac", mal(), ["mallory: this line follows the drop and must not pass"], "mallory@evil.test",
          "bob@imf.test")

r = Run("udp-eve", "udp", 5072, "eve's UDP flow: one 3 KB MESSAGE, a phishing URL across the first fragment boundary")
eve_body = filler("eve", 3000)
r.message("uac", std(frm="<sip:eve@evil.test>", ctype="message/cpim"),
          ["From: Eve <im:eve@evil.test>", "To: Bob <im:bob@imf.test>", "", "Content-Type: text/plain", ""]
          + eve_body[:14] + ["PHISH-PLACEHOLDER"] + eve_body[14:] + ["end of eve's long note"],
          "eve@evil.test", "bob@imf.test", content_type="message/cpim",
          note="IP-fragmented; the URL straddles the end of the first fragment")

PHISH = "please verify your account at http://secure-login.example.test/reset right away"


def fix_eve():
    """Pads the phishing line so that its URL straddles the first fragment's end (1472 bytes of UDP
    payload). The run's headers hold no random part (fixed port, branch and tags, -cid_str), so the
    offset is known here; the recording script checks it in the capture."""
    e, run = plan[-1], runs[-1]
    text = run.uac[0][1]
    hdr, body = text.split("\n\n", 1)
    lines = body.split("\n")
    i = lines.index("PHISH-PLACEHOLDER")
    hdr = (hdr.replace("[transport]", "UDP").replace("[local_ip]", UAC_IP).replace("[local_port]", str(run.uac_port))
           .replace("[call_id]", f"1-imfrec-{run.name}@{UAC_IP}").replace("[call_number]", "1")
           .replace("[len]", "00000"))  # sipp writes [len] 5 wide
    start = len(crlf(hdr.split("\n"))) + 2 + len(crlf(lines[:i]))
    pad = 1472 - 12 - start - PHISH.index("secure-login")  # the cut falls 12 characters into the host name
    if pad < 0:
        raise SystemExit(f"eve's line would start past the fragment boundary ({pad})")
    lines[i] = ("-" * (pad - 1) + " " if pad else "") + PHISH
    run.uac[0] = ("send", text.split("\n\n", 1)[0] + "\n\n" + "\n".join(lines))
    e["body"] = crlf(lines)
    e["inner_body"] = e["body"].split("\r\n\r\n", 2)[2]


fix_eve()

for r in runs:
    r.write()
with open(os.path.join(OUT, "runs.json"), "w") as f:
    json.dump([{"name": r.name, "transport": r.transport, "uac_port": r.uac_port, "note": r.note} for r in runs], f,
              indent=1)
with open(os.path.join(OUT, "plan.json"), "w") as f:
    json.dump({"messages": plan, "others": others}, f, indent=1)
