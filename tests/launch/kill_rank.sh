#!/usr/bin/env bash
# SIGKILL one rank mid-epoch: the other exits non-zero within the bound, with a message naming the step,
# the collective and the missing rank. Under convoy-mpirun the launcher's SIGTERM (5 s after the death)
# triggers the diagnosis; without it, comm.timeout_s would.
source "$(dirname "$0")/common.sh"
fashion_mnist
cfg=$(small_config)
timeout_s=8
"$SRC/launch/convoy-mpirun" -np 2 "$CONVOY" train --config "$cfg" --out "$WORK/run" --set train.epochs=50 \
  --set comm.timeout_s=$timeout_s --set log.interval=1 > "$WORK/log" 2>&1 &
launcher=$!
for _ in $(seq 600); do
  [[ -f "$WORK/run/metrics.jsonl" ]] && (( $(grep -c '"type":"step"' "$WORK/run/metrics.jsonl") >= 5 )) && break
  sleep 0.1
done
victim=""
for pid in $(pgrep -f "$CONVOY train"); do
  tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$pid
done
[[ -n "$victim" ]] || { kill $launcher; cat "$WORK/log"; fail "rank 1 not found"; }
killed_at=$(date +%s%N)
kill -9 "$victim"
set +e
wait $launcher
code=$?
set -e
elapsed=$(( ($(date +%s%N) - killed_at) / 1000000000 ))
cat "$WORK/log"
[[ $code != 0 ]] || fail "the job exited 0 after losing a rank"
grep -q "rank 1 never joined it and did not answer" "$WORK/log" || fail "rank 0 did not name the missing rank"
grep -Eq "error: step [0-9]+: (data|control)-plane collective #[0-9]+ '" "$WORK/log" || fail "the message does not name the step and the collective"
(( elapsed < timeout_s + 10 + 15 )) || fail "took $elapsed s to stop"
echo "rank 0 stopped $elapsed s after rank 1 was killed"
