#!/usr/bin/python3
"""Evasion suite, offline: each technique of techniques.py through one `imfd --offline` run.

    /usr/bin/python3 evasion_offline_test.py IMFD SOURCE_ROOT [--only a,b] [--gaps] [--keep] [--table]

Per technique one capture holds the forbidden variant and its clean twin, each on its own 5-tuple
(with the server's SYN/ACK and ACKs where a real server would send them). The test checks
  - the input: the forbidden message is readable from it by the receiver model (the technique has
    teeth: without imfd the message would arrive);
  - imfd's output with receiver.py: forbidden CAUGHT (no variant of the receiver model reads it) and
    clean twin PASSES (read exactly, no RST from imfd);
  - the summary counters against EXPECT below, one line per technique (edit it there).
--gaps adds the techniques the design does not cover (README: Gaps). --table prints the technique
table of README.md and exits. Prints a table technique x forbidden x clean x counters and ends with
`N passed, M failed`; exit status 0 only when nothing failed. Debian's scapy only loads under
/usr/bin/python3.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import receiver  # noqa: E402  this directory
import techniques  # noqa: E402

IMFD_TIMEOUT = 60
# Small tables and stores (each capture holds a few connections): an offline run in ~0.5 s.
BASE_OPTIONS = ("--accounts", "16", "--flows", "4096", "--tcp-retain-mb", "4", "--frag-datagrams", "64")

# What each technique must show in the run's summary counters (forbidden run and clean twin
# together). Comma-separated conditions; a '+' sums counters; N is the number of forbidden
# connections the technique judges. A counter missing from the summary fails its condition.
FRAG_OK = "ip_fragments>=1, frag_reassembled>=1, rule_drops>=1"
EXPECT = {
    "baseline": "rule_drops>=1",
    "split_every_byte": "rule_drops>=N",
    "one_byte_segments": "rule_drops>=1",
    "out_of_order": "tcp_out_of_order>=1, rule_drops>=1",
    "overlap_full_benign_first": "tcp_overlap_mismatch>=1, tcp_retransmits>=1",
    "overlap_full_forbidden_first": "rule_drops>=1, tcp_retransmits>=1",
    "overlap_partial_benign_first": "tcp_overlap_mismatch>=1",
    "overlap_partial_forbidden_first": "tcp_overlap_mismatch>=1",
    "rst_out_of_window": "tcp_rst_out_of_window>=1, rule_drops>=1",
    "rst_in_window": "tcp_rst_in_window>=1, rule_drops>=1",
    "rst_low_ttl": "tcp_rst_accepted>=1, ttl_raised>=1, rule_drops>=1",
    "fin_out_of_window": "tcp_out_of_order+tcp_beyond_window>=1, rule_drops>=1",
    "fin_bad_checksum": "checksum_bad_l4>=1, rule_drops>=1",
    "bad_l4_checksum": "checksum_bad_l4>=1, rule_drops>=1",
    "bad_ip_checksum": "checksum_bad_ip>=1, rule_drops>=1",
    "low_ttl": "ttl_raised>=1, tcp_overlap_mismatch>=1",
    "low_hoplimit6": "ttl_raised>=1, tcp_overlap_mismatch>=1",
    "no_ack": "tcp_no_ack>=1, rule_drops>=1",
    "unsent_ack": "tcp_bad_ack>=1, rule_drops>=1",
    "zero_window": "tcp_beyond_window>=1, rule_drops>=1",
    "beyond_window": "tcp_beyond_window+tcp_out_of_order>=1, rule_drops>=1",
    "paws": "tcp_overlap_mismatch+tcp_invalid>=1",
    "data_after_fin": "tcp_data_after_fin>=1",
    "syn_new_isn": "tcp_syn_new_isn>=1, flows_restarted==0, rule_drops>=1",
    "urgent": "tcp_urgent_cleared>=1",
    "syn_data": "rule_drops>=1",
    "syn_data_decoy": "tcp_overlap_mismatch>=1",
    "frag4_tiny": FRAG_OK,
    "frag4_out_of_order": FRAG_OK,
    "frag4_reversed": FRAG_OK,
    "frag4_overlap_benign_first": "frag_overlaps>=1, frag_reassembled>=1",
    "frag4_overlap_forbidden_first": "frag_overlaps>=1, frag_reassembled>=1",
    "frag4_duplicate": "frag_duplicates>=1, rule_drops>=1",
    "frag4_first_no_header": "frag_invalid>=1, rule_drops>=1",
    "frag4_too_many": "frag_too_many>=1, rule_drops>=1",
    "frag6_tiny": FRAG_OK,
    "frag6_out_of_order": FRAG_OK,
    "frag6_reversed": FRAG_OK,
    "frag6_overlap_benign_first": "frag_overlaps>=1, frag_reassembled>=1",
    "frag6_overlap_forbidden_first": "frag_overlaps>=1, frag_reassembled>=1",
    "frag6_duplicate": "frag_duplicates>=1, rule_drops>=1",
    "frag6_first_no_header": "frag_invalid>=1, rule_drops>=1",
    "frag6_too_many": "frag_too_many>=1, rule_drops>=1",
    "frag6_atomic": "rule_drops>=1, frag_invalid==0",
    "frag6_after_ext": FRAG_OK,
    "ext6_chain_8": "rule_drops>=1, decode_bad_header==0",
    "ext6_chain_32": "rule_drops>=1, decode_bad_header==0",
    "ext6_chain_33": "decode_bad_header>=1, rule_drops>=1",
    "vlan_8021q": "rule_drops>=1",
    "vlan_qinq": "rule_drops>=1",
    "ip_options": "rule_drops>=1",
    "seq_wrap": "rule_drops>=1",
    "mqtt_nonminimal_length": "rule_drops>=1, mqtt_malformed==0",
    "mqtt5_topic_alias": "rule_drops>=1",
    "midstream": "midstream_resets>=1, rule_drops>=1",
    "syn_flood": "flows_evicted>=1, rule_drops>=1",
    "pause_10min": "rule_drops>=1, midstream_resets==0, flows_aged==0",
    "vlan_triple": "decode_bad_header+rule_drops>=1",
    "pppoe": "rule_drops>=1",
    "mpls": "rule_drops>=1",
}

COND = re.compile(r"^\s*([a-z0-9_+]+)\s*(>=|<=|==)\s*(N|\d+)\s*$")


def check_counters(expr, counters, n_forbidden):
    """[(text, ok)] for each condition of expr against the summary counters."""
    out = []
    for cond in filter(None, (c.strip() for c in expr.split(","))):
        m = COND.match(cond)
        assert m, f"bad condition {cond!r} in EXPECT"
        names, op, want = m.group(1).split("+"), m.group(2), m.group(3)
        want = n_forbidden if want == "N" else int(want)
        missing = [n for n in names if n not in counters]
        if missing:
            out.append((f"{'+'.join(names)}: {','.join(missing)} absent (want {op}{want})", False))
            continue
        got = sum(counters[n] for n in names)
        ok = {">=": got >= want, "<=": got <= want, "==": got == want}[op]
        out.append((f"{'+'.join(names)}={got}" + ("" if ok else f" (want {op}{want})"), ok))
    return out


def run(cmd, timeout=IMFD_TIMEOUT):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)


class Result:
    def __init__(self, tech):
        self.tech = tech
        self.forbidden = "?"
        self.clean = "?"
        self.counters = []
        self.details = []
        self.ok = False
        self.seconds = 0.0

    def fail(self, msg):
        self.details.append(msg)


def run_technique(tech, imfd, work):
    r = Result(tech)
    t0 = time.monotonic()
    d = os.path.join(work, tech.name)
    os.makedirs(d, exist_ok=True)
    frames, conns = techniques.build_capture(tech)
    paths = {k: os.path.join(d, k) for k in ("in.pcap", "out.pcap", "events.jsonl", "summary.json",
                                             "rules", "policy", "stderr.txt")}
    techniques.write_pcap(paths["in.pcap"], frames)
    with open(paths["rules"], "w") as f:
        f.write(tech.rules)
    with open(paths["policy"], "w") as f:
        f.write(techniques.POLICY)
    forbidden = [c for c in conns if c.s.forbidden and c.role in ("judged", "probe")]
    clean = [c for c in conns if not c.s.forbidden and c.role == "judged" and tech.twin]
    pattern = techniques.FORBIDDEN_PATTERN

    # The technique has teeth: on a plain wire the forbidden message would be read.
    in_cap = receiver.Capture(frames)
    if not any(receiver.judge(in_cap, None, receiver.spec_of(c), c.s.proto, pattern).leaked for c in forbidden):
        r.fail("input: the receiver model cannot read the forbidden message even without imfd (no teeth)")

    cmd = [imfd, "--offline", "-r", paths["in.pcap"], "-w", paths["out.pcap"], "--rules", paths["rules"],
           "--events", paths["events.jsonl"], "--summary-json", paths["summary.json"], "--policy", paths["policy"],
           *BASE_OPTIONS, *tech.options]
    p = run(cmd)
    with open(paths["stderr.txt"], "wb") as f:
        f.write(p.stderr)
    if p.returncode != 0 or not os.path.exists(paths["out.pcap"]):
        r.forbidden = r.clean = "-"
        r.counters = [(f"imfd exit {p.returncode}", False)]
        r.fail(f"imfd exited {p.returncode}: {' '.join(cmd)}\n{p.stderr.decode(errors='replace')[-800:]}")
        r.seconds = time.monotonic() - t0
        return r
    out_cap = receiver.Capture(receiver.read_pcap(paths["out.pcap"]))

    leaked = []
    for c in forbidden:
        j = receiver.judge(out_cap, in_cap, receiver.spec_of(c), c.s.proto, pattern)
        if j.leaked:
            leaked.append((c, j))
    r.forbidden = "CAUGHT" if not leaked else f"LEAKED {len(leaked)}/{len(forbidden)}"
    for c, j in leaked[:3]:
        names = [receiver.variant_name(v) for v in j.leaked]
        r.fail(f"forbidden leaked on port {c.cport} in {len(names)}/24 variants, e.g. {names[0]}"
               + (" (canonical too)" if receiver.CANONICAL in j.leaked else ""))

    bad = []
    for c in clean:
        j = receiver.judge(out_cap, in_cap, receiver.spec_of(c), c.s.proto, pattern)
        want = c.s.proto.bodies(c.expect_stream)
        why = []
        if j.canonical_bodies != want:
            why.append(f"read {[b[:40] for b in j.canonical_bodies]} want {[b[:40] for b in want]}")
        if j.imfd_rsts:
            why.append(f"{j.imfd_rsts} RST(s) from imfd")
        if why:
            bad.append((c, "; ".join(why)))
    r.clean = "n/a" if not tech.twin else "PASS" if not bad else f"FAIL {len(bad)}/{len(clean)}"
    for c, why in bad[:3]:
        r.fail(f"clean twin on port {c.cport}: {why}")

    try:
        with open(paths["summary.json"]) as f:
            counters = json.load(f)["counters"]
    except (OSError, ValueError, KeyError) as e:
        counters = {}
        r.fail(f"summary unreadable: {e}")
    r.counters = check_counters(EXPECT.get(tech.name, ""), counters, len(forbidden))
    if tech.name not in EXPECT:
        r.counters.append(("no EXPECT entry", False))
    r.ok = (r.forbidden == "CAUGHT" and r.clean in ("PASS", "n/a") and all(ok for _, ok in r.counters)
            and not r.details)
    r.seconds = time.monotonic() - t0
    return r


def technique_table():
    """The README's table: technique, layer, what it does, what stops it, counters."""
    lines = ["| technique | layer | what the attacker does | what stops it | counters (offline run) | runs |",
             "|---|---|---|---|---|---|"]
    for t in techniques.TECHNIQUES:
        where = []
        if t.offline:
            where.append("offline")
        if t.live:
            where.append("live")
        counters = EXPECT.get(t.name, "") if t.offline else "tcp_wrong_side (live only)"
        gap = " (gap, `--gaps`)" if t.gap else ""
        lines.append(f"| `{t.name}`{gap} | {t.layer} | {t.what} | {t.stops} | {counters} | {', '.join(where)} |")
    return "\n".join(lines)


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = [a for a in argv[1:] if a.startswith("--")]
    if "--table" in flags:
        print(technique_table())
        return 0
    only = None
    if "--only" in argv:
        only = set(argv[argv.index("--only") + 1].split(","))
        args = [a for a in args if a != argv[argv.index("--only") + 1]]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    imfd = os.path.abspath(args[0])
    if not os.access(imfd, os.X_OK):
        print(f"{imfd} is not an executable", file=sys.stderr)
        return 1
    techs = [t for t in techniques.TECHNIQUES if t.offline and (not t.gap or "--gaps" in flags)]
    if only:
        unknown = only - {t.name for t in techniques.TECHNIQUES}
        if unknown:
            print(f"unknown techniques {sorted(unknown)}", file=sys.stderr)
            return 2
        techs = [t for t in techniques.TECHNIQUES if t.name in only]
    work = tempfile.mkdtemp(prefix="imf-evasion-")
    start = time.monotonic()
    results = []
    for t in techs:
        try:
            r = run_technique(t, imfd, work)
        except Exception:  # noqa: BLE001  report every failure, keep going
            r = Result(t)
            r.forbidden = r.clean = "error"
            r.fail(traceback.format_exc())
        results.append(r)
        print(f"{'PASS' if r.ok else 'FAIL'} {t.name} ({r.seconds:.1f}s)", flush=True)

    w = max(len(r.tech.name) for r in results)
    print()
    print(f"{'technique':<{w}}  {'forbidden':<12}  {'clean':<9}  counters")
    print(f"{'-' * w}  {'-' * 12}  {'-' * 9}  {'-' * 40}")
    for r in results:
        cs = "  ".join(("" if ok else "!") + text for text, ok in r.counters)
        print(f"{r.tech.name:<{w}}  {r.forbidden:<12}  {r.clean:<9}  {cs}")
    failed = [r for r in results if not r.ok]
    if failed:
        print("\nfailures:")
        for r in failed:
            print(f"  {r.tech.name}:")
            for line in r.details:
                print("    " + line.replace("\n", "\n    "))
            for text, ok in r.counters:
                if not ok:
                    print(f"    counter {text}")
    if failed or "--keep" in flags:
        print(f"\nwork directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wall time {time.monotonic() - start:.1f}s")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
