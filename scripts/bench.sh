#!/usr/bin/env bash
# The benchmark, from a fresh Debian 12 machine (as root): installs what is missing, builds a
# release tree (build-bench/) and runs bench/run.py, which writes report.md, results.json and PNG
# plots into results/<date>-<mode>/. Arguments go to bench/run.py (--quick, --rules, --nic, ...;
# see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
exec /usr/bin/python3 bench/run.py "$@"
