#!/usr/bin/env bash
# Emulated nodes come up, train and go down: 2 network-namespace nodes x 1 rank under a 1 Gbit/s cap
# (launch/emulate-nodes.sh, launch/convoy-mpirun --emulated). The gradients' all-reduce must cross the
# emulated link: each node sends at least one gradient's bytes per step. Afterwards nothing is left.
# Skips (77) where network namespaces cannot be made (not root, no iproute2, no netns support).
source "$(dirname "$0")/common.sh"
EMU="$SRC/launch/emulate-nodes.sh"
export CONVOY_EMULATED_DIR="$WORK/emulated"
if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null || ! ip netns add cvprobe$$ 2>/dev/null; then
  echo "SKIP: network namespaces cannot be made here (needs root and iproute2)"
  exit 77
fi
ip netns del cvprobe$$
trap '"$EMU" down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
"$EMU" down > /dev/null  # leftovers of an earlier, killed run
"$EMU" up 2 --rate 1gbit
fashion_mnist
cfg=$(small_config)
"$SRC/launch/convoy-mpirun" --emulated 2 -np 2 "$CONVOY" train --config "$cfg" --out "$WORK/run" > "$WORK/log" 2>&1 ||
  { cat "$WORK/log"; fail "training on 2 emulated nodes failed"; }
cat "$WORK/log"
grep -q "on 2 x cpu" "$WORK/log" || fail "the run did not have 2 ranks"
params=$(grep -oE "[0-9]+ parameters" "$WORK/log" | head -1 | cut -d' ' -f1)
steps=$(grep -oE "[0-9]+ steps per epoch" "$WORK/log" | head -1 | cut -d' ' -f1)
"$EMU" status
for i in 1 2; do
  sent=$(cat /sys/class/net/cvv${i}b/statistics/rx_bytes)  # the bridge side receives what node i sends
  need=$(( steps * params * 4 ))
  (( sent >= need )) || fail "node $i sent $sent bytes over its emulated link, less than $steps steps x $params f32 gradients ($need)"
  echo "node $i sent $sent bytes (>= $need: $steps steps x $params f32 gradients)"
done
"$EMU" down
[[ -z $(ip netns list | grep -E '^cvnode[0-9]+' || true) ]] || fail "namespaces left after down"
! ip link show br-convoy >/dev/null 2>&1 || fail "the bridge is left after down"
echo "emulated nodes: up, trained over the capped link, down"
