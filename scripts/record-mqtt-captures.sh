#!/usr/bin/env bash
# Records the MQTT captures that imf's offline tests and the bundled sample replay, made by REAL
# clients (mosquitto_pub / mosquitto_sub) talking to a REAL broker (mosquitto) over a veth pair
# between two private network namespaces. Nothing touches the host's interfaces.
#
#   client ns imfrec-c: imfrec-c0 10.78.0.1/24  <-- veth, MTU 1500, offloads off -->  imfrec-b0 10.78.0.2/24 :broker ns imfrec-b
#
# Outputs (regenerated on every run):
#   tests/data/mqtt/offline.pcap, offline.rules, offline.expect.json   (tests/integration/offline_e2e_test.py)
#   config/sample/mqtt-sample.pcap                                      (README's first run)
#
# Usage: sudo bash scripts/record-mqtt-captures.sh        (needs root, mosquitto, tcpdump, tshark, python3-scapy)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3              # Debian's scapy only loads under this interpreter
NS_C=imfrec-c
NS_B=imfrec-b
VETH_C=imfrec-c0
VETH_B=imfrec-b0
IP_C=10.78.0.1
IP_B=10.78.0.2
PORT=1883
GAP=${IMFREC_GAP:-0.3}           # seconds between two messages, so each one leaves in its own segment
OUT_TEST=$ROOT/tests/data/mqtt
OUT_SAMPLE=$ROOT/config/sample

WORK=""
TCPDUMP_PID=""
declare -A PUB_FD=() PUB_PID=()
SUB_PIDS=()

log() { echo "record: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- setup / teardown
teardown_netns() {
  local ns p
  for ns in "$NS_C" "$NS_B"; do
    [[ -e /run/netns/$ns ]] || continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$p" 2>/dev/null || true; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      [[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]] && break
      sleep 0.1
    done
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  set +e
  local n fd
  for n in "${!PUB_FD[@]}"; do fd=${PUB_FD[$n]}; exec {fd}>&-; done
  teardown_netns
  [[ -n "$WORK" && -d "$WORK" ]] && rm -rf "$WORK"
  if ((rc)); then log "FAILED (exit $rc); namespaces removed"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $EUID -eq 0 ]] || die "must run as root (network namespaces)"
for t in ip ethtool mosquitto mosquitto_pub mosquitto_sub tcpdump tshark ss; do
  command -v "$t" >/dev/null || die "missing tool '$t' (run scripts/install-deps.sh)"
done
"$PY" -c 'import scapy.all' 2>/dev/null || die "$PY cannot import scapy (apt-get install python3-scapy)"

WORK=$(mktemp -d /tmp/imfrec.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$OUT_TEST" "$OUT_SAMPLE"

setup_netns() {
  teardown_netns   # leftovers of an interrupted earlier run
  ip netns add "$NS_C"
  ip netns add "$NS_B"
  ip link add "$VETH_C" netns "$NS_C" type veth peer name "$VETH_B" netns "$NS_B"
  local ns dev ip
  for ns in "$NS_C" "$NS_B"; do
    if [[ $ns == "$NS_C" ]]; then dev=$VETH_C ip=$IP_C; else dev=$VETH_B ip=$IP_B; fi
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
    ip -n "$ns" link set "$dev" mtu 1500
    ip -n "$ns" addr add "$ip/24" dev "$dev"
    ip -n "$ns" link set "$dev" up
    # real-wire segmentation: MSS-sized segments, correct checksums in the capture
    ip netns exec "$ns" ethtool -K "$dev" tx off tso off gso off gro off >/dev/null 2>&1 \
      || ip netns exec "$ns" ethtool -K "$dev" tx off tso off gso off
  done
}

start_broker() {
  cat >"$WORK/mosquitto.conf" <<EOF
listener $PORT $IP_B
allow_anonymous true
max_packet_size 1048576
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
EOF
  chmod 644 "$WORK/mosquitto.conf"
  ip netns exec "$NS_B" mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
  local i
  for i in $(seq 50); do
    ip netns exec "$NS_B" ss -Hltn "sport = :$PORT" | grep -q "$IP_B:$PORT" && return 0
    sleep 0.1
  done
  cat "$WORK/mosquitto.log" >&2
  die "broker did not start"
}

# ---------------------------------------------------------------- capture
start_capture() {  # $1 = output pcap
  : >"$WORK/tcpdump.err"
  ip netns exec "$NS_C" tcpdump -i "$VETH_C" -U -s 0 -w "$1" "tcp port $PORT" 2>"$WORK/tcpdump.err" &
  TCPDUMP_PID=$!
  local i
  for i in $(seq 100); do
    grep -q "listening on" "$WORK/tcpdump.err" && { sleep 0.2; return 0; }
    kill -0 "$TCPDUMP_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$WORK/tcpdump.err" >&2
  die "tcpdump did not start"
}

stop_capture() {
  sleep 0.5
  kill -INT "$TCPDUMP_PID"
  wait "$TCPDUMP_PID" || true
  TCPDUMP_PID=""
  grep -E "packets (captured|dropped by kernel)" "$WORK/tcpdump.err" | sed 's/^/record:   tcpdump: /' >&2 || true
  grep -q "^0 packets dropped by kernel" "$WORK/tcpdump.err" || die "tcpdump dropped packets"
}

# ---------------------------------------------------------------- clients (all in the client ns)
in_client_ns() {  # runs a client in the client ns without the write ends of other clients' fifos
  local n fd
  for n in "${!PUB_FD[@]}"; do fd=${PUB_FD[$n]}; exec {fd}>&-; done
  exec ip netns exec "$NS_C" "$@"
}

established() { ip netns exec "$NS_C" ss -Htn state established "dport = :$PORT" | wc -l; }

wait_established() {  # $1 = count to reach
  local i
  for i in $(seq 100); do
    (($(established) >= $1)) && return 0
    sleep 0.05
  done
  die "client did not connect (expected $1 connections)"
}

sub_start() {  # name, mosquitto_sub args...  -- subscriber for the whole session
  local name=$1; shift
  local before; before=$(established)
  in_client_ns mosquitto_sub -h "$IP_B" -p "$PORT" -v "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SUB_PIDS+=($!)
  wait_established $((before + 1))
  sleep 0.3  # SUBACK
}

sub_stop_all() {
  sleep 0.5
  local p
  for p in "${SUB_PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${SUB_PIDS[@]}"; do wait "$p" || true; done
  SUB_PIDS=()
}

pub_open() {  # name, mosquitto_pub args... (without -l): one connection publishing each line said to it
  local name=$1; shift
  local fifo=$WORK/$name.fifo fd before
  before=$(established)
  rm -f "$fifo"; mkfifo "$fifo"
  in_client_ns mosquitto_pub -h "$IP_B" -p "$PORT" "$@" -l <"$fifo" >"$WORK/$name.log" 2>&1 &
  PUB_PID[$name]=$!
  exec {fd}>"$fifo"
  PUB_FD[$name]=$fd
  wait_established $((before + 1))
  sleep 0.2  # CONNACK
}

say() {  # name, line
  local fd=${PUB_FD[$1]}
  printf '%s\n' "$2" >&"$fd"
  sleep "$GAP"
}

pub_close() {  # name
  local name=$1 fd=${PUB_FD[$1]}
  exec {fd}>&-
  unset "PUB_FD[$name]"
  wait "${PUB_PID[$name]}" || { cat "$WORK/$name.log" >&2; die "mosquitto_pub '$name' failed"; }
  sleep "$GAP"
}

pub_once() {  # mosquitto_pub args...: one connection, one message
  (in_client_ns mosquitto_pub -h "$IP_B" -p "$PORT" "$@") || die "mosquitto_pub $* failed"
  sleep "$GAP"
}

# ================================================================ 1. offline test capture
# Rule hits are placed on topics nobody subscribes to, except the alert (delivered anyway), so the
# broker's copies of bad messages never show up on a subscriber's connection.
BIG_MARKER="CLASSIFIED-MARKER-7Q2X-do-not-exfiltrate"     # 40 bytes, t.bigfile-secret
BIG_BOUNDARY_SEGMENT=40                                   # marker straddles the end of this 1448-byte segment

write_offline_rules() {
  cat >"$OUT_TEST/offline.rules" <<'EOF'
# Rules for tests/integration/offline_e2e_test.py (capture: offline.pcap, expectations: offline.expect.json).
# Generated by scripts/record-mqtt-captures.sh; edit there.
#
# id                  action  scope          pattern
t.drop-literal        drop    payload        "BUY-CHEAP-PILLS"i
t.drop-regex          drop    payload        /wire\s+\d+\s+bitcoin/i
t.alert-word          alert   payload        "suspicious-but-allowed"
t.topic-restricted    drop    topic          /^restricted\//
t.both-scope          drop    payload,topic  "evil.example.test"
t.bigfile-secret      drop    payload        "CLASSIFIED-MARKER-7Q2X-do-not-exfiltrate"
t.never               alert   payload,topic  /never[-_ ]sent[-_ ]pattern/
EOF
}

make_big_payloads() {
  "$PY" - "$WORK" "$BIG_MARKER" "$BIG_BOUNDARY_SEGMENT" <<'EOF'
import sys
work, marker, seg = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
def filler(tag, size):
    out, i = bytearray(), 0
    while len(out) < size:
        out += b"%s line %05d: the quick brown fox jumps over the lazy dog 0123456789\n" % (tag, i)
        i += 1
    return out[:size]
# 100 KB, MQTT 3.1.1 QoS 1 on "bulk/upload": PUBLISH header = 1 type + 3 length + 2+11 topic + 2 id
bad = filler(b"heidi", 102400)
hdr = 1 + 3 + 2 + len("bulk/upload") + 2
start = 1448 * seg - hdr - len(marker) // 2
bad[start:start + len(marker)] = marker
assert bad.count(marker) == 1
open(f"{work}/big-bad.bin", "wb").write(bad)
# 40 KB clean, carries a near miss of the marker
good = filler(b"ivan", 40960)
near = marker[:-1] + b"_"
good[20000:20000 + len(near)] = near
assert marker not in good
open(f"{work}/big-clean.bin", "wb").write(good)
EOF
}

session_offline() {
  # subscribers for the whole recording
  sub_start watcher -V mqttv311 -u watcher -P watcherpw -i watcher-1 -q 1 -t 'room/#'
  sub_start subdev  -V mqttv5 -i sub-dev-v5 -q 0 -t room/dev

  # alice: v3.1.1 with username, one connection, several messages (one alert), stays open across bob's drop
  pub_open alice -V mqttv311 -u alice -P alicepw -i alice-pub -t room/lobby -q 0
  say alice "hello from alice"
  say alice "alice: second clean message"
  say alice "alice: this one is suspicious-but-allowed, deliver it"

  # bob: v5, client id only, properties (a user property carrying a rule pattern is NOT payload)
  pub_open bob -V mqttv5 -i bob-v5 -t market/offers -q 1 \
    -D publish user-property note BUY-CHEAP-PILLS -D publish content-type text/plain
  say bob "bob: clean opening offer"
  say alice "alice: still here while bob talks"
  say bob "bob: BUY-CHEAP"
  say bob "-PILLS split across two messages must not match"
  say bob "bob: buy-cheap-pills today only"
  say bob "bob: this line follows the drop and must not pass"
  pub_close bob
  say alice "alice: still here after bob was cut off"
  say alice "alice: final clean line"
  pub_close alice

  # carol: v3.1.1, client id only, one alert message on a subscribed topic
  pub_once -V mqttv311 -i carol-311 -t room/lobby -m "carol says: this is suspicious-but-allowed content"
  # dave: v5 with username, topic-scoped drop (payload is harmless)
  pub_once -V mqttv5 -u dave -P davepw -i dave-pub -t restricted/vault -m "dave: harmless words in a restricted topic"
  # erin: pattern split between topic and payload must not match (QoS 1 puts the packet id between them)
  pub_once -V mqttv311 -u erin -P erinpw -i erin-pub -q 1 -t files/evil.exa -m "mple.test is not a match across topic and payload"
  # frank: payload,topic rule hit through the topic
  pub_once -V mqttv5 -u frank -P frankpw -i frank-pub -t mirror/evil.example.test -m "frank: mirror listing"
  # grace: v5 properties, QoS 2, subscribed topic (both subscribers get it)
  pub_once -V mqttv5 -u grace -P gracepw -i grace-pub -q 2 -t room/dev \
    -D publish user-property a b -D publish content-type text/plain -m "grace: v5 clean with properties"
  # heidi: 100 KB with the forbidden marker straddling a TCP segment boundary
  pub_once -V mqttv311 -u heidi -P heidipw -i heidi-pub -q 1 -t bulk/upload -f "$WORK/big-bad.bin"
  # ivan: 40 KB clean, v5 client id only, subscribed topic
  pub_once -V mqttv5 -i ivan-v5 -q 1 -t room/dev -f "$WORK/big-clean.bin"
  # judy: regex drop
  pub_once -V mqttv311 -u judy -P judypw -i judy-pub -t payments/requests -m "judy: please wire 500 bitcoin to me"
  # kim: last clean message after all the drops, v3.1.1 with username, subscribed topic
  pub_once -V mqttv311 -u kim -P kimpw -i kim-pub -t room/lobby -m "kim: good night everyone"

  sub_stop_all
}

write_offline_expect() {
  "$PY" - "$WORK" "$OUT_TEST/offline.expect.json" "$BIG_MARKER" <<'EOF'
import hashlib, json, sys
work, out, marker = sys.argv[1], sys.argv[2], sys.argv[3]
def big(name):
    b = open(f"{work}/{name}", "rb").read()
    return {"sha256": hashlib.sha256(b).hexdigest(), "len": len(b)}
def m(d, acct, topic, body, **kw):
    e = {"dir": d, "account": acct, "topic": topic}
    e.update({"body": body} if isinstance(body, str) else body)
    e.update(kw)
    return e
A = "alice"; L = "room/lobby"
alice = ["hello from alice", "alice: second clean message",
         "alice: this one is suspicious-but-allowed, deliver it",
         "alice: still here while bob talks", "alice: still here after bob was cut off",
         "alice: final clean line"]
deliver = []
for b in alice:
    deliver += [m("c2b", A, L, b), m("b2s", "watcher", L, b)]
deliver += [
    m("c2b", "bob-v5", "market/offers", "bob: clean opening offer"),
    m("c2b", "bob-v5", "market/offers", "bob: BUY-CHEAP"),
    m("c2b", "bob-v5", "market/offers", "-PILLS split across two messages must not match"),
    m("c2b", "carol-311", L, "carol says: this is suspicious-but-allowed content"),
    m("b2s", "watcher", L, "carol says: this is suspicious-but-allowed content"),
    m("c2b", "erin", "files/evil.exa", "mple.test is not a match across topic and payload"),
    m("c2b", "grace", "room/dev", "grace: v5 clean with properties"),
    m("b2s", "watcher", "room/dev", "grace: v5 clean with properties"),
    m("b2s", "sub-dev-v5", "room/dev", "grace: v5 clean with properties"),
    m("c2b", "ivan-v5", "room/dev", big("big-clean.bin"), note="40 KB clean"),
    m("b2s", "watcher", "room/dev", big("big-clean.bin"), note="40 KB clean"),
    m("b2s", "sub-dev-v5", "room/dev", big("big-clean.bin"), note="40 KB clean"),
    m("c2b", "kim", L, "kim: good night everyone"),
    m("b2s", "watcher", L, "kim: good night everyone"),
]
withhold = [
    m("c2b", "bob-v5", "market/offers", "bob: buy-cheap-pills today only", why="t.drop-literal"),
    m("c2b", "bob-v5", "market/offers", "bob: this line follows the drop and must not pass", why="flow blocked"),
    m("c2b", "dave", "restricted/vault", "dave: harmless words in a restricted topic", why="t.topic-restricted"),
    m("c2b", "frank", "mirror/evil.example.test", "frank: mirror listing", why="t.both-scope"),
    m("c2b", "heidi", "bulk/upload", big("big-bad.bin"), why="t.bigfile-secret", note="100 KB"),
    m("c2b", "judy", "payments/requests", "judy: please wire 500 bitcoin to me", why="t.drop-regex"),
]
def ev(rule, action, acct, topic, d, seg=None):
    e = {"rule": rule, "action": action, "account": acct, "topic": topic, "dir": d}
    if seg is not None:
        e["drop_segment_contains"] = seg
    return e
events = [
    ev("t.alert-word", "alert", "alice", L, "c2b"),
    ev("t.alert-word", "alert", "watcher", L, "b2s"),
    ev("t.drop-literal", "drop", "bob-v5", "market/offers", "c2b", "bob: buy-cheap-pills today only"),
    ev("t.alert-word", "alert", "carol-311", L, "c2b"),
    ev("t.alert-word", "alert", "watcher", L, "b2s"),
    ev("t.topic-restricted", "drop", "dave", "restricted/vault", "c2b", "restricted/vault"),
    ev("t.both-scope", "drop", "frank", "mirror/evil.example.test", "c2b", "mirror/evil.example.test"),
    ev("t.bigfile-secret", "drop", "heidi", "bulk/upload", "c2b", marker[len(marker) // 2:]),
    ev("t.drop-regex", "drop", "judy", "payments/requests", "c2b", "wire 500 bitcoin"),
]
doc = {
    "about": "Expectations for imfd --offline on offline.pcap with offline.rules. Generated by "
             "scripts/record-mqtt-captures.sh. dir c2b = client to broker (port 1883), b2s = broker to "
             "subscriber; account = CONNECT username, else client id, of the connection carrying it. "
             "'deliver' is the exact multiset of PUBLISH messages imfd's output must hold; 'withhold' "
             "must be absent; 'forbidden_raw' must not occur anywhere in the output bytes; 'events' is "
             "the exact multiset of verdicts (drop_segment_contains: text inside the input segment that "
             "completes the match, i.e. the first packet of the flow imfd must drop).",
    "mqtt_port": 1883,
    "deliver": deliver,
    "withhold": withhold,
    "forbidden_raw": ["bob: buy-cheap-pills today only", "bob: this line follows the drop",
                      "dave: harmless words", "frank: mirror listing", marker,
                      "judy: please wire 500 bitcoin to me"],
    "events": events,
}
with open(out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
EOF
}

# ================================================================ 2. bundled sample (config/rules/example.rules)
# Drops go to rooms nobody subscribes to; the lobby screen only watches chat/general.
session_sample() {
  sub_start board -V mqttv5 -u board -P boardpw -i lobby-screen -q 0 -t chat/general

  pub_open alice   -V mqttv311 -u alice -P alicepw -i alice-laptop -t chat/general
  pub_open bob     -V mqttv5   -u bob   -P bobpw   -i bob-phone -t chat/general -D publish content-type text/plain
  pub_open carol   -V mqttv311 -i carol-tablet -t chat/general
  pub_open dave    -V mqttv5   -i dave-workstation -t chat/dev -q 1 -D publish user-property client imf-chat
  pub_open alicedv -V mqttv311 -u alice -P alicepw -i alice-laptop-dev -t chat/dev
  pub_open bobr    -V mqttv5   -u bob   -P bobpw   -i bob-phone-random -t chat/random
  pub_open mallory -V mqttv311 -u mallory -P m4ll0ry -i mallory-1 -t chat/random

  say alice   "morning all"
  say bob     "morning alice! coffee first"
  say carol   "hi both, standup moved to 10:30 today"
  say alice   "thanks carol, noted"
  say dave    "pushed the fix for the login timeout, please review"
  say alicedv "looking at it now dave"
  say bobr    "anyone watched the match last night?"
  say mallory "FREE MONEY for everyone who clicks my profile"
  say bobr    "what a finish in extra time"
  say mallory "anyone there? reply please"
  say alicedv "left two comments, mostly naming"
  say dave    "thanks, will update after lunch"
  say carol   "my cousin says you can earn \$500 a day from home, sounds fake lol"
  say bob     "definitely fake"
  say alice   "classic chain letter"
  pub_close mallory

  pub_once -V mqttv5 -i eve-bot -t chat/dev \
    -m "urgent: verify your account at http://secure-login.example.test/reset before friday"
  say dave    "ignore that last bot message, reported it"
  say alicedv "ci is green again"

  pub_once -V mqttv311 -u alice -P alicepw -i alice-auth -t chat/login-verify -m "is this the channel for 2fa codes?"
  say bob     "lunch at the usual place?"
  say carol   "yes, 12:15"
  say alice   "count me in"

  pub_once -V mqttv311 -i oscar-pc -t chat/dev -m "new build here http://files.example.test/tool-setup.exe grab it"
  say dave    "please only share builds from the ci artifacts page"
  say alicedv "agreed, the release checklist says so too"

  pub_open trent -V mqttv5 -u trent -P trentpw -i trent-1 -t chat/random
  say bobr    "someone posted that the home address of bob is public, mods?"
  say trent   "whatever, stop posting"
  say trent   "i know where you live"
  say bobr    "reported that too"
  pub_close trent

  say bob     "back from lunch"
  say carol   "retro at 4pm, bring ideas"
  say dave    "release notes draft is in the wiki"
  say alicedv "reviewing the release notes now"
  say alice   "retro board is ready"
  say bob     "see you at 4"
  say carol   "great week everyone"
  say alice   "bye all"

  local n
  for n in alice bob carol dave alicedv bobr; do pub_close "$n"; done
  sub_stop_all
}

# ================================================================ checks of the recorded captures
verify_offline() {  # $1 = pcap; exit 3 = segmentation not as intended (retry)
  "$PY" - "$1" "$OUT_TEST/offline.expect.json" "$BIG_MARKER" <<'EOF'
import json, subprocess, sys, collections, hashlib
import logging; logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import rdpcap, TCP, IP
pcap, expect, marker = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3].encode()
pkts = rdpcap(pcap)
flows = collections.defaultdict(list)
for p in pkts:
    if TCP in p and len(p[TCP].payload):
        t = p[TCP]
        flows[(p[IP].src, t.sport, p[IP].dst, t.dport)].append((t.seq, bytes(t.payload)))
big = max(len(b) for segs in flows.values() for _, b in segs)
assert big <= 1448, f"segment of {big} bytes: offloads still on?"
# the 100 KB message's marker must straddle a segment boundary
hits = []
for k, segs in flows.items():
    segs.sort()
    stream = b"".join(b for _, b in segs)
    if marker in stream:
        hits.append(k)
        assert not any(marker in b for _, b in segs), "a single segment holds the whole marker"
        pos, off = stream.index(marker), 0
        for _, b in segs:
            if off < pos + len(marker) <= off + len(b):
                if not off > pos:
                    print(f"marker does not straddle a boundary (stream offset {pos})", file=sys.stderr)
                    sys.exit(3)
            off += len(b)
        print(f"record:   marker at stream offset {pos}, straddles a segment boundary", file=sys.stderr)
assert len(hits) == 1, f"marker in {len(hits)} client->broker streams"
# each client->broker PUBLISH in segments of its own, so a drop never takes a clean message along
for k, segs in flows.items():
    if k[3] != 1883:
        continue
    stream = b"".join(b for _, b in segs)
    ends, off = [], 0
    for _, b in segs:
        off += len(b); ends.append(off)
    pos, owner = 0, {}
    while pos < len(stream):
        typ, i, mult, rl = stream[pos] >> 4, pos + 1, 1, 0
        while True:
            rl += (stream[i] & 127) * mult; mult *= 128; i += 1
            if not stream[i - 1] & 128:
                break
        end = i + rl
        if typ == 3:
            first = next(n for n, e in enumerate(ends) if e > pos)
            last = next(n for n, e in enumerate(ends) if e >= end)
            for n in range(first, last + 1):
                assert n not in owner, f"two PUBLISH packets share a segment on {k}"
                owner[n] = pos
        pos = end
# every expected message, and nothing else, is in the input (tshark, reassembled)
out = subprocess.run(["tshark", "-r", pcap, "-d", "tcp.port==1883,mqtt", "-Y", "mqtt.msgtype==3",
                      "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-e", "tcp.dstport",
                      "-e", "mqtt.topic", "-e", "mqtt.msg"], capture_output=True, text=True, check=True).stdout
got = collections.Counter()
for line in out.splitlines():
    dport, topics, msgs = line.split("\t")
    for t, mm in zip(topics.split("|"), msgs.split("|")):
        body = bytes.fromhex(mm.replace(":", ""))
        got[("c2b" if dport == "1883" else "b2s", t, hashlib.sha256(body).hexdigest())] += 1
want = collections.Counter()
for e in expect["deliver"] + expect["withhold"]:
    h = e["sha256"] if "sha256" in e else hashlib.sha256(e["body"].encode()).hexdigest()
    want[(e["dir"], e["topic"], h)] += 1
assert got == want, f"input capture differs from expectations:\n missing {want - got}\n extra {got - want}"
print(f"record:   offline capture: {len(pkts)} packets, {sum(got.values())} PUBLISH messages as expected", file=sys.stderr)
EOF
}

verify_sample() {  # $1 = pcap
  "$PY" - "$1" <<'EOF'
import subprocess, sys
pcap = sys.argv[1]
def fields(*f, flt):
    out = subprocess.run(["tshark", "-r", pcap, "-d", "tcp.port==1883,mqtt", "-Y", flt, "-T", "fields",
                          "-E", "occurrence=a", "-E", "aggregator=|"] + [x for e in f for x in ("-e", e)],
                         capture_output=True, text=True, check=True).stdout
    return [l.split("\t") for l in out.splitlines()]
pubs = sum(len(r[0].split("|")) for r in fields("mqtt.topic", flt="mqtt.msgtype==3"))
conns = fields("mqtt.ver", "mqtt.clientid", "mqtt.username", flt="mqtt.msgtype==1")
vers = {r[0] for r in conns}
assert vers == {"4", "5"}, vers
assert 30 <= pubs <= 70, pubs
print(f"record:   sample capture: {len(conns)} connections, {pubs} PUBLISH messages", file=sys.stderr)
EOF
}

# ================================================================ main
setup_netns
start_broker

write_offline_rules
make_big_payloads
write_offline_expect
for attempt in 1 2 3; do
  log "recording offline capture (attempt $attempt)"
  start_capture "$WORK/offline.pcap"
  session_offline
  stop_capture
  rc=0
  verify_offline "$WORK/offline.pcap" || rc=$?
  ((rc == 0)) && break
  ((rc == 3)) || die "offline capture check failed"
  ((attempt < 3)) || die "marker never straddled a segment boundary"
done
cp "$WORK/offline.pcap" "$OUT_TEST/offline.pcap"

log "recording sample capture"
start_capture "$WORK/sample.pcap"
session_sample
stop_capture
verify_sample "$WORK/sample.pcap"
cp "$WORK/sample.pcap" "$OUT_SAMPLE/mqtt-sample.pcap"

chmod 644 "$OUT_TEST"/offline.* "$OUT_SAMPLE/mqtt-sample.pcap"
ls -l "$OUT_TEST"/offline.* "$OUT_SAMPLE/mqtt-sample.pcap" | sed 's/^/record: /' >&2
log "done"
