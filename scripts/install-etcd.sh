#!/usr/bin/env bash
# Installs the etcd versions the local world can run into a per-version cache outside the
# repository, so a second run (and CI on the same machine) reuses them:
#   <cache>/etcd/<version>/bin/{etcd,etcdctl[,etcdutl]}    <cache> = ${XDG_CACHE_HOME:-$HOME/.cache}/nnoe-dr
#   3.4  links to Debian 12's /usr/bin/etcd and /usr/bin/etcdctl (apt packages installed by
#        install-deps.sh); etcd 3.4 has no etcdutl.
#   3.5  Debian 13 "trixie" etcd-server/etcd-client, fetched with `apt-get download` through a
#        private sources list and apt state dir (the machine's apt sources are never touched) and
#        unpacked with `dpkg-deb -x`; they run on Debian 12 and include etcdutl.
#   3.6  the latest 3.6.x built from the Go module proxy through a throw-away wrapper module
#        (`go install mod@version` refuses etcd's replace directives).
# Usage: scripts/install-etcd.sh [3.4|3.5|3.6]...   (no argument: 3.5, the version NNOE deploys)
# Idempotent: a version whose bin/ is complete (stamp file present) is skipped.
set -euo pipefail

ETCD_CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/nnoe-dr/etcd"
GO_BINARY="${GO_BINARY:-$(command -v go || echo /usr/local/go/bin/go)}"
TRIXIE_MIRROR="http://deb.debian.org/debian"
TRIXIE_KEYRING=/usr/share/keyrings/debian-archive-trixie-stable.gpg
ETCD_36_SERIES='^v3\.6\.[0-9]+$'

log() { printf '[install-etcd] %s\n' "$*"; }
fail() { printf '[install-etcd] ERROR: %s\n' "$*" >&2; exit 1; }

# The stamp names the exact version installed; written last, so a half-made dir is redone.
STAMP=.nnoe-dr-stamp
installed() { [[ -f "$ETCD_CACHE_DIR/$1/$STAMP" ]]; }

# Builds into <version>.partial and renames it into place, so an interrupted run leaves nothing
# that looks installed.
prepare_partial() {
  local partial="$ETCD_CACHE_DIR/$1.partial"
  rm -rf "$partial"
  mkdir -p "$partial/bin"
  printf '%s' "$partial"
}
finish_install() {
  local version="$1" partial="$2" exact="$3"
  "$partial/bin/etcd" --version >/dev/null || fail "etcd $exact in $partial/bin does not run"
  printf '%s\n' "$exact" >"$partial/$STAMP"
  rm -rf "${ETCD_CACHE_DIR:?}/$version"
  mv "$partial" "$ETCD_CACHE_DIR/$version"
  log "etcd $version: $exact in $ETCD_CACHE_DIR/$version/bin"
}

install_etcd_34() {
  local partial binary
  for binary in /usr/bin/etcd /usr/bin/etcdctl; do
    [[ -x "$binary" ]] || fail "$binary is missing: etcd 3.4 comes from Debian 12's etcd-server/etcd-client (run scripts/install-deps.sh as root)"
  done
  partial="$(prepare_partial 3.4)"
  ln -s /usr/bin/etcd "$partial/bin/etcd"
  ln -s /usr/bin/etcdctl "$partial/bin/etcdctl"
  finish_install 3.4 "$partial" "$(/usr/bin/etcd --version | sed -n 's/^etcd Version: //p')"
}

install_etcd_35() {
  local partial state deb exact
  command -v apt-get >/dev/null || fail "apt-get not found: etcd 3.5 is fetched as Debian 13 packages"
  [[ -f "$TRIXIE_KEYRING" ]] || fail "$TRIXIE_KEYRING missing (Debian package debian-archive-keyring); it signs Debian 13's archive"
  partial="$(prepare_partial 3.5)"
  state="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$state'" RETURN
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/parts" "$state/prefs"
  printf 'deb [signed-by=%s] %s trixie main\n' "$TRIXIE_KEYRING" "$TRIXIE_MIRROR" >"$state/sources.list"
  # Every apt path that update/download write or read points into $state; the machine's own
  # sources, pins, package lists and caches stay as they are.
  local apt_options=(
    -o "Dir::Etc::SourceList=$state/sources.list" -o "Dir::Etc::SourceParts=$state/parts"
    -o "Dir::Etc::Preferences=$state/prefs/none" -o "Dir::Etc::PreferencesParts=$state/prefs"
    -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" -o "Dir::State::status=/dev/null"
    -o "APT::Get::List-Cleanup=0" -o "Acquire::Languages=none"
  )
  log "etcd 3.5: apt-get update (Debian 13 trixie, private apt state)"
  apt-get "${apt_options[@]}" update -qq >"$state/apt.log" 2>&1 || { cat "$state/apt.log" >&2; fail "apt-get update for trixie failed"; }
  (cd "$state" && apt-get "${apt_options[@]}" download etcd-server etcd-client >>"$state/apt.log" 2>&1) \
    || { cat "$state/apt.log" >&2; fail "apt-get download etcd-server etcd-client (trixie) failed"; }
  for deb in "$state"/etcd-server_*.deb "$state"/etcd-client_*.deb; do
    [[ -f "$deb" ]] || fail "apt-get download left no $deb"
    dpkg-deb -x "$deb" "$state/root"
  done
  for binary in etcd etcdctl etcdutl; do
    [[ -x "$state/root/usr/bin/$binary" ]] || fail "trixie's etcd packages hold no usr/bin/$binary"
    cp "$state/root/usr/bin/$binary" "$partial/bin/$binary"
  done
  exact="$("$partial/bin/etcd" --version | sed -n 's/^etcd Version: //p')"
  [[ "$exact" == 3.5.* ]] || fail "Debian 13's etcd-server is $exact, not a 3.5.x"
  finish_install 3.5 "$partial" "$exact"
}

install_etcd_36() {
  local partial module version
  [[ -x "$GO_BINARY" ]] || fail "go not found (looked for $GO_BINARY): etcd 3.6 is built from the Go module proxy"
  version="$("$GO_BINARY" list -m -versions go.etcd.io/etcd/server/v3 | tr ' ' '\n' | grep -E "$ETCD_36_SERIES" | sort -V | tail -n 1)"
  [[ -n "$version" ]] || fail "the Go module proxy lists no go.etcd.io/etcd/server/v3 $ETCD_36_SERIES"
  partial="$(prepare_partial 3.6)"
  module="$(mktemp -d)"
  # shellcheck disable=SC2064
  trap "rm -rf '$module'" RETURN
  log "etcd 3.6: building $version from the Go module proxy (a few minutes on 2 cores)"
  # go's chatter goes to a log that is shown only if something fails.
  if ! (
    cd "$module"
    "$GO_BINARY" mod init nnoe-dr/etcd-build >/dev/null 2>&1
    # One version for the three modules: their own replace directives are ignored here, so each
    # must find the others at the same release.
    "$GO_BINARY" get "go.etcd.io/etcd/server/v3@$version" "go.etcd.io/etcd/etcdctl/v3@$version" "go.etcd.io/etcd/etcdutl/v3@$version"
    export CGO_ENABLED=0
    "$GO_BINARY" build -mod=mod -trimpath -ldflags='-s -w' -o "$partial/bin/etcd" go.etcd.io/etcd/server/v3
    "$GO_BINARY" build -mod=mod -trimpath -ldflags='-s -w' -o "$partial/bin/etcdctl" go.etcd.io/etcd/etcdctl/v3
    "$GO_BINARY" build -mod=mod -trimpath -ldflags='-s -w' -o "$partial/bin/etcdutl" go.etcd.io/etcd/etcdutl/v3
  ) >"$module/build.log" 2>&1; then
    tail -n 40 "$module/build.log" >&2
    fail "building etcd $version failed"
  fi
  finish_install 3.6 "$partial" "${version#v}"
}

install_etcd_version() {
  local version="$1"
  if installed "$version"; then
    log "etcd $version: $(cat "$ETCD_CACHE_DIR/$version/$STAMP") in $ETCD_CACHE_DIR/$version/bin"
    return
  fi
  mkdir -p "$ETCD_CACHE_DIR"
  local started=$SECONDS
  case "$version" in
    3.4) install_etcd_34 ;;
    3.5) install_etcd_35 ;;
    3.6) install_etcd_36 ;;
    *) fail "unknown etcd version '$version': expected 3.4, 3.5 or 3.6" ;;
  esac
  log "etcd $version: installed in $((SECONDS - started)) s"
}

if [[ $# -eq 0 ]]; then set -- 3.5; fi
for wanted in "$@"; do install_etcd_version "$wanted"; done
