#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (unit, multi-rank, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure --timeout 900 "$@"

# The dataset code parses files from outside (JPEGs, IDX, shards): its tests run again under
# AddressSanitizer and UndefinedBehaviorSanitizer, in their own build folder (only those targets).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVOY_SANITIZE=ON >/dev/null
ninja -C build-asan test_datasets
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  ctest --test-dir build-asan -R datasets --output-on-failure --timeout 900
