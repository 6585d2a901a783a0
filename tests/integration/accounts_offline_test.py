#!/usr/bin/python3
"""Accounts, markers, measures and records through `imfd --offline`, on captures built here.

    /usr/bin/python3 accounts_offline_test.py IMFD

One capture holds MQTT connections of accounts in every state (a verified publisher, unknown,
warned, restricted, suspended, lapsed, shut down, a repeat offender). imfd runs with an account
file, an escalation policy, a digest key and a records directory. Checked:
  - which messages reached the output capture, per account (delivered bytes, by a unique id);
  - the counters in the summary JSON;
  - the records: one per measure with the fields a reviewer needs, digests equal to the HMAC of
    the message body under the key, an escalation state change after k violations;
  - the records chain: seq continuity, each prev the SHA-256 of the line before, the head file,
    and the chain continuing across a second run (a restart);
  - a canary string carried in every message body appears in no output but the forwarded traffic.
Debian's scapy only loads under /usr/bin/python3. Ends with `N passed, M failed`.
"""

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import tempfile

import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, TCP, Ether, rdpcap, wrpcap  # noqa: E402  Debian python3-scapy

CANARY = "IMFCANARY" + secrets.token_hex(8)
BROKER = "10.9.0.2"
RULES = """\
pub.unverified  drop  payload  channel=public/# without=verified_publisher category=publishing *
abuse.forbidden drop  payload  category=abuse "forbidden-word"
spam.trial      drop  payload  mode=dry-run category=spam "buy now"
"""
POLICY = """\
escalation on
violations 2
window 10m
expire warned 1d
restricted-rate 10/1m
report-threshold 3
"""
FUTURE = 4102444800  # 2100-01-01
ACCOUNTS = f"""\
vera,verified_publisher,,,
walt,,warned,,
rita,,restricted,,2/1h
sue,,suspended,{FUTURE},
old,,suspended,1000000000,
shut,,shutdown,,
"""

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}")


# ------------------------------------------------------------------------------------------ capture
def mqtt_str(s):
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def mqtt_packet(first, body):
    n, enc = len(body), b""
    while True:
        d = n % 128
        n //= 128
        enc += bytes([d | (0x80 if n else 0)])
        if not n:
            break
    return bytes([first]) + enc + body


def connect(user):
    var = mqtt_str("MQTT") + bytes([4, 0x82]) + (60).to_bytes(2, "big")  # level 4, username + clean
    return mqtt_packet(0x10, var + mqtt_str("cid-" + user) + mqtt_str(user))


def publish(topic, body):
    return mqtt_packet(0x30, mqtt_str(topic) + body)


class Capture:
    def __init__(self):
        self.pkts = []
        self.port = 41000
        self.t = 1767225600.0

    def _add(self, src, dst, sport, dport, flags, seq, ack, data=b""):
        p = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst) / TCP(
            sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=65535) / data
        self.t += 0.001
        p.time = self.t
        self.pkts.append(p)

    def session(self, user, messages):
        """One connection of `user`: handshake, CONNECT, each (topic, body) PUBLISH, FIN."""
        self.port += 1
        cli, sp = "10.9.0.1", self.port
        cs, ss = 1000, 50000
        self._add(cli, BROKER, sp, 1883, "S", cs, 0)
        self._add(BROKER, cli, 1883, sp, "SA", ss, cs + 1)
        cs += 1
        ss += 1
        self._add(cli, BROKER, sp, 1883, "A", cs, ss)
        for data in [connect(user)] + [publish(t, b) for t, b in messages]:
            self._add(cli, BROKER, sp, 1883, "PA", cs, ss, data)
            cs += len(data)
            self._add(BROKER, cli, 1883, sp, "A", ss, cs)
        self._add(cli, BROKER, sp, 1883, "FA", cs, ss)
        self._add(BROKER, cli, 1883, sp, "FA", ss, cs + 1)
        self._add(cli, BROKER, sp, 1883, "A", cs + 1, ss + 1)


def body(msg_id, text=""):
    return f"{CANARY} {msg_id} {text}".encode()


def build_capture(path):
    c = Capture()
    plan = {  # message id -> delivered?
        "vera-1": True, "ursula-1": False, "walt-1": True, "walt-2": True, "rita-1": True, "rita-2": True,
        "rita-3": False, "sue-1": False, "old-1": True, "shut-1": False, "mal-1": False, "mal-2": False,
        "trial-1": True, "plain-1": True,
    }
    c.session("vera", [("public/news", body("vera-1"))])
    c.session("ursula", [("public/news", body("ursula-1"))])
    c.session("walt", [("chat/a", body("walt-1")), ("chat/a", body("walt-2"))])
    for i in (1, 2, 3):  # an excess message resets its connection: one connection each
        c.session("rita", [("chat/a", body(f"rita-{i}"))])
    c.session("sue", [("chat/a", body("sue-1"))])
    c.session("old", [("chat/a", body("old-1"))])
    c.session("shut", [("chat/a", body("shut-1"))])
    c.session("mal", [("chat/a", body("mal-1", "forbidden-word"))])
    c.session("mal", [("chat/a", body("mal-2", "forbidden-word"))])
    c.session("trial", [("chat/a", body("trial-1", "buy now"))])
    c.session("plain", [("chat/a", body("plain-1"))])
    wrpcap(path, c.pkts)
    return plan


# ------------------------------------------------------------------------------------------ checks
def delivered_ids(pcap):
    raw = b"".join(bytes(p[TCP].payload) for p in rdpcap(pcap) if TCP in p)
    return raw


def chain_problems(records_dir, source="dataplane"):
    """The records chain checked independently of imf's own verifier."""
    files = sorted(f for f in os.listdir(records_dir) if f.startswith(source + "-") and f.endswith(".jsonl"))
    problems, prev_hash, seq, lines = [], "0" * 64, 0, []
    for f in files:
        with open(os.path.join(records_dir, f), "rb") as fh:
            for raw in fh.read().split(b"\n"):
                if not raw:
                    continue
                rec = json.loads(raw)
                lines.append(rec)
                if rec["seq"] != seq + 1:
                    problems.append(f"{f}: seq {rec['seq']} after {seq}")
                if rec["prev"] != prev_hash:
                    problems.append(f"{f}: seq {rec['seq']}: prev does not match")
                seq, prev_hash = rec["seq"], hashlib.sha256(raw).hexdigest()
    with open(os.path.join(records_dir, source + ".head")) as fh:
        head_seq, head_hash = fh.read().split()
    if int(head_seq) != seq or head_hash != prev_hash:
        problems.append(f"head {head_seq} {head_hash[:12]} != last {seq} {prev_hash[:12]}")
    return problems, lines


def main():
    imfd = sys.argv[1]
    work = tempfile.mkdtemp(prefix="imf-accounts-")
    pcap = os.path.join(work, "in.pcap")
    plan = build_capture(pcap)
    for name, text in (("rules", RULES), ("policy", POLICY), ("accounts.csv", ACCOUNTS)):
        with open(os.path.join(work, name), "w") as f:
            f.write(text)
    key_path = os.path.join(work, "digest.key")
    records = os.path.join(work, "records")

    def run(tag):
        out = os.path.join(work, tag + ".pcap")
        cmd = [imfd, "--offline", "-r", pcap, "-w", out, "--rules", os.path.join(work, "rules"),
               "--policy", os.path.join(work, "policy"), "--accounts-file", os.path.join(work, "accounts.csv"),
               "--digest-key", key_path, "--records-dir", records, "--appliance-id", "imf-test-1",
               "--events", os.path.join(work, tag + ".events.jsonl"),
               "--summary-json", os.path.join(work, tag + ".summary.json")]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        for stream, data in (("stdout", p.stdout), ("stderr", p.stderr)):
            with open(os.path.join(work, f"{tag}.{stream}.txt"), "wb") as f:
                f.write(data)
        check(p.returncode == 0, f"{tag}: imfd exits 0 (stderr: {p.stderr.decode()[-300:]!r})")
        return out

    out = run("run1")
    raw = delivered_ids(out)
    for msg_id, want in sorted(plan.items()):
        got = f"{CANARY} {msg_id} ".encode() in raw
        check(got == want, f"message {msg_id} {'delivered' if want else 'not delivered'}")

    with open(os.path.join(work, "run1.summary.json")) as f:
        counters = json.load(f)["counters"]
    want_counters = {"account_rate_drops": 1, "account_connects_refused": 2, "account_warned_messages": 2,
                     "rule_would_drops": 1, "account_measures_lapsed": 1, "rule_drops": 3, "events_lost": 0}
    for k, v in want_counters.items():
        check(counters.get(k) == v, f"counter {k} = {v} (got {counters.get(k)})")

    problems, recs = chain_problems(records)
    check(not problems, f"records chain intact after run 1 ({problems[:3]})")
    check(all(r["appliance"] == "imf-test-1" and r["source"] == "dataplane" for r in recs),
          "every record names the appliance and its source")

    def find(account, action):
        return [r for r in recs if r.get("account") == account and r.get("action") == action]

    key = bytes.fromhex(open(key_path).read().strip())

    def digest_ok(r, msg_id, text=""):
        b = body(msg_id, text)[: r["digest_bytes"]]
        return r["digest"] == "hmac-sha256:" + hmac.new(key, b, hashlib.sha256).hexdigest()

    w = find("walt", "warned")
    check(len(w) == 2 and all(r["state_before"] == r["state_after"] == "warned" for r in w),
          "warned account: a record per message, state warned before and after")
    check(len(w) == 2 and digest_ok(w[0], "walt-1") and digest_ok(w[1], "walt-2") and w[0]["digest_bytes"] ==
          len(body("walt-1")), "warned records carry the HMAC of the whole body")
    rl = find("rita", "rate_limited")
    check(len(rl) == 1 and rl[0]["state_before"] == "restricted" and digest_ok(rl[0], "rita-3"),
          "restricted account: the excess message recorded with its digest")
    su = find("sue", "suspended")
    check(len(su) == 1 and su[0]["digest"] is None and su[0]["until"] == FUTURE,
          "suspended account: the refused connection recorded with its end (no message, no digest)")
    exp = [r for r in recs if r.get("account") == "old" and r.get("kind") == "state_change"]
    check(len(exp) == 1 and exp[0]["cause"] == "expired" and exp[0]["state_before"] == "suspended" and
          exp[0]["state_after"] == "none", "a lapsed suspension is a state change to none")
    check(len(find("shut", "shutdown")) == 1, "shut-down account: its connection reset and recorded")
    pub = find("ursula", "drop")
    check(len(pub) == 1 and pub[0]["rule"] == "pub.unverified" and pub[0]["category"] == "publishing" and
          pub[0]["rules_version"] == 0 and pub[0]["flow"]["dport"] == 1883 and digest_ok(pub[0], "ursula-1"),
          "marker-gated rule: the record names rule, category, version, flow, and the digest")
    check(not find("vera", "drop"), "the verified publisher's public post passed unrecorded")
    tr = find("trial", "would_drop")
    check(len(tr) == 1 and tr[0]["rule"] == "spam.trial", "dry-run rule: would_drop recorded")
    esc = [r for r in recs if r.get("account") == "mal" and r.get("kind") == "state_change"]
    check(len(esc) == 1 and esc[0]["cause"] == "violations" and esc[0]["state_before"] == "none" and
          esc[0]["state_after"] == "warned" and esc[0]["until"] > 0 and esc[0]["rule"] == "abuse.forbidden",
          f"two violations escalate the account to warned with an expiry ({esc})")
    check(not [r for r in recs if r.get("account") == "plain"], "a clean account leaves no record")

    # A restart: the chain continues from where the first run ended.
    n1 = len(recs)
    run("run2")
    problems, recs = chain_problems(records)
    check(not problems and len(recs) > n1 and recs[n1]["seq"] == n1 + 1,
          f"a second run continues the chain ({problems[:3]})")

    # Privacy: the canary of every message body appears nowhere but in the forwarded traffic.
    leaks = []
    for root, _, files in os.walk(work):
        for f in files:
            path = os.path.join(root, f)
            if path.endswith(".pcap"):
                continue
            with open(path, "rb") as fh:
                if CANARY.encode() in fh.read():
                    leaks.append(path)
    check(not leaks, f"canary in no record, event, summary, log or key file ({leaks})")

    print(f"{passed} passed, {failed} failed")
    if failed == 0:
        subprocess.run(["rm", "-rf", work])
    else:
        print(f"kept {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
