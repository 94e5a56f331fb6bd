#!/usr/bin/env bash
# The image and the compose stack, really run: builds the image from the project's Dockerfile, brings up
# docker-compose.yml with the dev profile (simulated providers) and, through the published ports, sends an
# OTP, reads its code in the simulator inbox and verifies it; checks /readyz of every service; scales the
# worker to 2; restarts Redis mid-traffic and shows that no accepted OTP is lost (AOF on its volume); checks
# that every process runs as non-root and that the image holds no dev dependency, test or source. Reports the
# image size and the start time, and tears everything down.
#
# Engine: podman (Debian's package) with docker-compose 1.29 talking to podman's Docker-API socket; see
# scripts/ensure-podman.sh for what is made locally on a machine without a registry. On a machine where no
# engine can be had (not root, no apt, podman not working) it says why and exits 0, writing the reason to
# $CONTAINERS_SKIPPED_FILE when set (.ci/run names the skip in its summary: it is not a pass).
#
#   bash scripts/test-containers.sh          # KEEP_STACK=1 leaves the stack up for a look
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
t0=$(date +%s)
. scripts/ensure-podman.sh

skipped() {
  echo "test-containers: SKIPPED, $1"
  if [ -n "${CONTAINERS_SKIPPED_FILE:-}" ]; then echo "$1" >"$CONTAINERS_SKIPPED_FILE"; fi
  exit 0
}
if ! ensure_engine; then skipped "no container engine here: $ENGINE_MISSING"; fi
trap 'stop_engine_service' EXIT
if ensure_base_images; then :; else
  rc=$?
  if [ "$rc" = 2 ]; then skipped "no usable container engine here: $ENGINE_MISSING"; fi
  echo "test-containers: $ENGINE_MISSING" >&2
  exit 1
fi
echo "ok: engine $(podman --version), $(docker-compose --version | cut -d, -f1); base images ready after $(($(date +%s) - t0))s"

# --- the image --------------------------------------------------------------------------------------
prefetch_build_deps "$root" || { echo "test-containers: could not prefetch the build's dependencies" >&2; exit 1; }
tb=$(date +%s)
if ! podman build "${BUILD_MOUNTS[@]}" -t otp-gateway:local -f Dockerfile . >"$CONTAINERS_CACHE/build.log" 2>&1; then
  tail -40 "$CONTAINERS_CACHE/build.log" >&2
  echo "test-containers: podman build failed (log: $CONTAINERS_CACHE/build.log)" >&2
  exit 1
fi
build_s=$(($(date +%s) - tb))
# docker-compose asks the Docker API for otp-gateway:local, which podman reads as docker.io/library/...
podman tag localhost/otp-gateway:local docker.io/library/otp-gateway:local
size=$(podman image inspect localhost/otp-gateway:local --format '{{.Size}}')
echo "ok: image otp-gateway:local built in ${build_s}s, $((size / 1000000)) MB"

# --- what the image holds ---------------------------------------------------------------------------
# Dev dependencies: every devDependency of the workspace that is not also a dependency of some package.
devdeps=$(node -e '
  const fs = require("fs"), path = require("path");
  const files = ["package.json", ...["apps", "packages"].flatMap((d) => fs.readdirSync(d).map((p) => path.join(d, p, "package.json")))].filter(fs.existsSync);
  const prod = new Set(), dev = new Set();
  for (const f of files) { const j = JSON.parse(fs.readFileSync(f, "utf8"));
    Object.keys(j.dependencies ?? {}).forEach((n) => prod.add(n)); Object.keys(j.devDependencies ?? {}).forEach((n) => dev.add(n)); }
  console.log([...dev].filter((n) => !prod.has(n) && !n.startsWith("@otp-gateway/")).join(" "));')
found=$(podman run --rm --entrypoint sh localhost/otp-gateway:local -c '
  cd /app || exit 1
  for d in test bench scripts .ci apps/*/src packages/*/src; do [ -e "$d" ] && echo "source: /app/$d"; done
  find . -path ./node_modules -prune -o \( -name "*.ts" ! -name "*.d.ts" -o -name "*.test.js" -o -name "*.test.*" -o -name "tsconfig*.json" -o -name "vitest.config.*" \) -print | sed "s/^/source or test: /"
  for n in '"$devdeps"' vite esbuild; do
    p=$(echo "$n" | tr / +)
    ls -d node_modules/.pnpm/"$p"@* >/dev/null 2>&1 && echo "dev dependency: $n"
  done
  true')
if [ -n "$found" ]; then
  echo "$found" | head -20 >&2
  echo "test-containers: the image holds what it should not (above)" >&2
  exit 1
fi
echo "ok: the image holds no sources, tests or dev dependencies (checked: $(echo "$devdeps" | wc -w) dev dependencies, vite, esbuild)"

# --- the stack --------------------------------------------------------------------------------------
project=otpgwci
work=$(mktemp -d)
cp docker-compose.yml "$work/"
# Host ports free right now (other test runs on this machine pick ports too).
read -r API_PORT WEBHOOKS_PORT DASHBOARD_PORT SIMULATOR_PORT < <(node -e '
  const net = require("net");
  const one = () => new Promise((r) => { const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });
  Promise.all([one(), one(), one(), one()]).then((p) => console.log(p.join(" ")));')
export API_PORT WEBHOOKS_PORT DASHBOARD_PORT SIMULATOR_PORT API_KEY=containers-test-key-0123456789
token=containers-octopush-token-0123
# The .env of .env.example's dev-profile section: fake providers only, nothing leaves the host.
cat >"$work/.env" <<EOF
OTP_SECRET=containers-test-secret-0123456789abcdefghijkl
API_KEYS=ci:$API_KEY
DASHBOARD_USER=admin
DASHBOARD_PASSWORD=containers-test-password
OTP_RESEND_COOLDOWN_SECONDS=0
OTP_ALLOWED_COUNTRIES=FR,BE
SMS_PROVIDERS=twilio,octopush
TWILIO_ACCOUNT_SID=ACsimulator00000000000000000000000
TWILIO_AUTH_TOKEN=simulator0twilio0auth0token00000
TWILIO_FROM=+15005550006
TWILIO_API_BASE_URL=http://simulator:3003
OCTOPUSH_API_KEY=simulator-octopush-api-key
OCTOPUSH_API_LOGIN=simulator@example.com
OCTOPUSH_API_BASE_URL=http://simulator:3003/v1/public
PUBLIC_WEBHOOK_BASE_URL=http://webhooks:3001
# The images run with NODE_ENV=production, which wants https:// URLs: the simulator and the callbacks app
# are reached over the compose network in plain http.
ALLOW_INSECURE_HTTP=true
OCTOPUSH_WEBHOOK_TOKEN=$token
SIM_OCTOPUSH_CALLBACK_URL=http://webhooks:3001/webhooks/octopush/delivery/$token
SIM_CALLBACK_DELAY_MS=200
# Slow enough that sends queue up: Redis then restarts with jobs still waiting in it.
WORKER_CONCURRENCY=2
SIM_TWILIO_LATENCY_MS=150
EOF
compose() { (cd "$work" && docker-compose -p "$project" --profile dev "$@"); }

# podman 4.3 runs health checks from systemd timers, and there is no systemd here: without this loop no
# container ever turns healthy and `depends_on: condition: service_healthy` waits forever. Docker runs
# them itself.
health_ticker() {
  while true; do
    for c in $(podman ps --filter "label=com.docker.compose.project=$project" --format '{{.Names}}'); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
    sleep 2
  done
}

teardown() {
  local rc=$?
  if [ -n "${ticker_pid:-}" ]; then kill "$ticker_pid" 2>/dev/null || true; wait "$ticker_pid" 2>/dev/null || true; fi
  if [ "$rc" != 0 ]; then
    echo "--- logs (last lines of each service) ---" >&2
    compose logs --tail=15 --no-color >&2 2>&1 || true
  fi
  if [ -z "${KEEP_STACK:-}" ]; then
    timeout 120 bash -c "cd '$work' && docker-compose -p '$project' --profile dev down -v --timeout 10" >/dev/null 2>&1 || true
    rm -rf "$work"
  else
    echo "KEEP_STACK: the stack is still up (cd $work && DOCKER_HOST=$DOCKER_HOST docker-compose -p $project ...)"
  fi
  stop_engine_service
  echo "test-containers: done in $(($(date +%s) - t0))s"
  exit "$rc"
}
trap teardown EXIT
# A previous run that was killed may have left its stack.
compose down -v --timeout 5 >/dev/null 2>&1 || true
health_ticker &
ticker_pid=$!

tu=$(date +%s%3N)
timeout 240 bash -c "cd '$work' && docker-compose -p '$project' --profile dev up -d --no-build" >"$CONTAINERS_CACHE/up.log" 2>&1 ||
  { cat "$CONTAINERS_CACHE/up.log" >&2; echo "test-containers: docker-compose up failed" >&2; exit 1; }
node scripts/containers-smoke.mjs ready
start_ms=$(($(date +%s%3N) - tu))
start_s="$((start_ms / 1000)).$(((start_ms % 1000) / 100))"
echo "ok: start time: docker-compose up to every service ready: ${start_s}s (Redis healthy first, then the apps)"

# The worker publishes no port (so it scales): its /readyz is asked from inside its container.
worker_ready() {
  local c
  for c in $(podman ps --filter "label=com.docker.compose.project=$project" --filter "label=com.docker.compose.service=worker" --format '{{.Names}}'); do
    podman exec "$c" node -e "fetch('http://127.0.0.1:3004/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))" || return 1
    echo "$c"
  done
}
for i in $(seq 1 60); do w=$(worker_ready) && break; sleep 1; done
[ -n "${w:-}" ] || { echo "test-containers: the worker's /readyz never answered" >&2; exit 1; }
echo "ok: worker ready: $w"

node scripts/containers-smoke.mjs otp

# --- scale ------------------------------------------------------------------------------------------
timeout 120 bash -c "cd '$work' && docker-compose -p '$project' --profile dev up -d --no-build --no-recreate --scale worker=2" \
  >>"$CONTAINERS_CACHE/up.log" 2>&1 || { tail -20 "$CONTAINERS_CACHE/up.log" >&2; exit 1; }
for i in $(seq 1 60); do
  w=$(worker_ready) && [ "$(echo "$w" | wc -l)" = 2 ] && break
  w=""; sleep 1
done
[ -n "$w" ] || { echo "test-containers: scaled to 2 workers, but not both are ready" >&2; exit 1; }
echo "ok: worker scaled to 2, both ready: $(echo $w)"

# --- Redis restarted mid-traffic ----------------------------------------------------------------------
RESTART_CMD="cd '$work' && docker-compose -p '$project' restart -t 10 redis" node scripts/containers-smoke.mjs traffic
# (an `a && b` list does not stop a set -e script when a fails: the check must exit itself)
podman exec "${project}_redis_1" sh -c 'ls /data/appendonlydir/*.aof >/dev/null' ||
  { echo "test-containers: Redis has no AOF file on its redis-data volume" >&2; exit 1; }
echo "ok: Redis keeps its AOF on the redis-data volume"

# --- non-root -----------------------------------------------------------------------------------------
users=""
for c in $(podman ps --filter "label=com.docker.compose.project=$project" --format '{{.Names}}'); do
  case "$c" in *_redis_*) continue ;; esac
  u=$(podman top "$c" user,args | tail -n +2)
  users+="$c: $(echo "$u" | awk '{print $1}' | sort -u | tr '\n' ' ')"$'\n'
  if echo "$u" | awk '{print $1}' | grep -qx root; then
    echo "$u" >&2
    echo "test-containers: a process of $c runs as root" >&2
    exit 1
  fi
done
echo "ok: every process of every gateway container runs as a non-root user:"
echo "$users" | sed '/^$/d; s/^/    /'

echo "== summary: image $((size / 1000000)) MB, built in ${build_s}s; stack ready ${start_s}s after docker-compose up"
