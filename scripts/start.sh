#!/usr/bin/env bash
# Starts the whole gateway on embedded defaults: a local Redis (unless REDIS_URL, REDIS_CLUSTER_NODES or
# REDIS_SENTINELS is set), the provider simulator (unless provider credentials are set), and every process.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure.sh
ensure_pnpm
ensure_redis_server unless-given
install_and_build
exec node scripts/stack.mjs
