#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (unit, multi-rank, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# Where nvcc is present the CUDA backend must have been built (CI cannot skip it silently).
if command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  if ! grep -qx "backend ON" build/convoy-cuda.txt; then
    echo "test: nvcc is on this machine but the CUDA backend was not built:" >&2
    sed -n 2p build/convoy-cuda.txt >&2
    exit 1
  fi
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure --timeout 900 "$@"

# The dataset code parses files from outside (JPEGs, IDX, shards): its tests run again under
# AddressSanitizer and UndefinedBehaviorSanitizer, in their own build folder (only those targets).
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVOY_SANITIZE=ON -DCONVOY_WITH_CUDA=off >/dev/null
ninja -C build-asan test_datasets
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  ctest --test-dir build-asan -R datasets --output-on-failure --timeout 900

# The parsers of outside input under libFuzzer, a few hundred runs each from their corpora (fuzz/README.md;
# long runs: tools/fuzz.sh SECONDS).
tools/fuzz.sh --runs 500
