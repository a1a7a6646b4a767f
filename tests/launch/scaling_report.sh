#!/usr/bin/env bash
# The scaling driver on this machine (1 and 2 local ranks, bench workload, weak scaling), then
# `convoy report`: report.md has a row per rank count with the commands that produced it, report.json
# the numbers, and every plot exists as PNG and SVG. A run folder already done is kept (resume).
source "$(dirname "$0")/common.sh"
export CONVOY="$CONVOY"
"$SRC/launch/scaling.sh" --out "$WORK/s" --ranks 1,2 --steps 4 --batch 16 --allreduce-max-mb 1 > "$WORK/log" 2>&1 ||
  { cat "$WORK/log"; fail "the scaling driver failed"; }
cat "$WORK/log"
for n in 1 2; do
  for f in run.json bench.json timeline.rank0.json; do [[ -s $WORK/s/n$n/$f ]] || fail "n$n has no $f"; done
done
[[ -s $WORK/s/n2/allreduce.jsonl ]] || fail "no all-reduce measurement beside the 2-rank run"
"$SRC/launch/scaling.sh" --out "$WORK/s" --ranks 1,2 --steps 4 --batch 16 > "$WORK/log2" 2>&1
grep -q "2 ranks: done earlier" "$WORK/log2" || fail "the driver did not keep the finished runs"
"$CONVOY" report "$WORK/s/n1" "$WORK/s/n2" --out "$WORK/report" || fail "convoy report failed"
cat "$WORK/report/report.md"
for f in report.md report.json; do [[ -s $WORK/report/$f ]] || fail "no $f"; done
for p in throughput efficiency breakdown buckets; do
  for ext in png svg; do [[ -s $WORK/report/$p.$ext ]] || fail "no $p.$ext"; done
done
grep -Eq '^\| 1 \| 1 \| local \| 16 \|' "$WORK/report/report.md" || fail "no 1-rank row"
grep -Eq '^\| 2 \| 1 \| local \| 16 \|' "$WORK/report/report.md" || fail "no 2-rank row"
grep -q "bench train --model resnet8 --batch 16" "$WORK/report/report.md" || fail "the commands are not in the report"
! "$CONVOY" report "$WORK/s/n1" "$WORK/nothing" --out "$WORK/r2" 2>/dev/null || fail "a missing run folder was accepted"
echo "scaling driver and report: done"
