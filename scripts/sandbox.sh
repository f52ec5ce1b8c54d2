#!/usr/bin/env bash
# The main job: the local world (3-member etcd with mTLS, S3, Temporal dev server + UI), the
# workers, one etcd backup; then it keeps running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run --silent build
exec node dist/sandbox/main.js "$@"
