#!/usr/bin/env bash
# The main job on the bundled default, from a fresh Debian 12 machine (as root): installs what is
# missing, builds, and runs the bundled sample capture through the example rules offline,
# printing what passed and what was blocked, by rule, and the verdict events.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh >/dev/null
if [ ! -d build ]; then
  meson setup build >/dev/null
fi
ninja -C build -j "$(nproc)" >/dev/null

out=$(mktemp -d /tmp/imf-demo.XXXXXX)
build/dataplane/imfd --offline -r config/sample/mqtt-sample.pcap -w "$out/out.pcap" \
  --rules config/rules/example.rules --events "$out/events.json" --summary-json "$out/summary.json" 2>/dev/null
echo
echo "verdict events ($out/events.json):"
cat "$out/events.json"
echo
echo "forwarded capture: $out/out.pcap; counters: $out/summary.json"
