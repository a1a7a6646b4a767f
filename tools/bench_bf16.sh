#!/usr/bin/env bash
# bf16 against fp32, convoy and PyTorch side by side (PyTorch's bf16 is CPU autocast), alternating the
# four runs ROUNDS times so that the machine's drift hits every side alike. Prints one Markdown row per
# run and the ratios of the medians. Needs a processor with AVX-512 BF16 or AMX (convoy refuses bf16
# elsewhere, naming the ISA) and ../shared/bench/run-torch for the PyTorch side.
#   tools/bench_bf16.sh [ROUNDS] [WORKLOAD...]     WORKLOAD: model:batch:size, default resnet18:32:64 resnet50:16:64
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift || true
workloads=("$@")
[[ ${#workloads[@]} -gt 0 ]] || workloads=(resnet18:32:64 resnet50:16:64)
convoy=${CONVOY:-build/convoy}
torch=${RUN_TORCH:-../shared/bench/run-torch}
[[ -x $convoy ]] || { echo "bench_bf16: no $convoy; build first (tools/test.sh or cmake --build build)" >&2; exit 2; }
[[ -x $torch ]] || { echo "bench_bf16: no $torch (PyTorch's side of the comparison)" >&2; exit 2; }
isa=$( (grep -o 'avx512[a-z_0-9]*\|amx[a-z_0-9]*' /proc/cpuinfo || true) | sort -u | tr '\n' ' ')
echo "processor: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), flags: ${isa:-no AVX-512}"
[[ $isa == *avx512_bf16* || $isa == *amx* ]] || {
  echo "bench_bf16: this processor has no AVX-512 BF16 or AMX, so convoy refuses bf16 here; run it on one that has" >&2
  exit 2
}

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
declare -A ips
echo "| workload | round | convoy fp32 img/s | convoy bf16 img/s | PyTorch fp32 img/s | PyTorch bf16 img/s |"
echo "|---|---|---|---|---|---|"
for w in "${workloads[@]}"; do
  IFS=: read -r model batch size <<< "$w"
  for r in $(seq 1 "$rounds"); do
    row=()
    for side in "convoy fp32" "convoy bf16" "torch fp32" "torch bf16"; do
      read -r who prec <<< "$side"
      if [[ $who == convoy ]]; then
        v=$("$convoy" bench train --model "$model" --batch "$batch" --image-size "$size" --steps 20 \
              --precision "$prec" --json | grep -o '"images_per_s": *[0-9.]*' | sed 's/.*: *//')
      else
        flag=()
        [[ $prec == bf16 ]] && flag=(--bf16)
        v=$("$torch" ../shared/bench/torch_train_step.py "$model" "$batch" "$size" 20 "${flag[@]}" |
              grep -o '"images_per_s": *[0-9.]*' | sed 's/.*: *//')
      fi
      row+=("$(printf '%.1f' "$v")")
      ips["$w $side"]+="$v "
    done
    echo "| $model, 3x${size}x${size}, batch $batch | $r | ${row[0]} | ${row[1]} | ${row[2]} | ${row[3]} |"
  done
done
echo
echo "| workload | convoy bf16 / fp32 | PyTorch bf16 / fp32 | convoy bf16 / PyTorch bf16 | convoy bf16 / PyTorch fp32 |"
echo "|---|---|---|---|---|"
for w in "${workloads[@]}"; do
  m() { tr ' ' '\n' <<< "${ips["$w $1"]}" | grep . | median; }
  cf=$(m "convoy fp32") cb=$(m "convoy bf16") tf=$(m "torch fp32") tb=$(m "torch bf16")
  awk -v w="$w" -v cf="$cf" -v cb="$cb" -v tf="$tf" -v tb="$tb" \
    'BEGIN { printf "| %s (medians) | %.2fx | %.2fx | %.2fx | %.2fx |\n", w, cb / cf, tb / tf, cb / tb, cb / tf }'
done
