#!/usr/bin/env bash
# Validates the projection of `convoy report --project` against training runs it did not see: for each
# link cap, 1 and 2 emulated nodes x 1 rank train the same model (launch/scaling.sh --on emulated
# --workload train); the inter-node link's alpha and beta are fitted from `convoy bench allreduce` beside
# the 2-node run (a separate measurement); the step is replayed from a one-rank profile measured first
# (`convoy bench train --profile --json`, one thread, as each emulated rank has). Then 4 nodes x 1 rank
# at the first cap: 4 ranks on this machine's cores are oversubscribed, which the model does not know,
# and the table marks it. Writes OUT/validation.md (every error) and a report per cap.
#   tools/scaling_validation.sh [--out runs/validation] [--rates 1gbit,2.5gbit,10gbit] [--model resnet18]
#                               [--batch 32] [--train-images 3200] [--epochs 2]
# Needs root (emulated nodes). About 10 minutes on 2 cores with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/validation rates=1gbit,2.5gbit,10gbit model=resnet18 batch=32 images=3200 epochs=2
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --train-images) images=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    *) echo "usage: $0 [--out DIR] [--rates R,R] [--model M] [--batch B] [--train-images N] [--epochs E]" >&2; exit 2 ;;
  esac
done
convoy=${CONVOY:-$PWD/build/convoy}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# A Fashion-MNIST subset (the first N training images, 1,000 test images) as IDX, then shards.
data=$out/data
if [[ ! -f $data/index.json ]]; then
  /usr/bin/python3 - "$out/idx" "$images" <<'EOF'
import gzip, os, struct, sys
out, n = sys.argv[1], int(sys.argv[2])
src = "/usr/share/datasets/fashion-mnist"
os.makedirs(out, exist_ok=True)
for kind, count in (("train", n), ("t10k", 1000)):
    for part, header in (("images-idx3-ubyte", 16), ("labels-idx1-ubyte", 8)):
        raw = gzip.open(f"{src}/{kind}-{part}.gz").read()
        head = bytearray(raw[:header])
        struct.pack_into(">I", head, 4, count)
        item = 28 * 28 if part.startswith("images") else 1
        open(f"{out}/{kind}-{part}", "wb").write(bytes(head) + raw[header:header + count * item])
EOF
  "$convoy" convert idx --images "$out/idx/train-images-idx3-ubyte" --labels "$out/idx/train-labels-idx1-ubyte" --out "$data" --split train >/dev/null
  "$convoy" convert idx --images "$out/idx/t10k-images-idx3-ubyte" --labels "$out/idx/t10k-labels-idx1-ubyte" --out "$data" --split val >/dev/null
fi
cat > "$out/train.yaml" <<EOF
model: {name: $model}
data: {dir: $data, threads: 1, prefetch: 3}
train: {epochs: $epochs, batch_size: $batch, base_lr: 0.1, warmup_epochs: 0.5, schedule: cosine, threads: 1, seed: 1}
eval: {every_epochs: $epochs}
checkpoint: {every_epochs: 100}
log: {interval: 10}
EOF
profile=$out/profile.json
if [[ ! -s $profile ]]; then
  "$convoy" bench train --model "$model" --batch "$batch" --image-size 28 --channels 1 --classes 10 --threads 1 \
    --steps 20 --profile --json > "$out/profile.log"
  grep '^{' "$out/profile.log" | tail -1 > "$profile"
fi

IFS=, read -r -a caps <<<"$rates"
for rate in "${caps[@]}"; do
  dir=$out/$rate
  launch/scaling.sh --out "$dir" --on emulated --rate "$rate" --ranks 1,2 --workload train --config "$out/train.yaml" \
    --batch "$batch" --epochs "$epochs"
  cat > "$dir/cluster.yaml" <<EOF
name: emulated nodes at $rate
workers_per_node: 1
intra_node: {latency_us: 0, bandwidth_GBps: 1000, note: "unused: one rank per node"}
inter_node: {fit: n2/allreduce.jsonl, ranks: 2, min_bytes: 1048576}
workers: [1, 2, 4]
EOF
  "$convoy" report "$dir/n1" "$dir/n2" --out "$dir/report" --project "$dir/cluster.yaml" --profile "$profile"
done
first=${caps[0]}
over=$out/${first}-4nodes
launch/scaling.sh --out "$over" --on emulated --rate "$first" --ranks 4 --workload train --config "$out/train.yaml" \
  --batch "$batch" --epochs "$epochs"
"$convoy" report "$over/n4" --out "$over/report" --project "$out/$first/cluster.yaml" --profile "$profile" --no-plots

# The table: every run's measured and predicted step, from the reports' JSON.
/usr/bin/python3 - "$out" "$first" "${caps[@]}" <<'EOF'
import json, os, sys
out, first, caps = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = ["| link cap | nodes x ranks | fitted link | measured step ms | predicted step ms | error | note |",
        "|---|---|---|---|---|---|---|"]
errors = []
def add(report_dir, cap, note_for):
    r = json.load(open(os.path.join(report_dir, "report.json")))
    link = r["projection"]["inter_node"]
    for v in r["validation"]["rows"]:
        note = note_for(v)
        rows.append(f"| {cap} | {v['nodes']} x 1 | {link['bandwidth_GBps'] * 8:.2f} Gbit/s, {link['latency_us']:.0f} us | "
                    f"{v['measured_step_ms']:.1f} | {v['predicted_step_ms']:.1f} | {100 * v['error']:+.1f} % | {note} |")
        if not note.startswith("oversubscribed"):
            errors.append(abs(v["error"]))
for cap in caps:
    add(os.path.join(out, cap, "report"), cap, lambda v: "")
add(os.path.join(out, f"{first}-4nodes", "report"), first,
    lambda v: "oversubscribed: 4 ranks on this machine's cores; the model assumes a core per rank")
text = "\n".join(rows) + f"\n\nLargest error of the runs that are not oversubscribed: {100 * max(errors):.1f} %\n"
open(os.path.join(out, "validation.md"), "w").write(text)
print(text)
EOF
