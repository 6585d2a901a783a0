#!/usr/bin/python3
"""Accounts, measures, records, reports and privacy end to end, live, with real MQTT peers.

    /usr/bin/python3 accounts_live_test.py IMFD IMF_CONTROL IMFCTL SOURCE_DIR [--keep]

SOURCE_DIR is the source tree (accepted like the other live tests; the rules, the policy and the
configuration are written by the test itself).

Topology (namespace names carry the pid of this test, so parallel runs do not clash):

    imfacc-c<pid>                imfacc-m<pid>                imfacc-b<pid>
    client 10.81.0.1/24 c0 <-> m0 [imfd port 0]
                                  [imfd port 1] m1 <-> b0   broker 10.81.0.2/24 (mosquitto)
                                                            + mosquitto_sub -t '#' -v (watcher)

imfd runs on DPDK net_af_packet ports over the veths (--no-pci --no-huge), with its agent
socket, the control process's state directory, its own records chain, an escalation policy,
the digest key and an appliance id. imf-control (root namespace; its sockets are files) uses the
same state directory, dataplane socket, records directories, policy and key. Rules are loaded
with `imfctl rules load`; accounts, reports and records are driven with imfctl. Publishers are
mosquitto_pub in the client namespace (QoS 1, one connection each: exit 0 means the broker
acknowledged the message); the watcher subscribes on the broker side, so what it prints is what
the broker accepted. Every message body carries a per-run canary and a message id.

Cases: marker-scoped rule (with the record's digest checked against `imfctl records digest`),
dry-run, warned, restricted (token bucket), suspended and lifted, shut-down live connection,
escalation by the dataplane followed by the control store, reports escalating and resolving,
restarts of imf-control and of imfd (accounts resynced, chains continued), tampering detected
by `records verify`, records query (and pseudonymized), and a canary scan of everything the
appliance wrote or printed.

Needs root. Prints `ok   what` / `FAIL what`, ends with `N passed, M failed`; exit 1 if anything
failed, 77 (meson: skipped) when not root or a tool is missing. --keep keeps the temporary
directory (logs, state) even when everything passed.
"""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

from netns_tools import Wire, nsrun, ping, stop_proc, tail, wait_for  # this directory

PID = os.getpid()
NS_C = f"imfacc-c{PID}"
NS_M = f"imfacc-m{PID}"
NS_B = f"imfacc-b{PID}"
CLIENT_IP = "10.81.0.1"
BROKER_IP = "10.81.0.2"
MQTT_PORT = 1883
AF_PACKET_ARGS = "framecnt=4096,blocksz=4096,framesz=2048"
APPLIANCE = "live-1"
PUB_TIMEOUT = 15

CANARY = "IMFCANARY" + secrets.token_hex(8)

RULES = """\
# rules of the live accounts test
pub.unverified  drop  payload  channel=public/# without=verified_publisher category=publishing *
abuse.forbidden drop  payload  category=abuse "forbidden-word"
spam.trial      drop  payload  mode=dry-run category=spam "buy now"
"""
FALLBACK_RULES = """\
# imfd's --rules fallback until imf-control's first version is active: never matches
fallback.none   alert payload  "never-matches-7a1c3e9f5b"
"""
POLICY = """\
escalation on
violations 2
window 10m
expire warned 1d
restricted-rate 3/1h
report-threshold 2
"""

# One ICMP echo over a raw socket (iputils ping is not installed on the test machines).
passed, failed = [], []


def log(msg):
    print(f"[accounts-live {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check(cond, what, detail=""):
    if cond:
        passed.append(what)
        print(f"ok   {what}", flush=True)
    else:
        failed.append(what)
        print(f"FAIL {what}" + (f"\n     {detail}" if detail else ""), flush=True)
    return cond


def body_of(msg_id, text=""):
    return f"{CANARY} {msg_id} {text}".rstrip()


class Live:
    def __init__(self, imfd, control, imfctl, srcdir, keep):
        self.imfd, self.control_bin, self.imfctl, self.srcdir, self.keep = imfd, control, imfctl, srcdir, keep
        self.tmp = tempfile.mkdtemp(prefix=f"imfacc{PID}-")
        self.state = os.path.join(self.tmp, "state")
        self.dp_records = os.path.join(self.state, "dataplane-records")
        self.ctl_records = os.path.join(self.state, "records")
        self.key = os.path.join(self.state, "digest.key")
        self.csock = os.path.join(self.tmp, "control.sock")
        self.dsock = os.path.join(self.tmp, "dataplane.sock")
        self.conf = os.path.join(self.tmp, "control.conf")
        self.policy = os.path.join(self.tmp, "policy.conf")
        self.rules = os.path.join(self.tmp, "live.rules")
        self.fallback = os.path.join(self.tmp, "fallback.rules")
        self.events = os.path.join(self.tmp, "imfd-events.jsonl")
        self.summary = os.path.join(self.tmp, "imfd-summary.json")
        self.sub_out = os.path.join(self.tmp, "watcher.out")  # the traffic itself: not scanned
        self.ctl_log = os.path.join(self.tmp, "imfctl-output.log")
        self.metrics_dump = os.path.join(self.tmp, "metrics.txt")
        self.procs = []  # (name, Popen, out, err)
        self.wire = Wire(NS_C, NS_M, NS_B, CLIENT_IP, BROKER_IP)
        self.imfd_proc = None
        self.control_proc = None
        self.watcher = None
        self.broker = None
        self.n_pub = 0
        self.imfd_starts = 0
        self.control_starts = 0

    # ------------------------------------------------------------------ processes
    def spawn(self, name, ns, cmd, stdout_path=None, append=False):
        mode = "ab" if append else "wb"
        out = open(stdout_path or os.path.join(self.tmp, f"{name}.stdout"), mode)
        err = open(os.path.join(self.tmp, f"{name}.stderr"), mode)
        full = (["ip", "netns", "exec", ns] if ns else []) + cmd
        p = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.procs.append((name, p, out, err))
        return p

    # ------------------------------------------------------------------ network
    def setup_net(self):
        self.wire.setup()

    def ping(self):
        return ping(NS_C, BROKER_IP)

    def teardown(self):
        for name, p, out, err in reversed(self.procs):
            if p.poll() is None:
                stop_proc(p, signal.SIGTERM, timeout=5)
            out.close()
            err.close()
        self.wire.teardown()
        shutil.rmtree(f"/var/run/dpdk/imfacc{PID}", ignore_errors=True)

    # ------------------------------------------------------------------ broker, watcher
    def start_broker(self):
        conf = os.path.join(self.tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {MQTT_PORT} {BROKER_IP}\nallow_anonymous true\npersistence false\nuser root\n"
                    "log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
                    "connection_messages true\n")
        # stdbuf: mosquitto's log to stdout is block-buffered otherwise
        self.broker = self.spawn("mosquitto", NS_B, ["stdbuf", "-oL", "mosquitto", "-c", conf])
        ok = wait_for(lambda: BROKER_IP in nsrun(NS_B, ["ss", "-Hltn", f"sport = :{MQTT_PORT}"],
                                                 check_rc=False).stdout, 10)
        if not ok:
            raise RuntimeError("mosquitto does not listen\n" + tail(os.path.join(self.tmp, "mosquitto.stdout")))

    def broker_log(self):
        try:
            with open(os.path.join(self.tmp, "mosquitto.stdout"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def start_watcher(self):
        self.watcher = self.spawn("watcher", NS_B, ["mosquitto_sub", "-h", BROKER_IP, "-p", str(MQTT_PORT),
                                                    "-V", "mqttv311", "-u", "watcher", "-i", f"watcher-{PID}",
                                                    "-t", "#", "-v"], stdout_path=self.sub_out)
        # Ready once a message published (on the broker side, not through imfd) shows up.
        for n in range(1, 30):
            probe = f"probe-local-{n}"
            nsrun(NS_B, ["mosquitto_pub", "-h", BROKER_IP, "-V", "mqttv311", "-q", "1", "-u", "local",
                         "-t", "ready/local", "-m", probe], check_rc=False, timeout=5)
            if wait_for(lambda: f"ready/local {probe}\n" in self.sub_text(), 1.0):
                return
            if self.watcher.poll() is not None:
                break
        raise RuntimeError("watcher never received a local probe: " + tail(os.path.join(self.tmp, "watcher.stderr")))

    def sub_text(self):
        try:
            with open(self.sub_out, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # ------------------------------------------------------------------ imf-control, imfd
    def write_files(self):
        with open(self.conf, "w") as f:
            f.write(f"socket = {self.csock}\nstate_dir = {self.state}\ndataplane_socket = {self.dsock}\n"
                    "metrics_listen = 127.0.0.1:0\nresync_interval = 1\n"
                    f"appliance_id = {APPLIANCE}\npolicy_file = {self.policy}\ndigest_key_file = {self.key}\n"
                    f"records_dir = {self.ctl_records}\ndataplane_records_dir = {self.dp_records}\n")
        for path, text in ((self.policy, POLICY), (self.rules, RULES), (self.fallback, FALLBACK_RULES)):
            with open(path, "w") as f:
                f.write(text)

    def start_control(self):
        self.control_starts += 1
        self.control_proc = self.spawn("imf-control", None, [self.control_bin, "--config", self.conf],
                                       append=self.control_starts > 1)
        ok = wait_for(lambda: self.control_proc.poll() is not None or
                      self.ctl("health", record=False)[0] == 0, 15)
        if not ok or self.control_proc.poll() is not None:
            raise RuntimeError("imf-control did not come up: " + tail(os.path.join(self.tmp, "imf-control.stderr")))

    def imfd_cmd(self):
        return [self.imfd, "--no-pci", "--no-huge", "--no-shconf", "-m", "512", "--file-prefix", f"imfacc{PID}",
                "-l", "0,1", "--no-telemetry",
                "--vdev", f"net_af_packet0,iface=m0,{AF_PACKET_ARGS}",
                "--vdev", f"net_af_packet1,iface=m1,{AF_PACKET_ARGS}",
                "--", "--rules", self.fallback, "--state-dir", self.state, "--agent-socket", self.dsock,
                "--records-dir", self.dp_records, "--policy", self.policy, "--digest-key", self.key,
                "--appliance-id", APPLIANCE, "--events", self.events, "--summary-json", self.summary,
                "--accounts", "65536", "--flows", "4096"]

    def start_imfd(self):
        self.imfd_starts += 1
        if os.path.exists(self.dsock):
            os.unlink(self.dsock)
        self.imfd_proc = self.spawn("imfd", NS_M, self.imfd_cmd(), append=self.imfd_starts > 1)
        ok = wait_for(lambda: self.imfd_proc.poll() is not None or os.path.exists(self.dsock), 40)
        if not ok or self.imfd_proc.poll() is not None:
            raise RuntimeError(f"imfd did not come up (rc {self.imfd_proc.poll()}): "
                               + tail(os.path.join(self.tmp, "imfd.stderr")))
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.imfd_proc.poll() is not None:
                raise RuntimeError(f"imfd exited with {self.imfd_proc.returncode}")
            if self.ping():
                return
            time.sleep(0.2)
        raise RuntimeError("no forwarding through imfd within 30 s")

    def stop_imfd(self):
        rc = stop_proc(self.imfd_proc, signal.SIGTERM, timeout=20)
        self.imfd_proc = None
        return rc

    def ctl(self, *args, as_json=False, record=True, timeout=60):
        """Runs imfctl; every output is appended to the imfctl log (scanned for the canary)."""
        cmd = [self.imfctl, "--socket", self.csock, "--timeout", "30"] + (["--json"] if as_json else []) + list(args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        if record:
            with open(self.ctl_log, "a") as f:
                f.write(f"$ imfctl {' '.join(args)}\n[rc {p.returncode}]\n{p.stdout}{p.stderr}\n")
        if as_json:
            try:
                obj = json.loads(p.stdout) if p.stdout.strip() else None
            except ValueError:
                obj = None
            return p.returncode, obj, p.stderr
        return p.returncode, p.stdout, p.stderr

    def counters(self):
        rc, res, err = self.ctl("stats", as_json=True)
        if rc != 0 or not isinstance(res, dict):
            raise RuntimeError(f"imfctl stats failed ({rc}): {err}")
        return res.get("counters", {})

    def show(self, account):
        _, res, _ = self.ctl("account", "show", account, as_json=True)
        return res if isinstance(res, dict) else {}

    # ------------------------------------------------------------------ traffic
    def publish(self, user, topic, msg_id, text=""):
        """One mosquitto_pub connection (QoS 1) from the client side. Returns (rc, body)."""
        self.n_pub += 1
        body = body_of(msg_id, text)
        cmd = ["ip", "netns", "exec", NS_C, "mosquitto_pub", "-h", BROKER_IP, "-p", str(MQTT_PORT), "-V", "mqttv311",
               "-q", "1", "-u", user, "-i", f"{user}-{self.n_pub}", "-t", topic, "-m", body]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=PUB_TIMEOUT)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        return rc, body

    def wait_delivered(self, msg_id, timeout=5):
        pat = re.compile(rf" {re.escape(CANARY)} {re.escape(msg_id)}(\s|$)")
        return bool(wait_for(lambda: pat.search(self.sub_text()), timeout))

    def is_delivered(self, msg_id):
        return bool(re.search(rf" {re.escape(CANARY)} {re.escape(msg_id)}(\s|$)", self.sub_text()))

    def barrier(self):
        """A clean message through imfd, waited for: whatever was sent before has been judged and,
        if it passed, printed by the watcher."""
        self.n_pub += 1
        mid = f"barrier-{self.n_pub}"
        rc, _ = self.publish("alice", "chat/barrier", mid)
        if rc != 0 or not self.wait_delivered(mid, 10):
            raise AssertionError(f"a clean barrier message was not delivered (mosquitto_pub rc {rc})")

    # ------------------------------------------------------------------ records
    @staticmethod
    def read_chain(directory, source):
        recs = []
        try:
            names = sorted(n for n in os.listdir(directory) if n.startswith(source + "-") and n.endswith(".jsonl"))
        except OSError:
            return recs
        for n in names:
            with open(os.path.join(directory, n), "rb") as f:
                for raw in f.read().split(b"\n"):
                    if raw.strip():
                        try:
                            recs.append(json.loads(raw))
                        except ValueError:
                            recs.append({"unparsable": raw.decode(errors="replace")})
        return recs

    def dp_recs(self):
        return self.read_chain(self.dp_records, "dataplane")

    def ctl_recs(self):
        return self.read_chain(self.ctl_records, "control")

    def wait_dp(self, pred, count=1, timeout=5):
        """Waits until at least `count` dataplane records satisfy pred; returns them."""
        got = wait_for(lambda: (lambda m: m if len(m) >= count else None)([r for r in self.dp_recs() if pred(r)]),
                       timeout)
        return got or [r for r in self.dp_recs() if pred(r)]


def acct_is(account, **kv):
    def pred(r):
        return r.get("account") == account and all(r.get(k) == v for k, v in kv.items())
    return pred


# ---------------------------------------------------------------------- cases
def case_rules_loaded(t):
    rc, res, err = t.ctl("rules", "load", t.rules, as_json=True)
    check(rc == 0 and res and res.get("version") == 1 and res.get("rules") == 3
          and res.get("dataplane", {}).get("installed") is True,
          "rules load: version 1 (3 rules) installed in the running imfd", f"{rc} {res} {err}")
    rc, res, err = t.ctl("stats", as_json=True)
    ids = sorted(r.get("id") for r in (res or {}).get("rules", []))
    check(rc == 0 and res.get("version") == 1 and ids == ["abuse.forbidden", "pub.unverified", "spam.trial"],
          "imfd judges with version 1 and its three rules", f"{rc} {ids} {err}")


def case_markers(t):
    c0 = t.counters()
    rc, out, err = t.ctl("account", "set", "vera", "--add-marker", "verified_publisher")
    check(rc == 0 and "verified_publisher" in out and "dataplane: applied" in out,
          "account set vera --add-marker verified_publisher: stored and applied", f"{rc} {out!r} {err!r}")
    rc, _ = t.publish("vera", "public/news", "vera-1")
    check(rc == 0 and t.wait_delivered("vera-1"), "marked publisher's public/news post delivered", f"rc {rc}")
    rc, body = t.publish("ursula", "public/news", "ursula-1")
    t.barrier()
    check(rc not in (0, "timeout") and not t.is_delivered("ursula-1"),
          "unmarked account's public/news post not delivered, publisher reset", f"rc {rc}")
    drops = t.wait_dp(acct_is("ursula", action="drop"))
    ok = len(drops) == 1
    r = drops[0] if drops else {}
    check(ok and r.get("rule") == "pub.unverified" and r.get("category") == "publishing"
          and r.get("rules_version") == 1 and r.get("channel") == "public/news" and r.get("direction") == "to_server"
          and r.get("appliance") == APPLIANCE and r.get("source") == "dataplane"
          and (r.get("flow") or {}).get("dport") == MQTT_PORT and (r.get("flow") or {}).get("src") == CLIENT_IP,
          "drop record: rule pub.unverified, category publishing, version 1, topic, flow, appliance", f"{drops}")
    bfile = os.path.join(t.tmp, "ursula-1.body")
    with open(bfile, "w") as f:
        f.write(body)
    rc, out, err = t.ctl("records", "digest", bfile)
    want = out.strip()
    check(rc == 0 and re.fullmatch(r"[0-9a-f]{64}", want) and r.get("digest") == "hmac-sha256:" + want
          and r.get("digest_bytes") == len(body.encode()),
          "drop record's digest equals `imfctl records digest` of the message body",
          f"rc {rc} imfctl {want!r} record {r.get('digest')} bytes {r.get('digest_bytes')}/{len(body)}")
    check(not [x for x in t.dp_recs() if x.get("account") == "vera"], "the marked publisher's post left no record")
    mk = [x for x in t.ctl_recs() if x.get("kind") == "markers" and x.get("account") == "vera"]
    check(len(mk) == 1 and "verified_publisher" in json.dumps(mk[0].get("markers_after"))
          and mk[0].get("cause") == "operator" and mk[0].get("peer_uid") == 0,
          "control chain: markers record for vera (operator, uid 0)", f"{mk}")
    c1 = t.counters()
    check(c1.get("rule_drops", 0) - c0.get("rule_drops", 0) == 1
          and c1.get("resets_sent", 0) - c0.get("resets_sent", 0) >= 2,
          "counters: rule_drops +1, resets_sent +2 or more",
          f"rule_drops {c0.get('rule_drops')}->{c1.get('rule_drops')} resets {c0.get('resets_sent')}->"
          f"{c1.get('resets_sent')}")


def case_dry_run(t):
    c0 = t.counters()
    rc, _ = t.publish("tina", "chat/a", "tina-1", "buy now")
    check(rc == 0 and t.wait_delivered("tina-1"), "dry-run rule: the 'buy now' message delivered", f"rc {rc}")
    wd = t.wait_dp(acct_is("tina", action="would_drop"))
    check(len(wd) == 1 and wd[0].get("rule") == "spam.trial" and wd[0].get("category") == "spam"
          and wd[0].get("digest", "").startswith("hmac-sha256:"),
          "a would_drop record of spam.trial (category spam, with digest)", f"{wd}")
    check(not t.dp_recs() or not [x for x in t.dp_recs() if x.get("account") == "tina" and x.get("action") == "drop"],
          "no drop record for the dry-run match")
    c1 = t.counters()
    check(c1.get("rule_would_drops", 0) - c0.get("rule_would_drops", 0) == 1
          and c1.get("rule_drops", 0) == c0.get("rule_drops", 0),
          "counters: rule_would_drops +1, rule_drops unchanged",
          f"would {c0.get('rule_would_drops')}->{c1.get('rule_would_drops')}")


def case_warned(t):
    c0 = t.counters()
    rc, out, err = t.ctl("account", "set", "walt", "--state", "warned", "--reason", "test")
    check(rc == 0 and "warned" in out and "dataplane: applied" in out,
          "account set walt --state warned: stored and applied", f"{rc} {out!r} {err!r}")
    rcs = [t.publish("walt", "chat/a", f"walt-{i}")[0] for i in (1, 2)]
    check(rcs == [0, 0] and t.wait_delivered("walt-1") and t.wait_delivered("walt-2"),
          "warned account's 2 messages delivered", f"rcs {rcs}")
    w = t.wait_dp(acct_is("walt", action="warned"), count=2)
    check(len(w) == 2 and all(x.get("state_before") == "warned" and x.get("state_after") == "warned"
                              and str(x.get("digest", "")).startswith("hmac-sha256:") for x in w),
          "2 warned records (state warned, with digests)", f"{w}")
    if w:
        bfile = os.path.join(t.tmp, "walt-1.body")
        with open(bfile, "w") as f:
            f.write(body_of("walt-1"))
        rc, out, _ = t.ctl("records", "digest", bfile)
        check(w[0].get("digest") == "hmac-sha256:" + out.strip(),
              "walt's first warned record digests his first message")
    sc = [x for x in t.ctl_recs() if x.get("kind") == "state_change" and x.get("account") == "walt"]
    check(len(sc) == 1 and sc[0].get("cause") == "operator" and sc[0].get("state_before") == "none"
          and sc[0].get("state_after") == "warned" and sc[0].get("reason") == "test" and sc[0].get("until"),
          "control chain: state_change walt none->warned, cause operator, reason, until", f"{sc}")
    c1 = t.counters()
    check(c1.get("account_warned_messages", 0) - c0.get("account_warned_messages", 0) == 2,
          "counters: account_warned_messages +2")


def case_restricted(t):
    c0 = t.counters()
    rc, out, err = t.ctl("account", "set", "rita", "--state", "restricted", "--rate", "2/1h", "--reason", "flood")
    check(rc == 0 and "restricted" in out and "dataplane: applied" in out,
          "account set rita --state restricted --rate 2/1h: stored and applied", f"{rc} {out!r} {err!r}")
    rcs = [t.publish("rita", "chat/a", f"rita-{i}")[0] for i in range(1, 5)]
    t.barrier()
    got = [t.is_delivered(f"rita-{i}") for i in range(1, 5)]
    check(got == [True, True, False, False] and rcs[:2] == [0, 0] and all(r not in (0, "timeout") for r in rcs[2:]),
          "restricted 2/1h: of 4 messages the first 2 delivered, the rest reset", f"delivered {got} rcs {rcs}")
    rl = t.wait_dp(acct_is("rita", action="rate_limited"), count=2)
    check(len(rl) == 2 and all(x.get("state_before") == "restricted" for x in rl),
          "2 rate_limited records for rita", f"{rl}")
    c1 = t.counters()
    check(c1.get("account_rate_drops", 0) - c0.get("account_rate_drops", 0) == 2, "counters: account_rate_drops +2")


def case_suspended(t):
    c0 = t.counters()
    rc, out, err = t.ctl("account", "set", "sue", "--state", "suspended", "--for", "1h", "--reason", "spam wave")
    check(rc == 0 and "suspended until" in out and "dataplane: applied" in out,
          "account set sue --state suspended --for 1h: stored and applied", f"{rc} {out!r} {err!r}")
    rc, _ = t.publish("sue", "chat/a", "sue-1")
    t.barrier()
    check(rc not in (0, "timeout") and not t.is_delivered("sue-1"), "suspended account's publish fails, not delivered",
          f"rc {rc}")
    s = t.wait_dp(acct_is("sue", action="suspended"))
    check(len(s) >= 1 and s[0].get("state_before") == "suspended" and s[0].get("state_after") == "suspended"
          and s[0].get("digest") is None and s[0].get("channel") == "",
          "a suspended record for sue (refused connection: no topic, no digest)", f"{s}")
    # docs/records.md: `until` is "the account's state around the measure; unix seconds, 0 = indefinite".
    check(len(s) >= 1 and s[0].get("until", 0) > time.time() + 3000,
          "the suspended record's until is sue's expiry (now + 1h), not 0 = indefinite",
          f"until {s[0].get('until') if s else None}")
    c1 = t.counters()
    check(c1.get("account_connects_refused", 0) - c0.get("account_connects_refused", 0) >= 1,
          "counters: account_connects_refused +1")
    rc, out, err = t.ctl("account", "set", "sue", "--state", "none", "--reason", "appeal granted")
    check(rc == 0 and "dataplane: applied" in out, "account set sue --state none", f"{rc} {out!r} {err!r}")
    rc, _ = t.publish("sue", "chat/a", "sue-2")
    check(rc == 0 and t.wait_delivered("sue-2"), "after lifting, sue's next message is delivered", f"rc {rc}")
    sc = [x for x in t.ctl_recs() if x.get("kind") == "state_change" and x.get("account") == "sue"]
    check([(x.get("state_before"), x.get("state_after")) for x in sc] == [("none", "suspended"), ("suspended", "none")],
          "control chain: sue none->suspended->none", f"{sc}")


def case_shutdown(t):
    def client_conns():
        """Client ports of connections from the client side that the broker holds established."""
        p = nsrun(NS_B, ["ss", "-Htn", "state", "established", f"( sport = :{MQTT_PORT} )"], check_rc=False)
        return {int(m.group(1)) for m in re.finditer(re.escape(CLIENT_IP) + r":(\d+)", p.stdout)}

    c0 = t.counters()
    # keepalive 5 s (mosquitto's minimum): an idle connection sends a PINGREQ every 5 s.
    sub = t.spawn("shut-sub", NS_C, ["mosquitto_sub", "-h", BROKER_IP, "-p", str(MQTT_PORT), "-V", "mqttv311",
                                     "-u", "shut", "-i", "shut-sub", "-k", "5", "-t", "shut/#", "-v"])
    conn_re = re.compile(r"New client connected from [0-9.]+:(\d+) as shut-sub \(")
    m = wait_for(lambda: conn_re.search(t.broker_log()), 10)
    if not check(bool(m) and int(m.group(1)) in client_conns(),
                 "long-lived connection of account shut (keepalive 5 s) established through imfd",
                 tail(os.path.join(t.tmp, "mosquitto.stdout"), 5)):
        stop_proc(sub, signal.SIGTERM)
        return
    port = int(m.group(1))
    log_len = len(t.broker_log())
    rc, out, err = t.ctl("account", "set", "shut", "--state", "shutdown", "--reason", "tos violation")
    t0 = time.monotonic()
    check(rc == 0 and "shutdown" in out and "dataplane: applied" in out,
          "account set shut --state shutdown: stored and applied", f"{rc} {out!r} {err!r}")
    gone = wait_for(lambda: port not in client_conns(), 16)
    dt = time.monotonic() - t0
    check(gone, f"the idle live connection is reset at its next packet: the broker dropped it after {dt:.1f}s "
          "(keepalive 5 s)", tail(os.path.join(t.tmp, "mosquitto.stdout"), 8))
    check(re.search(r"(Client shut-sub closed its connection|Socket error on client shut-sub|"
                    r"Client shut-sub disconnected)", t.broker_log()[log_len:]),
          "the broker logged the end of shut-sub's connection")
    sd = t.wait_dp(lambda r: r.get("account") == "shut" and r.get("action") == "shutdown"
                   and (r.get("flow") or {}).get("sport") == port)
    check(len(sd) == 1 and sd[0].get("state_after") == "shutdown" and sd[0].get("digest") is None,
          f"a shutdown record for shut naming the live connection (client port {port})", f"{sd[:2]}")
    c1 = t.counters()
    check(c1.get("account_measure_resets", 0) > c0.get("account_measure_resets", 0)
          and c1.get("resets_sent", 0) >= c0.get("resets_sent", 0) + 2,
          "counters: account_measure_resets and resets_sent grew",
          f"measure_resets {c0.get('account_measure_resets')}->{c1.get('account_measure_resets')} resets "
          f"{c0.get('resets_sent')}->{c1.get('resets_sent')}")
    stop_proc(sub, signal.SIGTERM, timeout=5)
    rc, _ = t.publish("shut", "chat/a", "shut-1")
    t.barrier()
    check(rc not in (0, "timeout") and not t.is_delivered("shut-1"), "a new connection of shut is refused", f"rc {rc}")


def case_escalation(t):
    c0 = t.counters()
    rcs = [t.publish("mal", "chat/a", f"mal-{i}", "forbidden-word")[0] for i in (1, 2)]
    t.barrier()
    check(all(r not in (0, "timeout") for r in rcs) and not t.is_delivered("mal-1") and not t.is_delivered("mal-2"),
          "both forbidden messages not delivered, publishers reset", f"rcs {rcs}")
    drops = t.wait_dp(acct_is("mal", action="drop", rule="abuse.forbidden"), count=2)
    check(len(drops) == 2 and all(x.get("category") == "abuse" for x in drops),
          "2 drop records of abuse.forbidden (category abuse)", f"{drops}")
    t0 = time.monotonic()
    esc = t.wait_dp(lambda r: r.get("account") == "mal" and r.get("kind") == "state_change"
                    and r.get("cause") == "violations", timeout=3)
    check(len(esc) == 1 and esc[0].get("state_before") == "none" and esc[0].get("state_after") == "warned"
          and esc[0].get("until", 0) > time.time() + 23 * 3600 and esc[0].get("rule") == "abuse.forbidden",
          f"dataplane state_change mal none->warned (cause violations, expiry ~1d) within "
          f"{time.monotonic() - t0:.1f}s", f"{esc}")
    sh = wait_for(lambda: (lambda s: s if s.get("state") == "warned" else None)(t.show("mal")), 3)
    check(bool(sh) and sh.get("state") == "warned" and (sh.get("dataplane") or {}).get("state") == "warned",
          "account show mal (control store, following the chain): warned; dataplane row warned", f"{sh}")
    rc, st, _ = t.ctl("status", as_json=True)
    dpr = (((st or {}).get("control") or {}).get("records") or {}).get("dataplane") or {}
    check(dpr.get("applied") == 1 and dpr.get("stale") == 0 and dpr.get("bad") == 0,
          "status: imf-control applied exactly 1 state change from imfd's chain (none stale or bad)", f"{dpr}")
    check(not [r for r in t.ctl_recs() if r.get("account") == "mal"],
          "imfd's escalation is not recorded a second time in the control chain")
    rc, _ = t.publish("mal", "chat/a", "mal-3")
    w = t.wait_dp(acct_is("mal", action="warned"))
    check(rc == 0 and t.wait_delivered("mal-3") and len(w) == 1,
          "mal's next clean message delivered and recorded as warned", f"rc {rc} {w}")
    c1 = t.counters()
    check(c1.get("rule_drops", 0) - c0.get("rule_drops", 0) == 2, "counters: rule_drops +2")


def case_reports(t):
    rc, out, err = t.ctl("report", "add", "rob", "--reason", "threats in group chat")
    m1 = re.search(r"report (\d+) opened for rob \(1 open\)", out)
    check(rc == 0 and m1 and "escalated" not in out, "report add rob: opened, 1 open, no escalation yet",
          f"{rc} {out!r} {err!r}")
    rc, out, err = t.ctl("report", "add", "rob", "--reason", "insults in chat/a")
    m2 = re.search(r"report (\d+) opened for rob \(2 open\)", out)
    check(rc == 0 and m2 and "escalated: none -> warned" in out,
          "second report: threshold 2 reached, rob escalated none -> warned", f"{rc} {out!r} {err!r}")
    sh = t.show("rob")
    check(sh.get("state") == "warned" and sh.get("open_reports") == 2
          and (sh.get("dataplane") or {}).get("state") == "warned",
          "account show rob: warned, 2 open reports, dataplane row warned", f"{sh}")
    rc, res, err = t.ctl("report", "list", "--account", "rob", as_json=True)
    reps = (res or {}).get("reports", [])
    check(rc == 0 and len(reps) == 2 and all(r.get("status") == "open" for r in reps),
          "report list --account rob: both open", f"{res}")
    rid = m1.group(1) if m1 else "1"
    rc, out, err = t.ctl("report", "resolve", rid, "--note", "handled")
    check(rc == 0 and f"report {rid}" in out, f"report resolve {rid}", f"{rc} {out!r} {err!r}")
    rc, res, err = t.ctl("report", "list", "--open", as_json=True)
    reps = (res or {}).get("reports", [])
    check(rc == 0 and [r.get("account") for r in reps] == ["rob"] and str(reps[0].get("report")) != rid,
          "report list --open: only the other report is open", f"{res}")
    recs = t.ctl_recs()
    kinds = [(x.get("kind"), x.get("cause")) for x in recs if x.get("account") == "rob"]
    check(kinds.count(("report_opened", None)) == 2 and kinds.count(("report_resolved", None)) == 1
          and ("state_change", "reports") in kinds,
          "control chain: 2 report_opened, 1 report_resolved, state_change cause reports", f"{kinds}")
    rc, out, err = t.ctl("report", "resolve", rid)
    check(rc == 1 and "already resolved" in err, "resolving it again fails: already resolved", f"{rc} {err!r}")


def case_persistence(t):
    want = {"walt": "warned", "rita": "restricted", "mal": "warned", "rob": "warned", "sue": "none",
            "shut": "shutdown"}
    rc = stop_proc(t.control_proc, signal.SIGTERM, timeout=15)
    check(rc == 0 and not os.path.exists(t.csock), "imf-control stops on SIGTERM (exit 0, socket removed)", f"rc {rc}")
    t.start_control()
    rows = {a: t.show(a) for a in want}
    got = {a: r.get("state") for a, r in rows.items()}
    check(got == want, "after an imf-control restart the store still holds every measure", f"{got}")
    check(rows["rita"].get("rate") in ("2/1h", "2/3600s", "2/60m"), "rita's own rate 2/1h kept",
          f"{rows['rita'].get('rate')}")
    check("verified_publisher" in json.dumps(t.show("vera").get("markers")), "vera's marker kept")
    rc, out, _ = t.ctl("account", "show", "shut")
    check(rc == 0 and re.search(r"^state:\s+shutdown", out, re.M) and re.search(r"^dataplane:\s+shutdown", out, re.M),
          "imfctl account show shut (text): shutdown, and so is imfd's row", f"{rc} {out!r}")
    rc, out, _ = t.ctl("account", "show", "nobody-here")
    check(rc == 1, "imfctl account show of an account never stored exits 1", f"{rc} {out!r}")
    rc, res, _ = t.ctl("report", "list", as_json=True)
    st = sorted(r.get("status") for r in (res or {}).get("reports", []) if r.get("account") == "rob")
    check(st == ["open", "resolved"], "the reports survive the restart (one open, one resolved)", f"{res}")
    # imf-control's start reloads imfd's accounts (accounts.load): a reload keeps a restricted
    # account's spent bucket, so rita (2 of 2 used in case 4) is still over her rate.
    rc_note, _ = t.publish("rita", "chat/a", "rita-note")
    t.barrier()
    check(rc_note != 0 and not t.is_delivered("rita-note"),
          "after the imf-control restart (accounts reloaded into imfd) rita's bucket is still spent",
          f"rc {rc_note}")

    # imfd restart: imf-control resyncs the accounts into it.
    dp_before = t.dp_recs()
    last_seq = dp_before[-1].get("seq") if dp_before else 0
    rc = t.stop_imfd()
    check(rc == 0, "imfd stops on SIGTERM with exit 0", f"rc {rc}\n{tail(os.path.join(t.tmp, 'imfd.stderr'))}")
    t.start_imfd()
    rc, res, _ = t.ctl("account", "count", as_json=True)
    rows_ctl = (res or {}).get("rows")

    def synced():
        rc, st, _ = t.ctl("status", as_json=True, record=False)
        dp = (st or {}).get("dataplane", {})
        return dp if dp.get("reachable") and (dp.get("accounts") or {}).get("rows") == rows_ctl else None
    dp = wait_for(synced, 15, 0.2)
    check(bool(dp) and rows_ctl and rows_ctl >= 7 and dp.get("version") == 1,
          f"restarted imfd: imf-control resynced {rows_ctl} accounts into it, rules version 1",
          f"control rows {rows_ctl}, dataplane {dp}")
    dprow = t.show("rita").get("dataplane") or {}
    check(dprow.get("state") == "restricted" and dprow.get("in_sync") is True,
          "account show rita: the restarted imfd's live row is restricted, in sync", f"{dprow}")
    rcs = [t.publish("rita", "chat/a", f"rita-r{i}")[0] for i in (1, 2, 3)]
    t.barrier()
    got = [t.is_delivered(f"rita-r{i}") for i in (1, 2, 3)]
    rl = t.wait_dp(lambda r: r.get("account") == "rita" and r.get("action") == "rate_limited"
                   and r.get("seq", 0) > last_seq)
    check(got == [True, True, False] and len(rl) == 1,
          "after the imfd restart rita is still restricted: 2 of 3 delivered (fresh bucket), 1 rate_limited",
          f"delivered {got} rcs {rcs} records {rl}")
    rc_s, _ = t.publish("sue", "chat/a", "sue-3")
    rc_w, _ = t.publish("walt", "chat/a", "walt-3")
    rc_x, _ = t.publish("shut", "chat/a", "shut-2")
    t.barrier()
    check(rc_s == 0 and t.is_delivered("sue-3"), "sue (none) is delivered after the restarts", f"rc {rc_s}")
    w = t.wait_dp(lambda r: r.get("account") == "walt" and r.get("action") == "warned" and r.get("seq", 0) > last_seq)
    check(rc_w == 0 and t.is_delivered("walt-3") and len(w) == 1, "walt still warned: delivered and recorded",
          f"rc {rc_w} {w}")
    sd = t.wait_dp(lambda r: r.get("account") == "shut" and r.get("seq", 0) > last_seq)
    check(rc_x not in (0, "timeout") and not t.is_delivered("shut-2") and sd and sd[0].get("action") == "shutdown",
          "shut still shut down: refused and recorded", f"rc {rc_x} {sd[:1]}")
    recs = t.dp_recs()
    seqs = [r.get("seq") for r in recs]
    check(seqs == list(range(1, len(seqs) + 1)) and len(seqs) > len(dp_before)
          and not [r for r in recs if r.get("kind") in ("head_mismatch", "recovered", "records_lost")],
          "the dataplane chain continues across the imfd restart (seq 1..N, no gap or recovery record)",
          f"{len(dp_before)} before, seqs {seqs[:3]}..{seqs[-3:]}")
    rc, out, err = t.ctl("records", "verify")
    check(rc == 0 and re.search(r"^control \(.*\): ok", out, re.M) and re.search(r"^dataplane \(.*\): ok", out, re.M),
          "records verify: both chains ok (exit 0)", f"{rc} {out!r} {err!r}")


def case_tamper(t):
    files = sorted(n for n in os.listdir(t.ctl_records) if n.startswith("control-") and n.endswith(".jsonl"))
    path = os.path.join(t.ctl_records, files[-1])
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")[:-1]
    # A middle line that names an account; flip one character of the account in place.
    cand = [i for i in range(1, len(lines) - 1) if b'"account":"' in lines[i]]
    if not check(len(lines) >= 3 and cand, f"control chain has a middle line to edit ({len(lines)} lines)"):
        return
    i = cand[len(cand) // 2]
    off = sum(len(x) + 1 for x in lines[:i]) + lines[i].index(b'"account":"') + len(b'"account":"')
    orig = data[off:off + 1]
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(b"x" if orig != b"x" else b"y")
    try:
        rc, out, err = t.ctl("records", "verify")
        lineno = i + 1
        check(rc == 1 and f"{files[-1]}:{lineno + 1}:" in out + err and f"line {lineno}" in out + err,
              f"an edited account in line {lineno}: records verify exits 1 and names the line",
              f"{rc} {out!r} {err!r}")
    finally:
        with open(path, "r+b") as f:
            f.seek(off)
            f.write(orig)
    rc, out, err = t.ctl("records", "verify")
    check(rc == 0, "line restored: records verify exits 0 again", f"{rc} {out!r} {err!r}")


def case_query(t):
    rc, out, err = t.ctl("records", "query", "--account", "rita", "--since", "-1h")
    recs = [json.loads(line) for line in out.splitlines() if line.strip()]
    got = sorted((r.get("source"), r.get("seq")) for r in recs)
    want = sorted([("control", r["seq"]) for r in t.ctl_recs() if r.get("account") == "rita"]
                  + [("dataplane", r["seq"]) for r in t.dp_recs() if r.get("account") == "rita"])
    times = [r.get("time", "") for r in recs]
    check(rc == 0 and got == want and len(want) >= 4 and {s for s, _ in got} == {"control", "dataplane"}
          and times == sorted(times),
          f"records query --account rita --since -1h: exactly rita's {len(want)} records of both chains, by time",
          f"{rc} got {got} want {want} {err!r}")
    rc, out1, _ = t.ctl("records", "query", "--account", "rita", "--since", str(int(time.time()) + 3600))
    check(rc == 0 and not out1.strip(), "records query --since an hour ahead: nothing", f"{rc} {out1!r}")
    rc, out2, err = t.ctl("records", "query", "--account", "rita", "--since", "-1h", "--pseudonymize")
    precs = [json.loads(line) for line in out2.splitlines() if line.strip()]
    ps = {r.get("account") for r in precs}
    check(rc == 0 and len(precs) == len(recs) and "rita" not in out2 and len(ps) == 1
          and re.fullmatch(r"p-[0-9a-f]{32}", next(iter(ps), "") or ""),
          "--pseudonymize: same records, no 'rita' anywhere, one stable p- pseudonym", f"{rc} {ps} {err!r}")
    rc, out3, _ = t.ctl("records", "query", "--account", "walt", "--pseudonymize")
    pw = {json.loads(line).get("account") for line in out3.splitlines() if line.strip()}
    check(rc == 0 and len(pw) == 1 and not (pw & ps), "another account gets another pseudonym", f"{pw} {ps}")


def case_metrics(t):
    rc, res, _ = t.ctl("status", as_json=True)
    listen = ((res or {}).get("control") or {}).get("metrics_listen", "")
    if not check(rc == 0 and listen.startswith("127.0.0.1:"), f"metrics served on {listen}"):
        return
    text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
    with open(t.metrics_dump, "w") as f:
        f.write(text)
    check("imf_dataplane_up 1" in text and re.search(r'imf_control_accounts\{state="warned"\} [1-9]', text)
          and "imf_control_reports_open 1" in text,
          "metrics: dataplane up, warned accounts, 1 open report")


def case_privacy(t):
    # Everything the appliance wrote or printed (after both daemons stopped, so their final output
    # is in), plus every imfctl output; not the traffic itself (the watcher's output, the broker's log).
    scanned, leaks = 0, []
    paths = []
    for root, _, names in os.walk(t.state):
        paths += [os.path.join(root, n) for n in names]
    for n in ("imfd.stdout", "imfd.stderr", "imf-control.stdout", "imf-control.stderr", "imfctl-output.log",
              "metrics.txt", os.path.basename(t.events), os.path.basename(t.summary)):
        p = os.path.join(t.tmp, n)
        if os.path.exists(p):
            paths.append(p)
    for p in paths:
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            continue
        scanned += 1
        if CANARY.encode() in data:
            leaks.append(p)
    kinds = {os.path.basename(p).split("-")[0].split(".")[0] for p in paths}
    check(scanned >= 12 and not leaks,
          f"canary in none of {scanned} files (state dir: records, accounts, reports, cursor, key; logs; "
          f"imfctl outputs; metrics; events; summary)", f"leaks {leaks} kinds {sorted(kinds)}")
    check(CANARY in t.sub_text(), "(control) the canary did reach the watcher: the scan looked for the right string")


def case_final_status(t):
    # Outputs the privacy scan reads, in both formats.
    t.ctl("stats")
    t.ctl("account", "count")
    t.ctl("records", "query", "--limit", "100000")
    rc, out, _ = t.ctl("status")
    check(rc == 0 and "dataplane: reachable, runs version 1 (in sync)" in out
          and "7 accounts" in out and "reports: 1 open, 2 in all" in out,
          "imfctl status (text): dataplane in sync on version 1, 7 accounts, 1 of 2 reports open", f"{rc} {out!r}")
    last = t.dp_recs()[-1].get("seq")

    def followed():
        # imfd rewrites its head file at each fsync (at least once a second)
        rc, st, _ = t.ctl("status", as_json=True)
        dp = (((st or {}).get("control") or {}).get("records") or {}).get("dataplane") or {}
        dp["appliance_id"] = ((st or {}).get("control") or {}).get("appliance_id")
        return dp if dp.get("head_seq") == last and dp.get("read_seq") == last else None
    dp = wait_for(followed, 5, 0.2)
    try:
        with open(os.path.join(t.state, "dataplane-records.cursor")) as f:
            cursor = int(f.read().strip())
    except (OSError, ValueError):
        cursor = None
    check(bool(dp) and cursor == last and dp.get("bad") == 0 and dp.get("appliance_id") == APPLIANCE,
          f"imf-control followed imfd's chain to its head (seq {last}; cursor file agrees; no bad records)",
          f"{dp} cursor {cursor}")
    rc, st, _ = t.ctl("status", as_json=True)
    listen = ((st or {}).get("control") or {}).get("metrics_listen", "")
    try:
        text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read().decode()
    except OSError as e:
        text = f"<{e}>"
    with open(t.metrics_dump, "a") as f:
        f.write(text)
    check("imf_dataplane_up 1" in text and re.search(r"imf_control_dataplane_state_changes_applied_total \d", text)
          and re.search(r'imf_rule_hits_total\{rule="spam.trial"', text),
          "metrics after the restarts: dataplane up, state-change and rule-hit families", text[:200])
    ctl_seqs = [r.get("seq") for r in t.ctl_recs()]
    check(ctl_seqs == list(range(1, len(ctl_seqs) + 1)), "the control chain is seq 1..N across the restarts",
          f"{ctl_seqs}")


def case_clean_exits(t):
    rc = t.stop_imfd()
    check(rc == 0, "imfd exits 0 on SIGTERM at the end", f"rc {rc}")
    try:
        with open(t.summary) as f:
            c = json.load(f).get("counters", {})
    except (OSError, ValueError) as e:
        c = {"error": str(e)}
    check(c.get("events_lost") == 0 and c.get("rx_packets", 0) > 0 and c.get("account_rate_drops") == 1,
          "imfd's final summary (second run): events_lost 0, rita's one rate drop", f"{c}")
    check(not [r for r in t.dp_recs() if r.get("kind") == "records_lost" or r.get("action") == "records_lost"],
          "no records_lost record in the dataplane chain")
    rc = stop_proc(t.control_proc, signal.SIGTERM, timeout=15)
    t.control_proc = None
    check(rc == 0, "imf-control exits 0 on SIGTERM at the end", f"rc {rc}")


# ---------------------------------------------------------------------- driver
def _sigterm(signum, frame):
    raise KeyboardInterrupt()


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    if len(args) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    imfd, control, imfctl, srcdir = (os.path.abspath(a) for a in args)
    if os.geteuid() != 0:
        print("accounts_live_test: SKIP: needs root (namespaces, veths)", file=sys.stderr)
        return 77
    missing = [x for x in ("ip", "ethtool", "ss", "mosquitto", "mosquitto_pub", "mosquitto_sub") if not shutil.which(x)]
    if missing:
        print(f"accounts_live_test: SKIP: missing {' '.join(missing)}", file=sys.stderr)
        return 77
    for b in (imfd, control, imfctl):
        if not os.access(b, os.X_OK):
            print(f"accounts_live_test: {b} is not an executable", file=sys.stderr)
            return 1

    t = Live(imfd, control, imfctl, srcdir, "--keep" in flags)
    cases = [("rules", case_rules_loaded), ("markers", case_markers), ("dry-run", case_dry_run),
             ("warned", case_warned), ("restricted", case_restricted), ("suspended", case_suspended),
             ("shutdown", case_shutdown), ("escalation", case_escalation), ("reports", case_reports),
             ("metrics", case_metrics), ("persistence", case_persistence), ("tamper", case_tamper),
             ("query", case_query), ("final-status", case_final_status), ("exits", case_clean_exits),
             ("privacy", case_privacy)]
    start = time.monotonic()
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        try:
            log(f"tmp {t.tmp}; namespaces {NS_C} {NS_M} {NS_B}; canary {CANARY[:9]}…")
            t.write_files()
            t.setup_net()
            t.start_broker()
            t.start_watcher()
            t.start_control()
            t.start_imfd()
            log(f"setup done in {time.monotonic() - start:.1f}s")
        except Exception:  # noqa: BLE001
            check(False, "setup", traceback.format_exc())
        else:
            for name, fn in cases:
                t0 = time.monotonic()
                try:
                    fn(t)
                except Exception as e:  # noqa: BLE001 -- every failure is counted, the rest still runs
                    detail = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
                    check(False, f"{name}: raised", detail)
                log(f"case {name}: {time.monotonic() - t0:.1f}s")
    except KeyboardInterrupt:
        check(False, "interrupted")
    finally:
        if t.imfd_proc is not None and t.imfd_proc.poll() is None:
            rc = stop_proc(t.imfd_proc, signal.SIGTERM, timeout=20)
            if rc != 0:
                check(False, f"imfd exits 0 at the end (rc {rc})")
        if t.control_proc is not None and t.control_proc.poll() is None:
            stop_proc(t.control_proc, signal.SIGTERM, timeout=15)
        t.teardown()
        if failed:
            for n in ("imfd.stderr", "imf-control.stderr"):
                log(f"{n} (tail):\n" + tail(os.path.join(t.tmp, n)))
        if failed or t.keep:
            log(f"artifacts kept in {t.tmp}")
        else:
            shutil.rmtree(t.tmp, ignore_errors=True)
    log(f"wall time {time.monotonic() - start:.1f}s")
    print(f"{len(passed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
