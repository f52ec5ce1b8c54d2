#!/usr/bin/env bash
# Builds Shopify's toxiproxy server (the fault proxy of the network-fault tests) from the Go module
# proxy into a cache outside the repository, keyed by version, and links it as .tools/toxiproxy-server:
#   <cache>/toxiproxy/<version>/bin/toxiproxy-server     <cache> = ${XDG_CACHE_HOME:-$HOME/.cache}/nnoe-dr
# About 1-2 minutes on 2 cores the first time; then a no-op.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOXIPROXY_VERSION=v2.5.0
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/nnoe-dr/toxiproxy/$TOXIPROXY_VERSION"
GO_BINARY="${GO_BINARY:-$(command -v go || echo /usr/local/go/bin/go)}"

log() { printf '[install-toxiproxy] %s\n' "$*"; }
fail() { printf '[install-toxiproxy] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ ! -x "$CACHE_DIR/bin/toxiproxy-server" ]]; then
  [[ -x "$GO_BINARY" ]] || fail "go not found (GO_BINARY=$GO_BINARY): toxiproxy is built from the Go module proxy"
  partial="$CACHE_DIR.partial"
  rm -rf "$partial" && mkdir -p "$partial/bin"
  log "building toxiproxy $TOXIPROXY_VERSION from the Go module proxy ..."
  # A throw-away GOPATH-free build: GOBIN names the output; the module cache is the machine's.
  GOBIN="$partial/bin" GOFLAGS=-mod=mod "$GO_BINARY" install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" \
    || fail "go install github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION failed"
  mv "$partial/bin/server" "$partial/bin/toxiproxy-server"
  rm -rf "$CACHE_DIR" && mv "$partial" "$CACHE_DIR"
fi
mkdir -p "$REPO_ROOT/.tools"
ln -sfn "$CACHE_DIR/bin/toxiproxy-server" "$REPO_ROOT/.tools/toxiproxy-server"
log "toxiproxy $TOXIPROXY_VERSION: $REPO_ROOT/.tools/toxiproxy-server"
