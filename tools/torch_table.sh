#!/usr/bin/env bash
# convoy against PyTorch, training step by training step, side by side: for every workload, `convoy bench
# train --profile` and the same model, batch and SGD in PyTorch (../shared/bench/run-torch: tcmalloc, 2
# threads), alternating, ROUNDS times; then a table of images/s on both sides, the ratio of each round,
# and convoy's share of the FMA peak it measured in the same run (the whole step; the convolutions).
#   tools/torch_table.sh [ROUNDS] [WORKLOAD ...]     WORKLOAD: model:batch:size (resnet20:64:28)
# Default: the issue-15 table (ResNet-18/50 at 64x64, the CIFAR-style ResNet-8/20 and LeNet-5 at 28x28).
# Takes about 5 minutes a round. Writes its raw JSON lines to runs/torch_table.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
workloads=("$@")
((${#workloads[@]})) || workloads=(resnet18:32:64 resnet50:16:64 resnet8:128:28 resnet20:128:28 resnet20:64:28
                                   lenet5:256:28)
shared=${CONVOY_SHARED:-../shared}
[[ -x build/convoy ]] || tools/setup.sh --target convoy
[[ -x $shared/bench/run-torch ]] || { echo "torch_table: no $shared/bench/run-torch (the shared benchmark scripts)" >&2; exit 1; }
mkdir -p runs
out=runs/torch_table.jsonl
: > "$out"
isa=$( (grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo || true) | sort -u | tr '\n' ' ')
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores, ${isa:-AVX2 only (no AVX-512)}" >> "$out"

for ((r = 1; r <= rounds; ++r)); do
  for w in "${workloads[@]}"; do
    IFS=: read -r model batch size <<< "$w"
    if [[ $model == resnet18 || $model == resnet50 ]]; then
      c=(--image-size "$size")
      t=("$shared/bench/torch_train_step.py" "$model" "$batch" "$size" 20)
    else  # the small networks: 1x28x28 Fashion-MNIST-sized input, 10 classes
      c=(--image-size "$size" --channels 1 --classes 10)
      t=("$shared/bench/torch_small_nets.py" step "$model" "$batch" 30)
    fi
    steps=20
    [[ $model == resnet* && $size -le 32 ]] && steps=40
    [[ $model == lenet5 ]] && steps=100
    cj=$(build/convoy bench train --model "$model" --batch "$batch" "${c[@]}" --steps $steps --profile --json)
    tj=$("$shared/bench/run-torch" "${t[@]}" | tail -1)
    printf '{"round": %d, "workload": "%s", "convoy": %s, "torch": %s}\n' "$r" "$w" "$cj" "$tj" >> "$out"
    echo "round $r $w done" >&2
  done
done

python3 - "$out" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith("#"):
        print(line.strip()); continue
    j = json.loads(line)
    rows.setdefault(j["workload"], []).append(j)
print("| workload | convoy img/s | PyTorch img/s | ratio per round | median ratio | convoy step / convs, share of measured peak |")
print("|---|---|---|---|---|---|")
for w, rs in rows.items():
    c = [r["convoy"]["images_per_s"] for r in rs]
    t = [r["torch"]["images_per_s"] for r in rs]
    ratios = [a / b for a, b in zip(c, t)]
    step = statistics.median(r["convoy"]["step_share_of_peak"] for r in rs)
    conv = statistics.median(r["convoy"]["conv"]["share_of_peak"] for r in rs)
    peak = statistics.median(r["convoy"]["peak_gflops"] for r in rs)
    m, b, s = w.split(":")
    print(f"| {m} b{b} @{s} | {' / '.join(f'{x:,.0f}' for x in c)} | {' / '.join(f'{x:,.0f}' for x in t)} | "
          f"{' / '.join(f'{x:.2f}' for x in ratios)} | {statistics.median(ratios):.2f}x | "
          f"{100 * step:.0f} % / {100 * conv:.0f} % of {peak:.0f} GFLOP/s |")
EOF
