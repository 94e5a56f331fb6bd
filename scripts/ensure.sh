# Sourced by start.sh and test.sh: installs what a fresh machine with only Node lacks.
as_root() {
  if [ "$(id -u)" = "0" ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# pnpm 10 through npm (pnpm-workspace.yaml's settings, onlyBuiltDependencies among them, are pnpm 10's); into npm's
# global prefix when it is writable (root, nvm, a user prefix), else with sudo. Runs under `set -euo pipefail`:
# every probe that may fail says what it falls back to.
pnpm_major() { pnpm --version 2>/dev/null | cut -d. -f1 || true; }
ensure_pnpm() {
  local major
  major=$(pnpm_major)
  if [ -n "$major" ] && [ "$major" -lt 10 ] 2>/dev/null; then
    echo "==> pnpm $(pnpm --version) is older than 10: installing pnpm 10"
    major=""
  fi
  if [ -z "$major" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "npm is missing (Debian's nodejs package comes without it): apt-get install npm, or Node from nodejs.org" >&2
      return 1
    fi
    echo "==> installing pnpm (npm install -g pnpm@10)"
    if [ -w "$(npm prefix -g)/lib" ] || [ -w "$(npm prefix -g)" ]; then npm install -g pnpm@10 >/dev/null
    else as_root npm install -g pnpm@10 >/dev/null; fi
    hash -r
    major=$(pnpm_major)
    if [ -z "$major" ] || [ "$major" -lt 10 ] 2>/dev/null; then
      echo "pnpm 10 was installed into $(npm prefix -g)/bin, but '$(command -v pnpm || echo pnpm)' comes first on PATH ($(pnpm --version 2>/dev/null || echo 'not found')): put $(npm prefix -g)/bin before it" >&2
      return 1
    fi
  fi
}

# Installs redis-server when missing. `ensure_redis_server unless-given` (start.sh): not when REDIS_URL,
# REDIS_CLUSTER_NODES or REDIS_SENTINELS (in the environment or .env) point at a Redis already. The tests always
# need it: their Redis Cluster run starts one from redis-server.
ensure_redis_server() {
  if [ "${1:-}" = "unless-given" ]; then
    if [ -n "${REDIS_URL:-}${REDIS_CLUSTER_NODES:-}${REDIS_SENTINELS:-}" ]; then return 0; fi
    if [ -f .env ] && grep -qE '^[[:space:]]*(export[[:space:]]+)?(REDIS_URL|REDIS_CLUSTER_NODES|REDIS_SENTINELS)[[:space:]]*=[[:space:]]*[^[:space:]#]' .env; then
      return 0
    fi
  fi
  if command -v redis-server >/dev/null 2>&1; then check_redis_version; return; fi
  echo "==> installing redis-server with the system's package manager"
  if command -v apt-get >/dev/null 2>&1; then
    as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
  elif command -v dnf >/dev/null 2>&1; then as_root dnf install -y redis >/dev/null
  elif command -v apk >/dev/null 2>&1; then as_root apk add --no-cache redis >/dev/null
  elif command -v brew >/dev/null 2>&1; then brew install redis >/dev/null
  else echo "cannot install redis-server: install it, or set REDIS_URL" >&2; return 1; fi
  check_redis_version
}

# The store's scripts need Redis 7 (`#!lua` scripts, the cluster's ADDSLOTSRANGE); Debian 11 and Ubuntu 22.04 ship 6.
check_redis_version() {
  local v
  v=$(redis-server --version 2>/dev/null | sed -n 's/.*v=\([0-9][0-9]*\)\..*/\1/p' || true)
  if [ -z "$v" ] || [ "$v" -lt 7 ]; then
    echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') is too old: Redis 7 or later is needed (Redis's own packages: https://redis.io/docs/latest/operate/oss_and_stack/install/), or set REDIS_URL to one" >&2
    return 1
  fi
}

install_and_build() {
  echo "==> installing dependencies"
  # always as the lockfile says: a plain install would re-resolve and rewrite it without a word
  if ! pnpm install --frozen-lockfile --reporter=silent; then
    echo "pnpm install failed (above: a registry out of reach, or pnpm-lock.yaml not matching package.json, which 'pnpm install' updates)" >&2
    return 1
  fi
  echo "==> building"
  pnpm -s build
}
