#!/usr/bin/env bash
# Validates docker-compose.yml without a Docker engine: `docker-compose config` only parses, interpolates
# and checks the file. Uses Debian's docker-compose package, installed when missing. Checks that:
#  - the file is valid with .env.example as .env (the required secrets supplied as a user would);
#  - it refuses to run without OTP_SECRET, naming it;
#  - its shape holds: every service, worker scalable, Redis durable and non-evicting, simulator in `dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "==> installing docker-compose (Debian package) to validate docker-compose.yml"
  sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "check-compose: docker-compose is missing and installing it needs root: apt-get install -y docker-compose" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "check-compose: docker-compose is missing and there is no apt-get to install it" >&2
    exit 1
  fi
  if ! { $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq docker-compose >/dev/null; }; then
    echo "check-compose: could not install docker-compose (apt-get install -y docker-compose failed)" >&2
    exit 1
  fi
fi

# A copy of the project as a user has it after `cp .env.example .env`, so the repository's own .env
# (if any) plays no part. `config` needs the build context to exist, not to be built.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp docker-compose.yml Dockerfile .dockerignore "$work/"
cp .env.example "$work/.env"
cd "$work"
compose() { env -u OTP_SECRET -u API_KEYS -u OTP_ALLOWED_COUNTRIES -u DASHBOARD_USER -u DASHBOARD_PASSWORD -u REDIS_URL "$@"; }
secrets=(OTP_SECRET=check-compose-0123456789abcdefghijklmnopqrstuvwxyz API_KEYS=check:check-compose-key-0123456789
  OTP_ALLOWED_COUNTRIES=FR DASHBOARD_USER=admin DASHBOARD_PASSWORD=check-compose-password)

compose "${secrets[@]}" docker-compose -f docker-compose.yml config -q
echo "ok: docker-compose.yml is valid"

if out=$(compose API_KEYS=x:0123456789abcdef0 OTP_ALLOWED_COUNTRIES=FR DASHBOARD_USER=a DASHBOARD_PASSWORD=b docker-compose -f docker-compose.yml config -q 2>&1); then
  echo "check-compose: docker-compose.yml accepted a missing OTP_SECRET" >&2
  exit 1
fi
if ! grep -q OTP_SECRET <<<"$out"; then
  echo "check-compose: without OTP_SECRET docker-compose failed without naming it:" >&2
  echo "$out" >&2
  exit 1
fi
echo "ok: without OTP_SECRET it refuses:$(grep OTP_SECRET <<<"$out" | head -1 | sed -E 's/.*(in service "[a-z]+":)/ \1/')"
# the API refuses to start in production without OTP_ALLOWED_COUNTRIES: compose says so before starting anything
if out=$(compose OTP_SECRET=check-compose-0123456789abcdefghijklmnopqrstuvwxyz API_KEYS=x:0123456789abcdef0 \
  DASHBOARD_USER=a DASHBOARD_PASSWORD=b docker-compose -f docker-compose.yml config -q 2>&1); then
  echo "check-compose: docker-compose.yml accepted a missing OTP_ALLOWED_COUNTRIES" >&2
  exit 1
fi
if ! grep -q OTP_ALLOWED_COUNTRIES <<<"$out"; then
  echo "check-compose: without OTP_ALLOWED_COUNTRIES docker-compose failed without naming it:" >&2
  echo "$out" >&2
  exit 1
fi
echo "ok: without OTP_ALLOWED_COUNTRIES it refuses"

# Debian's docker-compose runs on Debian's python3, which has PyYAML.
compose "${secrets[@]}" docker-compose -f docker-compose.yml --profile dev config >resolved.yml
/usr/bin/python3 - resolved.yml docker-compose.yml <<'PY'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
# The resolved form inlines env_file into environment: that part is checked on the file as written.
raw = yaml.safe_load(open(sys.argv[2]))["services"]
services = cfg["services"]
problems = []
def need(ok, what):
    if not ok:
        problems.append(what)

need(set(services) == {"redis", "api", "worker", "webhooks", "dashboard", "simulator", "prometheus", "grafana"},
     f"services are {sorted(services)}")
for s in ("prometheus", "grafana"):
    need(services.get(s, {}).get("profiles") == ["monitoring"], f"{s} is not under the monitoring profile")
redis = services.get("redis", {})
cmd = " ".join(redis.get("command") or [])
need("--appendonly yes" in cmd and "--maxmemory-policy noeviction" in cmd, f"redis command is {cmd!r}")
need(str(redis.get("image", "")).startswith("redis:7"), "redis image is not redis:7")
need("healthcheck" in redis, "redis has no health check")
need(any(str(v).startswith("redis-data:") or (isinstance(v, dict) and v.get("source") == "redis-data")
         for v in redis.get("volumes", [])), "redis data is not on the named volume redis-data")
need("redis-data" in (cfg.get("volumes") or {}), "no named volume redis-data")
worker = services.get("worker", {})
need("container_name" not in worker, "worker has a container_name: --scale worker=N would collide")
need(not worker.get("ports"), "worker publishes a host port: --scale worker=N would collide")
apps = {"api": "apps/api/dist/main.js", "worker": "apps/worker/dist/main.js", "webhooks": "apps/webhooks/dist/main.js",
        "dashboard": "apps/dashboard/dist/main.js", "simulator": "apps/simulator/dist/main.js"}
images = set()
for name, entry in apps.items():
    s = services.get(name, {})
    images.add(s.get("image"))
    need(s.get("command") == ["node", entry], f"{name} does not run node {entry}")
    env = s.get("environment") or {}
    need(env.get("HOST") == "0.0.0.0", f"{name} does not bind 0.0.0.0")
    need(raw.get(name, {}).get("env_file") == ".env", f"{name} does not read .env (env_file)")
    if name != "simulator":
        need("redis" in (s.get("depends_on") or {}), f"{name} does not wait for redis")
        need(env.get("REDIS_URL") == "redis://redis:6379", f"{name} REDIS_URL is {env.get('REDIS_URL')}")
need(len(images) == 1, f"apps use several images: {images}")
need(services.get("simulator", {}).get("profiles") == ["dev"], "simulator is not under the dev profile")
# its inbox shows the codes: published on loopback only
need(all(str(p.get("host_ip") if isinstance(p, dict) else p).startswith("127.0.0.1")
         for p in services.get("simulator", {}).get("ports", [])), "the simulator is published beyond loopback")
need(services.get("dashboard", {}).get("environment", {}).get("DASHBOARD_PASSWORD") == "check-compose-password",
     "dashboard does not get DASHBOARD_PASSWORD")
if problems:
    print("check-compose: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("ok: services " + ", ".join(sorted(services)) + "; worker scalable; redis durable and noeviction; simulator in dev;"
      " prometheus and grafana in monitoring")
PY
echo "compose file ok"
