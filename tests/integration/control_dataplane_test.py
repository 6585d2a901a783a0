#!/usr/bin/python3
"""imf-control and imfd together: either can die and come back while the other keeps going.

imfd replays a synthesized MQTT capture at full speed (net_pcap infinite_rx -> net_null) and is
driven by a real imf-control through its agent socket; ops use imfctl.

Checks: a version loaded while the dataplane is down becomes active on disk and imfd starts from
it alone; loads reach the running dataplane; `kill -9` of imf-control in the middle of loading a
10k-regex rule set leaves imfd forwarding on its version and the state directory consistent; a
restarted imf-control resyncs and can roll back; a restarted imfd comes back on the active
version; metrics are served; no packet is lost.

usage: control_dataplane_test.py IMFD IMF_CONTROL IMFCTL IMF_SYNTH
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

IMFD, CONTROL, IMFCTL, SYNTH = sys.argv[1:5]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def wait_for(pred, seconds=20.0):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


class Env:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="imf-ctl-dp-")
        self.state = f"{self.dir}/state"
        self.csock = f"{self.dir}/control.sock"
        self.dsock = f"{self.dir}/dataplane.sock"
        self.conf = f"{self.dir}/control.conf"
        with open(self.conf, "w") as f:
            f.write(f"socket = {self.csock}\nstate_dir = {self.state}\ndataplane_socket = {self.dsock}\n"
                    "metrics_listen = 127.0.0.1:0\nresync_interval = 1\nkeep_versions = 5\n")
        self.control = None
        self.imfd = None

    def sh(self, *a):
        return subprocess.run(a, check=True, capture_output=True, text=True).stdout

    def ctl(self, *args):
        p = subprocess.run([IMFCTL, "--socket", self.csock, "--json", *args], capture_output=True, text=True)
        try:
            return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None, p.stderr
        except json.JSONDecodeError:
            return p.returncode, None, p.stdout + p.stderr

    def start_control(self):
        self.control = subprocess.Popen([CONTROL, "--config", self.conf], stdout=subprocess.DEVNULL,
                                        stderr=open(f"{self.dir}/control.log", "a"))
        return wait_for(lambda: self.ctl("health")[0] == 0)

    def start_imfd(self, packets):
        self.imfd = subprocess.Popen(
            [IMFD, "--no-pci", "--no-huge", "--no-shconf", "-m", "1024", "-l", "0,1", "--file-prefix",
             f"ctldp{os.getpid()}", "--no-telemetry", "--vdev",
             f"net_pcap0,rx_pcap={self.dir}/cap.pcap,infinite_rx=1", "--vdev", "net_null0,no-rx=1", "--",
             "--state-dir", self.state, "--agent-socket", self.dsock, "--events", "/dev/null", "--summary-json",
             f"{self.dir}/summary.json", "--flows", "1024", "--sides-on-one-port", "--mbufs", str(packets + 8192)],
            stdout=subprocess.DEVNULL, stderr=open(f"{self.dir}/imfd.log", "a"))
        return wait_for(lambda: os.path.exists(self.dsock))

    def stop_imfd(self):
        self.imfd.send_signal(signal.SIGINT)
        self.imfd.wait(timeout=60)
        return json.load(open(f"{self.dir}/summary.json"))

    def agent(self, **req):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.dsock)
            f = s.makefile("rwb")
            f.write(json.dumps(req).encode() + b"\n")
            f.flush()
            return json.loads(f.readline())

    def active_on_disk(self):
        return int(open(f"{self.state}/rules/active").read())


def main():
    env = Env()
    d = env.dir
    env.sh(SYNTH, "rules", "--count", "40", "--seed", "5", "--out", f"{d}/base.rules", "--triggers", f"{d}/base.trig")
    env.sh(SYNTH, "rules", "--count", "10000", "--seed", "6", "--out", f"{d}/big.rules", "--triggers", f"{d}/big.trig")
    env.sh(SYNTH, "traffic", "--profile", "mixed", "--flows", "200", "--messages", "4000", "--match-fraction", "0.05",
           "--triggers", f"{d}/base.trig", "--seed", "5", "--out", f"{d}/cap")
    packets = json.load(open(f"{d}/cap.json"))["packets"]
    base = [l for l in open(f"{d}/base.rules") if l.strip() and not l.startswith("#")]
    for k in (1, 2):
        with open(f"{d}/v{k}.rules", "w") as f:
            f.writelines(f"v{k}.{l}" for l in base)

    try:
        check(env.start_control(), "imf-control starts")
        rc, res, err = env.ctl("rules", "load", f"{d}/v1.rules")
        check(rc == 0 and res["version"] == 1 and not res["dataplane"]["installed"],
              f"load with the dataplane down: version 1 active on disk, not installed ({rc} {res} {err})")
        check(env.active_on_disk() == 1, "rules/active names version 1")

        check(env.start_imfd(packets), "imfd starts from the state directory alone")
        st = env.agent(cmd="status")
        check(st["version"] == 1, f"imfd runs the persisted active version 1: {st}")
        want = {"mqtt": {"tcp": [1883], "udp": []}, "xmpp": {"tcp": [5222], "udp": []},
                "sip": {"tcp": [5060], "udp": [5060]}, "irc": {"tcp": [6667], "udp": []}, "detect": False}
        check(st.get("protocols") == want, f"status names what is decoded on which ports: {st.get('protocols')}")

        rc, res, err = env.ctl("rules", "load", f"{d}/v2.rules")
        check(rc == 0 and res["dataplane"]["installed"] and env.agent(cmd="status")["version"] == 2,
              f"load reaches the running dataplane: version 2 ({rc} {res} {err})")

        # kill -9 in the middle of compiling a 10k-regex set.
        rx_before = env.agent(cmd="stats")["counters"]["rx_packets"]
        load = subprocess.Popen([IMFCTL, "--socket", env.csock, "rules", "load", f"{d}/big.rules"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)
        env.control.send_signal(signal.SIGKILL)
        env.control.wait()
        load.wait(timeout=30)
        check(load.returncode != 0, f"the interrupted load fails for imfctl (exit {load.returncode})")
        time.sleep(0.5)
        st = env.agent(cmd="stats")
        check(st["version"] == 2 and st["counters"]["rx_packets"] > rx_before,
              f"after kill -9 of imf-control imfd still forwards on version 2 "
              f"({rx_before} -> {st['counters']['rx_packets']} packets)")
        check(env.active_on_disk() == 2, "rules/active still names version 2")

        check(env.start_control(), "imf-control restarts")
        rc, res, _ = env.ctl("status")
        check(rc == 0 and res["dataplane"]["reachable"] and res["dataplane"]["version"] == 2
              and res["control"]["active_version"] == 2, f"restarted control is in sync: {res}")
        check(res["dataplane"].get("protocols", {}).get("sip") == {"tcp": [5060], "udp": [5060]},
              f"imf-control's status carries the dataplane's protocols: {res['dataplane'].get('protocols')}")
        port = res["control"].get("metrics_listen", "")
        rc, res, err = env.ctl("rules", "rollback", "1")
        check(rc == 0 and env.agent(cmd="status")["version"] == 1 and env.active_on_disk() == 1,
              f"rollback to version 1 reaches disk and dataplane ({rc} {res} {err})")

        # Tables reach the dataplane: single rows and a bulk load, read back through imfd's agent.
        rc, res, err = env.ctl("table", "set", "markers", "alice", "verified_publisher")
        check(rc == 0 and env.agent(cmd="table.get", table="markers", key="alice").get("value")
              == "verified_publisher", f"table set reaches imfd ({rc} {res} {err})")
        with open(f"{d}/markers.csv", "w") as f:
            f.writelines(f"user{i},m{i % 64}\n" for i in range(20000))
        rc, res, err = env.ctl("table", "bulk", "markers", f"{d}/markers.csv")
        st = env.agent(cmd="status")
        check(rc == 0 and {"table": "markers", "rows": 20001} in st.get("tables", []),
              f"table bulk reaches imfd: {st.get('tables')} ({rc} {err})")
        rc, res, err = env.ctl("table", "set", "markers", "k" * 97, "v")
        check(rc != 0 and "96" in (err or ""), f"an over-long key is refused by imf-control ({rc} {err.strip()})")

        if check(port.startswith("127.0.0.1:") and not port.endswith(":0"), f"metrics on {port}"):
            text = urllib.request.urlopen(f"http://{port}/metrics", timeout=5).read().decode()
            check("imf_dataplane_up 1" in text and "imf_rules_version 1" in text and "rx_packets" in text,
                  "metrics: dataplane up, version 1, packet counters")

        # imfd restarts: comes back on the active version; the control process resyncs with it.
        s = env.stop_imfd()
        c = s["counters"]
        check(c["forwarded"] == c["rx_packets"] and c["dropped"] == 0 and c["tx_dropped"] == 0
              and s["ports"][1]["tx"] == s["ports"][0]["rx"],
              f"no packet lost across loads, a control crash and a rollback: rx {c['rx_packets']} "
              f"forwarded {c['forwarded']}")
        check(env.start_imfd(packets) and env.agent(cmd="status")["version"] == 1,
              "a restarted imfd comes back on active version 1")
        check(wait_for(lambda: {"table": "markers", "rows": 20001} in env.agent(cmd="status").get("tables", []), 15),
              "the control process reloads the tables into the restarted imfd")
        check(wait_for(lambda: env.ctl("status")[1]["dataplane"].get("in_sync") is True, 10),
              "the control process sees the restarted dataplane in sync")
        rc, res, err = env.ctl("rules", "load", f"{d}/v2.rules")
        check(rc == 0 and env.agent(cmd="status")["version"] == res["version"],
              f"loads reach the restarted dataplane (version {res and res.get('version')})")
    finally:
        for p in (env.imfd, env.control):
            if p and p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
    print(f"{len(failures)} failed" if failures else "all checks passed")
    sys.exit(1 if failures else 0)
