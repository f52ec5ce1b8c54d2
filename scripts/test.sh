#!/usr/bin/env bash
# The whole test run, from a fresh clone: install what is missing, type-check, lint, format check, then vitest
# (which starts its own etcd cluster, S3, Temporal dev server and worker, and stops them after):
# the whole suite on etcd 3.5 (what NNOE deploys), then the etcd-centred files on 3.4 and 3.6.
# With arguments, only `vitest run <arguments>` on NNOE_ETCD_VERSION (default 3.5).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-env.sh && nnoe_use_node "$PWD" # Node >= 22 (24 LTS from .tools/node when the machine's is older)

# The files whose subject is etcd itself: backup, both restore strategies with rollbacks, member
# replacement, PITR, drills, auth-enabled etcd. The rest of the suite does not depend on the etcd version.
ETCD_CENTRED_TESTS=(test/etcd-backup.e2e.test.ts test/etcd-restore.test.ts test/etcd-member-replace.test.ts test/pitr.test.ts test/drill.test.ts test/etcd-auth.test.ts)
OTHER_ETCD_VERSIONS=(3.4 3.6)

NNOE_ETCD_VERSIONS="3.5 ${OTHER_ETCD_VERSIONS[*]}" bash scripts/install-deps.sh
echo "== type-check"
npx tsc -p tsconfig.test.json
echo "== lint"
npx eslint .
echo "== format (prettier --check; \`npm run format\` fixes it)"
npx prettier --check --log-level warn "**/*.{ts,mjs}"

if [[ $# -gt 0 ]]; then
  echo "== tests (etcd ${NNOE_ETCD_VERSION:-3.5})"
  exec npx vitest run "$@"
fi

failed=()
timings=()
reports=()
# Runs one vitest pass on etcd $1, recording its time and whether it failed (later passes still run).
run_on_etcd() {
  local version="$1" label="$2" started=$SECONDS
  local report="test-artifacts/vitest-${label// /-}-etcd-$version.json"
  shift 2
  echo "== tests: $label on etcd $version"
  rm -f "$report"
  reports+=("$report")
  if ! NNOE_ETCD_VERSION="$version" npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"; then
    failed+=("$label on etcd $version")
  fi
  timings+=("$label on etcd $version: $((SECONDS - started)) s")
}
run_on_etcd 3.5 "whole suite"
for version in "${OTHER_ETCD_VERSIONS[@]}"; do
  run_on_etcd "$version" "etcd-centred files" --project world "${ETCD_CENTRED_TESTS[@]}"
done

printf '== %s\n' "${timings[@]}"
node test/support/print-failures.mjs "${reports[@]}" >&2
if [[ ${#failed[@]} -gt 0 ]]; then
  printf '== FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
