#!/usr/bin/env bash
# Installs every Debian 12 package imf needs to build, test and benchmark.
# Idempotent: packages already present are skipped, so a warm machine pays nothing.
set -euo pipefail

PKGS=(
  # build
  meson ninja-build pkg-config g++ clang-format clang-tidy
  libdpdk-dev libhyperscan-dev libspdlog-dev libfmt-dev libgtest-dev libpcap-dev
  libpcre2-dev libbpf-dev libxdp-dev libssl-dev
  # fuzzing: libFuzzer and the sanitizers' runtime come with Debian's clang
  clang libclang-rt-14-dev llvm
  # live tests and capture tooling
  iproute2 ethtool procps nftables mosquitto mosquitto-clients tcpdump tshark python3-scapy
  # real IM peers for the XMPP, SIP and IRC captures (scripts/record-{xmpp,sip,irc}-captures.sh)
  prosody lua-unbound python3-slixmpp sendxmpp sip-tester ngircd ii
  # benchmark: human-written text corpus for synthesized messages, plots, instruction counts
  fortunes gnuplot-nox valgrind
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The servers' packages start them on the host (mosquitto on 1883, prosody on 5222, ngircd on
# 6667); the tests and recordings run their own inside namespaces.
if command -v systemctl >/dev/null; then
  for s in mosquitto prosody ngircd; do
    if systemctl is-active --quiet "$s" 2>/dev/null; then systemctl stop "$s" || true; fi
  done
fi
echo "install-deps: all ${#PKGS[@]} packages present"
