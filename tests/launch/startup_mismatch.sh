#!/usr/bin/env bash
# Ranks started with different configs stop before step 1, every rank naming the rank that differs.
source "$(dirname "$0")/common.sh"
fashion_mnist
cfg=$(small_config)
set +e
mpirun -np 1 "$CONVOY" train --config "$cfg" --out "$WORK/run" --set train.seed=1 : \
       -np 1 "$CONVOY" train --config "$cfg" --out "$WORK/run" --set train.seed=2 > "$WORK/log" 2>&1
code=$?
set -e
cat "$WORK/log"
[[ $code != 0 ]] || fail "mismatched configs were accepted"
grep -q "startup check failed: rank 1 differ from rank 0 in the config hash" "$WORK/log" || fail "no message naming rank 1"
! grep -q "epoch 1 step" "$WORK/log" || fail "a step was trained"
echo "mismatch detected and named"
