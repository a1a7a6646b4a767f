#!/usr/bin/env bash
# Data-parallel equivalence: 2 ranks x batch 32 end with the same weights after K steps as 1 rank x
# batch 64, on LeNet-5 (no batch norm), within 1e-5 relative, on the device given as the third
# argument (cpu or cpu-strict). The weights must have moved far more than that in those steps, or the
# agreement would mean nothing.
source "$(dirname "$0")/common.sh"
device=${3:-cpu}
fashion_mnist
cfg=$(small_config)
steps=25
set +e
mpirun -np 2 "$CONVOY" train --config "$cfg" --out "$WORK/two" --stop-at-step $steps --timeline "$WORK/tl" \
  --set train.device="$device" --set comm.verify_every=1 > "$WORK/two.log" 2>&1
two=$?
"$CONVOY" train --config "$cfg" --out "$WORK/one" --stop-at-step $steps --set train.device="$device" > "$WORK/one.log" 2>&1
one=$?
"$CONVOY" train --config "$cfg" --out "$WORK/first" --stop-at-step 1 --set train.device="$device" > "$WORK/first.log" 2>&1
first=$?
set -e
[[ $two == 75 && $one == 75 && $first == 75 ]] || { cat "$WORK/two.log" "$WORK/one.log" "$WORK/first.log"; fail "runs exited $two, $one and $first, not 75 (stopped)"; }
/usr/bin/python3 - "$WORK/one/checkpoints" "$WORK/two/checkpoints" "$WORK/first/checkpoints" <<'PY'
import glob, sys, h5py, numpy as np
a, b, first = (h5py.File(sorted(glob.glob(d + "/checkpoint-*.h5"))[-1]) for d in sys.argv[1:4])
assert a.attrs["global_step"] == b.attrs["global_step"] == 25, (a.attrs["global_step"], b.attrs["global_step"])
assert first.attrs["global_step"] == 1, first.attrs["global_step"]
worst, least_moved = 0.0, float("inf")
for name in a["params"]:
    x, y, x1 = a["params"][name][()], b["params"][name][()], first["params"][name][()]
    rel = np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-12)
    worst = max(worst, rel)
    assert rel < 1e-5, f"{name}: relative difference {rel:.2e}"
    # Between step 1 and step 25 every tensor moves by much more than the agreement's tolerance.
    moved = np.linalg.norm(x - x1) / max(np.linalg.norm(x), 1e-12)
    least_moved = min(least_moved, moved)
    assert moved > 1e-3, f"{name} moved only {moved:.2e} between steps 1 and 25"
    assert np.linalg.norm(a["momentum"][name][()]) > 0, f"{name}: no momentum after 25 steps"
print(f"1 rank x 64 and 2 ranks x 32 agree after 25 steps: worst relative difference {worst:.2e}; "
      f"every tensor moved at least {least_moved:.2e} (relative) since step 1")
PY
# The timelines of that run: Chrome-trace JSON per rank with layers, buckets (with bandwidth), optimizer.
/usr/bin/python3 - "$WORK/tl" <<'PY'
import json, sys
for rank in (0, 1):
    events = json.load(open(f"{sys.argv[1]}.rank{rank}.json"))["traceEvents"]
    cats = {e.get("cat") for e in events if e.get("ph") == "X"}
    assert {"forward", "backward", "communication", "optimizer", "data"} <= cats, cats
    bucket = next(e for e in events if e.get("cat") == "communication")
    assert bucket["args"]["bytes"] > 0 and bucket["args"]["busbw_GBps"] > 0 and bucket["tid"] == 1, bucket
    assert all(e["pid"] == rank for e in events if "pid" in e)
print("timelines: forward, backward, buckets with bytes and bandwidth, optimizer, data waits, on both ranks")
PY
