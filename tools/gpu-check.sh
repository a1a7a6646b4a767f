#!/usr/bin/env bash
# The whole GPU verification as one prepared run (../shared/GPU-MACHINE.md): on a machine with a GPU and
# none of our Debian libraries, unpack the bundle tools/gpu-bundle.sh made here, find CUDA's libraries
# (the toolkit's runtime, cuDNN, cuBLAS and NCCL from the Python wheels: site-packages/nvidia/*/lib),
# run every GPU test, time convoy bench train on resnet50 at 224x224, batch 256 (fp32 with TF32 and with
# IEEE fp32, fp16 and bf16 mixed precision on tensor cores), save its per-layer profile, and write
# summary.json plus the logs into OUT (7 files: bench.jsonl holds one JSON line per benchmark).
#   tools/gpu-check.sh OUT [BUNDLE]     BUNDLE default: build-gpu/convoy-gpu-bundle.tar.xz
# Exit status: 0 all passed; 1 a test or benchmark failed; 2 a library is missing; 3 no GPU here.
# Runs in under 8 minutes on an H200 (each step has its own time limit, below).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tools/gpu-check.sh OUT [BUNDLE]}
bundle=${2:-build-gpu/convoy-gpu-bundle.tar.xz}
mkdir -p "$out"
out=$(cd "$out" && pwd)
t_start=$(date +%s)
steps=()   # "name status seconds" for the summary

log() { echo "gpu-check: $*" | tee -a "$out/check.log" >&2; }
step_done() { steps+=("$1 $2 $(( $(date +%s) - $3 ))"); }
summary() {  # summary.json by hand: the machine may have no python3 (the chroot check has none)
  local status=$1 message=$2
  {
    printf '{\n  "status": "%s",\n  "message": "%s",\n' "$status" "${message//\"/\'}"
    printf '  "date": "%s",\n  "seconds": %d,\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" $(( $(date +%s) - t_start ))
    printf '  "commit": "%s",\n' "$(cat "$B/COMMIT" 2>/dev/null || echo unknown)"
    printf '  "gpu": "%s",\n' "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
    printf '  "steps": ['
    local first=1
    for s in "${steps[@]}"; do
      read -r n st sec <<<"$s"
      ((first)) || printf ','
      first=0
      printf '\n    {"step": "%s", "status": "%s", "seconds": %s}' "$n" "$st" "$sec"
    done
    printf '\n  ]\n}\n'
  } > "$out/summary.json"
  log "$status: $message (summary: $out/summary.json)"
}

# --- 1. the bundle ---
t=$(date +%s)
[[ -f $bundle ]] || { summary missing-bundle "no bundle at $bundle: run tools/gpu-bundle.sh on a machine with our Debian packages first"; exit 2; }
B=${CONVOY_GPU_DIR:-/tmp/convoy-gpu}
rm -rf "$B" && mkdir -p "$(dirname "$B")"
if ! tar -C "$(dirname "$B")" -xJf "$bundle" 2>>"$out/check.log"; then
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$bundle" "$(dirname "$B")" ||
    { summary bad-bundle "cannot unpack $bundle"; exit 2; }
fi
[[ $(dirname "$B")/convoy-gpu == "$B" ]] || mv "$(dirname "$B")/convoy-gpu" "$B"
step_done unpack ok "$t"

# --- 2. the machine and its CUDA libraries ---
{
  echo "== uname"; uname -a
  echo "== os"; cat /etc/os-release 2>/dev/null | head -3
  echo "== glibc"; ldd --version 2>&1 | head -1
  echo "== cpu"; grep -m1 'model name' /proc/cpuinfo; nproc
  echo "== nvidia-smi"; nvidia-smi 2>&1 | head -20
  echo "== nvcc"; (nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>&1 | tail -2
  echo "== c++"; (c++ --version || g++ --version) 2>&1 | head -1
  echo "== wheels"; python3 -m pip show nvidia-cudnn-cu13 nvidia-cublas nvidia-nccl-cu13 nvidia-cuda-runtime 2>&1 | grep -E '^(Name|Version|Location)'
  echo "== bundle"; cat "$B/BUILD" "$B/COMMIT"
} >> "$out/check.log" 2>&1

# site-packages/nvidia/<lib>/lib of every Python this machine has, then the toolkit's own.
nvidia_libs=()
sites=$(python3 -c 'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null)
for s in $sites ${CONVOY_SITE_PACKAGES:-}; do
  for d in "$s"/nvidia/*/lib; do [[ -d $d ]] && nvidia_libs+=("$d"); done
done
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [[ -d $d ]] && nvidia_libs+=("$d")
done
libpath=$(IFS=:; echo "${nvidia_libs[*]}")
sys=$B/sys/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH="$libpath:$sys:$sys/openmpi/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$B/sys/usr/bin:$PATH"
export OPAL_PREFIX=$B/sys/usr PMIX_INSTALL_PREFIX=$sys/pmix2
# Shared memory and TCP only: the bundle carries no InfiniBand, UCX or OFI support for Open MPI.
export OMPI_MCA_mca_base_component_show_load_errors=0 OMPI_MCA_ess_singleton_isolated=1
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_osc=^ucx,rdma OMPI_MCA_mtl=^ofi,psm,psm2
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "== LD_LIBRARY_PATH"$'\n'"$LD_LIBRARY_PATH" >> "$out/check.log"

t=$(date +%s)
missing=$(for b in "$B"/bin/*; do ldd "$b" | awk -v b="$(basename "$b")" '/not found/ {print b ": " $1}'; done | sort -u)
if [[ -n $missing ]]; then
  echo "$missing" >> "$out/check.log"
  step_done libraries missing "$t"
  summary missing-libraries "libraries not found: $(echo "$missing" | tr '\n' ' ')(CUDA's come from site-packages/nvidia/*/lib or /usr/local/cuda; the rest from the bundle)"
  exit 2
fi
if ! "$B/bin/convoy" models >/dev/null 2>>"$out/check.log"; then
  step_done libraries broken "$t"
  summary broken-binary "convoy does not start here: see check.log"
  exit 2
fi
step_done libraries ok "$t"

# --- 3. a GPU? ---
if ! { nvidia-smi -L 2>/dev/null | grep -q GPU || ls /dev/nvidia0 >/dev/null 2>&1; }; then
  # What convoy itself says where a GPU is needed:
  "$B/bin/convoy" bench train --device cuda --model resnet8 --steps 1 --warmup 0 >> "$out/check.log" 2>&1
  summary no-gpu "every library was found; no GPU on this machine, so nothing GPU-side could run"
  exit 3
fi

failed=0
run_step() {  # name seconds log command...
  local name=$1 limit=$2 logf=$3
  shift 3
  local t0
  t0=$(date +%s)
  log "$name (at most ${limit}s)"
  echo "===== $name: $*" >> "$out/$logf"
  if timeout "$limit" "$@" >> "$out/$logf" 2>&1; then
    step_done "$name" ok "$t0"
  else
    local rc=$?
    step_done "$name" "failed-rc$rc" "$t0"
    failed=1
  fi
}

# --- 4. the GPU tests (each binary writes GoogleTest's JSON report) ---
cd "$B"
run_step test_cuda_host 60 tests.log bin/test_cuda_host --gtest_output=json:"$out/gtest-cuda-host.json"
run_step test_cuda 120 tests.log bin/test_cuda --gtest_output=json:"$out/gtest-cuda.json"
run_step test_ops_cuda 150 tests.log bin/test_ops --backend=cuda --gtest_output=json:"$out/gtest-ops-cuda.json"
run_step test_nccl_np1 60 tests.log bin/test_nccl --gtest_output=json:"$out/gtest-nccl.json"

# --- 5. the benchmark: resnet50, 224x224, batch 256 ---
bench=(bin/convoy bench train --device cuda --model resnet50 --image-size 224 --batch 256 --json)
run_step bench_tf32 100 bench.log sh -c "${bench[*]} --tf32 true --steps 20 --warmup 5 >> '$out/bench.jsonl'"
run_step bench_fp16 90 bench.log sh -c "${bench[*]} --precision fp16 --steps 20 --warmup 5 >> '$out/bench.jsonl'"
run_step bench_bf16 90 bench.log sh -c "${bench[*]} --precision bf16 --steps 20 --warmup 5 >> '$out/bench.jsonl'"
run_step bench_ieee 90 bench.log sh -c "${bench[*]} --tf32 false --steps 5 --warmup 2 >> '$out/bench.jsonl'"
run_step profile_tf32 100 bench.log sh -c "${bench[*]} --tf32 true --steps 5 --warmup 3 --profile > '$out/profile.json'"

# Four GoogleTest reports become one, so that the folder stays within what comes back (8 files).
python3 - "$out" <<'EOF' >> "$out/check.log" 2>&1 || true
import json, os, sys
out = sys.argv[1]
merged = {}
for f in sorted(os.listdir(out)):
    if f.startswith("gtest-") and f.endswith(".json"):
        with open(os.path.join(out, f)) as fh:
            merged[f[6:-5]] = json.load(fh)
        os.remove(os.path.join(out, f))
with open(os.path.join(out, "gtest.json"), "w") as fh:
    json.dump(merged, fh)
for name, r in merged.items():
    print(f"{name}: {r.get('tests')} tests, {r.get('failures')} failures, {r.get('disabled')} disabled")
EOF

if ((failed)); then
  summary failed "a GPU step failed: see tests.log and bench.log"
  exit 1
fi
summary passed "every GPU test passed; bench results in bench.jsonl (tf32, fp16, bf16, ieee) and profile.json"
