#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (test/browser*.test.ts) when it is missing.
# playwright-core drives it at /usr/bin/chromium: no browser is downloaded by a test tool.
# Usable alone (bash scripts/ensure-browser.sh) or sourced after scripts/ensure.sh (ensure_browser).
ensure_browser() {
  if [ -x /usr/bin/chromium ]; then return 0; fi
  echo "==> installing chromium (Debian package) for the browser tests"
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "need root to install chromium: apt-get install -y chromium" >&2; return 1; fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install chromium: no apt-get; install Chromium at /usr/bin/chromium" >&2; return 1
  fi
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  /usr/bin/chromium --version
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  ensure_browser
fi
