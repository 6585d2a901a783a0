#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root): installs what is missing,
# builds the tests under ASan+UBSan and runs them, then builds normally and runs everything
# (unit, offline captures, live namespaces). The last lines are meson's test summary.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

jobs=$(nproc)

echo "=== sanitizer build (ASan+UBSan): unit and offline tests"
if [ ! -d build-asan ]; then
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug >/dev/null
fi
ninja -C build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs --num-processes "$jobs" --suite unit --suite integration

echo "=== release build: every test"
if [ ! -d build ]; then
  meson setup build --buildtype=release >/dev/null
fi
ninja -C build -j "$jobs"
meson test -C build --print-errorlogs --num-processes "$jobs"
