#!/usr/bin/env bash
# Bad input to the scaling tools is refused with a sentence that says what, and nothing is left behind:
# emulate-nodes.sh (a node count out of range, latency on a kernel without netem), convoy-mpirun
# --emulated with no nodes up, scaling.sh options, and convoy report with nothing to report.
source "$(dirname "$0")/common.sh"
export CONVOY_EMULATED_DIR="$WORK/emulated"
# expect_refusal "TEXT" COMMAND...: the command fails and its output contains TEXT.
expect_refusal() {
  local want=$1; shift
  if "$@" > "$WORK/out" 2>&1; then cat "$WORK/out"; fail "accepted: $*"; fi
  grep -qF -- "$want" "$WORK/out" || { cat "$WORK/out"; fail "'$*' did not say '$want'"; }
}
EMU=$SRC/launch/emulate-nodes.sh
if [[ $(id -u) -eq 0 ]]; then
  expect_refusal "up takes a node count from 1 to 200, got '0'" "$EMU" up 0
  expect_refusal "unknown option '--speed'" "$EMU" up 2 --speed 1gbit
  modprobe sch_netem 2>/dev/null || true
  if [[ ! -d /sys/module/sch_netem ]]; then
    expect_refusal "latency cannot be emulated here" "$EMU" up 2 --delay 5
  fi
  [[ ! -e $CONVOY_EMULATED_DIR ]] || fail "a refused 'up' left $CONVOY_EMULATED_DIR"
  ! ip link show br-convoy >/dev/null 2>&1 || fail "a refused 'up' left the bridge"
fi
expect_refusal "no emulated nodes are up" "$SRC/launch/convoy-mpirun" --emulated 2 -np 2 true
expect_refusal "--scaling is weak or strong, not 'sideways'" "$SRC/launch/scaling.sh" --out "$WORK/s" --scaling sideways
expect_refusal "the global batch 64 does not divide by 3 ranks" \
  "$SRC/launch/scaling.sh" --out "$WORK/s" --scaling strong --batch 64 --ranks 1,3
expect_refusal "--workload train needs --config FILE" "$SRC/launch/scaling.sh" --out "$WORK/s" --workload train
expect_refusal "convoy report needs run folders" "$CONVOY" report --out "$WORK/r"
echo "scaling tools: bad input refused"
