#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs pnpm and redis-server when missing, builds, checks, and runs
# the tests twice: on one Redis, then on a Redis Cluster.
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
. scripts/vitest-rerun.sh
logs=${TEST_LOG_DIR:-/tmp/otp-gateway-test-logs}
results=()
status=0
echo "==> tests on one Redis"
vitest_run "one Redis" "$logs/vitest-single.log" pnpm -s exec vitest run "$@" || status=1
results+=("$VITEST_RESULT")
# The same suite on a 3-master Redis Cluster that the test setup starts from redis-server (each file on its own
# key prefix, the send queue in 3 shards): every script must stay in one slot, every master must get work.
echo "==> tests on a 3-master Redis Cluster"
OTP_TEST_REDIS=cluster vitest_run "3-master Redis Cluster" "$logs/vitest-cluster.log" pnpm -s exec vitest run "$@" || status=1
results+=("$VITEST_RESULT")
echo "== tests"
printf '   %s\n' "${results[@]}"
exit "$status"
