#!/usr/bin/python3
"""Integration test of the control process: imf-control driven through imfctl and raw protocol lines.

    /usr/bin/python3 control_test.py IMF_CONTROL IMFCTL IMF_SYNTH SOURCE_DIR [--keep]

Starts imf-control with a temporary configuration and state directory. The dataplane side is
FakeAgent below: a small Python STAND-IN for imfd's agent socket, only here to test the control
side's client behaviour (install after a load, resync after the agent restarts, metrics from its
stats, table changes forwarded and tables reloaded). It is not the dataplane; the end-to-end test
with the real imfd lives with the dataplane.

Covers: rules validate/load/list/show/diff/rollback, a failed load leaving state untouched, table
bulk/get/set/del and their forwarding to the dataplane (table.load/set/del), the row limits, table
resync after the agent restarts or misses a change, an agent without tables, accounts (set, show,
del, load, count; forwarded as account.set/del and accounts.load), reports (add, list, resolve,
escalation at the policy's threshold), following imfd's record chain (written here the way imfd
writes it), records verify/query --pseudonymize/digest and an edited record failing verify, a
restart keeping accounts, reports and records, the permission check (as `nobody` and `daemon` when run as root), oversized and malformed
requests, unknown commands, kill -9 in the middle of a 10k-rule load and restart, resync, metrics.
Prints measured figures (10k-rule compile+load through imfctl, 1M-row bulk load). Ends with a line
`N passed, M failed`; exit status 0 only when nothing failed.
"""

import json
import os
import pwd
import grp
import hashlib
import hmac
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

DEADLINE_S = 20  # how long to wait for a condition before failing the check


# ------------------------------------------------------------------------------------------ helpers
def wait_until(cond, what, timeout=DEADLINE_S):
    """Polls cond() until it is true; raises naming `what` on timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def fnv1a(b):
    h = 0xcbf29ce484222325
    for c in b:
        h ^= c
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def artifact_problem(path, want_version=None):
    """None when `path` is a whole artifact (magic, checksum, version), else what is wrong."""
    try:
        with open(path, "rb") as f:
            b = f.read()
    except OSError as e:
        return str(e)
    if len(b) < 24 or b[:8] not in (b"IMFRULE1", b"IMFRULE2"):  # 2: with rule conditions
        return "bad magic"
    if struct.unpack_from("<Q", b, len(b) - 8)[0] != fnv1a(b[:-8]):
        return "checksum mismatch"
    v = struct.unpack_from("<Q", b, 8)[0]
    if want_version is not None and v != want_version:
        return f"holds version {v}, not {want_version}"
    return None


class FakeAgent:
    """STAND-IN for imfd's agent socket (docs/control-protocol.md, "Dataplane agent"): one JSON
    request line, one response line. Checks installed artifacts the way imfd does (whole, right
    version) so the control side's client behaviour can be tested without a dataplane."""

    MAX_KEY, MAX_VALUE = 96, 256  # imfd's table limits (dataplane/table/kv_table.h)

    def __init__(self, path):
        self.path = path
        self.version = 0
        self.install_delay = 0.0
        self.refuse = None  # error text to refuse installs with
        self.keeps_tables = True  # False: an older imfd (no "tables" in status, table.* unknown)
        self.tables = {}  # name -> {key: value}
        self.keeps_accounts = True  # False: an imfd without accounts (no "accounts" in status)
        self.accounts = {}  # account -> row text
        self.requests = []
        self.lock = threading.Lock()
        self.sock = None
        self.thread = None
        self.started = time.time()

    def start(self, version=0, keeps_tables=True, tables=None):
        """(Re)starts like a fresh imfd: running `version`, holding `tables` (default none), uptime
        from zero."""
        self.version = version
        self.keeps_tables = keeps_tables
        with self.lock:
            self.tables = tables or {}
            self.accounts = {}
        self.started = time.time()
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._run, args=(self.sock,), daemon=True)
        self.thread.start()

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None
            os.unlink(self.path)

    def installs(self):
        with self.lock:
            return [r for r in self.requests if r.get("cmd") == "install"]

    def table_requests(self):
        with self.lock:
            return [r for r in self.requests if r.get("cmd", "").startswith("table.")]

    def account_requests(self):
        with self.lock:
            return [r for r in self.requests if r.get("cmd", "").startswith("account")]

    def account(self, name):
        with self.lock:
            return self.accounts.get(name)

    def statuses(self):
        with self.lock:
            return sum(1 for r in self.requests if r.get("cmd") == "status")

    def table(self, name):
        with self.lock:
            return dict(self.tables.get(name, {}))

    def _run(self, sock):
        while True:
            try:
                c, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            buf = b""
            while b"\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            req = json.loads(buf.split(b"\n")[0])
            with self.lock:
                self.requests.append(req)
            resp = self._answer(req)
            try:
                c.sendall((json.dumps(resp) + "\n").encode())
            except OSError:
                pass

    def _table_answer(self, cmd, req):
        if not self.keeps_tables:
            return {"ok": False, "error": f"unknown cmd '{cmd}' (install, status, stats)"}
        name = req["table"]
        for k in ("key", "value"):
            limit = self.MAX_KEY if k == "key" else self.MAX_VALUE
            if k in req and len(req[k].encode()) > limit:
                return {"ok": False, "error": f"{k} longer than {limit} bytes"}
        if cmd == "table.load":
            # Reads the snapshot the way imfd does: key,value lines, split at the first comma.
            path = req["path"]
            if not os.path.isabs(path):
                return {"ok": False, "error": f"{path}: not absolute"}
            rows = {}
            t0 = time.monotonic()
            try:
                with open(path, "rb") as f:
                    for n, line in enumerate(f, 1):
                        k, sep, v = line.rstrip(b"\n").partition(b",")
                        if not sep or len(k) > self.MAX_KEY or len(v) > self.MAX_VALUE:
                            return {"ok": False, "error": f"{path}:{n}: bad row"}
                        rows[k.decode()] = v.decode()
            except OSError as e:
                return {"ok": False, "error": str(e)}
            with self.lock:
                if name not in self.tables and len(self.tables) >= 16:
                    return {"ok": False, "error": "too many tables (16)"}
                self.tables[name] = rows
            return {"ok": True, "table": name, "rows": len(rows), "ms": round((time.monotonic() - t0) * 1000, 1)}
        with self.lock:
            if cmd == "table.set":
                self.tables.setdefault(name, {})[req["key"]] = req["value"]
                return {"ok": True}
            if name not in self.tables:
                return {"ok": False, "error": f"no table '{name}'"}
            if cmd == "table.del":
                return {"ok": True, "deleted": self.tables[name].pop(req["key"], None) is not None}
            if cmd == "table.get":
                v = self.tables[name].get(req["key"])
                return {"ok": True, "found": False} if v is None else {"ok": True, "found": True, "value": v}
        return {"ok": False, "error": f"unknown cmd '{cmd}'"}

    def _account_answer(self, cmd, req):
        if not self.keeps_accounts:
            return {"ok": False, "error": f"unknown cmd '{cmd}'"}
        if cmd == "accounts.load":
            # The whole table is replaced by the snapshot's rows, as imfd does.
            rows = {}
            t0 = time.monotonic()
            try:
                with open(req["path"], "rb") as f:
                    for n, line in enumerate(f, 1):
                        text = line.rstrip(b"\n").decode()
                        if text.count(",") != 4:
                            return {"ok": False, "error": f"{req['path']}:{n}: bad row"}
                        rows[text.split(",", 1)[0]] = text
            except OSError as e:
                return {"ok": False, "error": str(e)}
            with self.lock:
                self.accounts = rows
            return {"ok": True, "rows": len(rows), "ms": round((time.monotonic() - t0) * 1000, 1)}
        with self.lock:
            if cmd == "account.set":
                row = req["row"]
                if row.count(",") != 4:
                    return {"ok": False, "error": "bad row"}
                self.accounts[row.split(",", 1)[0]] = row
                return {"ok": True}
            if cmd == "account.del":
                return {"ok": True, "deleted": self.accounts.pop(req["account"], None) is not None}
            if cmd == "account.get":
                return {"ok": True, "row": self.accounts.get(req["account"])}
        return {"ok": False, "error": f"unknown cmd '{cmd}'"}

    def _answer(self, req):
        cmd = req.get("cmd")
        if (cmd or "").startswith("table."):
            return self._table_answer(cmd, req)
        if (cmd or "").startswith("account"):
            return self._account_answer(cmd, req)
        if cmd == "install":
            if self.install_delay:
                time.sleep(self.install_delay)
            if self.refuse:
                return {"ok": False, "error": self.refuse}
            problem = artifact_problem(req["artifact"], req["version"])
            if problem:
                return {"ok": False, "error": f"{req['artifact']}: {problem}"}
            self.version = req["version"]
            return {"ok": True, "version": self.version, "load_ms": 2.5, "swap_ms": 0.5}
        if cmd == "status":
            st = {"ok": True, "version": self.version, "uptime_s": round(time.time() - self.started, 1),
                  "last_install": {"version": self.version, "unix_ms": int(time.time() * 1000), "load_ms": 2.5,
                                   "swap_ms": 0.5}, "generation_bytes": 123456}
            if self.keeps_tables:
                with self.lock:
                    st["tables"] = [{"table": n, "rows": len(t)} for n, t in sorted(self.tables.items())]
            if self.keeps_accounts:
                with self.lock:
                    st["accounts"] = {"rows": len(self.accounts), "capacity": 1 << 24, "memory_bytes": 4096,
                                      "markers": ["press", "verified_publisher"]}
            return st
        if cmd == "stats":
            return {"ok": True, "version": self.version,
                    "ports": [{"port": 0, "rx": 100, "tx": 90, "rx_bytes": 6400, "tx_bytes": 5760, "rx_missed": 1,
                               "tx_errors": 0},
                              {"port": 1, "rx": 90, "tx": 100, "rx_bytes": 5760, "tx_bytes": 6400, "rx_missed": 0,
                               "tx_errors": 0}],
                    "lcores": [{"lcore": 1, "rx": 190, "forwarded": 185,
                                "counters": {"rx_packets": 190, "forwarded": 185, "dropped": 5}}],
                    "counters": {"rx_packets": 190, "forwarded": 185, "dropped": 5},
                    "latency_ns": {"samples": 185, "p50": 800, "p90": 1200, "p99": 3000, "p999": 5000, "max": 9000},
                    "rules": [{"id": "spam.free-money", "action": "drop", "hits": 5},
                              {"id": "phish.topic-login", "action": "alert", "hits": 0}]}
        return {"ok": False, "error": f"unknown cmd '{cmd}'"}


class Daemon:
    """One imf-control process with its own configuration file."""

    def __init__(self, binary, workdir, name, **conf):
        self.binary = binary
        self.dir = workdir
        self.name = name
        self.conf = conf
        self.socket = conf["socket"]
        self.conf_path = os.path.join(workdir, f"{name}.conf")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.proc = None

    def write_conf(self):
        with open(self.conf_path, "w") as f:
            f.write("# written by control_test.py\n")
            for k, v in self.conf.items():
                f.write(f"{k} = {v}\n")

    def start(self):
        self.write_conf()
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, "--config", self.conf_path], stdout=log, stderr=log)
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"imf-control exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.socket)
                s.close()
                return True
            except OSError:
                return False

        wait_until(up, f"{self.name} to listen on {self.socket}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


class DataplaneChain:
    """Writes records into imfd's chain directory the way imfd's writer does (control/records/chain.h:
    seq, time, appliance, source, fields, prev = SHA-256 of the line before; the head file), so the
    control side's following of imfd's records can be tested without imfd."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "dataplane-000000000001.jsonl")
        self.seq, self.prev = 0, "0" * 64

    def append(self, fields):
        self.seq += 1
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % int((now % 1) * 1000)
        rec = {"seq": self.seq, "time": stamp, "appliance": "it-dp", "source": "dataplane", **fields,
               "prev": self.prev}
        line = json.dumps(rec, separators=(",", ":"))
        with open(self.path, "a") as f:
            f.write(line + "\n")
        self.prev = hashlib.sha256(line.encode()).hexdigest()
        with open(os.path.join(self.dir, "dataplane.head"), "w") as f:
            f.write(f"{self.seq} {self.prev}\n")


def raw_exchange(path, data, responses, timeout=30):
    """Sends raw bytes on one connection and reads `responses` final lines (progress skipped)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(path)
    if isinstance(data, str):
        data = data.encode()
    s.sendall(data)
    out, buf = [], b""
    while len(out) < responses:
        while b"\n" not in buf:
            d = s.recv(1 << 20)
            if not d:
                s.close()
                return out
            buf += d
        line, buf = buf.split(b"\n", 1)
        v = json.loads(line)
        if "progress" not in v:
            out.append(v)
    s.close()
    return out


# ------------------------------------------------------------------------------------------ the test
class Test:
    def __init__(self, control, imfctl, synth, source, keep):
        self.control, self.imfctl, self.synth, self.source = control, imfctl, synth, source
        self.keep = keep
        self.passed = 0
        self.failed = 0
        self.figures = []
        self.work = tempfile.mkdtemp(prefix="imf-control-it.")
        os.chmod(self.work, 0o755)  # unprivileged test users must reach the sockets
        self.state = os.path.join(self.work, "state")
        self.agent = FakeAgent(os.path.join(self.work, "dataplane.sock"))
        self.rules = os.path.join(source, "config/rules/example.rules")

    def check(self, name, fn):
        try:
            fn()
            self.passed += 1
            print(f"ok    {name}")
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            print(f"FAIL  {name}: {e}")
            if not isinstance(e, AssertionError):
                traceback.print_exc()

    def ctl(self, *args, user=None, group=None, extra_groups=None, socket_path=None, timeout=300):
        cmd = [self.imfctl, "--socket", socket_path or self.daemon.socket, *args]
        kw = {}
        if user is not None:
            kw = {"user": user, "group": group, "extra_groups": extra_groups or []}
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **kw)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        return p

    def ctl_json(self, *args):
        p = self.ctl("--json", *args)
        assert p.returncode == 0, f"imfctl {' '.join(args)}: exit {p.returncode}: {p.err}"
        return json.loads(p.out)

    def active(self):
        with open(os.path.join(self.state, "rules/active")) as f:
            return int(f.read())

    def write(self, name, text):
        p = os.path.join(self.work, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    # --------------------------------------------------------------------------------------- rules
    def t_validate(self):
        p = self.ctl("rules", "validate", self.rules)
        assert p.returncode == 0, p.err
        assert re.search(r"example\.rules: \d+ rules, valid", p.out), p.out
        bad = self.write("bad.rules", "ok drop payload \"fine\"\n# comment\nx.bad drop payload /(a)\\1/\n"
                                      "y alert text \"z\"\n")
        p = self.ctl("rules", "validate", bad)
        assert p.returncode == 1, f"exit {p.returncode}"
        assert f"{bad}:4: rule 'y': unknown scope 'text'" in p.err, p.err
        bad2 = self.write("bad2.rules", "ok drop payload \"fine\"\n\nx.bad drop payload /(a)\\1/\n")
        p = self.ctl("rules", "validate", bad2)
        assert p.returncode == 1
        assert f"{bad2}:3: rule 'x.bad': pattern rejected by Hyperscan" in p.err, p.err
        assert not os.listdir(os.path.join(self.state, "rules")), "validate must not store anything"

    def t_load_v1(self):
        p = self.ctl("rules", "load", self.rules)
        assert p.returncode == 0, p.err
        assert "version 1 active" in p.out, p.out
        assert "dataplane: installed" in p.out, p.out
        for step in ("compiling", "writing version 1", "installing version 1"):
            assert step in p.err, f"no progress '{step}' on stderr: {p.err}"
        assert self.active() == 1
        inst = self.agent.installs()
        assert inst and inst[-1] == {"cmd": "install", "version": 1,
                                     "artifact": os.path.join(self.state, "rules/1.imfrules")}, inst
        assert self.agent.version == 1

    def t_load_bad_changes_nothing(self):
        before = self.ctl_json("rules", "list")
        n_installs = len(self.agent.installs())
        bad = self.write("broken.rules", "a drop payload \"x\"\nb drop payload \"y\"\nc block payload \"z\"\n")
        p = self.ctl("rules", "load", bad)
        assert p.returncode == 1, f"exit {p.returncode}"
        assert f"{bad}:3: rule 'c': unknown action 'block'" in p.err, p.err
        assert self.active() == 1
        assert self.ctl_json("rules", "list") == before
        assert len(self.agent.installs()) == n_installs, "a refused rule set reached the dataplane"
        # The dataplane refusing is a failed load too: version 1 stays.
        self.agent.refuse = "not enough memory for the new generation"
        p = self.ctl("rules", "load", self.rules)
        self.agent.refuse = None
        assert p.returncode == 1, p.out
        assert "dataplane refused version 2: not enough memory for the new generation; version 1 stays active" in \
            p.err, p.err
        assert self.active() == 1 and self.agent.version == 1
        assert self.ctl_json("rules", "list") == before

    def t_load_v2_diff_rollback(self):
        with open(self.rules) as f:
            text = f.read()
        text = text.replace("spam.crypto-giveaway         drop", "spam.crypto-giveaway         alert")
        text = re.sub(r"^abuse\.threat .*\n", "", text, flags=re.M)
        text += "spam.new-rule drop payload \"brand new spam\"i\n"
        v2 = self.write("v2.rules", text)
        p = self.ctl("rules", "load", v2)
        assert p.returncode == 0, p.err
        assert "version 3 active" in p.out, p.out  # 2 was handed to the refused load: never reused
        assert self.active() == 3 and self.agent.version == 3
        d = self.ctl("rules", "diff", "1", "3")
        assert d.returncode == 0, d.err
        assert "1 added, 1 removed, 1 changed" in d.out, d.out
        assert re.search(r"^\+ spam\.new-rule \(line \d+\): spam\.new-rule drop payload", d.out, re.M), d.out
        assert re.search(r"^- abuse\.threat \(line \d+\)", d.out, re.M), d.out
        assert re.search(r"^~ spam\.crypto-giveaway$", d.out, re.M), d.out
        j = self.ctl_json("rules", "diff", "1", "3")
        assert [c["id"] for c in j["changed"]] == ["spam.crypto-giveaway"], j
        show = self.ctl("rules", "show")
        assert show.returncode == 0 and "# version 3 (active)" in show.out and "spam.new-rule" in show.out, show.out
        lst = self.ctl("rules", "list")
        assert re.search(r"^\s+1\s+\s", lst.out, re.M) and re.search(r"^\s+3\s+\*", lst.out, re.M), lst.out

        r = self.ctl("rules", "rollback")
        assert r.returncode == 0, r.err
        assert "version 1 active again" in r.out and "was version 3" in r.out, r.out
        assert self.active() == 1 and self.agent.version == 1
        assert self.agent.installs()[-1]["version"] == 1
        assert "abuse.threat" in self.ctl("rules", "show").out
        r = self.ctl("rules", "rollback", "9")
        assert r.returncode == 1 and "cannot roll back to version 9" in r.err, r.err
        assert self.active() == 1

    # --------------------------------------------------------------------------------------- tables
    def t_table_bulk(self):
        csv = "".join(f"user{i},marker-{i % 7}\n" for i in range(100000))
        path = self.write("accounts.csv", csv)
        t0 = time.monotonic()
        p = self.ctl("table", "bulk", "accounts", path)
        dt = time.monotonic() - t0
        assert p.returncode == 0, p.err
        assert "100000 rows loaded (100000 new, 0 updated); 100000 rows in the table" in p.out, p.out
        self.figures.append(f"table bulk 100k rows through imfctl: {dt:.2f} s")
        g = self.ctl("table", "get", "accounts", "user99999")
        assert g.returncode == 0 and g.out == f"marker-{99999 % 7}\n", (g.returncode, g.out, g.err)
        g = self.ctl("table", "get", "accounts", "nobody-here")
        assert g.returncode == 1 and g.out == "" and "not in table 'accounts'" in g.err, (g.out, g.err)
        bad = self.write("bad.csv", "a,1\nb,2\nno-comma\n")
        p = self.ctl("table", "bulk", "accounts", bad)
        assert p.returncode == 1 and f"{bad}:3: missing ',' between key and value" in p.err, p.err
        assert self.ctl("table", "get", "accounts", "a").returncode == 1, "a failed bulk changed the table"
        s = self.ctl("table", "set", "accounts", "alice", "vip")
        assert s.returncode == 0, s.err
        with open(os.path.join(self.state, "tables/accounts.csv")) as f:
            rows = f.read().splitlines()
        assert len(rows) == 100001 and "alice,vip" in rows, len(rows)

    def t_table_forwarding(self):
        snapshot = os.path.join(self.state, "tables/accounts.csv")
        # The bulk above was loaded whole; the set after it was forwarded as one change.
        loads = [r for r in self.agent.table_requests() if r["cmd"] == "table.load"]
        assert {"cmd": "table.load", "table": "accounts", "path": snapshot} in loads, loads
        assert {"cmd": "table.set", "table": "accounts", "key": "alice", "value": "vip"} in \
            self.agent.table_requests(), self.agent.table_requests()[-3:]
        wait_until(lambda: len(self.agent.table("accounts")) == 100001, "the agent to hold 100001 accounts")
        assert self.agent.table("accounts")["alice"] == "vip"

        n = len(self.agent.table_requests())
        p = self.ctl("table", "set", "accounts", "bob", "watch")
        assert p.returncode == 0 and "dataplane: applied" in p.out, (p.out, p.err)
        p = self.ctl("table", "del", "accounts", "user0")
        assert p.returncode == 0 and "deleted user0" in p.out and "dataplane: applied" in p.out, (p.out, p.err)
        assert self.agent.table_requests()[n:] == [
            {"cmd": "table.set", "table": "accounts", "key": "bob", "value": "watch"},
            {"cmd": "table.del", "table": "accounts", "key": "user0"}], self.agent.table_requests()[n:]
        t = self.agent.table("accounts")
        assert t.get("bob") == "watch" and "user0" not in t and len(t) == 100001, len(t)
        j = self.ctl_json("table", "bulk", "accounts", self.write("few.csv", "carol,vip\nbob,cleared\n"))
        assert j["dataplane"]["applied"] and j["dataplane"]["rows"] == 100002, j
        assert self.agent.table_requests()[-1] == {"cmd": "table.load", "table": "accounts", "path": snapshot}
        assert self.agent.table("accounts")["bob"] == "cleared"

        # The dataplane's limits are checked here first: nothing stored, nothing sent.
        n = len(self.agent.table_requests())
        long_key = "k" * 97
        p = self.ctl("table", "set", "accounts", long_key, "v")
        assert p.returncode == 1 and f"key '{long_key[:40]}...' is 97 bytes, over the limit of 96 bytes" in p.err, \
            p.err
        p = self.ctl("table", "set", "accounts", "dave", "v" * 257)
        assert p.returncode == 1 and "key 'dave': value is 257 bytes, over the limit of 256 bytes" in p.err, p.err
        bad = self.write("long.csv", "erin,1\nfrank," + "v" * 300 + "\n")
        p = self.ctl("table", "bulk", "accounts", bad)
        assert p.returncode == 1 and f"{bad}:2: key 'frank': value is 300 bytes" in p.err, p.err
        assert len(self.agent.table_requests()) == n, self.agent.table_requests()[n:]
        p = self.ctl("table", "get", "accounts", "erin")
        assert p.returncode == 1, "a refused bulk changed the table"

    # --------------------------------------------------------------------------------------- accounts
    def key(self):
        with open(os.path.join(self.state, "digest.key")) as f:
            return bytes.fromhex(f.read().strip())

    def records(self, *args):
        p = self.ctl("records", "query", "--limit", "1000000", *args)
        assert p.returncode == 0, p.err
        return [json.loads(line) for line in p.out.splitlines()]

    def t_accounts(self):
        p = self.ctl("account", "set", "alice", "--markers", "verified_publisher,press", "--state", "suspended",
                     "--for", "2h", "--reason", "spam wave")
        assert p.returncode == 0, p.err
        assert re.match(r"account alice: suspended until \S+Z; markers press, verified_publisher\n", p.out), p.out
        assert "dataplane: applied" in p.out, p.out
        row = self.agent.account("alice")
        assert row and row.startswith("alice,press;verified_publisher,suspended,") and row.endswith(","), row
        assert abs(int(row.split(",")[3]) - (time.time() + 7200)) < 60, row
        assert {"cmd": "account.set", "row": row} in self.agent.account_requests()
        j = self.ctl_json("account", "show", "alice")
        assert j["found"] and j["state"] == "suspended" and j["markers"] == ["press", "verified_publisher"], j
        assert j["dataplane"]["row"] == row and j["dataplane"]["in_sync"] and j["open_reports"] == 0, j
        p = self.ctl("account", "show", "alice")
        assert re.search(r"^state:        suspended until \S+Z$", p.out, re.M), p.out
        assert re.search(r"^dataplane:    suspended until \S+Z \(in sync\)$", p.out, re.M), p.out

        p = self.ctl("account", "set", "alice", "--state", "restricted", "--rate", "5/1m")
        assert p.returncode == 0 and "account alice: restricted to 5/60s until" in p.out, (p.out, p.err)
        p = self.ctl("account", "set", "alice", "--add-marker", "bot", "--remove-marker", "press")
        assert p.returncode == 0 and "markers bot, verified_publisher" in p.out, (p.out, p.err)
        row = self.agent.account("alice")
        assert row.startswith("alice,bot;verified_publisher,restricted,") and row.endswith(",5/60s"), row

        # Errors name the option and change nothing, here or in the dataplane.
        n = len(self.agent.account_requests())
        for args, code, want in (
                (["--state", "frozen"], 1, "--state 'frozen': not one of none, warned, restricted, suspended, shutdown"),
                (["--state", "shutdown", "--for", "1h"], 1, "--for: a state of shutdown does not lapse"),
                (["--state", "warned", "--rate", "5/1m"], 1, "--rate: only for a restricted account"),
                (["--state", "warned", "--until", "2001-01-01"], 1, "--until '2001-01-01': that is not in the future"),
                (["--markers", "Bad Marker"], 1, "--markers: marker name 'Bad Marker' may only use"),
                (["--state", "warned", "--until", "2030-01-01", "--for", "1h"], 2, "--until and --for: give one"),
                (["--open"], 2, "--open does not go with 'account set'")):
            p = self.ctl("account", "set", "alice", *args)
            assert p.returncode == code and want in p.err, (args, p.returncode, p.err)
        assert len(self.agent.account_requests()) == n, self.agent.account_requests()[n:]
        assert self.agent.account("alice") == row
        p = self.ctl("account", "set", "a,b", "--state", "warned")
        assert p.returncode == 1 and "account: " in p.err, p.err
        p = self.ctl("account", "set")
        assert p.returncode == 2 and "wrong number of arguments" in p.err, p.err
        p = self.ctl("account", "set", "--help")
        assert p.returncode == 0 and p.out.startswith("usage: imfctl account set ACCOUNT"), p.out
        p = self.ctl("account", "--help")
        assert p.returncode == 0 and "imfctl account load FILE [--replace]" in p.out, p.out
        p = self.ctl("account", "show", "nobody-here")
        assert p.returncode == 1 and "account 'nobody-here' is not stored" in p.err, (p.returncode, p.err)
        assert "stored:       no" in p.out, p.out

        csv = "".join(f"bulk{i},{'press' if i % 2 else ''},{'warned' if i % 10 == 0 else ''},,\n" for i in range(1000))
        path = self.write("accounts-1000.csv", csv)
        p = self.ctl("account", "load", path)
        assert p.returncode == 0, p.err
        assert "1000 rows loaded (1000 new, 0 updated); 1001 accounts; 100 state changes recorded" in p.out, p.out
        assert "dataplane: loaded 1001 rows" in p.out, p.out
        assert len(self.agent.accounts) == 1001 and self.agent.account("bulk10") == "bulk10,,warned,,"
        loaded = [r for r in self.records("--account", "bulk10") if r["kind"] == "state_change"]
        assert len(loaded) == 1 and loaded[0]["state_after"] == "warned" and loaded[0]["bulk"], loaded
        bad = self.write("bad-accounts.csv", "ok1,,,,\nbad,,nope,,\n")
        p = self.ctl("account", "load", bad)
        assert p.returncode == 1 and f"{bad}:2: state: unknown 'nope'" in p.err, p.err
        p = self.ctl("account", "count")
        assert p.out == "1001 accounts: none 900, warned 100, restricted 1, suspended 0, shutdown 0\n", p.out
        p = self.ctl("account", "del", "bulk0")
        assert p.returncode == 0 and p.out.startswith("deleted account bulk0\n"), p.out
        assert self.agent.account("bulk0") is None
        gone = self.records("--account", "bulk0")[-1]
        assert gone["kind"] == "state_change" and gone["deleted"] and gone["state_after"] == "none", gone

    def t_reports(self):
        p = self.ctl("report", "add", "bob", "--reason", "threats in group chat")
        assert p.returncode == 0 and p.out == "report 1 opened for bob (1 open)\n", (p.out, p.err)
        digest = hmac.new(self.key(), b"the message body", hashlib.sha256).hexdigest()
        p = self.ctl("report", "add", "bob", "--reason", "again", "--digest", digest.upper())
        assert p.returncode == 0, p.err
        assert "report 2 opened for bob (2 open)" in p.out and "escalated: none -> warned until" in p.out, p.out
        assert self.agent.account("bob").startswith("bob,,warned,"), self.agent.account("bob")
        esc = self.records("--account", "bob")[-1]
        assert esc["kind"] == "state_change" and esc["cause"] == "reports" and esc["open_reports"] == 2, esc
        opened = [r for r in self.records("--account", "bob") if r["kind"] == "report_opened"]
        assert [r["digest"] for r in opened] == [None, digest], opened
        lst = self.ctl("report", "list", "--open", "--account", "bob")
        assert re.search(r"^\s+1  open\s.*bob\s+threats in group chat$", lst.out, re.M), lst.out
        assert re.search(r"^\s+2  open\s.*again \[digest " + digest[:16] + r"\.\.\.\]$", lst.out, re.M), lst.out
        p = self.ctl("report", "resolve", "1", "--note", "handled")
        assert p.returncode == 0 and p.out == "report 1 resolved (bob: 1 open)\n", (p.out, p.err)
        j = self.ctl_json("report", "list")
        assert [(r["report"], r["status"], r["note"]) for r in j["reports"]] == \
            [(1, "resolved", "handled"), (2, "open", None)], j
        p = self.ctl("report", "resolve", "1")
        assert p.returncode == 1 and "report 1 is already resolved" in p.err, p.err
        p = self.ctl("report", "add", "bob")
        assert p.returncode == 2 and "--reason is required" in p.err, p.err
        p = self.ctl("report", "add", "bob", "--reason", "x", "--digest", "zz")
        assert p.returncode == 1 and "--digest: expected 64 hex digits, got 2 characters" in p.err, p.err
        assert len(self.ctl_json("report", "list")["reports"]) == 2

    def t_dataplane_records(self):
        chain = DataplaneChain(os.path.join(self.state, "dataplane-records"))
        n = len(self.agent.account_requests())
        chain.append({"kind": "state_change", "account": "bulk1", "state_before": "none", "state_after": "warned",
                      "until": 0})
        chain.append({"kind": "verdict", "account": "bulk1", "verdict": "drop", "digest": "ab" * 32,
                      "digest_bytes": 12, "body_bytes": 12})
        wait_until(lambda: self.ctl_json("account", "show", "bulk1").get("state") == "warned",
                   "imfd's escalation of bulk1 to reach the account store")
        sent = [r for r in self.agent.account_requests()[n:] if r["cmd"] != "account.get"]
        assert not sent, f"imfd's own change was sent back to it: {sent}"
        wait_until(lambda: open(os.path.join(self.state, "dataplane-records.cursor")).read() == "2\n", "the cursor")
        rec = self.ctl_json("status")["control"]["records"]["dataplane"]
        assert rec["read_seq"] == 2 and rec["head_seq"] == 2 and rec["applied"] >= 1, rec
        merged = self.records("--account", "bulk1")
        assert [r["source"] for r in merged][-2:] == ["dataplane", "dataplane"], merged

    def t_records(self):
        p = self.ctl("records", "verify")
        assert p.returncode == 0, (p.out, p.err)
        assert re.search(r"^control \(\S+\): ok, \d+ records in 1 files", p.out, re.M), p.out
        assert re.search(r"^dataplane \(\S+\): ok, 2 records in 1 files \(seq 1-2\)$", p.out, re.M), p.out
        alice = self.records("--account", "alice")
        assert [r["kind"] for r in alice] == ["markers", "state_change", "state_change", "markers"], alice
        assert alice[1]["reason"] == "spam wave" and alice[1]["cause"] == "operator" and alice[1]["peer_uid"] == 0
        assert alice[2]["rate"] == "5/60s", alice[2]
        assert all(r["appliance"] == "it-box" and r["source"] == "control" for r in alice), alice
        p = self.ctl("records", "query", "--pseudonymize")
        assert p.returncode == 0 and p.out, p.err
        assert "alice" not in p.out and '"bob"' not in p.out, "an account name in a pseudonymized export"
        pseudo = "p-" + hmac.new(self.key(), b"account:alice", hashlib.sha256).hexdigest()[:32]
        assert f'"account":"{pseudo}"' in p.out, pseudo
        p = self.ctl("records", "query", "--since", "-1h", "--limit", "2")
        assert p.returncode == 0 and len(p.out.splitlines()) == 2, p.out
        p = self.ctl("records", "query", "--since", "soon")
        assert p.returncode == 1 and "--since: cannot read time" in p.err, p.err

        body = self.write("message.bin", "the message body")
        p = self.ctl("records", "digest", body)
        assert p.out == hmac.new(self.key(), b"the message body", hashlib.sha256).hexdigest() + "\n", p.out
        p = self.ctl("records", "digest", body, "--bytes", "3")
        assert p.out == hmac.new(self.key(), b"the", hashlib.sha256).hexdigest() + "\n", p.out
        p = self.ctl("records", "digest", body, "--bytes", "99")
        assert p.returncode == 1 and p.err.strip() == "imfctl: --bytes 99: the file has only 16 bytes", p.err

        # An edited line breaks the chain; verify names the place and fails.
        path = os.path.join(self.state, "records", "control-000000000001.jsonl")
        with open(path) as f:
            original = f.read()
        with open(path, "w") as f:
            f.write(original.replace('"reason":"spam wave"', '"reason":"spam wavy"', 1))
        p = self.ctl("records", "verify")
        assert p.returncode == 1, (p.returncode, p.out)
        assert re.search(r"^control \(\S+\): FAILED", p.out, re.M), p.out
        assert re.search(r"^  control-000000000001\.jsonl:\d+: prev does not match the hash of line \d+", p.out,
                         re.M), p.out
        assert "the records were altered" in p.err, p.err
        with open(path, "w") as f:
            f.write(original)
        assert self.ctl("records", "verify").returncode == 0

    def t_restart_keeps_accounts(self):
        show = self.ctl_json("account", "show", "alice")
        reports = self.ctl_json("report", "list")
        recs = self.records()
        count = self.ctl("account", "count").out
        self.daemon.stop()
        self.daemon.start()
        again = self.ctl_json("account", "show", "alice")
        assert again["row"] == show["row"] and again["found"], (again, show)

        def without_age(listing):  # an open report's age grows across the restart; the rest stays
            return [{k: v for k, v in r.items() if k != "age_s"} for r in listing["reports"]]
        after = self.ctl_json("report", "list")
        assert without_age(after) == without_age(reports), (after, reports)
        assert all(a.get("age_s") is None or a["age_s"] >= b["age_s"]
                   for a, b in zip(after["reports"], reports["reports"])), (after, reports)
        assert self.ctl("account", "count").out == count
        assert self.records() == recs
        p = self.ctl("records", "verify")
        assert p.returncode == 0, p.out
        p = self.ctl("report", "resolve", "2", "--note", "after restart")
        assert p.returncode == 0, p.err
        last = self.records()[-1]
        control_seqs = [r["seq"] for r in recs if r["source"] == "control"]
        assert last["kind"] == "report_resolved" and last["seq"] == max(control_seqs) + 1, last

    # --------------------------------------------------------------------------------------- protocol
    def t_protocol_errors(self):
        lines = ('{"v":1,"id":1,"cmd":"health"}\n'
                 'this is not json\n'
                 '{"v":1,"id":2,"cmd":"rules.explode"}\n'
                 '{"v":2,"id":3,"cmd":"health"}\n'
                 '{"v":1,"id":4,"cmd":"rules.show","args":{"version":1,"colour":"red"}}\n'
                 '{"v":1,"id":5,"cmd":"health"}\n')
        r = raw_exchange(self.daemon.socket, lines, 6)
        assert len(r) == 6, r
        assert r[0]["ok"] and r[0]["id"] == 1
        assert not r[1]["ok"] and r[1]["error"].startswith("malformed JSON at byte 0"), r[1]
        assert not r[2]["ok"] and r[2]["id"] == 2 and r[2]["error"].startswith("unknown command 'rules.explode'"), r[2]
        assert r[3]["error"] == "unsupported protocol version 2 (this daemon speaks 1)" and r[3]["id"] == 3, r[3]
        assert r[4]["error"] == "rules.show: unknown field 'colour' in args (allowed: version)", r[4]
        assert r[5]["ok"] and r[5]["id"] == 5, "the connection must stay usable after errors"

    def t_oversized(self):
        limit = int(self.daemon.conf["max_request_bytes"])
        big = '{"v":1,"cmd":"rules.validate","args":{"text":"' + "x" * (limit + 10) + '"}}\n'
        r = raw_exchange(self.daemon.socket, big + '{"v":1,"id":"after","cmd":"health"}\n', 2)
        assert r[0]["error"] == (f"request line longer than max_request_bytes ({limit} bytes); it is discarded"), r[0]
        assert r[1]["ok"] and r[1]["id"] == "after", r[1]

    def t_path_only_for_root(self):
        r = raw_exchange(self.daemon.socket,
                         json.dumps({"v": 1, "cmd": "rules.validate", "args": {"path": self.rules}}) + "\n", 1)
        assert r[0]["ok"], r[0]  # this test runs as root

    # --------------------------------------------------------------------------------------- permissions
    def t_permissions(self):
        if os.geteuid() != 0:
            raise AssertionError("needs root (run the suite as root, as scripts/test.sh does)")
        ctl = os.path.join(self.work, "imfctl")  # a copy every user can execute
        shutil.copy(self.imfctl, ctl)
        os.chmod(ctl, 0o755)
        nogroup = grp.getgrnam("nogroup").gr_gid
        daemon_uid = pwd.getpwnam("daemon").pw_uid
        # Root only (no group): the socket file itself keeps others out.
        p = subprocess.run([ctl, "--socket", self.rootonly.socket, "health"], user="nobody", group="nogroup",
                           extra_groups=[], capture_output=True, text=True)
        assert p.returncode == 3 and "Permission denied" in p.stderr, (p.returncode, p.stderr)
        # group = nogroup: nobody's primary group is nogroup -> allowed.
        p = subprocess.run([ctl, "--socket", self.daemon.socket, "health"], user="nobody", group="nogroup",
                           extra_groups=[], capture_output=True, text=True)
        assert p.returncode == 0 and "control: up" in p.stdout, (p.returncode, p.stdout, p.stderr)
        # `daemon` may open the socket file through a supplementary group of its process, but the
        # user and group databases do not make it a member: SO_PEERCRED check refuses it.
        p = subprocess.run([ctl, "--socket", self.daemon.socket, "health"], user="daemon", group="daemon",
                           extra_groups=[nogroup], capture_output=True, text=True)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert f"permission denied: uid {daemon_uid} is not root or in group nogroup" in p.stderr, p.stderr
        # A group member may not have the root-running daemon read files for it.
        p = subprocess.run(["/usr/bin/python3", "-c", (
            "import json,socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
            "s.sendall((json.dumps({'v':1,'cmd':'rules.validate','args':{'path':'/etc/shadow'}})+'\\n').encode());"
            "print(s.recv(65536).decode())"), self.daemon.socket],
            user="nobody", group="nogroup", extra_groups=[], capture_output=True, text=True)
        resp = json.loads(p.stdout)
        assert not resp["ok"] and "accepted from root only" in resp["error"], resp

    # --------------------------------------------------------------------------------------- crash
    def t_kill9_during_load(self):
        rules = os.path.join(self.work, "synth10k.rules")
        subprocess.run([self.synth, "rules", "--count", "10000", "--out", rules, "--triggers",
                        os.path.join(self.work, "synth10k.triggers")], check=True, capture_output=True)
        rules_dir = os.path.join(self.state, "rules")

        def consistent(when):
            names = os.listdir(rules_dir)
            leftovers = [n for n in names if ".tmp." in n]
            active = self.active()
            assert os.path.exists(os.path.join(rules_dir, f"{active}.imfrules")), f"{when}: active {active} missing"
            for n in names:
                if n.endswith(".imfrules") and ".tmp." not in n:
                    problem = artifact_problem(os.path.join(rules_dir, n), int(n.split(".")[0]))
                    assert problem is None, f"{when}: {n}: {problem}"
            return active, leftovers

        # Once during the compile, once while the dataplane is installing the new version.
        for stage, marker, delay in (("compile", "compiling 10000 rules", 0.0),
                                     ("install", "installing version", 3.0)):
            before = self.active()
            self.agent.install_delay = delay
            loader = subprocess.Popen([self.imfctl, "--socket", self.daemon.socket, "rules", "load", rules],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            seen = []

            def progressed():
                line = loader.stderr.readline()
                seen.append(line)
                return marker in line or loader.poll() is not None

            wait_until(progressed, f"progress '{marker}'", timeout=120)
            if stage == "install":
                wait_until(lambda: any(r.get("cmd") == "install" and r["version"] > before
                                       for r in self.agent.installs()), "the install request", timeout=120)
            self.daemon.kill9()
            loader.wait(timeout=30)
            self.agent.install_delay = 0.0
            assert loader.returncode == 3, f"{stage}: imfctl exit {loader.returncode}; {''.join(seen)}"
            active, leftovers = consistent(f"after kill -9 during {stage}")
            assert active == before, f"{stage}: active moved from {before} to {active} without a finished load"
            self.daemon.start()
            active, leftovers = consistent(f"after restart ({stage})")
            assert not leftovers, f"temporary files left after restart: {leftovers}"
            assert active == before
            # The dataplane may have switched before the crash; the restarted control returns it.
            wait_until(lambda: self.agent.version == before, f"resync of the dataplane to version {before}")
            h = self.ctl("health")
            assert h.returncode == 0 and "control: up" in h.out, h.err

        t0 = time.monotonic()
        p = self.ctl("rules", "load", rules)
        dt = time.monotonic() - t0
        assert p.returncode == 0, p.err
        m = re.search(r"version (\d+) active \(10000 rules, compiled in ([\d.]+) ms", p.out)
        assert m, p.out
        assert self.active() == int(m.group(1)) == self.agent.version
        self.figures.append(f"10k-regex rule set (imf-synth) compile+load through imfctl: {dt:.2f} s "
                            f"(compile {float(m.group(2)) / 1000:.2f} s)")

    # --------------------------------------------------------------------------------------- agent
    def t_resync_after_agent_restart(self):
        want = self.active()
        self.agent.stop()
        st = self.ctl_json("status")
        assert st["dataplane"]["reachable"] is False and st["control"]["active_version"] == want, st
        h = self.ctl("health")
        assert h.returncode == 0 and "dataplane: not reachable" in h.out, h.out
        s = self.ctl("stats")
        assert s.returncode == 1 and "dataplane at" in s.err, s.err
        # A load while the dataplane is down persists and becomes active.
        p = self.ctl("rules", "load", self.rules)
        assert p.returncode == 0 and "will be installed when it is" in p.out, p.out
        # So does a table change; the same row count, so only control's record of it says it was missed.
        p = self.ctl("table", "set", "accounts", "alice", "banned")
        assert p.returncode == 0, p.err
        assert "dataplane: not applied (dataplane at " in p.out and "the next resync loads it" in p.out, p.out
        want = self.active()
        n = len(self.agent.installs())
        n_tables = len(self.agent.table_requests())
        n_accounts = self.ctl_json("account", "count")["rows"]
        with open(os.path.join(self.state, "tables/accounts.csv")) as f:
            rows = sum(1 for _ in f)
        self.agent.start(version=0)  # a restarted imfd without rules or tables
        wait_until(lambda: self.agent.version == want, f"resync installing version {want}")
        assert len(self.agent.installs()) > n
        wait_until(lambda: len(self.agent.table("accounts")) == rows, f"resync loading {rows} accounts")
        wait_until(lambda: len(self.agent.accounts) == n_accounts, f"resync loading the {n_accounts} account rows")
        assert {"cmd": "accounts.load", "path": os.path.join(self.state, "accounts/accounts.csv")} in \
            self.agent.account_requests()
        assert self.agent.table("accounts")["alice"] == "banned"
        assert {"cmd": "table.load", "table": "accounts", "path": os.path.join(self.state, "tables/accounts.csv")} \
            in self.agent.table_requests()[n_tables:], self.agent.table_requests()[n_tables:]
        st = self.ctl_json("status")
        assert st["dataplane"]["reachable"] and st["dataplane"]["in_sync"], st
        assert st["dataplane"]["version"] == want and st["dataplane"]["generation_bytes"] == 123456, st
        assert {"table": "accounts", "rows": rows} in st["dataplane"]["tables"], st["dataplane"]
        assert "resync_error" not in st["control"], st["control"]
        p = self.ctl("status")
        assert f"dataplane tables: accounts ({rows} rows)" in p.out, p.out

        # An agent that restarts holding the same number of rows, one of them different (as if imfd
        # had read an old copy itself): the restart alone makes control load every table. A restart
        # is seen as a start later than the previous one (more than 1.5 s) or a falling uptime_s.
        stale = self.agent.table("accounts")
        stale["alice"] = "stale"
        wait_until(lambda: time.time() - self.agent.started > 2.5, "an agent up long enough to tell a restart")
        n_tables = len(self.agent.table_requests())
        self.agent.stop()
        self.agent.start(version=want, tables={"accounts": stale})
        wait_until(lambda: self.agent.table("accounts").get("alice") == "banned",
                   "resync loading the tables into a restarted agent")
        assert len(self.agent.table("accounts")) == rows
        assert [r["cmd"] for r in self.agent.table_requests()[n_tables:]] == ["table.load"], \
            self.agent.table_requests()[n_tables:]

    def t_agent_without_tables(self):
        self.agent.stop()
        self.agent.start(version=self.active(), keeps_tables=False)  # an imfd from before tables
        n_tables = len(self.agent.table_requests())
        n_status = self.agent.statuses()
        wait_until(lambda: self.agent.statuses() >= n_status + 2, "two resyncs")
        p = self.ctl("table", "set", "accounts", "gina", "vip")
        assert p.returncode == 0, p.err
        assert "dataplane: not applied; the dataplane does not keep tables" in p.out, p.out
        n_status = self.agent.statuses()
        wait_until(lambda: self.agent.statuses() >= n_status + 2, "two more resyncs")
        assert len(self.agent.table_requests()) == n_tables, self.agent.table_requests()[n_tables:]
        st = self.ctl_json("status")
        assert "resync_error" not in st["control"] and "tables" not in st["dataplane"], st
        # Upgraded to an imfd with tables: it gets them all at the next resync.
        self.agent.stop()
        self.agent.start(version=self.active())
        wait_until(lambda: self.agent.table("accounts").get("gina") == "vip", "resync loading the tables")

    def t_stats_and_metrics(self):
        s = self.ctl("stats")
        assert s.returncode == 0 and "port 0: rx 100" in s.out and "spam.free-money" in s.out, s.out
        addr = self.ctl_json("status")["control"]["metrics_listen"]
        body = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
        samples, typed = {}, set()
        for line in body.splitlines():
            if line.startswith("# TYPE "):
                typed.add(line.split()[2])
            elif line and not line.startswith("#"):
                m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)', line)
                assert m, f"not a sample line: {line!r}"
                assert m.group(1) in typed, f"no # TYPE for {m.group(1)}"
                float(m.group(3))
                samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        assert samples["imf_dataplane_up"] == 1
        assert samples["imf_rules_version"] == self.agent.version
        assert samples['imf_packets_total{port="0",direction="rx"}'] == 100
        assert samples['imf_rx_packets_total{lcore="1"}'] == 190
        assert samples['imf_dropped_total{lcore="1"}'] == 5
        assert samples['imf_rule_hits_total{rule="spam.free-money",action="drop"}'] == 5
        self.agent.stop()
        body = urllib.request.urlopen(f"http://{addr}/metrics", timeout=10).read().decode()
        self.agent.start(version=self.agent.version)
        assert "imf_dataplane_up 0" in body and "imf_rx_packets_total" not in body, body
        try:
            urllib.request.urlopen(f"http://{addr}/other", timeout=10)
            raise AssertionError("/other answered 200")
        except urllib.error.HTTPError as e:
            assert e.code == 404

    # --------------------------------------------------------------------------------------- measure
    def t_bulk_million(self):
        csv = "".join(f"account-{i:07d},marker-{i % 13}\n" for i in range(1000000))
        path = self.write("million.csv", csv)
        t0 = time.monotonic()
        p = self.ctl("table", "bulk", "million", path)
        dt = time.monotonic() - t0
        assert p.returncode == 0, p.err
        assert "1000000 rows in the table" in p.out and "dataplane: loaded 1000000 rows" in p.out, p.out
        assert len(self.agent.table("million")) == 1000000
        self.figures.append(f"table bulk 1M rows ({len(csv) / 1e6:.0f} MB CSV) through imfctl: {dt:.2f} s")
        g = self.ctl("table", "get", "million", "account-0999999")
        assert g.out == f"marker-{999999 % 13}\n", g.out

    def t_account_load_million(self):
        csv = "".join(f"user-{i:07d}@example.net,{'press' if i % 3 == 0 else ''},{'warned' if i % 1000 == 0 else ''},,\n"
                      for i in range(1000000))
        path = self.write("accounts-million.csv", csv)
        before = self.ctl_json("account", "count")["rows"]
        t0 = time.monotonic()
        p = self.ctl("account", "load", path)
        dt = time.monotonic() - t0
        assert p.returncode == 0, p.err
        assert "1000000 rows loaded (1000000 new, 0 updated)" in p.out and "1000 state changes recorded" in p.out, p.out
        assert f"dataplane: loaded {before + 1000000} rows" in p.out, p.out
        self.figures.append(f"account load 1M rows ({len(csv) / 1e6:.0f} MB CSV, 1000 state changes) through imfctl: "
                            f"{dt:.2f} s")
        j = self.ctl_json("account", "show", "user-0999000@example.net")
        assert j["row"] == "user-0999000@example.net,press,warned,," and j["dataplane"]["in_sync"], j

    def t_config_errors(self):
        conf = self.write("bad.conf", "socket = /tmp/x.sock\nmetrics_listen = 0.0.0.0:9477\n")
        p = subprocess.run([self.control, "--config", conf], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1, p.returncode
        assert f"{conf}:2: metrics_listen: 0.0.0.0 is not a loopback address" in p.stderr, p.stderr
        conf = self.write("bad2.conf", "sockett = /tmp/x.sock\n")
        p = subprocess.run([self.control, "--config", conf], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and f"{conf}:1: unknown key 'sockett'" in p.stderr, p.stderr

    def t_cli_usage(self):
        p = self.ctl("rules", "frobnicate")
        assert p.returncode == 2 and "unknown subcommand 'rules frobnicate'" in p.err, p.err
        p = self.ctl("rules", "load", "--help")
        assert p.returncode == 0 and p.out.startswith("usage: imfctl rules load FILE"), p.out
        p = self.ctl("rules", "diff", "1")
        assert p.returncode == 2, p.returncode
        p = self.ctl("health", socket_path=os.path.join(self.work, "absent.sock"))
        assert p.returncode == 3 and "cannot connect" in p.err, p.err

    def t_shutdown(self):
        for d in (self.daemon, self.rootonly):
            d.stop()
            assert d.proc.returncode == 0, f"{d.name}: exit {d.proc.returncode}"
            assert not os.path.exists(d.socket), f"{d.name}: socket file left behind"
            log = d.log()
            assert "Sanitizer" not in log and "runtime error" not in log, log[-3000:]

    # --------------------------------------------------------------------------------------- run
    def run(self):
        self.agent.start()
        policy = self.write("policy.conf", "report-threshold 2\n")
        self.daemon = Daemon(self.control, self.work, "control", socket=os.path.join(self.work, "control.sock"),
                             group="nogroup", state_dir=self.state, appliance_id="it-box", policy_file=policy,
                             dataplane_socket=self.agent.path, metrics_listen="127.0.0.1:0",
                             max_request_bytes=64 * 1024 * 1024, resync_interval=1, keep_versions=5)
        self.rootonly = Daemon(self.control, self.work, "rootonly", socket=os.path.join(self.work, "root.sock"),
                               state_dir=os.path.join(self.work, "state-root"),
                               dataplane_socket=os.path.join(self.work, "none.sock"))
        try:
            self.check("config errors name file, line and key", self.t_config_errors)
            self.daemon.start()
            self.rootonly.start()
            self.check("imfctl usage errors and unreachable socket", self.t_cli_usage)
            self.check("rules validate: good and bad files", self.t_validate)
            self.check("rules load v1 installs in the dataplane", self.t_load_v1)
            self.check("failed loads leave version 1 active", self.t_load_bad_changes_nothing)
            self.check("load v2, diff, show, list, rollback", self.t_load_v2_diff_rollback)
            self.check("table bulk 100k rows, get, set", self.t_table_bulk)
            self.check("table changes reach the dataplane; limits", self.t_table_forwarding)
            self.check("accounts: set, show, del, load, count through imfctl", self.t_accounts)
            self.check("reports: add, list, resolve; escalation at the threshold", self.t_reports)
            self.check("imfd's state changes are followed from its records", self.t_dataplane_records)
            self.check("records: verify, query --pseudonymize, digest; an edited line fails verify", self.t_records)
            self.check("a restart keeps accounts, reports and records", self.t_restart_keeps_accounts)
            self.check("protocol errors keep the connection usable", self.t_protocol_errors)
            self.check("oversized request line", self.t_oversized)
            self.check("args.path from root", self.t_path_only_for_root)
            self.check("permission check (SO_PEERCRED, group)", self.t_permissions)
            self.check("kill -9 during a 10k-rule load, restart", self.t_kill9_during_load)
            self.check("resync after the agent restarts (rules and tables)", self.t_resync_after_agent_restart)
            self.check("an agent without tables is sent none", self.t_agent_without_tables)
            self.check("stats and Prometheus metrics", self.t_stats_and_metrics)
            self.check("table bulk 1M rows", self.t_bulk_million)
            self.check("account load 1M rows", self.t_account_load_million)
            self.check("SIGTERM: clean exit, socket removed, no sanitizer report", self.t_shutdown)
        finally:
            self.daemon.stop()
            self.rootonly.stop()
            self.agent.stop()
            if self.failed:
                print(f"--- imf-control log ---\n{self.daemon.log()[-4000:]}")
            if self.keep:
                print(f"kept {self.work}")
            else:
                shutil.rmtree(self.work, ignore_errors=True)
        for f in self.figures:
            print(f"figure: {f}")
        print(f"{self.passed} passed, {self.failed} failed")
        return 0 if self.failed == 0 else 1


def main():
    args = [a for a in sys.argv[1:] if a != "--keep"]
    if len(args) != 4:
        print(__doc__)
        return 2
    return Test(*args, keep="--keep" in sys.argv).run()


if __name__ == "__main__":
    sys.exit(main())
