#!/usr/bin/python3
"""imf benchmark: imfd's full pipeline beside its Hyperscan ceiling and a naive PCRE2 baseline.

One command, one report: synthesizes rule sets and IM traffic (bench/synth), then for every
rule-set size and packet-size profile measures, on the same bytes,
  (a) imfd on worker lcores, capture replayed from memory (net_pcap infinite_rx=1) -> net_null,
  (b) Hyperscan alone over the message bodies: streaming as the dataplane scans, and block mode,
  (c) PCRE2 JIT, one pattern per rule, over each message,
plus memory per flow, latency added per packet, scaling over worker lcores, the account
table's memory, bulk-load time and lookup cost (bench/accounts) at 10M accounts, and the cost of
each hostile-traffic stage (checksums, TCP validation, defragmentation) beside the same run with
it switched off (imfd --measure-without), timed and in callgrind instruction counts. Writes
report.md, results.json and PNG plots into the results folder. See bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 1 << 30
START = time.monotonic()

# Rule-set sizes, profiles and loads of the two modes. Quick mode is what CI runs.
FULL = dict(rules=[100, 1000, 10000], flows=10000, messages=100000, full_messages=10000, small_frames=200000,
            duration=5, scan_seconds=2.0, pcre2_seconds=10.0, repeat=3, accounts=10000000, lookups=10000000)
QUICK = dict(rules=[100, 1000], flows=1000, messages=10000, full_messages=1000, small_frames=20000,
             duration=1, scan_seconds=0.3, pcre2_seconds=1.5, repeat=1, accounts=100000, lookups=200000)
# The callgrind capture (both modes): short, so a run under valgrind takes about a minute.
CALLGRIND_TRAFFIC = dict(flows=1000, messages=10000)
SECTIONS = ["throughput", "scaling", "accounts", "stages"]
PROFILES = ["small", "mixed", "full"]
PROFILE_TITLE = {"small": "64-byte pass-through (non-IM)", "mixed": "mixed chat traffic",
                 "full": "full 1514-byte segments"}
CORPUS = "/usr/share/games/fortunes"


class BenchError(Exception):
    pass


def progress(msg):
    t = time.monotonic() - START
    print(f"[{int(t) // 60:02d}:{int(t) % 60:02d}] {msg}", flush=True)


def run(cmd, log=None, timeout=None):
    """Runs cmd; raises BenchError naming the command and its stderr tail on failure."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if log:
        with open(log, "a") as f:
            f.write("$ " + " ".join(cmd) + "\n" + p.stdout + "\n")
    if p.returncode != 0:
        tail = "\n".join(p.stdout.splitlines()[-15:])
        raise BenchError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{tail}")
    return p.stdout


def run_sampled(cmd, log, timeout):
    """Runs imfd like run(), reading every 50 ms how much CPU time each of its worker lcore threads
    (DPDK names them rte-worker-N) has had. Returns the output and, per lcore id, that thread's CPU
    seconds as last read: a worker blocks before its loop starts and after it ends, and imfd takes
    longer than that to exit, so this is the CPU time of the loop."""
    cpu = {}
    with tempfile.TemporaryFile("w+") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while p.poll() is None:
            if time.monotonic() > deadline:
                p.kill()
                p.wait()
                raise BenchError(f"command timed out after {timeout} s: {' '.join(cmd)}")
            try:
                tasks = os.listdir(f"/proc/{p.pid}/task")
            except OSError:
                tasks = []
            for tid in tasks:
                try:
                    with open(f"/proc/{p.pid}/task/{tid}/comm") as f:
                        comm = f.read().strip()
                    if comm.startswith("rte-worker-"):
                        with open(f"/proc/{p.pid}/task/{tid}/schedstat") as f:
                            cpu[int(comm[len("rte-worker-"):])] = int(f.read().split()[0]) / 1e9
                except (OSError, ValueError, IndexError):
                    continue  # the thread or the process ended meanwhile
            time.sleep(0.05)
        out.seek(0)
        text = out.read()
    if log:
        with open(log, "a") as f:
            f.write("$ " + " ".join(cmd) + "\n" + text + "\n")
    if p.returncode != 0:
        tail = "\n".join(text.splitlines()[-15:])
        raise BenchError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{tail}")
    return text, cpu


def load_json(path):
    with open(path) as f:
        return json.load(f)


# --- Machine and tools

def machine_info(args, tools):
    def first_line(cmd):
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout.strip()
        except OSError:
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "host": platform.node(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / (1 << 20), 1),
        "kernel": platform.release(),
        "os": first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "dpdk": first_line(["pkg-config", "--modversion", "libdpdk"]),
        "hyperscan": first_line(["pkg-config", "--modversion", "libhs"]),
        "pcre2": first_line(["pkg-config", "--modversion", "libpcre2-8"]),
        "compiler": first_line(["c++", "--version"]).splitlines()[0] if first_line(["c++", "--version"]) else "?",
        "commit": first_line(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
        "build": tools["build"],
        "command": " ".join([sys.argv[0]] + sys.argv[1:]),
    }


def find_tools(args):
    """Uses the given binaries, or builds a release tree (build-bench) and uses its binaries."""
    if args.imfd and args.synth and args.scanbench and args.accountbench:
        return {"imfd": args.imfd, "synth": args.synth, "scanbench": args.scanbench,
                "accountbench": args.accountbench, "build": "as given"}
    build = os.path.join(ROOT, "build-bench")
    if not os.path.isdir(build):
        progress("configuring a release build in build-bench/")
        run(["meson", "setup", build, ROOT, "--buildtype=release", "-Dtests=false"])
    progress("building imfd, imf-synth, imf-scanbench, imf-accountbench (release)")
    run(["ninja", "-C", build, "dataplane/imfd", "bench/synth/imf-synth", "bench/scan/imf-scanbench",
         "bench/accounts/imf-accountbench"])
    return {"imfd": os.path.join(build, "dataplane/imfd"), "synth": os.path.join(build, "bench/synth/imf-synth"),
            "scanbench": os.path.join(build, "bench/scan/imf-scanbench"),
            "accountbench": os.path.join(build, "bench/accounts/imf-accountbench"), "build": "release (build-bench)"}


# --- Inputs

def make_rule_sets(tools, cfg, work, seed, log):
    """Rule sets of every size. The generator is prefix-stable (rule i depends only on the seed
    and i), so the smallest set's triggers hit every set and all sizes judge the same bytes."""
    sets = {}
    for n in cfg["rules"]:
        rules = os.path.join(work, f"rules-{n}.rules")
        triggers = os.path.join(work, f"rules-{n}.triggers")
        run([tools["synth"], "rules", "--count", str(n), "--seed", str(seed), "--out", rules, "--triggers", triggers],
            log)
        sets[n] = {"rules": rules, "triggers": triggers}
    return sets


def make_traffic(tools, cfg, work, profile, queues, triggers, args, log, fragment=0, flows=None, messages=None):
    """A capture of `profile` split over `queues` files; with `fragment`, its data segments sent as
    IPv4 fragments of at most that many payload bytes (same messages, same message log)."""
    name = profile + (f"-frag{fragment}" if fragment else "") + (f"-{flows}f{messages}m" if flows else "")
    prefix = os.path.join(work, f"{name}-q{queues}")
    flows = flows or cfg["flows"]
    messages = messages or {"small": cfg["small_frames"], "mixed": cfg["messages"],
                            "full": cfg["full_messages"]}[profile]
    run([tools["synth"], "traffic", "--profile", profile, "--flows", str(flows), "--messages", str(messages),
         "--match-fraction", str(args.match_fraction), "--triggers", triggers, "--corpus", CORPUS, "--seed",
         str(args.seed), "--out", prefix, "--queues", str(queues)]
        + (["--fragment", str(fragment)] if fragment else []), log)
    caps = [prefix + ".pcap"] if queues == 1 else [f"{prefix}.q{q}.pcap" for q in range(queues)]
    info = load_json(prefix + ".json")
    info["captures"] = caps
    info["mlog"] = prefix + ".mlog"
    return info


# --- (a) imfd

def lcore_args(workers, cpus):
    """Main lcore on CPU 0; workers on their own CPUs, the first sharing CPU 0 only when every CPU
    hosts a worker (the main lcore only sleeps and reads counters)."""
    if workers + 1 <= cpus:
        return ["-l", f"0-{workers}"]
    mapping = ["0@0"] + [f"{w}@{w - 1}" for w in range(1, workers + 1)]
    return ["--lcores", ",".join(mapping)]


def run_imfd(tools, traffic, rules, workers, cfg, args, work, tag, log, without=""):
    """One timed run of imfd; `without` is a --measure-without list (stages switched off)."""
    flows = 1 << max(10, (traffic["flows"] * 2 // workers - 1).bit_length())  # room for each worker's share, 2x
    summary = os.path.join(work, f"imfd-{tag}.json")
    default_mbufs = 2 * workers * (1024 + 1024 + 64) + 4096
    mbufs = traffic["packets"] + default_mbufs
    flow_mem = workers * flows * 2048  # generous: state + streams + index per flow
    mem_mb = (2 * mbufs * 2600 + flow_mem) // (1 << 20) + 512  # the pool is one large zone: leave room
    if args.nic:
        ports = []
        for pci in args.nic.split(","):
            ports += ["-a", pci]
        eal = ports + ["--file-prefix", f"imfbench{os.getpid()}"]
    else:
        rx = ",".join(f"rx_pcap={c}" for c in traffic["captures"])
        eal = ["--no-pci", "--no-huge", "--no-shconf", "-m", str(mem_mb), "--file-prefix", f"imfbench{os.getpid()}",
               "--vdev", f"net_pcap0,{rx},infinite_rx=1", "--vdev", "net_null0,no-rx=1"]
    cmd = [tools["imfd"]] + lcore_args(workers, os.cpu_count()) + eal + [
        "--no-telemetry", "--", "--rules", rules, "--events", os.path.join(work, f"events-{tag}.jsonl"),
        # As deployed: every message body digested, every measure in the records chain.
        "--digest-key", os.path.join(work, "digest.key"), "--records-dir", os.path.join(work, f"records-{tag}"),
        "--summary-json", summary, "--duration", str(cfg["duration"]), "--flows", str(flows), "--mbufs", str(mbufs),
        "--prebalanced-queues"]
    if not args.nic:
        cmd.append("--sides-on-one-port")  # both directions replayed into port 0
    if without:
        cmd += ["--measure-without", without]
    _, cpu = run_sampled(cmd, log, timeout=cfg["duration"] + 600)
    s = load_json(summary)
    d = derive_pipeline(s, traffic)
    # The share of its loop each worker spent on a CPU: a worker polls without pause, so anything
    # short of all of it is time other processes took. One worker: its rates per second of its own
    # CPU time, beside the wall-clock ones.
    shares = [min(1.0, cpu[l["lcore"]] / l["seconds"]) for l in s["lcores"] if cpu.get(l["lcore"]) and l["seconds"] > 0]
    d["on_cpu"] = min(shares) if len(shares) == len(s["lcores"]) else None
    if workers == 1 and d["on_cpu"]:
        d["pps_cpu"] = d["pps"] / d["on_cpu"]
        d["messages_per_cpu_sec"] = d["messages_per_sec"] / d["on_cpu"]
    return d


def derive_pipeline(s, traffic):
    c = s["counters"]
    seconds = max(l["seconds"] for l in s["lcores"])
    if seconds <= 0 or c["rx_packets"] == 0:
        raise BenchError("imfd received nothing; see the log")
    rx_bytes = sum(p["rx_bytes"] for p in s["ports"])
    rx_pkts = c["rx_packets"]
    msgs = c["mqtt_publishes"]
    body = c["mqtt_payload_bytes"]
    hits = sum(r["hits"] for r in s["rules"])
    hz = s["run"]["tsc_hz"]
    return {
        "workers": len(s["lcores"]),
        "seconds": seconds,
        "packets": rx_pkts,
        "pps": rx_pkts / seconds,
        "gbps": (rx_bytes + 4 * rx_pkts) * 8 / seconds / 1e9,  # Ethernet frames with FCS
        "messages_per_sec": msgs / seconds,
        "body_bytes_per_sec": body / seconds,
        "bytes_per_message": body / msgs if msgs else 0,
        "ns_per_wire_byte": seconds * len(s["lcores"]) * 1e9 / rx_bytes if rx_bytes else 0,
        "ns_per_body_byte": seconds * len(s["lcores"]) * 1e9 / body if body else 0,
        "cycles_per_packet": seconds * len(s["lcores"]) * hz / rx_pkts,
        "hit_rate": hits / msgs if msgs else 0,
        "latency_ns": s["latency_ns"],
        "forwarded": c["forwarded"],
        "dropped": c["dropped"],
        "events_lost": c["events_lost"],
        "tx_dropped": c["tx_dropped"],
        "malformed": c["mqtt_malformed"],
        "messages": msgs,
        "counters": {k: v for k, v in c.items() if v},
        "run": s["run"],
        "per_lcore_pps": [l["rx"] / l["seconds"] for l in s["lcores"]],
    }


def offline_check(tools, traffic, rules, work, tag, log, without=""):
    """Runs one capture once through imfd --offline (with the stages in `without` switched off):
    exact counts, the harness's own assertions."""
    summary = os.path.join(work, f"offline-{tag}.json")
    run([tools["imfd"], "--offline", "-r", traffic["captures"][0], "-w", os.path.join(work, f"offline-{tag}.pcap"),
         "--rules", rules, "--events", "/dev/null", "--summary-json", summary,
         "--flows", str(1 << max(10, (traffic["flows"] * 2 - 1).bit_length()))]
        + (["--measure-without", without] if without else []), log)
    s = load_json(summary)
    c = s["counters"]
    hits = sum(r["hits"] for r in s["rules"])
    problems = []
    if c["mqtt_publishes"] != traffic["messages"]:
        problems.append(f"imfd decoded {c['mqtt_publishes']} messages, the capture has {traffic['messages']}")
    if hits != traffic["planted"]:
        problems.append(f"imfd counted {hits} rule hits, {traffic['planted']} were planted")
    for name in ("mqtt_malformed", "tcp_out_of_order", "flows_midstream", "dropped"):
        if c[name]:
            problems.append(f"imfd counter {name} = {c[name]}, expected 0")
    if c["flows_created"] != traffic["flows"] or c["flows_closed"] != traffic["flows"]:
        problems.append(f"flows created/closed {c['flows_created']}/{c['flows_closed']}, capture has {traffic['flows']}")
    # A fragmented capture: every fragment held, every fragmented segment reassembled, none refused.
    for name, want in (("ip_fragments", traffic.get("fragments", 0)),
                       ("frag_reassembled", traffic.get("fragmented_datagrams", 0)), ("frag_dropped", 0)):
        if c[name] != want:
            problems.append(f"imfd counter {name} = {c[name]}, expected {want}")
    return {"messages": c["mqtt_publishes"], "hits": hits, "packets": c["rx_packets"], "dropped": c["dropped"],
            "problems": problems}


# --- (b) and (c)

def run_scanbench(tools, traffic, rules, cfg, work, tag, log, modes="hs-stream,hs-block,pcre2"):
    out = os.path.join(work, f"scan-{tag}.json")
    run([tools["scanbench"], "--rules", rules, "--mlog", traffic["mlog"], "--modes", modes,
         "--min-seconds", str(cfg["scan_seconds"]), "--max-seconds-pcre2", str(cfg["pcre2_seconds"]), "--json", out],
        log)
    result = load_json(out)
    modes = result["modes"]
    problems = []
    if not result["cross_check"]["agree"]:
        problems.append(f"Hyperscan and PCRE2 disagree on the same messages: {result.get('cross_check')}")
    for name, m in modes.items():
        if m["scan_errors"]:
            problems.append(f"{name}: {m['scan_errors']} scan errors")
        if m["complete_pass"] and m["hit_pairs"] != traffic["planted"]:
            problems.append(f"{name}: {m['hit_pairs']} hits in one pass, {traffic['planted']} planted")
    return modes, problems


# --- Account table

def run_accountbench(tools, cfg, args, work, log):
    """Bulk load, memory and per-operation costs of the account table (bench/accounts). The bench
    fails (and so the run) if a loaded account is not found, an absent one is, or a count is off."""
    out = os.path.join(work, "accounts.json")
    run([tools["accountbench"], "--accounts", str(cfg["accounts"]), "--lookups", str(cfg["lookups"]),
         "--seed", str(args.seed), "--dir", work, "--json", out] + (["--huge"] if args.huge else []), log)
    return load_json(out)


def median(runs, key):
    """The run with the median value of `key` (the lower middle one of an even count)."""
    return sorted(runs, key=lambda r: r[key])[(len(runs) - 1) // 2]


# --- Stage costs: each hostile-traffic stage beside the same run without it

# The runs of the stage section, alternated `repeat` times: (id, capture, --measure-without list).
STAGE_RUNS = [
    ("deployed", "mixed", ""),
    ("no-checksums", "mixed", "checksums"),
    ("no-tcp-validation", "mixed", "tcp-validation"),
    ("no-checksums-tcp-validation", "mixed", "checksums,tcp-validation"),
    ("fragmented", "fragmented", ""),
    ("fragmented-no-defrag", "fragmented", "defrag"),
]
# What each stage costs: the run with it against the run without it.
STAGE_PAIRS = [
    ("checksums", "deployed", "no-checksums"),
    ("tcp-validation", "deployed", "no-tcp-validation"),
    ("checksums + tcp-validation", "deployed", "no-checksums-tcp-validation"),
    ("defrag", "fragmented", "fragmented-no-defrag"),
]
# The function callgrind counts in: the worker's loop (offline, it runs on the main thread).
WORKER_FUNCTION = "imf::dp::worker_main(void*)"


def stage_rules(cfg, quick):
    """The stage section's rule-set size: the middle one (1k), in quick mode the smallest."""
    return cfg["rules"][0] if quick else cfg["rules"][len(cfg["rules"]) // 2]


def stage_cost(with_, without, key):
    """The cost of a stage from one run with it and one without, as a share of the pipeline's time
    per packet (with the stage) and in ns per packet (one worker: 1/pps is its time per packet)."""
    return {"share": 1 - with_[key] / without[key], "ns_per_packet": 1e9 / with_[key] - 1e9 / without[key]}


def run_callgrind(tools, traffic, rules, work, tag, without, log):
    """imfd --offline over `traffic` under callgrind, counting instructions in the worker loop only
    (not EAL start-up or the rule compile): the loop, RX from the pcap file and TX into one."""
    out = os.path.join(work, f"callgrind-{tag}.out")
    summary = os.path.join(work, f"callgrind-{tag}.json")
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
           f"--toggle-collect={WORKER_FUNCTION}", tools["imfd"], "--offline", "-r", traffic["captures"][0],
           "-w", os.path.join(work, f"callgrind-{tag}.pcap"), "--rules", rules, "--events", "/dev/null",
           "--digest-key", os.path.join(work, "digest.key"), "--records-dir", os.path.join(work, f"records-cg-{tag}"),
           "--summary-json", summary, "--flows", str(1 << max(10, (traffic["flows"] * 2 - 1).bit_length()))]
    if without:
        cmd += ["--measure-without", without]
    text = run(cmd, log, timeout=3600)
    m = re.search(r"^==\d+== Collected : (\d+)$", text, re.M)
    instructions = int(m.group(1)) if m else 0
    if not instructions:
        raise BenchError(f"callgrind counted no instructions in {WORKER_FUNCTION} (imfd built without that "
                         f"symbol?): see {out}")
    c = load_json(summary)["counters"]
    return {"instructions": instructions, "packets": c["rx_packets"], "messages": c["mqtt_publishes"],
            "forwarded": c["forwarded"], "dropped": c["dropped"],
            "per_packet": instructions / c["rx_packets"],
            "per_message": instructions / c["mqtt_publishes"] if c["mqtt_publishes"] else 0, "file": out}


def short_function(name):
    """A C++ function name from callgrind without return type, template and argument lists."""
    name = name.replace("(anonymous namespace)", "{anon}")
    prev = None
    while prev != name:
        prev, name = name, re.sub(r"<[^<>]*>", "", name)
    name = re.sub(r"\(.*\)", "()", name)
    head, _, args_ = name.partition("(")
    return head.rsplit(" ", 1)[-1] + ("(" + args_ if args_ else "")


def callgrind_profile(path, packets, top=10):
    """The functions with the most instructions (self cost) in a callgrind file, and the share of
    each object (imfd, libhs, libcrypto, ...). Unnamed functions (stripped libraries) keep their
    address."""
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True).stdout
    functions, objects, total = [], {}, 0
    for line in text.splitlines():
        m = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*?)(?: \[(.*)\])?$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        if m.group(2) == "PROGRAM TOTALS":
            total = ir
            continue
        fn = m.group(2)
        # Lines without an object are glibc's inlined pieces (Debian builds it from "./" paths).
        obj = os.path.basename(m.group(3) or ("libc.so.6" if fn.startswith("./") else "?"))
        fn = fn[4:] if fn.startswith("???:") else re.sub(r"^[^ :]+\.(c|cc|cpp|h|S|s):", "", fn)
        functions.append({"function": fn, "short": short_function(fn), "object": obj, "instructions": ir})
        objects[obj] = objects.get(obj, 0) + ir
    total = total or sum(f["instructions"] for f in functions) or 1
    for f in functions:
        f["share"] = f["instructions"] / total
        f["per_packet"] = f["instructions"] / packets
    return {"total": total, "top": functions[:top],
            "objects": [{"object": o, "instructions": v, "share": v / total, "per_packet": v / packets}
                        for o, v in sorted(objects.items(), key=lambda kv: -kv[1])]}


def run_stages(tools, cfg, args, work, sets, triggers, log, quick, mixed, callgrind, problems, checks):
    """The stage section: the mixed profile (and its fragmented variant) at one rule-set size, one
    worker, imfd as deployed and with stages switched off, alternated `repeat` times; then the same
    runs once under callgrind on a short capture."""
    n = stage_rules(cfg, quick)
    rules = sets[n]["rules"]
    caps = {"mixed": mixed}
    if not mixed:
        progress(f"stages: synthesizing mixed traffic ({cfg['flows']} flows)")
        caps["mixed"] = make_traffic(tools, cfg, work, "mixed", 1, triggers, args, log)
    progress(f"stages: synthesizing its fragmented variant (--fragment {args.fragment})")
    caps["fragmented"] = make_traffic(tools, cfg, work, "mixed", 1, triggers, args, log, fragment=args.fragment)
    # One exact offline pass of every run: switching off a stage must not change what an honest
    # capture's verdicts are, except defrag, without which fragments pass uninspected (counted).
    # Not timed: two at a time.
    progress(f"stages: offline exactness checks of the {len(STAGE_RUNS)} runs")
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        futures = {rid: pool.submit(offline_check, tools, caps[cid], rules, work, f"stage-{rid}-{n}", log, without)
                   for rid, cid, without in STAGE_RUNS}
        offline = {rid: f.result() for rid, f in futures.items()}
    for rid, cid, without in STAGE_RUNS:
        t, chk = caps[cid], offline[rid]
        head = f"stages {rid}-{n}: imfd --offline" + (f" --measure-without {without}" if without else "")
        if "defrag" in without:
            checks.append(f"{head} judged {chk['messages']} of {t['messages']} messages and dropped {chk['dropped']} "
                          f"of {chk['packets']} packets (fragments pass uninspected: not a check)")
            continue
        problems += [f"stages {rid}-{n}: {p}" for p in chk["problems"]]
        checks.append(f"{head} decoded {chk['messages']} of {t['messages']} messages, "
                      f"{chk['hits']} hits for {t['planted']} planted triggers"
                      + (f", reassembled {t['fragmented_datagrams']} fragmented segments from {t['fragments']} "
                         "fragments" if t.get("fragments") else "")
                      + ("" if not chk["problems"] else " — FAILED: " + "; ".join(chk["problems"])))

    # Alternating, as (a) and (b): every round runs each variant once, every other round in reverse
    # order, so drift in the CPU's speed reaches all of them alike.
    runs = {rid: [] for rid, _, _ in STAGE_RUNS}
    for rep in range(cfg["repeat"]):
        for rid, cid, without in (STAGE_RUNS if rep % 2 == 0 else STAGE_RUNS[::-1]):
            progress(f"stages: {rid}, {n} rules, 1 worker, {cfg['duration']} s"
                     + (f" [{rep + 1}/{cfg['repeat']}]" if cfg["repeat"] > 1 else ""))
            a = run_imfd(tools, caps[cid], rules, 1, cfg, args, work, f"stage-{rid}-r{rep}", log, without)
            runs[rid].append(a)
            progress(f"stages:     {a['pps'] / 1e6:.2f} Mpps, {fmt_rate(a['messages_per_sec'])} msg/s"
                     + (f"; worker on a CPU {a['on_cpu']:.0%} of the time: {a['pps_cpu'] / 1e6:.2f} Mpps per CPU "
                        "second" if a.get("pps_cpu") else ""))
            # Alert-only rules pass everything, but fragments of a datagram not complete when the
            # run stopped are still held. Without defrag fragments pass uninspected: their
            # segments' successors are out of order, and what follows is dropped (reported).
            held = caps[cid].get("max_fragments_per_datagram", 1) - 1
            if "defrag" not in without and (a["dropped"] or a["tx_dropped"]
                                             or not 0 <= a["packets"] - a["forwarded"] <= max(0, held)):
                problems.append(f"stages {rid}: imfd forwarded {a['forwarded']} of {a['packets']} packets "
                                f"(dropped {a['dropped']}, tx_dropped {a['tx_dropped']}); alert-only rules must pass "
                                "everything")

    # Rates per second of the worker's CPU time where it could be read (see run_sampled): on a shared
    # machine other processes take the worker's CPU for part of a run, which wall-clock rates would
    # charge to the pipeline. Else wall clock, as (a).
    cpu = all("pps_cpu" in r for rs in runs.values() for r in rs)
    key, mkey = ("pps_cpu", "messages_per_cpu_sec") if cpu else ("pps", "messages_per_sec")
    med = {rid: median(r, key) for rid, r in runs.items()}
    costs = []
    for stage, w, wo in STAGE_PAIRS:
        rounds = [stage_cost(x, y, key) for x, y in zip(runs[w], runs[wo])]
        c = stage_cost(med[w], med[wo], key)
        c.update({"stage": stage, "with": w, "without": wo,
                  "share_range": [min(r["share"] for r in rounds), max(r["share"] for r in rounds)],
                  "ns_per_packet_range": [min(r["ns_per_packet"] for r in rounds),
                                          max(r["ns_per_packet"] for r in rounds)]})
        costs.append(c)
    # Fragmentation as deployed: the same messages in more packets, reassembled before judging.
    fr, t_f = caps["fragmented"], med["fragmented"]
    per_msg = [1e9 / x[mkey] - 1e9 / y[mkey] for x, y in zip(runs["fragmented"], runs["deployed"])]
    fragmentation = {
        "messages_per_sec": [t_f[mkey], med["deployed"][mkey]],
        "ns_per_message": 1e9 / t_f[mkey] - 1e9 / med["deployed"][mkey],
        "ns_per_message_range": [min(per_msg), max(per_msg)],
        "segments_per_message": fr["fragmented_datagrams"] / fr["messages"]}
    fragmentation["ns_per_fragmented_segment"] = fragmentation["ns_per_message"] / fragmentation["segments_per_message"]

    result = {"profile": "mixed", "rules": n, "fragment": args.fragment, "repeat": cfg["repeat"],
              "duration": cfg["duration"], "rate": key, "messages_rate": mkey,
              "captures": {cid: {k: t[k] for k in ("flows", "messages", "packets", "frame_bytes", "fragment",
                                                   "fragmented_datagrams", "fragments", "max_fragments_per_datagram")
                                 if k in t} for cid, t in caps.items()},
              "runs": {rid: r for rid, r in runs.items()}, "median": med, "costs": costs,
              "offline": {rid: {k: v for k, v in o.items() if k != "problems"} for rid, o in offline.items()},
              "fragmentation": fragmentation}
    for c in costs:
        progress(f"stages: {c['stage']}: {c['share']:.1%} of the pipeline, {c['ns_per_packet']:.0f} ns/packet")

    if callgrind:
        result["callgrind"] = run_stage_callgrind(tools, cfg, args, work, rules, triggers, log, quick, caps, problems)
    return result


def run_stage_callgrind(tools, cfg, args, work, rules, triggers, log, quick, caps, problems):
    """Every stage run once under callgrind on a short capture (two at a time: instruction counts do
    not depend on what else runs)."""
    size = CALLGRIND_TRAFFIC
    if quick and cfg["flows"] == size["flows"] and cfg["messages"] == size["messages"]:
        cg_caps = caps
    else:
        progress(f"stages: synthesizing the callgrind captures ({size['flows']} flows, {size['messages']} messages)")
        cg_caps = {"mixed": make_traffic(tools, cfg, work, "mixed", 1, triggers, args, log, **size),
                   "fragmented": make_traffic(tools, cfg, work, "mixed", 1, triggers, args, log,
                                              fragment=args.fragment, **size)}
    progress(f"stages: callgrind, {len(STAGE_RUNS)} offline runs of {cg_caps['mixed']['packets']}/"
             f"{cg_caps['fragmented']['packets']} packets (about a minute each)")
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        futures = {rid: pool.submit(run_callgrind, tools, cg_caps[cid], rules, work, rid, without, log)
                   for rid, cid, without in STAGE_RUNS}
        cg = {rid: f.result() for rid, f in futures.items()}
    # The profiles are small: kept beside the report (the work folder of a full run is deleted).
    kept = os.path.join(os.path.dirname(work), "callgrind")
    os.makedirs(kept, exist_ok=True)
    for rid, r in cg.items():
        r["file"] = shutil.copy(r["file"], os.path.join(kept, f"{rid}.out"))
    for rid, cid, without in STAGE_RUNS:
        r, t = cg[rid], cg_caps[cid]
        progress(f"stages: callgrind {rid}: {r['per_packet']:.0f} instructions/packet, {r['messages']} of "
                 f"{t['messages']} messages judged")
        if "defrag" not in without and (r["messages"] != t["messages"] or r["forwarded"] != t["packets"]):
            problems.append(f"stages callgrind {rid}: imfd --offline judged {r['messages']} of {t['messages']} "
                            f"messages and forwarded {r['forwarded']} of {t['packets']} packets")
    costs = []
    for stage, w, wo in STAGE_PAIRS:
        costs.append({"stage": stage, "per_packet": [cg[w]["per_packet"], cg[wo]["per_packet"]],
                      "share": 1 - cg[wo]["per_packet"] / cg[w]["per_packet"],
                      "delta_per_packet": cg[w]["per_packet"] - cg[wo]["per_packet"]})
    return {"captures": {cid: {k: t[k] for k in ("flows", "messages", "packets", "fragmented_datagrams", "fragments")
                               if k in t} for cid, t in cg_caps.items()},
            "runs": cg, "costs": costs,
            "fragmentation": {"per_message": [cg["fragmented"]["per_message"], cg["deployed"]["per_message"]]},
            "profile": callgrind_profile(cg["deployed"]["file"], cg["deployed"]["packets"])}


# --- Report

def fmt_rate(v):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:.2f} {unit}"
    return f"{v:.1f}"


def write_report(res, out):
    m = res["machine"]
    lines = [f"# imf benchmark — {m['date']}", "",
             f"{'Quick mode (CI harness check; short runs, small captures).' if res['quick'] else 'Full run.'}", "",
             "## Machine and build", "",
             f"- CPU: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB; {m['os']}, kernel {m['kernel']}",
             f"- DPDK {m['dpdk']}, Hyperscan {m['hyperscan']}, PCRE2 {m['pcre2']}, {m['compiler']}",
             f"- imf {m['commit']}, build: {m['build']}",
             f"- command: `{m['command']}`", "",
             "## Inputs", ""]
    for prof, t in res["traffic"].items():
        lines.append(f"- **{prof}** ({PROFILE_TITLE[prof]}): {t['flows']} flows, {t['packets']} packets, "
                     f"{t['frame_bytes'] / t['packets']:.0f} B mean frame, {t['messages']} messages "
                     f"({t['planted']} carry a rule trigger: expected hit rate {res['args']['match_fraction']:.2%})"
                     + (f", message size p50/p90/p99/max {t['message_size']['p50']}/{t['message_size']['p90']}/"
                        f"{t['message_size']['p99']}/{t['message_size']['max']} B" if t["messages"] else ""))
    lines.append(f"- rule sets: {', '.join(str(n) for n in res['rule_sizes'])} rules "
                 f"(bench/README.md documents the mix), seed {res['args']['seed']}")
    if res["rows"]:
        lines += ["", "## Throughput: (a) imfd, one worker lcore, vs (b) Hyperscan alone and (c) PCRE2, same bytes", "",
                  "| profile | rules | (a) Mpps | (a) Gbit/s | (a) msg/s | B/msg | (a) ns/body B | (b) stream msg/s | "
                  "(b) block msg/s | (c) PCRE2 msg/s | (a)/(b) | (a)/(c) | hit rate a/b/c |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for row in res["rows"]:
            a, sc = row["pipeline"], row.get("scan")
            if sc:
                b, bb, c = sc["hs-stream"], sc["hs-block"], sc["pcre2"]
                ratio_b = a["body_bytes_per_sec"] / b["bytes_per_sec"]
                lo, hi = row["ratio_b_range"]
                spread = f" ({lo:.0%}–{hi:.0%})"
                ratio_b_text = f"{ratio_b:.0%}" + (spread if f"{lo:.0%}" != f"{hi:.0%}" else "")
                ratio_c = a["body_bytes_per_sec"] / c["bytes_per_sec"]
                hit = (f"{a['hit_rate']:.2%} / {b['hit_pairs'] / b['messages']:.2%} / "
                       f"{c['hit_pairs'] / max(1, c['messages']):.2%}")
                scan_cols = (f"{fmt_rate(b['messages_per_sec'])} | {fmt_rate(bb['messages_per_sec'])} | "
                             f"{fmt_rate(c['messages_per_sec'])} | {ratio_b_text} | {ratio_c:.0f}x | {hit}")
                body = f"{a['ns_per_body_byte']:.2f}"
            else:
                scan_cols = "– | – | – | – | – | –"
                body = "–"
            lines.append(f"| {row['profile']} | {row['rules']} | {a['pps'] / 1e6:.2f} | {a['gbps']:.2f} | "
                         f"{fmt_rate(a['messages_per_sec'])} | {a['bytes_per_message']:.0f} | {body} | {scan_cols} |")
        lines += ["", f"(a) and (b) are the medians of {res['repeat']} alternating runs; (a)/(b) is their ratio, with "
                  "the lowest and highest ratio of one (a) run to the (b) run after it in parentheses. "
                  "(a)/(b) and (a)/(c) compare message-body bytes per second of CPU; (a) spends its CPU on the whole "
                  "packet path, (b) and (c) only on scanning. Gbit/s counts Ethernet frames with FCS. The hit rate of "
                  "(a) is over what the timed run replayed (whole passes of the capture and part of one); (b) and (c) "
                  "count one pass (PCRE2: the part it reached). The exact counts are in the consistency checks below.",
                  "",
                  "## CPU time per byte", "",
                  "| profile | rules | (a) ns/wire B | (a) cycles/pkt | (b) stream ns/B | (b) block ns/B | "
                  "(c) PCRE2 ns/B |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for row in res["rows"]:
            a, sc = row["pipeline"], row.get("scan")
            cols = (f"{sc['hs-stream']['ns_per_byte']:.3f} | {sc['hs-block']['ns_per_byte']:.3f} | "
                    f"{sc['pcre2']['ns_per_byte']:.1f}") if sc else "– | – | –"
            lines.append(f"| {row['profile']} | {row['rules']} | {a['ns_per_wire_byte']:.3f} | "
                         f"{a['cycles_per_packet']:.0f} | {cols} |")
        lines += ["", "## Latency added per packet (RX burst to TX burst, at full load, one worker)", "",
                  "| profile | rules | p50 µs | p90 µs | p99 µs | p99.9 µs |", "|---|---:|---:|---:|---:|---:|"]
        for row in res["rows"]:
            lat = row["pipeline"]["latency_ns"]
            lines.append(f"| {row['profile']} | {row['rules']} | {lat['p50'] / 1e3:.1f} | {lat['p90'] / 1e3:.1f} | "
                         f"{lat['p99'] / 1e3:.1f} | {lat['p999'] / 1e3:.1f} |")
        lines += ["", "## Memory per flow", "",
                  "| rules | Hyperscan stream state B | bytes per flow (state + 2 streams + index) | flows in 2 GiB |",
                  "|---:|---:|---:|---:|"]
        for n, mem in res["memory"].items():
            lines.append(f"| {n} | {mem['stream_bytes']} | {mem['bytes_per_flow']:.0f} | {mem['flows_in_2gib']:,} |")
    if res.get("scaling"):
        lines += ["", f"## Scaling over worker lcores ({res['scaling']['profile']} profile, "
                  f"{res['scaling']['rules']} rules)",
                  "", "| workers | Mpps | msg/s | speed-up | per-worker Mpps |", "|---:|---:|---:|---:|---|"]
        base = res["scaling"]["points"][0]["pps"]
        for p in res["scaling"]["points"]:
            lines.append(f"| {p['workers']} | {p['pps'] / 1e6:.2f} | {fmt_rate(p['messages_per_sec'])} | "
                         f"{p['pps'] / base:.2f}x | {', '.join(f'{x / 1e6:.2f}' for x in p['per_lcore_pps'])} |")
        if m["cpus"] and res["scaling"]["points"][-1]["workers"] >= m["cpus"]:
            lines.append("")
            lines.append(f"With {m['cpus']} CPUs the last point shares CPU 0 between a worker and the (sleeping) main "
                         "lcore, the event writer and this harness.")
    if res.get("stages"):
        lines += stages_section(res["stages"])
    if res.get("accounts"):
        lines += accounts_section(res["accounts"])
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in res["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |")
    lines += ["", "## Consistency checks", ""]
    lines += [f"- {c}" for c in res["checks"]] or ["- none run"]
    lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in res["plots"]), ""]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))


def accounts_section(a):
    """The report's lines for imf-accountbench's JSON."""
    mem, lk, j, st, mib = a["memory"], a["lookup_ns"], a["judge_message_ns"], a["set_ns"], 1 << 20
    pages = "hugepages" if a["pages"] == "hugepages" else "4 KiB pages (EAL --no-huge)"
    return ["", f"## Account table: {a['accounts']:,} accounts, one thread, {pages}", "",
            "| figure | value |", "|---|---:|",
            f"| bulk load (`accounts.load` of a {a['csv']['bytes'] / mib:.0f} MiB CSV) | "
            f"{a['load']['wall_ms'] / 1e3:.2f} s, {fmt_rate(a['load']['rows_per_sec'])} rows/s |",
            f"| table memory (capacity {mem['capacity']:,}) | {mem['table_bytes'] / mib:.0f} MiB, "
            f"{mem['bytes_per_account']:.1f} B per account |",
            f"| process RSS: empty table / after the load / peak during it | {mem['rss_empty_table'] / mib:.0f} / "
            f"{mem['rss_after_load'] / mib:.0f} / {mem['rss_peak_load'] / mib:.0f} MiB |",
            f"| lookup + measure word, cold (random account): hit / miss | {lk['cold_hit']:.0f} / "
            f"{lk['cold_miss']:.0f} ns |",
            f"| lookup + measure word, cold hit, one at a time (latency) | {lk['cold_hit_chained']:.0f} ns |",
            f"| lookup + measure word, warm ({a['hot_set']:,} accounts): hit / miss | {lk['warm_hit']:.1f} / "
            f"{lk['warm_miss']:.1f} ns |",
            f"| cold / warm: hit / miss / hit one at a time | {lk['cold_warm_ratio_hit']:.1f}x / "
            f"{lk['cold_warm_ratio_miss']:.1f}x / {lk['cold_warm_ratio_hit_chained']:.1f}x |",
            f"| `account_key` (SHA-256 of the name, once per connection) | {a['account_key_ns']:.0f} ns |",
            f"| `judge_message`: state none / restricted within rate / over rate | {j['none']:.1f} / "
            f"{j['restricted_pass']:.1f} / {j['restricted_drop']:.1f} ns |",
            f"| `set()`: update / insert ({st['existing_ops']:,} / {st['insert_ops']:,} rows) | "
            f"{st['existing']:.0f} / {st['insert']:.0f} ns |"]


STAGE_TITLE = {"deployed": "as deployed", "no-checksums": "without checksums",
               "no-tcp-validation": "without TCP validation",
               "no-checksums-tcp-validation": "without checksums and TCP validation",
               "fragmented": "as deployed", "fragmented-no-defrag": "without defrag"}


def pct_range(lo, hi, fmt="{:.1%}"):
    a, b = fmt.format(lo), fmt.format(hi)
    return "" if a == b else f" ({a} – {b})"


def stages_section(st):
    """The report's lines for the stage section."""
    cg = st.get("callgrind")
    caps = st["captures"]
    fr = caps["fragmented"]
    key, mkey = st["rate"], st["messages_rate"]
    cpu = key == "pps_cpu"
    per = " per CPU second" if cpu else ""
    lines = ["", f"## Cost of each hostile-traffic stage ({st['profile']} profile, {st['rules']} rules, one worker)",
             "",
             f"imfd as deployed beside the same run with stages switched off (`--measure-without`, benchmark only): "
             f"{st['repeat']} alternating rounds of {st['duration']} s runs, medians"
             + (", rates per second of the worker thread's CPU time (the wall-clock Mpps and the share of the run the "
                "worker spent on a CPU are beside them)" if cpu else "") + ". "
             f"The fragmented capture holds the same messages as the mixed one, every data segment with more than "
             f"{st['fragment']} bytes of IP payload sent as IPv4 fragments: {fr['fragmented_datagrams']:,} of its "
             f"segments as {fr['fragments']:,} fragments ({fr['fragments'] / fr['packets']:.0%} of "
             f"{fr['packets']:,} packets, at most {fr['max_fragments_per_datagram']} per segment)."
             + (f" Instructions per packet: callgrind over one `imfd --offline` pass of a shorter capture "
                f"({cg['captures']['mixed']['packets']:,} packets, {cg['captures']['mixed']['messages']:,} messages; "
                f"fragmented {cg['captures']['fragmented']['packets']:,}), the worker loop only." if cg else ""), "",
             f"| capture | run | Mpps{per} | msg/s{per} | ns/packet | wall-clock Mpps | worker on CPU | "
             "messages judged (offline) | packets dropped (offline) | instructions/packet |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for rid, cid, without in STAGE_RUNS:
        a, o, runs = st["median"][rid], st["offline"][rid], st["runs"][rid]
        rates = sorted(r[key] for r in runs)
        on = sorted(r["on_cpu"] for r in runs) if cpu else []
        ir = f"{cg['runs'][rid]['per_packet']:,.0f}" if cg else "–"
        on_text = (f"{on[0]:.0%}" + (f"–{on[-1]:.0%}" if f"{on[0]:.0%}" != f"{on[-1]:.0%}" else "")) if cpu else "–"
        lines.append(f"| {cid} | {STAGE_TITLE[rid]}{' (`' + without + '`)' if without else ''} | "
                     f"{a[key] / 1e6:.2f}{pct_range(rates[0] / 1e6, rates[-1] / 1e6, '{:.2f}')} | "
                     f"{fmt_rate(a[mkey])} | {1e9 / a[key]:.0f} | {a['pps'] / 1e6:.2f} | "
                     + on_text + f" | {o['messages'] / caps[cid]['messages']:.0%} | "
                     f"{o['dropped'] / o['packets']:.1%} | {ir} |")
    lines += ["", f"| stage | Mpps{per} with / without | msg/s{per} with / without | cost, % of the pipeline | "
              "ns/packet | instructions/packet with / without | instructions, % |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for i, c in enumerate(st["costs"]):
        a, b = st["median"][c["with"]], st["median"][c["without"]]
        lo, hi = c["share_range"]
        nlo, nhi = c["ns_per_packet_range"]
        icol = "– | –"
        if cg:
            k = cg["costs"][i]
            icol = f"{k['per_packet'][0]:,.0f} / {k['per_packet'][1]:,.0f} | {k['share']:.1%}"
        lines.append(f"| {c['stage']} | {a[key] / 1e6:.2f} / {b[key] / 1e6:.2f} | "
                     f"{fmt_rate(a[mkey])} / {fmt_rate(b[mkey])} | "
                     f"{c['share']:.1%}{pct_range(lo, hi)} | {c['ns_per_packet']:.0f}{pct_range(nlo, nhi, '{:.0f}')} | "
                     f"{icol} |")
    f = st["fragmentation"]
    lo, hi = f["ns_per_message_range"]
    lines += ["", f"Cost %: 1 − (pps with the stage / pps without), the share of a packet's time the stage takes; "
              f"ns/packet: 1/pps with minus 1/pps without"
              + (f"; in parentheses the lowest and highest of the {st['repeat']} rounds (each pair from one round)"
                 if st["repeat"] > 1 else "") + ". Instructions, %: the same share in callgrind's instruction counts. "
              "Without defrag, fragments pass uninspected, so the segment after a fragmented one is out of order "
              "and its flow's later packets are dropped (ACKs of bytes imfd never saw): fewer messages are judged "
              "and the pair is not like for like. Fragmentation as deployed, like for like (the same messages, "
              f"fragmented vs not): {fmt_rate(f['messages_per_sec'][0])} against {fmt_rate(f['messages_per_sec'][1])} "
              f"msg/s{per}, {f['ns_per_message']:+.0f} ns per message{pct_range(lo, hi, '{:+.0f}')}, about "
              f"{f['ns_per_fragmented_segment']:.0f} ns per fragmented segment"
              + (f"; {cg['fragmentation']['per_message'][0]:,.0f} against {cg['fragmentation']['per_message'][1]:,.0f} "
                 "instructions per message" if cg else "") + "."]
    if cg:
        prof = cg["profile"]
        lines += ["", f"### Where a packet's instructions go, as deployed (callgrind, self cost, "
                  f"{cg['runs']['deployed']['per_packet']:,.0f} instructions/packet)", "",
                  "| # | function | object | instructions/packet | share |", "|---:|---|---|---:|---:|"]
        for i, fn in enumerate(prof["top"], 1):
            name = fn["short"] if not fn["short"].startswith("0x") else f"(no symbol) {fn['short']}"
            lines.append(f"| {i} | `{name}` | {fn['object']} | {fn['per_packet']:.0f} | {fn['share']:.1%} |")
        lines += ["", "By object: " + ", ".join(f"{o['object']} {o['share']:.1%}" for o in prof["objects"][:8]) + ". "
                  "Offline, RX reads the pcap file through libpcap and TX writes one (fwrite), where the timed runs "
                  "replay from memory into net_null. Valgrind's CPU has no SHA extensions and no AVX-512: OpenSSL's "
                  "message digest runs its AVX2 code instead of SHA-NI (libcrypto counts more than it runs "
                  "natively), and Hyperscan its AVX2 build where the host may pick AVX-512. Stripped libraries "
                  "(libhs, libcrypto) show addresses, not names. The profiles of "
                  "all six runs are in `callgrind/` (`callgrind_annotate callgrind/deployed.out`)."]
    return lines


def gnuplot(out, name, script):
    path = os.path.join(out, name + ".gp")
    with open(path, "w") as f:
        f.write(script)
    run(["gnuplot", path])


def plot(res, out):
    """PNG plots with gnuplot; returns the file names written."""
    if not shutil.which("gnuplot"):
        progress("gnuplot not found: no plots")
        return []
    made = []
    mixed = [r for r in res["rows"] if r["profile"] == "mixed" and r.get("scan")]
    if mixed:
        dat = os.path.join(out, "throughput.dat")
        with open(dat, "w") as f:
            f.write("# rules imfd hs_stream hs_block pcre2 (messages/s)\n")
            for r in mixed:
                s = r["scan"]
                f.write(f"{r['rules']} {r['pipeline']['messages_per_sec']} {s['hs-stream']['messages_per_sec']} "
                        f"{s['hs-block']['messages_per_sec']} {s['pcre2']['messages_per_sec']}\n")
        script = f"""set terminal pngcairo size 900,560
set output '{out}/throughput.png'
set title 'Mixed chat traffic: messages per second of one CPU'
set logscale xy
set xlabel 'rules'
set ylabel 'messages/s'
set key outside
set grid
plot '{dat}' u 1:2 w lp lw 2 t '(a) imfd full pipeline', '' u 1:3 w lp t '(b) Hyperscan streaming', \\
     '' u 1:4 w lp t '(b) Hyperscan block', '' u 1:5 w lp t '(c) PCRE2 JIT per rule'
"""
        gnuplot(out, "throughput", script)
        made.append("throughput.png")
    if not res["rows"]:
        return made + scaling_plot(res, out)
    dat = os.path.join(out, "profiles.dat")
    sizes = res["rule_sizes"]
    with open(dat, "w") as f:
        f.write("# profile " + " ".join(f"r{n}" for n in sizes) + " (Mpps)\n")
        for prof in res["traffic"]:
            vals = [next((r["pipeline"]["pps"] / 1e6 for r in res["rows"] if r["profile"] == prof and r["rules"] == n),
                         0) for n in sizes]
            f.write(f"{prof} " + " ".join(f"{v:.3f}" for v in vals) + "\n")
    cols = ", ".join(f"'' u {i + 2} t '{n} rules'" for i, n in enumerate(sizes))
    script = f"""set terminal pngcairo size 900,560
set output '{out}/profiles.png'
set title 'imfd, one worker lcore: packets per second by traffic profile'
set style data histograms
set style fill solid 0.8
set ylabel 'Mpps'
set grid ytics
plot '{dat}' u 2:xtic(1) t '{sizes[0]} rules'{', ' + cols.split(', ', 1)[1] if len(sizes) > 1 else ''}
"""
    gnuplot(out, "profiles", script)
    made.append("profiles.png")
    return made + scaling_plot(res, out)


def scaling_plot(res, out):
    if not res.get("scaling"):
        return []
    dat = os.path.join(out, "scaling.dat")
    pts = res["scaling"]["points"]
    with open(dat, "w") as f:
        for p in pts:
            f.write(f"{p['workers']} {p['pps'] / 1e6} {pts[0]['pps'] / 1e6 * p['workers']}\n")
    script = f"""set terminal pngcairo size 900,560
set output '{out}/scaling.png'
set title 'Scaling over worker lcores ({res['scaling']['profile']}, {res['scaling']['rules']} rules)'
set xlabel 'worker lcores'
set ylabel 'Mpps'
set xtics 1
set yrange [0:*]
set grid
plot '{dat}' u 1:2 w lp lw 2 t 'measured', '' u 1:3 w l dt 2 t 'linear'
"""
    gnuplot(out, "scaling", script)
    return ["scaling.png"]


# --- Main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small inputs and short runs (about two minutes; CI)")
    ap.add_argument("--out", help="results folder (default results/<date>-<mode>)")
    ap.add_argument("--rules", help="comma-separated rule-set sizes (default 100,1000,10000; quick 100,1000)")
    ap.add_argument("--profiles", default=",".join(PROFILES), help="comma-separated: small,mixed,full")
    ap.add_argument("--flows", type=int, help="concurrent flows per capture (default 10000; quick 1000)")
    ap.add_argument("--messages", type=int, help="messages in the mixed capture (default 100000; quick 10000)")
    ap.add_argument("--duration", type=int, help="seconds per imfd run (default 5; quick 1)")
    ap.add_argument("--match-fraction", type=float, default=0.01, help="messages carrying a rule trigger (0.01)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, help="alternate (a) and (b) this often and report medians (default 3; "
                                               "quick 1)")
    ap.add_argument("--max-workers", type=int, default=os.cpu_count(), help="scaling: 1..N worker lcores")
    ap.add_argument("--nic", help="PCI_IN,PCI_OUT: run imfd on real ports (traffic from an external generator "
                                  "replaying the synthesized captures) instead of net_pcap")
    ap.add_argument("--accounts", type=int, help="accounts in the account-table stage (default 10M; quick 100k)")
    ap.add_argument("--huge", action="store_true", help="account-table stage on hugepages, when enough are free")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help="comma-separated parts to run: throughput,scaling,accounts,stages (default all)")
    ap.add_argument("--fragment", type=int, default=192,
                    help="stages: IP payload bytes per fragment of the fragmented capture (multiple of 8; default "
                         "192, the least that keeps a full segment within imfd's 8 fragments)")
    ap.add_argument("--callgrind", action=argparse.BooleanOptionalAction,
                    help="stages: instruction counts under callgrind (a few minutes; default on, off with --quick)")
    ap.add_argument("--imfd"), ap.add_argument("--synth"), ap.add_argument("--scanbench")
    ap.add_argument("--accountbench")
    args = ap.parse_args()

    cfg = dict(QUICK if args.quick else FULL)
    if args.rules:
        cfg["rules"] = sorted(int(x) for x in args.rules.split(","))
    for key in ("flows", "messages", "duration", "repeat", "accounts"):
        if getattr(args, key):
            cfg[key] = getattr(args, key)
    profiles = [p for p in args.profiles.split(",") if p]
    for p in profiles:
        if p not in PROFILES:
            ap.error(f"--profiles: unknown profile '{p}' (small, mixed, full)")
    sections = [x for x in args.sections.split(",") if x]
    for x in sections:
        if x not in SECTIONS:
            ap.error(f"--sections: unknown section '{x}' ({', '.join(SECTIONS)})")
    if args.nic and "stages" in sections:
        sections.remove("stages")
        progress("--nic: the stage section alternates its own captures; skipped")
    if args.fragment < 24 or args.fragment > 1472 or args.fragment % 8:
        ap.error("--fragment: a multiple of 8, 24-1472")
    callgrind = "stages" in sections and (args.callgrind if args.callgrind is not None else not args.quick)
    if callgrind and not (shutil.which("valgrind") and shutil.which("callgrind_annotate")):
        if args.callgrind:
            ap.error("--callgrind: valgrind not found (install the Debian package 'valgrind')")
        callgrind = False
        progress("valgrind not found: no instruction counts (install valgrind; scripts/install-deps.sh)")
    if not os.path.isdir(CORPUS):
        ap.error(f"text corpus {CORPUS} missing: install the Debian package 'fortunes' (scripts/install-deps.sh)")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = os.path.abspath(args.out or os.path.join(ROOT, "results", f"{stamp}-{'quick' if args.quick else 'full'}"))
    work = os.path.join(out, "work")
    os.makedirs(work, exist_ok=True)
    log = os.path.join(out, "commands.log")
    progress(f"results in {out}")

    tools = find_tools(args)
    res = {"quick": args.quick, "args": vars(args), "machine": machine_info(args, tools), "rule_sizes": cfg["rules"],
           "repeat": cfg["repeat"], "sections": sections,
           "traffic": {}, "rows": [], "memory": {}, "checks": [], "targets": []}
    problems = []

    progress(f"generating rule sets: {cfg['rules']}")
    sets = make_rule_sets(tools, cfg, work, args.seed, log)
    triggers = sets[cfg["rules"][0]]["triggers"]

    for prof in profiles if "throughput" in sections else []:
        progress(f"synthesizing {prof} traffic ({cfg['flows']} flows)")
        t = make_traffic(tools, cfg, work, prof, 1, triggers, args, log)
        res["traffic"][prof] = t
        for n in cfg["rules"]:
            tag = f"{prof}-{n}"
            row = {"profile": prof, "rules": n}
            if t["messages"]:
                progress(f"{tag}: offline exactness check")
                chk = offline_check(tools, t, sets[n]["rules"], work, tag, log)
                problems += [f"{tag}: {p}" for p in chk["problems"]]
                res["checks"].append(f"{tag}: imfd --offline decoded {chk['messages']} of {t['messages']} messages, "
                                     f"{chk['hits']} hits for {t['planted']} planted triggers"
                                     + ("" if not chk["problems"] else " — FAILED: " + "; ".join(chk["problems"])))
            # (a) and (b) alternate `repeat` times and report medians: on a shared or virtual machine the
            # speed of a CPU drifts by several percent between runs, and alternating exposes both
            # to the same drift. PCRE2 runs once, beside Hyperscan, for the cross-check.
            pipes, streams, blocks = [], [], []
            for rep in range(cfg["repeat"]):
                rtag = f"{tag}-w1-r{rep}"
                progress(f"{tag}: (a) imfd full pipeline, 1 worker, {cfg['duration']} s"
                         + (f" [{rep + 1}/{cfg['repeat']}]" if cfg["repeat"] > 1 else ""))
                a = run_imfd(tools, t, sets[n]["rules"], 1, cfg, args, work, rtag, log)
                pipes.append(a)
                progress(f"{tag}:     {a['pps'] / 1e6:.2f} Mpps, {a['gbps']:.2f} Gbit/s, "
                         f"{fmt_rate(a['messages_per_sec'])} msg/s")
                if a["forwarded"] != a["packets"] or a["tx_dropped"]:
                    problems.append(f"{tag}: imfd forwarded {a['forwarded']} of {a['packets']} packets "
                                    f"(tx_dropped {a['tx_dropped']}); alert-only rules must pass everything")
                if not t["messages"]:
                    continue
                first = rep == 0
                progress(f"{tag}: (b) Hyperscan alone" + (", (c) PCRE2 per rule" if first else ""))
                modes, p = run_scanbench(tools, t, sets[n]["rules"], cfg, work, rtag, log,
                                         "hs-stream,hs-block,pcre2" if first else "hs-stream,hs-block")
                problems += [f"{tag}: {x}" for x in p]
                streams.append(modes["hs-stream"])
                blocks.append(modes["hs-block"])
                if first:
                    pcre2 = modes["pcre2"]
                    res["checks"].append(f"{tag}: one pass of (b) stream/block and (c) found "
                                         + "/".join(str(modes[k]["hit_pairs"]) for k in ("hs-stream", "hs-block", "pcre2"))
                                         + f" hits for {t['planted']} planted"
                                         + ("" if pcre2["complete_pass"]
                                            else f" (PCRE2 stopped after {pcre2['messages']} messages, agreeing "
                                                 "with Hyperscan on those)"))
            key = "body_bytes_per_sec" if t["messages"] else "pps"
            row["pipeline"] = median(pipes, key)
            a = row["pipeline"]
            if t["messages"]:
                row["scan"] = {"hs-stream": median(streams, "bytes_per_sec"), "hs-block": median(blocks, "bytes_per_sec"),
                               "pcre2": pcre2}
                ratios = sorted(p[key] / s["bytes_per_sec"] for p, s in zip(pipes, streams))
                row["ratio_b_range"] = [ratios[0], ratios[-1]]
            res["rows"].append(row)
            run_info = a["run"]
            per_flow = run_info["flow_bytes"] + run_info["flow_table_bytes"] / run_info["flows_per_lcore"]
            res["memory"][n] = {"stream_bytes": run_info["stream_bytes"], "bytes_per_flow": per_flow,
                                "flows_in_2gib": int(2 * GIB // per_flow)}

    # Scaling: the mixed profile (or the first one) with the middle rule set, split by flow per worker.
    if "scaling" in sections:
        prof = "mixed" if "mixed" in profiles else profiles[0]
        n = cfg["rules"][len(cfg["rules"]) // 2]
        one = next((r["pipeline"] for r in res["rows"] if r["profile"] == prof and r["rules"] == n), None)
        if one is None:  # the throughput section did not run it
            progress(f"scaling: 1 worker lcore, {prof}, {n} rules")
            t = res["traffic"].get(prof) or make_traffic(tools, cfg, work, prof, 1, triggers, args, log)
            one = run_imfd(tools, t, sets[n]["rules"], 1, cfg, args, work, f"{prof}-{n}-w1", log)
        points = [dict(one)]
        for w in range(2, max(1, args.max_workers) + 1):
            progress(f"scaling: {w} worker lcores, {prof}, {n} rules")
            t = make_traffic(tools, cfg, work, prof, w, triggers, args, log)
            points.append(run_imfd(tools, t, sets[n]["rules"], w, cfg, args, work, f"{prof}-{n}-w{w}", log))
        res["scaling"] = {"profile": prof, "rules": n, "points": points}

    # Stage costs: checksums, TCP validation and defragmentation, each beside the run without it.
    if "stages" in sections:
        res["stages"] = run_stages(tools, cfg, args, work, sets, triggers, log, args.quick,
                                   res["traffic"].get("mixed"), callgrind, problems, res["checks"])

    if "accounts" in sections:
        progress(f"account table: {cfg['accounts']:,} accounts, {cfg['lookups']:,} lookups")
        acc = run_accountbench(tools, cfg, args, work, log)
        res["accounts"] = acc
        lk = acc["lookup_ns"]
        progress(f"    load {acc['load']['wall_ms'] / 1e3:.2f} s, {acc['memory']['bytes_per_account']:.1f} B/account, "
                 f"lookup cold hit/miss {lk['cold_hit']:.0f}/{lk['cold_miss']:.0f} ns, "
                 f"warm {lk['warm_hit']:.0f}/{lk['warm_miss']:.0f} ns")
        res["checks"].append(f"accounts: loaded {acc['load']['rows']:,} of {acc['accounts']:,} rows; every sampled "
                             "present account found and no absent one")

    def target(name, measured, met):
        res["targets"].append({"target": name, "measured": measured, "met": met})
    r1k = next((r for r in res["rows"] if r["profile"] == "mixed" and r["rules"] == 1000 and r.get("scan")), None)
    if r1k:
        rb = r1k["pipeline"]["body_bytes_per_sec"] / r1k["scan"]["hs-stream"]["bytes_per_sec"]
        rc = r1k["pipeline"]["body_bytes_per_sec"] / r1k["scan"]["pcre2"]["bytes_per_sec"]
        target("(a) ≥ 80% of (b) Hyperscan streaming, 1k rules, mixed", f"{rb:.0%}", rb >= 0.8)
        target("(a) ≥ 50x (c) PCRE2, 1k rules, mixed", f"{rc:.0f}x", rc >= 50)
    small = [r for r in res["rows"] if r["profile"] == "small"]
    if small:
        pps = min(r["pipeline"]["pps"] for r in small)
        target("≥ 10 Mpps per worker, 64-byte pass-through", f"{pps / 1e6:.2f} Mpps", pps >= 10e6)

    res["plots"] = plot(res, out)
    if (res["rows"] or res.get("scaling")) and not res["plots"]:
        problems.append("plots missing: install gnuplot-nox (scripts/install-deps.sh)")
    write_report(res, out)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    if not args.quick and not os.environ.get("IMF_BENCH_KEEP"):
        shutil.rmtree(work)  # full-run captures take gigabytes
    print(open(os.path.join(out, "report.md")).read())
    if problems:
        print("BENCH CONSISTENCY FAILURES:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    progress(f"done: {out}/report.md")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
