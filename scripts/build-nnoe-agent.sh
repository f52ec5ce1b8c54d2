#!/usr/bin/env bash
# Builds the real NNOE agent and its Prometheus exporter from the NNOE source, the component every
# recovery is judged by (tests and `npm start` run it under supervisord).
#
#   NNOE_SRC        the NNOE source (default ../shared/third_party/nnoe beside this repo); read-only:
#                   the build writes only to the cache below
#   NNOE_DR_CACHE   build cache (default ${XDG_CACHE_HOME:-~/.cache}/nnoe-dr)
#
# The binaries land in $NNOE_DR_CACHE/nnoe-agent/<hash of the source and rustc>/ and .tools/nnoe
# points at them; an unchanged source is not built again. First build: about 4-8 minutes on 2 cores.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NNOE_SRC="${NNOE_SRC:-$REPO_ROOT/../shared/third_party/nnoe}"
CACHE="${NNOE_DR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nnoe-dr}"
LINK="$REPO_ROOT/.tools/nnoe"

log() { printf '[build-nnoe-agent] %s\n' "$*"; }
fail() { printf '[build-nnoe-agent] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -f "$NNOE_SRC/Cargo.toml" && -d "$NNOE_SRC/agent" && -d "$NNOE_SRC/management/monitoring/prometheus-exporter" ]] \
  || fail "no NNOE source at NNOE_SRC=$NNOE_SRC (expected Cargo.toml, agent/ and management/monitoring/prometheus-exporter/); set NNOE_SRC to a checkout of the NNOE repository"
NNOE_SRC="$(cd "$NNOE_SRC" && pwd)"
command -v cargo >/dev/null || fail "cargo not found on PATH (Rust stable is needed to build the NNOE agent from $NNOE_SRC)"
command -v protoc >/dev/null || fail "protoc not found (Debian package protobuf-compiler; scripts/install-deps.sh installs it)"

# The rust-toolchain.toml of the source asks for 'stable' plus components; the machine's stable is used as it is.
export RUSTUP_TOOLCHAIN="${RUSTUP_TOOLCHAIN:-stable}"
source_hash="$( (cd "$NNOE_SRC" && find . -type f -not -path './target/*' -print0 | sort -z | xargs -0 sha256sum; rustc --version) | sha256sum | cut -c1-16)"
out="$CACHE/nnoe-agent/$source_hash"

if [[ -x "$out/nnoe-agent" && -x "$out/nnoe-prometheus-exporter" ]]; then
  log "up to date ($out)"
else
  log "building nnoe-agent and nnoe-prometheus-exporter from $NNOE_SRC (first time: about 4-8 minutes)"
  mkdir -p "$CACHE/nnoe-agent"
  build_log="$CACHE/nnoe-agent/build-$source_hash.log"
  started=$SECONDS
  if ! (cd "$NNOE_SRC" && cargo build --release --locked -p nnoe-agent -p nnoe-prometheus-exporter -j "$(nproc)" \
        --target-dir "$CACHE/nnoe-agent/target") >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    fail "cargo build of $NNOE_SRC failed; full log in $build_log"
  fi
  mkdir -p "$out.tmp"
  cp "$CACHE/nnoe-agent/target/release/nnoe-agent" "$CACHE/nnoe-agent/target/release/nnoe-prometheus-exporter" "$out.tmp/"
  rm -rf "$out" && mv "$out.tmp" "$out"
  log "built in $((SECONDS - started)) s ($out)"
fi
mkdir -p "$REPO_ROOT/.tools"
ln -sfn "$out" "$LINK"
