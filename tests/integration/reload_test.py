#!/usr/bin/python3
"""Rule-set reloads under continuous traffic, through imfd's agent socket.

imfd replays a synthesized MQTT capture at full speed (net_pcap infinite_rx -> net_null) and starts
from a state directory holding version 1, as it would after the control process persisted it.
Versions 2..7 are installed one after another while traffic runs. Each version k holds a different
subset of the same patterns, renamed "v<k>.<id>", so every event names the version that judged it.

Checks: every event's rule belongs to the version the event names (no packet judged by a mix of
versions, nor by a half-installed one); versions only move forward; every version judged traffic;
no packet lost (every received packet forwarded, nothing refused by TX); bad agent requests get
precise errors and change nothing; tables are set, replaced, deleted and loaded while traffic runs.

usage: reload_test.py IMFD IMF_SYNTH MAKE_ARTIFACT
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

IMFD, SYNTH, MAKE_ARTIFACT = sys.argv[1:4]
VERSIONS = range(1, 8)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def in_version(index, k):
    """Version k holds the base rules whose index is not k modulo 4."""
    return index % 4 != k % 4


class Agent:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")

    def raw(self, line):
        self.f.write(line.encode() + b"\n")
        self.f.flush()
        return json.loads(self.f.readline())

    def ask(self, **req):
        return self.raw(json.dumps(req))


def main():
    work = tempfile.mkdtemp(prefix="imf-reload-")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, text=True).stdout
    run(SYNTH, "rules", "--count", "40", "--seed", "7", "--out", f"{work}/base.rules", "--triggers",
        f"{work}/base.triggers")
    run(SYNTH, "traffic", "--profile", "mixed", "--flows", "200", "--messages", "6000", "--match-fraction", "0.05",
        "--triggers", f"{work}/base.triggers", "--seed", "7", "--out", f"{work}/cap")
    packets = json.load(open(f"{work}/cap.json"))["packets"]

    base = [l.split() for l in open(f"{work}/base.rules") if l.strip() and not l.startswith("#")]
    index_of = {r[0]: i for i, r in enumerate(base)}
    os.makedirs(f"{work}/state/rules")
    for k in VERSIONS:
        with open(f"{work}/v{k}.rules", "w") as f:
            for i, r in enumerate(base):
                if in_version(i, k):
                    f.write(f"v{k}.{r[0]} alert {r[2]} {' '.join(r[3:])}\n")
        run(MAKE_ARTIFACT, f"{work}/v{k}.rules", str(k), f"{work}/state/rules/{k}.imfrules")
    # A version too big for the rule-set memory budget imfd runs with (1 MiB here).
    run(SYNTH, "rules", "--count", "1000", "--seed", "8", "--out", f"{work}/big.rules", "--triggers",
        f"{work}/big.triggers")
    run(MAKE_ARTIFACT, f"{work}/big.rules", "50", f"{work}/state/rules/50.imfrules")
    with open(f"{work}/state/rules/active", "w") as f:
        f.write("1\n")

    sock = f"{work}/agent.sock"
    events = f"{work}/events.jsonl"
    summary = f"{work}/summary.json"
    imfd = subprocess.Popen(
        [IMFD, "--no-pci", "--no-huge", "--no-shconf", "-m", "1024", "-l", "0,1", "--file-prefix",
         f"reload{os.getpid()}", "--no-telemetry", "--vdev", f"net_pcap0,rx_pcap={work}/cap.pcap,infinite_rx=1",
         "--vdev", "net_null0,no-rx=1", "--", "--state-dir", f"{work}/state", "--agent-socket", sock,
         "--events", events, "--summary-json", summary, "--flows", "1024", "--sides-on-one-port", "--mbufs", str(packets + 8192),
         "--rules-memory-mb", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(300):
            if os.path.exists(sock) or imfd.poll() is not None:
                break
            time.sleep(0.05)
        check(os.path.exists(sock), "imfd started from the state directory and listens on its agent socket")
        if not os.path.exists(sock):
            return
        agent = Agent(sock)
        st = agent.ask(cmd="status")
        check(st.get("ok") and st.get("version") == 1, f"starts with the persisted active version 1: {st}")

        # Bad requests: precise errors, nothing changes.
        bad = [
            ('{"cmd":"install","version":3,"artifact":"' + work + '/nope.imfrules"}', "cannot open"),
            ('{"cmd":"install","version":9,"artifact":"' + work + '/state/rules/3.imfrules"}', "holds version 3, not 9"),
            ('{"cmd":"install","version":3}', "needs 'version' and 'artifact'"),
            ('{"cmd":"status","verbose":1}', "unknown member 'verbose'"),
            ('{"cmd":"reboot"}', "unknown cmd 'reboot'"),
            ('{"cmd":"status"', "malformed JSON"),
            ('[1,2]', "not a JSON object"),
        ]
        with open(f"{work}/state/rules/corrupt.imfrules", "wb") as f:
            f.write(open(f"{work}/state/rules/3.imfrules", "rb").read()[:-100])
        bad.append(('{"cmd":"install","version":3,"artifact":"' + work + '/state/rules/corrupt.imfrules"}',
                    "not a valid rule-set artifact"))
        for line, want in bad:
            r = agent.raw(line)
            check(not r.get("ok") and want in r.get("error", ""), f"{line[:60]} -> error mentioning {want!r}: {r}")
        r = agent.ask(cmd="install", version=50, artifact=f"{work}/state/rules/50.imfrules")
        check(not r.get("ok") and "over the rule-set memory budget of 1 MiB" in r.get("error", ""),
              f"a version over the memory budget is refused: {r}")
        check(agent.ask(cmd="status").get("version") == 1, "bad requests left version 1 active")

        # Tables: rows set, replaced, deleted and whole snapshots loaded while traffic runs.
        check(agent.ask(cmd="table.set", table="markers", key="alice", value="verified_publisher") == {"ok": True},
              "table.set")
        check(agent.ask(cmd="table.get", table="markers", key="alice").get("value") == "verified_publisher",
              "table.get returns the value")
        agent.ask(cmd="table.set", table="markers", key="alice", value="")
        check(agent.ask(cmd="table.get", table="markers", key="alice") == {"ok": True, "found": True, "value": ""},
              "table.set replaces")
        check(agent.ask(cmd="table.del", table="markers", key="alice") == {"ok": True, "deleted": True},
              "table.del")
        with open(f"{work}/markers.csv", "w") as f:
            f.writelines(f"user{i},m{i % 64}\n" for i in range(50000))
        r = agent.ask(cmd="table.load", table="markers", path=f"{work}/markers.csv")
        check(r.get("ok") and r.get("rows") == 50000, f"table.load of 50,000 rows: {r}")
        check(agent.ask(cmd="table.get", table="markers", key="user49999").get("value") == "m15",
              "loaded rows are found")
        st = agent.ask(cmd="status")
        check(st.get("tables") == [{"table": "markers", "rows": 50000}], f"status lists the tables: {st.get('tables')}")
        for req, want in [({"cmd": "table.set", "table": "markers", "key": "k" * 97, "value": "v"}, "keys are 1-96"),
                          ({"cmd": "table.get", "table": "nope", "key": "k"}, "no table 'nope'"),
                          ({"cmd": "table.set", "table": "markers", "key": "k"}, "needs string member 'value'"),
                          ({"cmd": "table.load", "table": "markers", "path": f"{work}/none.csv"}, "cannot open")]:
            r = agent.ask(**req)
            check(not r.get("ok") and want in r.get("error", ""), f"{req['cmd']} error mentions {want!r}: {r}")
        check(agent.ask(cmd="status").get("tables") == [{"table": "markers", "rows": 50000}],
              "refused table requests changed nothing")

        installs = []
        for k in VERSIONS[1:]:
            time.sleep(0.4)
            r = agent.ask(cmd="install", version=k, artifact=f"{work}/state/rules/{k}.imfrules")
            installs.append(r)
            check(r.get("ok") and r.get("version") == k, f"install version {k}: {r}")
        time.sleep(0.4)
        stats = agent.ask(cmd="stats")
        check(stats.get("ok") and stats.get("version") == VERSIONS[-1]
              and all(l["version"] == VERSIONS[-1] for l in stats["lcores"]),
              f"stats: every lcore on version {VERSIONS[-1]}")
        check(stats.get("rules") and all(r["id"].startswith(f"v{VERSIONS[-1]}.") for r in stats["rules"]),
              "stats list the active version's rules")
        st = agent.ask(cmd="status")
        check(st["last_install"]["version"] == VERSIONS[-1] and st["generation_bytes"] > 0, f"status: {st}")
        print("install times (ms): " + ", ".join(f"v{r['version']} load {r['load_ms']:.1f} swap {r['swap_ms']:.2f}"
                                                for r in installs if r.get("ok")))
    finally:
        imfd.send_signal(signal.SIGINT)
        out, _ = imfd.communicate(timeout=60)
    check(imfd.returncode == 0, f"imfd exited cleanly ({imfd.returncode})")
    if imfd.returncode != 0:
        print(out[-3000:])
        return

    s = json.load(open(summary))
    c = s["counters"]
    check(c["rx_packets"] > 10 * packets, f"traffic ran throughout: {c['rx_packets']} packets received")
    check(c["forwarded"] == c["rx_packets"] and c["dropped"] == 0 and c["tx_dropped"] == 0,
          f"no packet lost: rx {c['rx_packets']} forwarded {c['forwarded']} dropped {c['dropped']} "
          f"tx_dropped {c['tx_dropped']}")
    check(s["ports"][1]["tx"] == s["ports"][0]["rx"], f"port 1 sent what port 0 received: {s['ports']}")

    seen = {k: 0 for k in VERSIONS}
    wrong = []
    last = 0
    backwards = 0
    n = 0
    for line in open(events):
        e = json.loads(line)
        n += 1
        k = e["rules_version"]
        m = re.fullmatch(r"v(\d+)\.(.+)", e["rule"])
        if not m or int(m.group(1)) != k or not in_version(index_of[m.group(2)], k):
            wrong.append(e)
        seen[k] = seen.get(k, 0) + 1
        backwards += k < last
        last = max(last, k)
    check(n > 0 and not wrong, f"all {n} events name a rule of the version that judged them ({len(wrong)} do not)")
    check(backwards == 0, f"versions only move forward ({backwards} events went back)")
    check(all(seen[k] > 0 for k in VERSIONS), f"every version judged traffic: {seen}")
    check(n + c["events_lost"] == c["rule_alerts"], f"events {n} + lost {c['events_lost']} == alerts {c['rule_alerts']}")


if __name__ == "__main__":
    main()
    print(f"{len(failures)} failed" if failures else "all checks passed")
    sys.exit(1 if failures else 0)
