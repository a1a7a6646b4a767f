#!/usr/bin/env bash
# Emulated nodes come up, train and go down, through the scaling driver: 2 network-namespace nodes x 1
# rank under a 1 Gbit/s cap (launch/scaling.sh --on emulated, which runs launch/emulate-nodes.sh and
# launch/convoy-mpirun --emulated), then `convoy report`, whose inter-node traffic must show each node
# sending at least one gradient's bytes per step over its capped link. Afterwards nothing is left.
# Skips (77) where network namespaces cannot be made (not root, no iproute2, no netns support).
source "$(dirname "$0")/common.sh"
export CONVOY_EMULATED_DIR="$WORK/emulated" CONVOY="$CONVOY"
if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null || ! ip netns add cvprobe$$ 2>/dev/null; then
  echo "SKIP: network namespaces cannot be made here (needs root and iproute2)"
  exit 77
fi
ip netns del cvprobe$$
trap '"$SRC/launch/emulate-nodes.sh" down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
fashion_mnist
cfg=$(small_config)
"$SRC/launch/scaling.sh" --out "$WORK/scaling" --on emulated --rate 1gbit --ranks 2 --workload train \
  --config "$cfg" --batch 32 --allreduce-max-mb 4 || fail "the scaling driver failed on 2 emulated nodes"
log=$WORK/scaling/n2/train.log
grep -q "on 2 x cpu" "$log" || fail "the run did not have 2 ranks"
[[ -z $(ip netns list | grep -E '^cvnode[0-9]+' || true) ]] || fail "namespaces left after the driver"
! ip link show br-convoy >/dev/null 2>&1 || fail "the bridge is left after the driver"

"$CONVOY" report "$WORK/scaling/n2" --out "$WORK/report" || fail "convoy report failed"
cat "$WORK/report/report.md"
for f in report.md report.json throughput.png throughput.svg breakdown.png buckets.png; do
  [[ -s $WORK/report/$f ]] || fail "the report has no $f"
done
grep -q "Inter-node traffic" "$WORK/report/report.md" || fail "the report does not show the inter-node traffic"
params=$(grep -oE "[0-9]+ parameters" "$log" | head -1 | cut -d' ' -f1)
steps=$(grep -oE "[0-9]+ steps per epoch" "$log" | head -1 | cut -d' ' -f1)
/usr/bin/python3 - "$WORK/report/report.json" "$params" "$steps" <<'PY' || fail "the inter-node traffic is too small"
import json, sys
report, params, steps = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
sent = report["runs"][0]["link_bytes_sent"]
need = steps * params * 4
print(f"bytes sent per node over the emulated link: {sent} (>= {need}: {steps} steps x {params} f32 gradients)")
sys.exit(0 if len(sent) == 2 and all(s >= need for s in sent) else 1)
PY
echo "emulated nodes: up, trained over the capped link, reported, down"
