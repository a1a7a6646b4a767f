#!/usr/bin/env bash
# Table 4 of Bag of Tricks (He et al. 2018, "efficient training") in miniature: Fashion-MNIST on 2 local
# MPI ranks at batch 256 and at batch 1024 (4 accumulated micro-batches of 128 per rank), adding the
# paper's rows one at a time: baseline, + linear scaling, + LR warmup, + zero gamma, + no bias decay,
# + fp16 (exact fp16 emulation on the CPU, with dynamic loss scaling). Prints a Markdown table shaped
# like the paper's (top-1 per row and the change from the row above) and writes it, a PNG of the test-
# accuracy curves and every run's metrics under OUT. Interrupted, it resumes where it stopped: finished
# runs are kept, an unfinished one continues from its newest checkpoint.
#   tools/tricks_table.sh [--model resnet20] [--epochs 10] [--out runs/tricks_table]
# The default (resnet20, 10 epochs per row, 7 rows) took 44 minutes on 2 cores (AMD EPYC, AVX-512), the
# run in docs/tricks.md; --epochs 20 takes about 90.
set -euo pipefail
cd "$(dirname "$0")/.."
model=resnet20 epochs=10 out=runs/tricks_table
while (($#)); do
  case $1 in
    --model) model=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--model M] [--epochs E] [--out DIR]" >&2; exit 2 ;;
  esac
done
tools/setup.sh --target convoy
tools/fashion_mnist_data.sh
data=data/fashion-mnist
mkdir -p "$out"

# Every row: a name, then the --set options that row adds to the one above (row 2 starts over at batch
# 1024 from row 1's settings). base_lr 0.1 per lr_reference_batch images: without linear scaling the
# reference is the batch itself (LR 0.1 at any batch), with it the reference is 256 (LR 0.4 at 1024).
common=(--set model.name="$model" --set data.dir="$data" --set train.epochs="$epochs" --set train.base_lr=0.1
  --set train.schedule=cosine --set train.warmup_epochs=0 --set model.zero_gamma=false
  --set train.no_bias_decay=false --set train.weight_decay=5.0e-4 --set train.label_smoothing=0
  --set train.precision=fp32 --set eval.every_epochs=1 --set checkpoint.every_epochs=1 --set checkpoint.keep=1
  --set log.interval=100)
rows=(
  "baseline_256|BS=256 baseline|--set train.batch_size=256 --set train.lr_reference_batch=256"
  "baseline_1024|BS=1024 baseline|--set train.batch_size=1024 --set train.accumulate_steps=4 --set train.lr_reference_batch=1024"
  "linear_scaling|+ linear scaling|--set train.lr_reference_batch=256"
  "warmup|+ LR warmup|--set train.warmup_epochs=$(( epochs / 10 > 0 ? epochs / 10 : 1 ))"
  "zero_gamma|+ Zero gamma|--set model.zero_gamma=true"
  "no_bias_decay|+ No bias decay|--set train.no_bias_decay=true"
  "fp16|+ FP16 (emulated)|--set train.precision=fp16"
)
acc=()
for row in "${rows[@]}"; do
  IFS='|' read -r name label sets <<<"$row"
  [[ $name == baseline_1024 ]] && acc=()  # batch 1024 starts from the baseline, as in the paper
  read -r -a extra <<<"$sets"
  acc+=("${extra[@]}")
  dir=$out/$name
  if [[ -f $dir/done ]]; then
    echo "tricks: $label: done earlier ($dir)"
    continue
  fi
  echo "tricks: $label: training into $dir"
  launch/convoy-mpirun -np 2 build/convoy train --config configs/fashion_mnist_quickstart.yaml --out "$dir" \
    "${common[@]}" "${acc[@]}" --resume auto > "$dir.log" 2>&1 || { tail -20 "$dir.log"; exit 1; }
  printf '%s\n' "${common[*]} ${acc[*]}" > "$dir/command"
  touch "$dir/done"
done

# The table and the curves, from the runs' metrics.jsonl only.
/usr/bin/python3 - "$out" "$model" "$epochs" <<'EOF'
import json, os, sys
out, model, epochs = sys.argv[1], sys.argv[2], sys.argv[3]
names = ["baseline_256", "baseline_1024", "linear_scaling", "warmup", "zero_gamma", "no_bias_decay", "fp16"]
labels = ["BS=256 baseline", "BS=1024 baseline", "+ linear scaling", "+ LR warmup", "+ Zero gamma",
          "+ No bias decay", "+ FP16 (emulated)"]
curves, top1 = {}, {}
for n in names:
    epochs_seen = {}
    for line in open(os.path.join(out, n, "metrics.jsonl")):
        j = json.loads(line)
        if j.get("type") == "epoch" and "top1" in j:
            epochs_seen[j["epoch"]] = 100 * j["top1"]
    curves[n] = [epochs_seen[e] for e in sorted(epochs_seen)]
    top1[n] = curves[n][-1]
lines = [f"Fashion-MNIST, {model}, {epochs} epochs per row, cosine LR, 2 ranks (batch 1024 = 2 ranks x 4 "
         "accumulated micro-batches of 128)", "", "| heuristic | BS | top-1 % | change |", "|---|---|---|---|"]
prev = None
for n, l in zip(names, labels):
    bs = 256 if n == "baseline_256" else 1024
    change = "" if prev is None or n == "baseline_1024" else f"{top1[n] - top1[prev]:+.2f}"
    if n == "baseline_1024":
        change = f"{top1[n] - top1['baseline_256']:+.2f} (vs BS=256)"
    lines.append(f"| {l} | {bs} | {top1[n]:.2f} | {change} |")
    prev = n
table = "\n".join(lines)
print(table)
open(os.path.join(out, "table.md"), "w").write(table + "\n")
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    for n, l in zip(names, labels):
        ax.plot(range(1, len(curves[n]) + 1), curves[n], label=l, marker=".")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"Bag of Tricks Table 4 in miniature: Fashion-MNIST, {model}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    lo = min(min(c) for c in curves.values())
    ax.set_ylim(max(lo - 1, 0), 100)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=120)
    print(f"curves: {os.path.join(out, 'curves.png')}")
except ImportError:
    print("tricks: python3-matplotlib is missing: no curves (tools/setup.sh installs it)", file=sys.stderr)
EOF
