# Shared by scripts/record-*-captures.sh: two private network namespaces joined by one veth pair,
# tcpdump on the client-side end, and a teardown that runs on every exit (also on failure).
# Nothing touches the host's interfaces; only private addresses on the veth pair.
#
#   client ns $NS_C: $VETH_C $IP_C/24  <-- veth, MTU 1500, offloads off -->  $VETH_B $IP_B/24 :server ns $NS_B
#
# The sourcing script sets NS_C NS_B VETH_C VETH_B IP_C IP_B (names unique to it, veth names at
# most 15 characters), may set PORT (start_capture's default filter is "tcp port $PORT") and may
# define record_on_exit, which cleanup calls before the namespaces go (close fifos, stop clients).
# IMFREC_KEEP=1 keeps $WORK (configs, logs, the raw capture) for a look after the run.
# It then calls record_init, which checks root and the tools, installs the traps and makes $WORK.
# shellcheck shell=bash

# shellcheck disable=SC2034  # ROOT and PY are for the sourcing script
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC2034
PY=/usr/bin/python3              # Debian's python3-* modules (scapy, slixmpp) only load under this interpreter

WORK=""
TCPDUMP_PID=""

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
  declare -F record_on_exit >/dev/null && record_on_exit
  teardown_netns
  if [[ -n "$WORK" && -d "$WORK" ]]; then
    if [[ -n ${IMFREC_KEEP:-} ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  fi
  if ((rc)); then log "FAILED (exit $rc); namespaces removed"; fi
  exit "$rc"
}

record_init() {  # tools the script needs...
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  [[ $EUID -eq 0 ]] || die "must run as root (network namespaces)"
  local t
  for t in ip ethtool tcpdump tshark ss "$@"; do
    command -v "$t" >/dev/null || die "missing tool '$t' (run scripts/install-deps.sh)"
  done
  WORK=$(mktemp -d /tmp/imfrec.XXXXXX)
  chmod 755 "$WORK"
}

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

wait_listen() {  # ns, ip, port, tcp|udp, log file to show on failure
  local flag=-Hltn
  [[ $4 == udp ]] && flag=-Hlun
  for _ in $(seq 100); do
    ip netns exec "$1" ss "$flag" "sport = :$3" | grep -q "$2:$3" && return 0
    sleep 0.1
  done
  [[ -n ${5:-} && -f $5 ]] && cat "$5" >&2
  die "nothing listens on $2:$3/$4 in $1"
}

# ---------------------------------------------------------------- capture
start_capture() {  # $1 = output pcap, $2 = pcap filter (default: tcp port $PORT)
  : >"$WORK/tcpdump.err"
  # --immediate-mode: no kernel ring-buffer block timeout, so the last packets are not lost at SIGINT
  ip netns exec "$NS_C" tcpdump -i "$VETH_C" --immediate-mode -U -s 0 -w "$1" "${2:-tcp port $PORT}" \
    2>"$WORK/tcpdump.err" &
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
  kill -INT "$TCPDUMP_PID" 2>/dev/null || die "tcpdump ended before the recording did (interrupted?)"
  wait "$TCPDUMP_PID" || true
  TCPDUMP_PID=""
  grep -E "packets (captured|dropped by kernel)" "$WORK/tcpdump.err" | sed 's/^/record:   tcpdump: /' >&2 || true
  grep -q "^0 packets dropped by kernel" "$WORK/tcpdump.err" || die "tcpdump dropped packets"
}
