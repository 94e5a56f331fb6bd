#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs pnpm and redis-server when missing, builds, checks, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure.sh
ensure_pnpm
ensure_redis_server
bash scripts/ensure-browser.sh      # Debian's chromium for the browser test (no browser download)
install_and_build
echo "==> validating docker-compose.yml"
bash scripts/check-compose.sh
echo "==> lint and typecheck"
pnpm -s exec biome check .
pnpm -s typecheck
echo "==> tests"
pnpm -s exec vitest run "$@"
