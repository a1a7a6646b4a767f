#!/usr/bin/env bash
# The scaling driver: the same workload at 1, 2, 4, ... ranks, each run's output collected under one
# folder for `convoy report DIR/n*`.
#
#   launch/scaling.sh --out runs/scaling [--ranks 1,2,4] [--scaling weak|strong] [--batch B]
#                     [--on local|emulated|slurm] [--rate 1gbit] [--ranks-per-node K]
#                     [--workload bench|train] [--model resnet8] [--image-size 28] [--channels 1]
#                     [--classes 10] [--steps 30] [--config FILE] [--epochs E] [--allreduce-max-mb 64]
#                     [-- more convoy options, e.g. --set comm.algorithm=hierarchical]
#
# Scaling: weak keeps the per-rank batch at B; strong keeps the global batch at B (B / ranks per rank).
# Workloads: bench (default) times `convoy bench train --json --profile --timeline` on synthetic data;
# train runs `convoy train --config FILE` for E epochs (data waits included) with its metrics.jsonl and
# timelines. Beside every multi-rank run, `convoy bench allreduce --json` measures what the links carry.
# Where: local runs on this machine (launch/convoy-mpirun); emulated brings up nodes of
# K ranks each (launch/emulate-nodes.sh, capped at --rate) and takes them down at the end; slurm
# submits one `sbatch --wait` per size (srun --mpi=pmix, K tasks per node) to the allocation Slurm
# gives; on a real cluster `local` also takes a hostfile: CONVOY_MPIRUN_ARGS="--hostfile FILE".
# Each size's folder DIR/nN holds run.json (what ran, with the exact commands), the workload's output
# and its logs. Sizes already done (run.json present) are kept: the driver resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

out="" ranks=1,2,4 scaling=weak batch=64 on=local rate=1gbit per_node=1 workload=bench
model=resnet8 image_size=28 channels=1 classes=10 steps=30 config="" epochs=1 allreduce_mb=64
extra=()
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --scaling) scaling=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --on) on=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --ranks-per-node) per_node=$2; shift 2 ;;
    --workload) workload=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --image-size) image_size=$2; shift 2 ;;
    --channels) channels=$2; shift 2 ;;
    --classes) classes=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --allreduce-max-mb) allreduce_mb=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "scaling: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
die() { echo "scaling: $*" >&2; exit 1; }
[[ -n $out ]] || die "--out DIR is required"
[[ $scaling == weak || $scaling == strong ]] || die "--scaling is weak or strong, not '$scaling'"
[[ $on == local || $on == emulated || $on == slurm ]] || die "--on is local, emulated or slurm, not '$on'"
[[ $workload == bench || $workload == train ]] || die "--workload is bench or train, not '$workload'"
[[ $workload == bench || -f $config ]] || die "--workload train needs --config FILE (got '${config}')"
convoy=${CONVOY:-$src/build/convoy}
[[ -x $convoy ]] || die "no convoy binary at $convoy (tools/setup.sh --target convoy builds it)"
IFS=, read -r -a sizes <<<"$ranks"
for n in "${sizes[@]}"; do
  [[ $n =~ ^[0-9]+$ ]] && ((n >= 1)) || die "--ranks takes positive counts, got '$n'"
  [[ $scaling == weak ]] || ((batch % n == 0)) || die "strong scaling: the global batch $batch does not divide by $n ranks"
  ((n < per_node || n % per_node == 0)) || die "$n ranks do not fill nodes of $per_node ranks"
done
mkdir -p "$out"
isa=$( (grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo || true) | sort -u | tr '\n' ' ' | sed 's/ $//')  # grep finds none on AVX2: not an error
[[ -n $isa ]] || isa="no AVX-512 ($(grep -o -m1 'avx2' /proc/cpuinfo || echo 'no AVX2'))"

if [[ $on == emulated ]]; then
  max=0
  for n in "${sizes[@]}"; do ((n > max)) && max=$n; done
  nodes=$(( (max + per_node - 1) / per_node ))
  launch/emulate-nodes.sh down >/dev/null
  trap 'launch/emulate-nodes.sh down >/dev/null 2>&1 || true' EXIT
  launch/emulate-nodes.sh up "$nodes" --rate "$rate" --slots "$per_node"
fi

# launcher N: the command prefix that starts N ranks.
launcher() {
  local n=$1 nodes=$(( ($1 + per_node - 1) / per_node ))
  case $on in
    local) echo "$src/launch/convoy-mpirun ${CONVOY_MPIRUN_ARGS:-} -np $n" ;;
    emulated) echo "$src/launch/convoy-mpirun --emulated $nodes -np $n" ;;
    slurm) echo "srun --mpi=pmix --kill-on-bad-exit=1" ;;
  esac
}
# run N LOG COMMAND...: one job of N ranks (under Slurm: its own sbatch --wait).
run() {
  local n=$1 log=$2; shift 2
  local nodes=$(( (n + per_node - 1) / per_node ))
  if [[ $on == slurm ]]; then
    sbatch --wait --job-name=convoy-scaling --nodes="$nodes" --ntasks="$n" --ntasks-per-node="$((n < per_node ? n : per_node))" \
      --output="$log" --wrap "export OMP_NUM_THREADS=\${SLURM_CPUS_PER_TASK:-1}; $(launcher "$n") $*" >/dev/null
  else
    # shellcheck disable=SC2046
    $(launcher "$n") "$@" > "$log" 2>&1
  fi
}

# Emulated nodes: the bytes each node has sent over its link so far (the bridge side receives them).
link_counters() {
  [[ $on == emulated ]] || return 0
  local i=1 v=()
  while [[ -e /sys/class/net/cvv${i}b ]]; do v+=("$(cat /sys/class/net/cvv${i}b/statistics/rx_bytes)"); i=$((i + 1)); done
  echo "${v[*]}"
}

for n in "${sizes[@]}"; do
  dir=$out/n$n
  if [[ -f $dir/run.json ]]; then echo "scaling: $n ranks: done earlier ($dir)"; continue; fi
  rm -rf "$dir"
  mkdir -p "$dir"
  per_rank=$batch
  [[ $scaling == strong ]] && per_rank=$((batch / n))
  nodes=$(( n < per_node ? 1 : n / per_node ))
  [[ $on == local ]] && nodes=1
  commands=()
  before=$(link_counters)
  if [[ $workload == bench ]]; then
    cmd=("$convoy" bench train --model "$model" --batch "$per_rank" --image-size "$image_size" --channels "$channels"
         --classes "$classes" --steps "$steps" --json --profile --timeline "$dir/timeline" "${extra[@]}")
    echo "scaling: $n ranks ($nodes node(s), $on, batch $per_rank per rank): bench train"
    run "$n" "$dir/bench.log" "${cmd[@]}" || { tail -20 "$dir/bench.log"; die "$n ranks: bench train failed"; }
    grep '^{' "$dir/bench.log" | tail -1 > "$dir/bench.json"
    [[ -s $dir/bench.json ]] || { tail -20 "$dir/bench.log"; die "$n ranks: bench train printed no JSON"; }
  else
    cmd=("$convoy" train --config "$config" --out "$dir/run" --timeline "$dir/timeline"
         --set train.batch_size=$((per_rank * n)) --set train.epochs="$epochs" "${extra[@]}")
    echo "scaling: $n ranks ($nodes node(s), $on, batch $per_rank per rank): train $epochs epoch(s)"
    run "$n" "$dir/train.log" "${cmd[@]}" || { tail -20 "$dir/train.log"; die "$n ranks: training failed"; }
    cp "$dir/run/metrics.jsonl" "$dir/metrics.jsonl"
  fi
  after=$(link_counters)
  commands+=("$(launcher "$n") ${cmd[*]}")
  if ((n > 1)); then
    acmd=("$convoy" bench allreduce --min-bytes 65536 --max-bytes $((allreduce_mb << 20)) --iters 5 --json)
    run "$n" "$dir/allreduce.log" "${acmd[@]}" || { tail -20 "$dir/allreduce.log"; die "$n ranks: bench allreduce failed"; }
    grep '^{' "$dir/allreduce.log" > "$dir/allreduce.jsonl" || true
    commands+=("$(launcher "$n") ${acmd[*]}")
  fi
  /usr/bin/python3 - "$dir/run.json" "$n" "$nodes" "$per_node" "$scaling" "$workload" "$per_rank" "$on" "$rate" \
      "$isa" "$before" "$after" "${commands[@]}" <<'EOF'
import json, socket, sys, datetime
path, n, nodes, per_node, scaling, workload, per_rank, on, rate, isa, before, after, *commands = sys.argv[1:]
sent = [int(a) - int(b) for a, b in zip(after.split(), before.split())][: int(nodes)] if on == "emulated" else []
json.dump({"ranks": int(n), "nodes": int(nodes), "ranks_per_node": int(per_node), "scaling": scaling,
           "workload": workload, "batch_per_rank": int(per_rank), "global_batch": int(per_rank) * int(n),
           "launcher": on, "link_rate": rate if on == "emulated" else None, "link_bytes_sent": sent,
           "host": socket.gethostname(), "cpu_isa": isa,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "commands": commands}, open(path, "w"), indent=1)
EOF
done
echo "scaling: runs in $out; the report: $convoy report $out/n* --out $out/report"
