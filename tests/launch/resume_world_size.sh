#!/usr/bin/env bash
# A checkpoint written by 2 ranks resumes on 1 and on 4 ranks (oversubscribed) with the same global
# batch and the same sample order (the sampler's global batches do not depend on the rank count).
# LeNet-5 (no batch norm, no dropout): the 1- and 4-rank continuations end with the 2-rank
# continuation's weights within float tolerance. ResNet-8 (each rank's batch-norm statistics are its
# own): their final top-1 is within 0.5 points of the 2-rank continuation's.
source "$(dirname "$0")/common.sh"
fashion_mnist
cfg=$(small_config)  # LeNet-5, global batch 64, 1 epoch (938 steps)
mpirun_n() { local n=$1; shift; mpirun -np "$n" --oversubscribe --bind-to none "$@"; }
stopped() {  # run, expect exit 75 (stopped after its checkpoint)
  set +e
  "$@" > "$WORK/run.log" 2>&1
  local rc=$?
  set -e
  [[ $rc == 75 ]] || { cat "$WORK/run.log"; fail "'$*' exited $rc, not 75"; }
}
# 2 ranks to step 40, then each world size continues from that checkpoint to step 80.
stopped mpirun_n 2 "$CONVOY" train --config "$cfg" --out "$WORK/base" --stop-at-step 40
for n in 1 2 4; do
  mkdir -p "$WORK/lenet$n/checkpoints" && cp "$WORK"/base/checkpoints/checkpoint-*.h5 "$WORK/lenet$n/checkpoints/"
  stopped mpirun_n $n "$CONVOY" train --config "$cfg" --out "$WORK/lenet$n" --resume auto --stop-at-step 80
  grep -q "resumed from .* (global step 40)" "$WORK/run.log" || { cat "$WORK/run.log"; fail "$n ranks did not resume at step 40"; }
done
/usr/bin/python3 - "$WORK" <<'PY'
import glob, sys, h5py, numpy as np
work = sys.argv[1]
ckpt = {n: h5py.File(sorted(glob.glob(f"{work}/lenet{n}/checkpoints/checkpoint-*.h5"))[-1]) for n in (1, 2, 4)}
start = h5py.File(sorted(glob.glob(f"{work}/base/checkpoints/checkpoint-*.h5"))[-1])
for n in (1, 4):
    assert ckpt[n].attrs["global_step"] == 80, ckpt[n].attrs["global_step"]
    worst = 0.0
    for name in ckpt[2]["params"]:
        ref, x, x0 = ckpt[2]["params"][name][()], ckpt[n]["params"][name][()], start["params"][name][()]
        rel = np.linalg.norm(x - ref) / max(np.linalg.norm(ref), 1e-12)
        moved = np.linalg.norm(ref - x0) / max(np.linalg.norm(ref), 1e-12)
        assert rel < 1e-5, f"{n} ranks, {name}: relative difference {rel:.2e} from the 2-rank continuation"
        assert moved > 1e-3, f"{name} moved only {moved:.2e} in 40 steps"
        worst = max(worst, rel)
    print(f"LeNet-5, 2-rank checkpoint continued on {n} rank(s): worst relative difference {worst:.2e}")
PY

# ResNet-8 with batch norm: 2 ranks to mid-epoch, then 1, 2 and 4 ranks to the end of the epoch.
stopped mpirun_n 2 "$CONVOY" train --config "$cfg" --out "$WORK/rbase" --set model.name=resnet8 --stop-at-step 400
declare -A top1
for n in 1 2 4; do
  mkdir -p "$WORK/resnet$n/checkpoints" && cp "$WORK"/rbase/checkpoints/checkpoint-*.h5 "$WORK/resnet$n/checkpoints/"
  mpirun_n $n "$CONVOY" train --config "$cfg" --out "$WORK/resnet$n" --set model.name=resnet8 --set data.val_split=val \
    --resume auto > "$WORK/run.log" 2>&1 || { cat "$WORK/run.log"; fail "resnet8 on $n ranks failed"; }
  top1[$n]=$(grep -o "test accuracy: top-1 [0-9.]*" "$WORK/run.log" | grep -o "[0-9.]*$")
  echo "ResNet-8, 2-rank checkpoint at step 400 continued on $n rank(s): top-1 ${top1[$n]} %"
done
for n in 1 4; do
  awk -v a="${top1[$n]}" -v b="${top1[2]}" 'BEGIN { d = a - b; exit !(d <= 0.5 && d >= -0.5) }' ||
    fail "ResNet-8 on $n ranks: top-1 ${top1[$n]} % is more than 0.5 points from 2 ranks' ${top1[2]} %"
done
echo "resume on another world size: LeNet-5 weights equal, ResNet-8 top-1 ${top1[1]} / ${top1[2]} / ${top1[4]} % on 1 / 2 / 4 ranks"
