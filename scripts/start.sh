#!/usr/bin/env bash
# Starts the whole gateway on embedded defaults: a local Redis (unless REDIS_URL), the provider simulator
# (unless provider credentials are set), and every process. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure.sh
ensure_pnpm
ensure_redis_server
install_and_build
exec node scripts/stack.mjs
