#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (unit, multi-rank, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure --timeout 900 "$@"
