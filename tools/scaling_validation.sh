#!/usr/bin/env bash
# Validates the projection of `convoy report --project` against training runs it did not see: for each
# link cap, 1 and 2 emulated nodes x 1 rank train the same model (launch/scaling.sh --on emulated
# --workload train); the inter-node link's alpha and beta are fitted from `convoy bench allreduce` beside
# the 2-node run (a separate measurement); the step is replayed from a one-rank profile
# (`convoy bench train --profile --json`, one thread, as each emulated rank has). Emulated nodes share
# this machine's cores, so a run of k nodes is predicted from a profile measured while k-1 copies of the
# same benchmark run beside it: the CPU sharing is modelled, not assumed away (with k = 4 on 2 cores,
# oversubscribed). The communication shares those cores too: how busy its thread keeps a core comes from
# each cap's bench allreduce, and the CPU it needs per byte from one more bench allreduce on uncapped
# links (there the CPU, not the link, sets its pace). Then 4 nodes x 1 rank at the first cap. Writes
# OUT/validation.md (every error, and the errors of the profile without co-runners, and of the model
# without the cores' sharing) and a report per cap.
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
# profile K: one rank's per-layer profile while K-1 co-runners run the same benchmark beside it.
bench=("$convoy" bench train --model "$model" --batch "$batch" --image-size 28 --channels 1 --classes 10 --threads 1)
for k in 1 2 4; do
  profile=$out/profile-$k.json
  [[ -s $profile ]] && continue
  pids=()
  for ((c = 1; c < k; c++)); do "${bench[@]}" --steps 100000 --warmup 0 > /dev/null 2>&1 & pids+=($!); done
  ((k > 1)) && sleep 5
  "${bench[@]}" --steps 20 --profile --json > "$out/profile-$k.log"
  ((k > 1)) && kill "${pids[@]}" && wait "${pids[@]}" 2>/dev/null || true
  grep '^{' "$out/profile-$k.log" | tail -1 > "$profile"
done

# The CPU the all-reduce needs per byte: 2 emulated nodes, links uncapped.
uncapped=$out/uncapped-allreduce.jsonl
if [[ ! -s $uncapped ]]; then
  launch/emulate-nodes.sh down >/dev/null
  trap 'launch/emulate-nodes.sh down >/dev/null 2>&1 || true' EXIT
  launch/emulate-nodes.sh up 2 --rate none
  launch/convoy-mpirun --emulated 2 -np 2 "$convoy" bench allreduce --min-bytes 1048576 --max-bytes 67108864 --iters 5 \
    --json | grep '^{' > "$uncapped.part"
  launch/emulate-nodes.sh down
  mv "$uncapped.part" "$uncapped"
fi

# The link is fitted over the message sizes the workload sends (the powers of two around its buckets):
# under tbf a message within the bucket's burst passes at line rate, so no one line fits every size.
read -r fit_min fit_max < <(/usr/bin/python3 - "$out/profile-1.json" <<'PY'
import json, math, sys
sizes = [b["bytes"] for b in json.loads(open(sys.argv[1]).read())["buckets"]]
print(2 ** math.floor(math.log2(min(sizes))), 2 ** math.ceil(math.log2(max(sizes))))
PY
)
IFS=, read -r -a caps <<<"$rates"
for rate in "${caps[@]}"; do
  dir=$out/$rate
  launch/scaling.sh --out "$dir" --on emulated --rate "$rate" --ranks 1,2 --workload train --config "$out/train.yaml" \
    --batch "$batch" --epochs "$epochs"
  cat > "$dir/cluster.yaml" <<EOF
name: emulated nodes at $rate
workers_per_node: 1
intra_node: {latency_us: 0, bandwidth_GBps: 1000, note: "unused: one rank per node"}
inter_node: {fit: n2/allreduce.jsonl, ranks: 2, min_bytes: $fit_min, max_bytes: $fit_max}
workers: [1, 2, 4]
cpu:                                   # every emulated node on this machine's cores
  cores_per_machine: $(nproc)
  compute_threads: 1
  comm_busy: {fit: n2/allreduce.jsonl}
  comm_cpu: {fit: ../uncapped-allreduce.jsonl}
EOF
  sed '/^cpu:/,$d' "$dir/cluster.yaml" > "$dir/cluster-unshared.yaml"
  "$convoy" report "$dir/n1" "$dir/n2" --out "$dir/report" --project "$dir/cluster.yaml" --profile "$out/profile-1.json"
  "$convoy" report "$dir/n2" --out "$dir/report-shared" --project "$dir/cluster.yaml" --profile "$out/profile-2.json" --no-plots
  "$convoy" report "$dir/n2" --out "$dir/report-unshared" --project "$dir/cluster-unshared.yaml" \
    --profile "$out/profile-2.json" --no-plots
done
first=${caps[0]}
over=$out/${first}-4nodes
launch/scaling.sh --out "$over" --on emulated --rate "$first" --ranks 4 --workload train --config "$out/train.yaml" \
  --batch "$batch" --epochs "$epochs"
"$convoy" report "$over/n4" --out "$over/report" --project "$out/$first/cluster.yaml" --profile "$out/profile-1.json" --no-plots
"$convoy" report "$over/n4" --out "$over/report-shared" --project "$out/$first/cluster.yaml" --profile "$out/profile-4.json" --no-plots
"$convoy" report "$over/n4" --out "$over/report-unshared" --project "$out/$first/cluster-unshared.yaml" \
  --profile "$out/profile-4.json" --no-plots

# The table: every run's measured and predicted step, from the reports' JSON.
/usr/bin/python3 - "$out" "$first" "${caps[@]}" <<'EOF'
import json, os, sys
out, first, caps = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = ["| link cap | nodes x ranks | fitted link | measured step ms | predicted step ms | error | "
        "error, profile without co-runners | error, cores' sharing not modelled |", "|---|---|---|---|---|---|---|---|"]
errors = []
def rows_of(report_dir):
    r = json.load(open(os.path.join(report_dir, "report.json")))
    return r["projection"]["inter_node"], {v["ranks"]: v for v in r["validation"]["rows"]}
def add(cap, shared_dir, plain_dir, unshared_dir, ranks):
    link, shared = rows_of(shared_dir)
    v, p, u = shared[ranks], rows_of(plain_dir)[1][ranks], rows_of(unshared_dir)[1][ranks]
    errors.append(abs(v["error"]))
    rows.append(f"| {cap} | {v['nodes']} x 1 | {link['bandwidth_GBps'] * 8:.2f} Gbit/s, {link['latency_us']:.0f} us | "
                f"{v['measured_step_ms']:.1f} | {v['predicted_step_ms']:.1f} | {100 * v['error']:+.1f} % | "
                f"{100 * p['error']:+.1f} % | {100 * u['error']:+.1f} % |")
for cap in caps:
    d = os.path.join(out, cap)
    add(cap, os.path.join(d, "report"), os.path.join(d, "report"), os.path.join(d, "report"), 1)
    add(cap, os.path.join(d, "report-shared"), os.path.join(d, "report"), os.path.join(d, "report-unshared"), 2)
over = os.path.join(out, f"{first}-4nodes")
add(first + " (4 ranks on 2 cores: oversubscribed)", os.path.join(over, "report-shared"), os.path.join(over, "report"),
    os.path.join(over, "report-unshared"), 4)
text = "\n".join(rows) + f"\n\nLargest error: {100 * max(errors):.1f} %\n"
open(os.path.join(out, "validation.md"), "w").write(text)
print(text)
EOF
