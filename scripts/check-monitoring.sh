#!/usr/bin/env bash
# Checks monitoring/ without running Prometheus or Grafana:
#  - promtool check config and check rules; promtool test rules over series that fire each alert and
#    series that must not (and every alert has both kinds of case);
#  - every metric named by the alert rules and the Grafana dashboard is one the code exports: the names are
#    read from the code (`name: '...'` in apps/*/src/metrics.ts and packages/core/src), so renaming a
#    metric fails here until the rules and the dashboard follow;
#  - every dashboard query parses as PromQL (promtool, through a throw-away rule file), every panel uses
#    the provisioned data source;
#  - docker-compose.yml with the monitoring profile is valid, mounts these files, and Prometheus scrapes
#    the services and ports the compose file defines.
# promtool comes from Debian's prometheus package, installed when missing (root and apt needed).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "check-monitoring: needs ${need[*]} (Debian packages): apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "==> installing ${need[*]} (Debian packages)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> promtool $(promtool --version 2>&1 | head -1 | awk '{print $3}')"
promtool check config monitoring/prometheus/prometheus.yml
promtool test rules monitoring/prometheus/tests/*.yml

# Metric names the code exports.
grep -hoE "name: '[a-z_:][a-z0-9_:]*'" apps/*/src/metrics.ts $(ls packages/core/src/*.ts | grep -v '\.test\.ts$') |
  grep -E "name: '[a-z_:]+_[a-z0-9_:]+'" |
  sed -E "s/name: '(.*)'/\1/" | sort -u >"$work/exported.txt"
[ -s "$work/exported.txt" ] || { echo "check-monitoring: found no metric name in the code" >&2; exit 1; }

/usr/bin/python3 - "$work" <<'PY'
import glob, json, re, sys, yaml
work = sys.argv[1]
problems = []
exported = set(open(f"{work}/exported.txt").read().split())
# Histograms export _bucket, _sum and _count series; Prometheus adds up and scrape_* itself.
series = exported | {m + s for m in exported for s in ("_bucket", "_sum", "_count")}
builtin = {"up"}

# --- rules and their tests -------------------------------------------------------------------------------
alerts, rule_exprs = [], []
for f in sorted(glob.glob("monitoring/prometheus/rules/*.yml")):
    for g in yaml.safe_load(open(f))["groups"]:
        for r in g["rules"]:
            rule_exprs.append((f"{f}: {r.get('alert') or r.get('record')}", r["expr"]))
            if "alert" in r:
                alerts.append(r["alert"])
fires, quiet = set(), set()
for f in sorted(glob.glob("monitoring/prometheus/tests/*.yml")):
    for t in yaml.safe_load(open(f))["tests"]:
        for a in t.get("alert_rule_test", []):
            (fires if a.get("exp_alerts") else quiet).add(a["alertname"])
for a in alerts:
    if a not in fires: problems.append(f"alert {a} has no test case where it fires")
    if a not in quiet: problems.append(f"alert {a} has no test case where it stays quiet")

# --- dashboard -------------------------------------------------------------------------------------------
dash_exprs = []
datasources = yaml.safe_load(open("monitoring/grafana/provisioning/datasources/prometheus.yml"))["datasources"]
ds_uids = {d["uid"] for d in datasources}
for f in sorted(glob.glob("monitoring/grafana/dashboards/*.json")):
    d = json.load(open(f))
    if not d.get("uid") or not d.get("title"): problems.append(f"{f}: no uid or title")
    ids = [p["id"] for p in d["panels"]]
    if len(ids) != len(set(ids)): problems.append(f"{f}: panel ids repeat")
    for p in d["panels"]:
        if p["type"] == "row": continue
        if (p.get("datasource") or {}).get("uid") not in ds_uids:
            problems.append(f"{f}: panel {p['title']!r} does not use a provisioned data source {sorted(ds_uids)}")
        if not p.get("targets"): problems.append(f"{f}: panel {p['title']!r} has no query")
        for t in p.get("targets", []):
            if not t.get("expr", "").strip(): problems.append(f"{f}: panel {p['title']!r} has an empty query")
            dash_exprs.append((f"{f}: {p['title']}", t["expr"]))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"label_values\((\w+),", q or "")
        if m: dash_exprs.append((f"{f}: variable {v['name']}", m.group(1)))

# --- names used against names exported ---------------------------------------------------------------------
used = {}
for where, expr in rule_exprs + dash_exprs:
    clean = re.sub(r'"[^"]*"', '""', expr)            # label values are not metric names
    clean = re.sub(r"\bby \([^)]*\)|\bon \([^)]*\)|\bwithout \([^)]*\)", "", clean)
    for name in re.findall(r"\b(otp_[a-z0-9_]+|up)\b", clean):
        used.setdefault(name, where)
for name, where in sorted(used.items()):
    if name not in series and name not in builtin:
        problems.append(f"{where}: uses {name}, which the code does not export")
shown = {n for n in used}
missing = sorted(m for m in exported if not ({m} | {m + s for s in ("_bucket", "_sum", "_count")}) & shown)

# Every dashboard query must parse: promtool checks them as recording rules of a throw-away file.
rules = [{"record": f"dashboard:q{i}",
          "expr": e.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$provider", ".*").replace("$cc", ".*")}
         for i, (_, e) in enumerate(dash_exprs)]
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(f"{work}/dashboard-queries.yml", "w"))

if problems:
    print("check-monitoring:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(alerts)} alerts, each with a firing and a quiet test case")
print(f"ok: rules and dashboard use {len(used)} metric names, all exported by the code ({len(exported)} exported)")
if missing: print(f"note: exported but on no panel: {', '.join(missing)}")
PY
promtool check rules "$work/dashboard-queries.yml" >/dev/null ||
  { promtool check rules "$work/dashboard-queries.yml" >&2; echo "check-monitoring: a dashboard query does not parse" >&2; exit 1; }
echo "ok: every dashboard query parses as PromQL"

# --- docker-compose.yml, monitoring profile ---------------------------------------------------------------
secrets=(OTP_SECRET=check-monitoring-0123456789abcdefghijklmnopqrstuvwxyz API_KEYS=check:check-monitoring-key-0123456789
  OTP_ALLOWED_COUNTRIES=FR DASHBOARD_USER=admin DASHBOARD_PASSWORD=check-monitoring-password)
# As a user has it: the compose file beside a .env copied from .env.example, and monitoring/.
mkdir -p "$work/project"
cp docker-compose.yml "$work/project/" && cp .env.example "$work/project/.env" && ln -s "$(pwd)/monitoring" "$work/project/monitoring"
(cd "$work/project" && env -u OTP_SECRET -u API_KEYS -u OTP_ALLOWED_COUNTRIES -u DASHBOARD_USER -u DASHBOARD_PASSWORD "${secrets[@]}" \
  docker-compose -f docker-compose.yml --profile monitoring config >"$work/resolved.yml")
/usr/bin/python3 - "$work/resolved.yml" "$work/project" <<'PY'
import os, sys, yaml
cfg = yaml.safe_load(open(sys.argv[1])); root = sys.argv[2]
services = cfg["services"]; problems = []
for s in ("prometheus", "grafana"):
    if s not in services: problems.append(f"no {s} service under the monitoring profile")
    elif services[s].get("profiles") != ["monitoring"]: problems.append(f"{s} is not only under the monitoring profile")
mounts = {}
for s in ("prometheus", "grafana"):
    for v in services.get(s, {}).get("volumes", []):
        src = v["source"] if isinstance(v, dict) else v.split(":")[0]
        tgt = v["target"] if isinstance(v, dict) else v.split(":")[1]
        if (v.get("type") == "bind") if isinstance(v, dict) else src.startswith(("/", ".")):
            if not os.path.exists(src): problems.append(f"{s} mounts {src}, which does not exist")
            mounts[tgt] = src
for tgt, want in {"/etc/prometheus": "monitoring/prometheus", "/etc/grafana/provisioning": "monitoring/grafana/provisioning",
                  "/var/lib/grafana/dashboards": "monitoring/grafana/dashboards"}.items():
    if not (mounts.get(tgt) or "").endswith("/" + want): problems.append(f"{tgt} is {mounts.get(tgt)}, not {want}")
# Prometheus scrapes each app on the port the compose file gives it inside the network.
prom = yaml.safe_load(open(os.path.join(root, "monitoring/prometheus/prometheus.yml")))
targets = set()
for job in prom["scrape_configs"]:
    for sc in job.get("static_configs", []): targets.update(sc["targets"])
    for sd in job.get("dns_sd_configs", []): targets.update(f"{n}:{sd['port']}" for n in sd["names"])
ports = {"api": "API_PORT", "webhooks": "WEBHOOKS_PORT", "dashboard": "DASHBOARD_PORT", "worker": "WORKER_METRICS_PORT"}
for s, var in ports.items():
    port = (services[s].get("environment") or {}).get(var)
    if f"{s}:{port}" not in targets: problems.append(f"Prometheus does not scrape {s}:{port} ({var} in docker-compose.yml)")
if problems:
    print("check-monitoring: " + "; ".join(problems), file=sys.stderr); sys.exit(1)
print("ok: docker-compose.yml --profile monitoring: prometheus and grafana, their files mounted, every app scraped")
PY
echo "monitoring ok"
