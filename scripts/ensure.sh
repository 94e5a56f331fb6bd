# Sourced by start.sh and test.sh: installs what a fresh machine with only Node lacks.
as_root() {
  if [ "$(id -u)" = "0" ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# pnpm through npm; into npm's global prefix when it is writable (root, nvm, a user prefix), else with sudo
ensure_pnpm() {
  if ! command -v pnpm >/dev/null 2>&1; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "npm is missing (Debian's nodejs package comes without it): apt-get install npm, or Node from nodejs.org" >&2
      return 1
    fi
    echo "==> installing pnpm (npm install -g pnpm@10)"
    if [ -w "$(npm prefix -g)/lib" ] || [ -w "$(npm prefix -g)" ]; then npm install -g pnpm@10 >/dev/null
    else as_root npm install -g pnpm@10 >/dev/null; fi
  fi
}

# Installs redis-server when missing. `ensure_redis_server unless-given` (start.sh): not when REDIS_URL,
# REDIS_CLUSTER_NODES or REDIS_SENTINELS (in the environment or .env) point at a Redis already. The tests always
# need it: their Redis Cluster run starts one from redis-server.
ensure_redis_server() {
  if command -v redis-server >/dev/null 2>&1; then return 0; fi
  if [ "${1:-}" = "unless-given" ]; then
    if [ -n "${REDIS_URL:-}${REDIS_CLUSTER_NODES:-}${REDIS_SENTINELS:-}" ]; then return 0; fi
    if [ -f .env ] && grep -qE '^[[:space:]]*(REDIS_URL|REDIS_CLUSTER_NODES|REDIS_SENTINELS)[[:space:]]*=[[:space:]]*[^[:space:]#]' .env; then
      return 0
    fi
  fi
  echo "==> installing redis-server with the system's package manager"
  if command -v apt-get >/dev/null 2>&1; then
    as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
  elif command -v dnf >/dev/null 2>&1; then as_root dnf install -y redis >/dev/null
  elif command -v apk >/dev/null 2>&1; then as_root apk add --no-cache redis >/dev/null
  elif command -v brew >/dev/null 2>&1; then brew install redis >/dev/null
  else echo "cannot install redis-server: install it, or set REDIS_URL" >&2; return 1; fi
}

install_and_build() {
  echo "==> installing dependencies"
  if [ -n "${CI:-}" ]; then pnpm install --frozen-lockfile --reporter=silent; else pnpm install --frozen-lockfile --reporter=silent || pnpm install --reporter=silent; fi
  echo "==> building"
  pnpm -s build
}
