#!/usr/bin/env bash
# Fuzzes convoy's parsers of outside input with libFuzzer (fuzz/README.md): the IDX reader, the shard
# reader (HDF5), index.json, JPEG decode with augmentation, the YAML config and checkpoints (HDF5).
#   tools/fuzz.sh SECONDS [TARGET...]     each target for SECONDS (default: all six)
#   tools/fuzz.sh --runs N [TARGET...]    each target for N executions instead
# Builds build-fuzz/ with clang (-fsanitize=fuzzer,address,undefined), runs every target on its corpus
# in fuzz/corpus/TARGET (kept in the repo: a later run continues from it; new inputs are merged in,
# minimized), writes crashes and hangs to fuzz/artifacts/, prints a line per target (executions,
# crashes, hangs) and exits 1 if any target found one.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-max_total_time="${1:?usage: tools/fuzz.sh SECONDS|--runs N [TARGET...]}")
shift
# A number of runs is for CI: with a fixed seed, a run repeats.
if [[ ${limit[0]} == "-max_total_time=--runs" ]]; then limit=(-runs="${1:?--runs needs a count}" -seed=1); shift; fi
targets=("$@")
((${#targets[@]})) || targets=(idx shard index jpeg config checkpoint)
declare -A max_len=([idx]=65536 [shard]=262144 [index]=16384 [jpeg]=65536 [config]=8192 [checkpoint]=600000)
for t in "${targets[@]}"; do [[ -n ${max_len[$t]:-} ]] || { echo "fuzz: unknown target '$t'" >&2; exit 2; }; done

command -v clang++ >/dev/null || { echo "fuzz: needs clang (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVOY_FUZZ=ON \
  -DCONVOY_WITH_CUDA=off -DCONVOY_NATIVE=OFF >/dev/null
ninja -C build-fuzz "${targets[@]/#/fuzz_}" >/dev/null

mkdir -p fuzz/artifacts
# abort_on_error: a sanitizer report ends the process by SIGABRT, which a contained child's parent
# recognizes as a crash.
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:abort_on_error=1
# HDF5's crashes and endless loops are contained in a child (datasets/h5.h); its time limit must be
# shorter than libFuzzer's -timeout so that a contained loop is not reported as this process's hang.
export CONVOY_HDF5_TIMEOUT_S=1
bad=0
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/$t new=$(mktemp -d /tmp/convoy-fuzz-new-XXXXXX)
  mkdir -p "$corpus"
  log=fuzz/artifacts/$t.log
  touch fuzz/artifacts/.start-$t
  set +e
  HDF5_DISABLE_VERSION_CHECK=1 build-fuzz/fuzz/fuzz_$t "$new" "$corpus" "${limit[@]}" -max_len=${max_len[$t]} \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=16384 -artifact_prefix="fuzz/artifacts/$t-" -print_final_stats=1 > "$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o "stat::number_of_executed_units: *[0-9]*" "$log" | head -1 | grep -o "[0-9]*$" || echo "?")
  found() { find fuzz/artifacts -name "$t-$1-*" -newer fuzz/artifacts/.start-$t | wc -l; }
  crashes=$(found crash) hangs=$(found timeout) ooms=$(found oom)
  # Keep what the run found, minimized into the corpus (libFuzzer's merge).
  if compgen -G "$new/*" >/dev/null; then
    build-fuzz/fuzz/fuzz_$t -merge=1 -max_len=${max_len[$t]} -timeout=10 -artifact_prefix="fuzz/artifacts/merge-$t-" \
      "$corpus" "$new" >> "$log" 2>&1 || true
  fi
  rm -rf "$new"
  contained=$(grep -o "contained HDF5 crashes: [0-9]*, hangs: [0-9]*" "$log" | head -1 || true)
  # A contained child's sanitizer report is HDF5's only if its first frame past the interceptors and the
  # C/C++ runtime is in libhdf5; any other is a bug in convoy's code that the containment hid (as
  # 2^58 x 84 overflowing Shape::numel in the checkpoint child was): a finding.
  ours=$(awk '/ERROR: AddressSanitizer|ERROR: UndefinedBehaviorSanitizer|: runtime error: / { open = 1; next }
    open && /^ *#[0-9]+ 0x/ {
      if ($0 ~ /libhdf5/) { open = 0; next }
      if ($0 ~ /\(\/[^ ]*fuzz_[a-z]+\+0x[0-9a-f]+\)/ || $0 ~ /lib(c|stdc\+\+|gcc_s)\.so|ld-linux/) next
      n++; open = 0; if (!first) first = $0 }
    END { print n + 0; if (first) print first > "/dev/stderr" }' "$log")
  echo "fuzz $t: $runs executions, $crashes crashes, $hangs hangs, $ooms out-of-memory${contained:+ ($contained)}," \
       "$ours sanitizer reports in convoy's code (exit $rc; log $log)"
  ((rc == 0 && crashes + hangs + ooms + ours == 0)) || bad=1
done
exit $bad
