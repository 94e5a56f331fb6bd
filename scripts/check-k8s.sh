#!/usr/bin/env bash
# Validates deploy/kubernetes offline (no cluster): Kubernetes schemas, unknown fields and the project's
# rules; see scripts/check-k8s.mjs. The tools (npm packages kubernetes-models, yaml, typescript, at pinned
# versions) are installed into $K8S_TOOLS_DIR (default /tmp/otp-gateway-k8s-tools) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=${K8S_TOOLS_DIR:-/tmp/otp-gateway-k8s-tools}
pins=(kubernetes-models@5.1.0 yaml@2.9.1 typescript@5.9.3)
stamp="$tools/.installed-${pins[*]// /_}"
if [ ! -f "$stamp" ]; then
  echo "==> installing ${pins[*]} into $tools"
  rm -rf "$tools"; mkdir -p "$tools"
  echo '{"private":true,"type":"module"}' >"$tools/package.json"
  (cd "$tools" && npm install --silent --no-fund --no-audit --no-package-lock "${pins[@]}") >/dev/null
  touch "$stamp"
fi
node scripts/check-k8s.mjs "$tools" deploy/kubernetes
echo "kubernetes manifests ok"
