#!/usr/bin/env bash
# Chaos run (issue 13): N random kill points (default 20) against one test world, each followed by
# the health and debris checks of test/chaos.test.ts; prints the table and keeps it in
# bench/results/chaos-<seed>.txt. Exits 0 whether every point ended as designed or not (the table
# says); the same file runs 2 points in CI as a test.
#   bash bench/chaos/run.sh [points] [seed]
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/node-env.sh && nnoe_use_node "$PWD"
points="${1:-20}"
seed="${2:-$((RANDOM * 32768 + RANDOM))}"
mkdir -p bench/results
table="bench/results/chaos-${seed}.txt"
: > "$table"
NNOE_CHAOS_SEED="$seed" NNOE_CHAOS_POINTS="$points" NNOE_CHAOS_TABLE="$PWD/$table" \
  npx vitest run --project world test/chaos.test.ts > "bench/results/chaos-${seed}.log" 2>&1
status=$?
echo "seed | point | runbook | killed worker | kill at | down | outcome | new debris | run end after kill"
cat "$table"
designed=$(grep -c -E '\| (completed|failed: .*(rolled back to the old data dirs|nothing was changed).*) \| 0 \|' "$table")
echo "$designed of $(wc -l < "$table") points ended as designed with 0 debris (vitest exit $status; log bench/results/chaos-${seed}.log)"
exit 0
