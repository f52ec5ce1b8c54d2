#!/usr/bin/env bash
# The whole test run, from a fresh clone: install what is missing, type-check, lint, then vitest
# (which starts its own etcd cluster, S3, Temporal dev server and worker, and stops them after).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-env.sh && nnoe_use_node "$PWD" # Node >= 22 (24 LTS from .tools/node when the machine's is older)
bash scripts/install-deps.sh
echo "== type-check"
npx tsc -p tsconfig.test.json
echo "== lint"
npx eslint .
echo "== tests"
npx vitest run "$@"
