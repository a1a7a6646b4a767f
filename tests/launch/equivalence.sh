#!/usr/bin/env bash
# Data-parallel equivalence: 2 ranks x batch 32 end with the same weights after K steps as 1 rank x
# batch 64, on LeNet-5 (no batch norm), within 1e-5 relative.
source "$(dirname "$0")/common.sh"
fashion_mnist
cfg=$(small_config)
steps=25
set +e
mpirun -np 2 "$CONVOY" train --config "$cfg" --out "$WORK/two" --stop-at-step $steps --timeline "$WORK/tl" \
  > "$WORK/two.log" 2>&1
two=$?
"$CONVOY" train --config "$cfg" --out "$WORK/one" --stop-at-step $steps > "$WORK/one.log" 2>&1
one=$?
set -e
[[ $two == 75 && $one == 75 ]] || { cat "$WORK/two.log" "$WORK/one.log"; fail "runs exited $two and $one, not 75 (stopped)"; }
/usr/bin/python3 - "$WORK/one/checkpoints" "$WORK/two/checkpoints" <<'PY'
import glob, sys, h5py, numpy as np
a, b = (h5py.File(sorted(glob.glob(d + "/checkpoint-*.h5"))[-1]) for d in sys.argv[1:3])
assert a.attrs["global_step"] == b.attrs["global_step"] == 25, (a.attrs["global_step"], b.attrs["global_step"])
worst = 0.0
for name in a["params"]:
    x, y = a["params"][name][()], b["params"][name][()]
    rel = np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-12)
    worst = max(worst, rel)
    assert rel < 1e-5, f"{name}: relative difference {rel:.2e}"
moved = np.linalg.norm(a["params"]["fc3.weight"][()] - a["momentum"]["fc3.weight"][()])
print(f"1 rank x 64 and 2 ranks x 32 agree after 25 steps: worst relative difference {worst:.2e}")
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
