#!/usr/bin/env bash
# The main job: the local world (3-member etcd with mTLS, S3, Temporal dev server + UI), the
# agents, Nebula, encryption, two management workers and the node workers, the schedules, one full
# backup set and `status`; then it keeps running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node-env.sh && nnoe_use_node "$PWD" # Node >= 22 (24 LTS from .tools/node when the machine's is older)
bash scripts/install-deps.sh
npm run --silent build
# The sandbox is dev tooling, run from source (not in dist/); the workers and the CLI it starts are the build.
exec node --import tsx src/sandbox/main.ts "$@"
