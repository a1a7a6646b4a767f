#!/usr/bin/env bash
# The classic zoo on Fashion-MNIST: LeNet-5, AlexNet, VGG-11 (d2l's quarter width), NiN, GoogLeNet,
# ResNet-18 and DenseNet-121, each trained on 2 local MPI ranks with the Bag-of-Tricks recipe (linear LR
# scaling, one warmup epoch, cosine decay, label smoothing 0.1, no bias decay, zero-gamma where there are
# residual blocks), 28x28 images resized bilinearly where a network needs more (data.resize_raw, as d2l's
# Resize). Prints a Markdown table - model, parameters, input, epochs, minutes, test top-1 and top-5 - beside
# the test accuracy d2l's chapter reports for the model (10 epochs at 224 or 96 px on a GPU), and writes
# it and every run under OUT. Interrupted, it resumes: finished rows are kept, an unfinished one continues
# from its newest checkpoint (--resume auto).
#   tools/zoo_table.sh [--out runs/zoo_table] [--only lenet5,alexnet,...] [--epochs N (every row)]
# Sizes and epochs are chosen so that the whole table takes about 2 hours on 2 cores (AMD EPYC, AVX-512).
# `convoy bench train --channels 1 --classes 10 --batch 128` there, images/s: lenet5 (28 px) 36,500,
# alexnet (64) 660, vgg11 at width 1/4 (64) ~500 (one epoch of the script: 2.0 min), nin (96) 660,
# googlenet (64) 480, resnet18 (64) 430, densenet121 (64) 220: about 105 minutes of training plus
# evaluation. d2l's numbers are its chapters' printed test accuracies after 10 epochs (approximate).
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/zoo_table only="" epochs_all=""
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --epochs) epochs_all=$2; shift 2 ;;
    *) echo "usage: $0 [--out DIR] [--only ROW,ROW] [--epochs N]" >&2; exit 2 ;;
  esac
done
tools/setup.sh --target convoy
tools/fashion_mnist_data.sh
data=data/fashion-mnist
mkdir -p "$out"

# row | model | input px | epochs | extra --set options | d2l's test accuracy (chapter; its input size)
rows=(
  "lenet5|lenet5|28|20||0.78 (LeNet, sigmoid, 28 px)"
  "alexnet|alexnet|64|8|--set train.base_lr=0.1|0.88 (AlexNet, 224 px)"
  "vgg11|vgg11|64|8|--set model.width=0.25 --set train.base_lr=0.1|0.92 (VGG-11 at 1/4 width, 224 px)"
  "nin|nin|96|8|--set train.base_lr=0.1|0.79 (NiN, 224 px)"
  "googlenet|googlenet|64|8||0.90 (GoogLeNet, 96 px)"
  "resnet18|resnet18|64|8|--set model.zero_gamma=true|0.91 (ResNet-18, 96 px)"
  "densenet121|densenet121|64|6||0.89 (DenseNet, 96 px)"
)
common=(--set data.dir="$data" --set train.batch_size=128 --set train.base_lr=0.2 --set train.lr_reference_batch=256
  --set train.warmup_epochs=1 --set train.schedule=cosine --set train.label_smoothing=0.1
  --set train.no_bias_decay=true --set train.weight_decay=5.0e-4 --set model.zero_gamma=false
  --set eval.every_epochs=1 --set checkpoint.every_epochs=1 --set checkpoint.keep=1 --set log.interval=100)
for row in "${rows[@]}"; do
  IFS='|' read -r name model size epochs sets d2l <<<"$row"
  [[ -z $only || ",$only," == *",$name,"* ]] || continue
  [[ -n $epochs_all ]] && epochs=$epochs_all
  dir=$out/$name
  if [[ -f $dir/done ]]; then
    echo "zoo: $name: done earlier ($dir)"
    continue
  fi
  read -r -a extra <<<"$sets"
  resize=()
  [[ $size != 28 ]] && resize=(--set data.resize_raw=true --set data.image_size="$size")
  echo "zoo: $name ($model, ${size}x${size}, $epochs epochs): training into $dir"
  mkdir -p "$dir"
  start=$(date +%s)
  launch/convoy-mpirun -np 2 build/convoy train --config configs/fashion_mnist_quickstart.yaml --out "$dir" \
    --set model.name="$model" --set train.epochs="$epochs" "${common[@]}" "${resize[@]}" "${extra[@]}" \
    --resume auto >> "$dir.log" 2>&1 || { tail -20 "$dir.log"; exit 1; }
  echo $(( $(date +%s) - start + $(cat "$dir/seconds" 2>/dev/null || echo 0) )) > "$dir/seconds"
  printf '%s\n' "model.name=$model train.epochs=$epochs ${common[*]} ${resize[*]} ${extra[*]}" > "$dir/command"
  printf '%s|%s|%s|%s\n' "$model" "$size" "$epochs" "$d2l" > "$dir/row"
  touch "$dir/done"
done

# The table, from the runs' logs and metrics.jsonl only.
/usr/bin/python3 - "$out" <<'EOF'
import json, os, re, sys
out = sys.argv[1]
lines = ["| model | parameters | input | epochs | minutes | top-1 % | top-5 % | d2l's test accuracy |",
         "|---|---|---|---|---|---|---|---|"]
for name in ["lenet5", "alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet121"]:
    d = os.path.join(out, name)
    if not os.path.exists(os.path.join(d, "done")):
        continue
    model, size, epochs, d2l = open(os.path.join(d, "row")).read().strip().split("|")
    params = re.search(r"(\d+) parameters", open(d + ".log").read())
    top1 = top5 = None
    for line in open(os.path.join(d, "metrics.jsonl")):
        j = json.loads(line)
        if j.get("type") == "epoch" and "top1" in j:
            top1, top5 = 100 * j["top1"], 100 * j["top5"]
    minutes = int(open(os.path.join(d, "seconds")).read()) / 60
    label = name + (" (width 1/4)" if name == "vgg11" else "")
    lines.append(f"| {label} | {int(params.group(1)):,} | 1x{size}x{size} | {epochs} | {minutes:.1f} | "
                 f"{top1:.2f} | {top5:.2f} | {d2l} |")
table = "\n".join(lines)
print(table)
open(os.path.join(out, "table.md"), "w").write(table + "\n")
EOF
