#!/usr/bin/env bash
# The main job on the bundled default, from a fresh Debian 12 machine (as root): installs what is
# missing, builds, and runs the bundled sample capture through the example rules offline, with
# the sample accounts (a verified publisher, a warned and a suspended account) and the example
# escalation policy, printing what passed and what was blocked, by rule, and the records.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh >/dev/null
if [ ! -d build ]; then
  meson setup build >/dev/null
fi
ninja -C build -j "$(nproc)" >/dev/null

out=$(mktemp -d /tmp/imf-demo.XXXXXX)
build/dataplane/imfd --offline -r config/sample/mqtt-sample.pcap -w "$out/out.pcap" \
  --rules config/rules/example.rules --accounts-file config/sample/accounts.csv --policy config/policy.conf \
  --digest-key "$out/digest.key" --records-dir "$out/records" --appliance-id demo \
  --events "$out/events.json" --summary-json "$out/summary.json" 2>/dev/null
echo
echo "records ($out/records: one JSON line per measure, hash-chained; no message content, an HMAC digest instead):"
/usr/bin/python3 - "$out"/records/dataplane-*.jsonl <<'PY'
import json, sys
print(f"{'seq':>4}  {'action':<12} {'account':<14} {'state':<10} {'rule':<26} {'topic':<18} digest")
for path in sys.argv[1:]:
    for line in open(path):
        r = json.loads(line)
        d = (r.get("digest") or "-").replace("hmac-sha256:", "")[:16]
        print(f"{r['seq']:>4}  {r.get('action', r['kind']):<12} {str(r.get('account')):<14} "
              f"{r.get('state_after', ''):<10} {str(r.get('rule') or '-'):<26} {r.get('topic') or '-':<18} {d}")
PY
echo
echo "forwarded capture: $out/out.pcap; counters: $out/summary.json; events: $out/events.json"
