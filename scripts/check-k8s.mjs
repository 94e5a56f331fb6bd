// Checks deploy/kubernetes without a cluster (run by scripts/check-k8s.sh, which installs the tools):
//  1. schema: each object against the Kubernetes OpenAPI schema of its kind, with the validators that the npm
//     package kubernetes-models ships (types, required fields, enums, formats);
//  2. unknown fields: those validators let unknown fields through, so each object is also type-checked by tsc
//     against kubernetes-models' TypeScript types, where a misspelt field is an excess-property error;
//  3. the project's own rules: probes on /healthz and /readyz on the port the app listens on, resources,
//     non-root, secrets only from the Secret, worker grace >= its drain, selectors that match, variables
//     the gateway reads.
// Usage: node scripts/check-k8s.mjs <tools dir> [manifests dir]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [toolsDir, dirArg = 'deploy/kubernetes'] = process.argv.slice(2);
const dir = resolve(dirArg);
const tools = createRequire(join(resolve(toolsDir), 'package.json'));
const YAML = tools('yaml');
const problems = [];
const fail = (where, msg) => problems.push(`${where}: ${msg}`);

// --- read ------------------------------------------------------------------------------------------------
const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f));
const objects = [];
for (const f of files) {
  for (const doc of YAML.parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
    if (doc.errors.length) fail(f, doc.errors.map((e) => e.message).join('; '));
    const o = doc.toJS();
    if (o) objects.push({ file: f, o, where: `${f} ${o.kind}/${o.metadata?.name ?? '?'}` });
  }
}
const kustomization = objects.find((x) => x.o.kind === 'Kustomization');
const resources = objects.filter((x) => x.o.kind !== 'Kustomization');

/** kubernetes-models/<group>/<version>/<Kind>: apps/v1 -> apps/v1, v1 -> v1. */
const modulePath = (o) => `kubernetes-models/${o.apiVersion}/${o.kind}`;

// --- 1. schema -------------------------------------------------------------------------------------------
for (const { o, where } of resources) {
  let Model;
  try {
    // The package is ESM-only (no `require` export): its files are imported by path.
    const file = join(resolve(toolsDir), 'node_modules', `${modulePath(o)}.js`);
    const mod = await import(pathToFileURL(file).href);
    Model = mod[o.kind];
  } catch {
    fail(where, `no schema for ${o.apiVersion} ${o.kind}`);
    continue;
  }
  try {
    new Model(o).validate();
  } catch (e) {
    fail(where, `schema: ${e.message}`);
  }
}

// --- 2. unknown fields, by tsc ---------------------------------------------------------------------------
const tsDir = join(resolve(toolsDir), 'typecheck');
rmSync(tsDir, { recursive: true, force: true });
mkdirSync(tsDir, { recursive: true });
const lines = [];
resources.forEach(({ o, where }, i) => {
  lines.push(`import type { I${o.kind} as T${i} } from '${modulePath(o)}';`);
  lines.push(`// ${where}\nexport const r${i} = ${JSON.stringify(o, null, 2)} satisfies T${i};`);
});
writeFileSync(join(tsDir, 'manifests.ts'), lines.join('\n'));
writeFileSync(
  join(tsDir, 'tsconfig.json'),
  JSON.stringify({
    compilerOptions: {
      strict: true,
      noEmit: true,
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      skipLibCheck: true,
      types: [],
    },
    files: ['manifests.ts'],
  }),
);
writeFileSync(join(tsDir, 'package.json'), '{"type":"module"}');
try {
  execFileSync(process.execPath, [tools.resolve('typescript/bin/tsc'), '-p', tsDir], { encoding: 'utf8' });
} catch (e) {
  // Point each error at its manifest through the comment above the object it falls in.
  const src = readFileSync(join(tsDir, 'manifests.ts'), 'utf8').split('\n');
  for (const line of `${e.stdout}`.split('\n').filter((l) => l.includes('error TS'))) {
    const n = Number(/\((\d+),/.exec(line)?.[1] ?? 0);
    const owner = src
      .slice(0, n)
      .reverse()
      .find((l) => l.startsWith('// '));
    fail(owner?.slice(3) ?? 'manifests', `fields: ${line.replace(/^.*error TS\d+: /, '')}`);
  }
}

// --- 3. the project's rules ------------------------------------------------------------------------------
// config.ts, and the other readers beside it (redis.config.ts where Redis has its own).
const configSource = readdirSync('packages/core/src')
  .filter((f) => /config\.ts$/.test(f) && !f.endsWith('.test.ts'))
  .map((f) => readFileSync(join('packages/core/src', f), 'utf8'))
  .join('\n');
const known = new Set(
  [...configSource.matchAll(/\b(?:str|int|bool|url|required)\('([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]),
);
if (known.size < 20) fail('packages/core/src/config.ts', `read only ${known.size} variable names from it`);
const SECRET_VARS = /SECRET|PASSWORD|TOKEN|API_KEY|REDIS_URL|AUTH/;
const byKind = (k) => resources.filter((x) => x.o.kind === k);
const entries = {
  'otp-api': { main: 'apps/api/dist/main.js', portVar: 'API_PORT' },
  'otp-worker': { main: 'apps/worker/dist/main.js', portVar: 'WORKER_METRICS_PORT' },
  'otp-webhooks': { main: 'apps/webhooks/dist/main.js', portVar: 'WEBHOOKS_PORT' },
  'otp-dashboard': { main: 'apps/dashboard/dist/main.js', portVar: 'DASHBOARD_PORT' },
};
const deployments = byKind('Deployment');
for (const name of Object.keys(entries))
  if (!deployments.some((d) => d.o.metadata.name === name)) fail('deploy/kubernetes', `no Deployment ${name}`);

const matches = (selector, labels) => Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
for (const { o, where } of deployments) {
  const entry = entries[o.metadata.name];
  const pod = o.spec.template;
  if (!matches(o.spec.selector.matchLabels, pod.metadata.labels)) fail(where, 'selector does not match its pod labels');
  const ps = pod.spec.securityContext ?? {};
  if (ps.runAsNonRoot !== true) fail(where, 'pod does not set runAsNonRoot: true');
  for (const c of pod.spec.containers) {
    const w = `${where} container ${c.name}`;
    if (entry && c.command?.join(' ') !== `node ${entry.main}`) fail(w, `does not run node ${entry.main}`);
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));
    for (const [k, e] of Object.entries(env)) {
      if (!known.has(k)) fail(w, `sets ${k}, which the gateway does not read`);
      if (SECRET_VARS.test(k) && 'value' in e) fail(w, `${k} is written in the manifest: take it from the Secret`);
    }
    const refs = (c.envFrom ?? []).map((r) => r.secretRef?.name ?? r.configMapRef?.name);
    if (!c.envFrom?.some((r) => r.secretRef)) fail(w, 'reads no Secret (envFrom secretRef)');
    for (const r of refs)
      if (!resources.some((x) => ['ConfigMap'].includes(x.o.kind) && x.o.metadata.name === r) && r !== 'otp-gateway')
        fail(w, `reads ${r}, which is defined nowhere`);
    const port = entry && env[entry.portVar]?.value;
    if (entry && !port) fail(w, `does not set ${entry.portVar}`);
    const named = Object.fromEntries((c.ports ?? []).map((p) => [p.name, p.containerPort]));
    const probePort = (p) => (typeof p?.httpGet?.port === 'string' ? named[p.httpGet.port] : p?.httpGet?.port);
    for (const [probe, path] of [
      ['livenessProbe', '/healthz'],
      ['readinessProbe', '/readyz'],
    ]) {
      if (c[probe]?.httpGet?.path !== path) fail(w, `${probe} is not GET ${path}`);
      else if (String(probePort(c[probe])) !== String(port)) fail(w, `${probe} is not on ${entry?.portVar} ${port}`);
    }
    if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory || !c.resources?.limits?.memory)
      fail(w, 'needs cpu and memory requests and a memory limit');
    const cs = c.securityContext ?? {};
    if (cs.allowPrivilegeEscalation !== false || !cs.capabilities?.drop?.includes('ALL'))
      fail(w, 'must not escalate privileges and must drop ALL capabilities');
    if (o.metadata.name === 'otp-worker') {
      const drainMs = Number(env.SHUTDOWN_TIMEOUT_MS?.value ?? 10000);
      const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
      if (grace < drainMs / 1000 + 5)
        fail(w, `terminationGracePeriodSeconds ${grace} leaves no margin after the ${drainMs} ms drain`);
    }
  }
}
for (const { o, where } of byKind('ConfigMap')) {
  for (const k of Object.keys(o.data ?? {})) {
    if (!known.has(k)) fail(where, `${k} is not a variable the gateway reads`);
    if (SECRET_VARS.test(k)) fail(where, `${k} belongs in the Secret`);
  }
}
const podLabels = deployments.map((d) => d.o.spec.template.metadata.labels);
for (const { o, where } of [...byKind('Service'), ...byKind('PodDisruptionBudget')]) {
  const sel = o.kind === 'Service' ? o.spec.selector : o.spec.selector?.matchLabels;
  if (!podLabels.some((l) => matches(sel, l))) fail(where, 'selects no pod of these Deployments');
}
for (const name of ['otp-api', 'otp-worker', 'otp-webhooks'])
  if (!byKind('PodDisruptionBudget').some((p) => p.o.metadata.name === name)) fail(name, 'no PodDisruptionBudget');
for (const { o, where } of byKind('HorizontalPodAutoscaler')) {
  if (!deployments.some((d) => d.o.metadata.name === o.spec.scaleTargetRef.name))
    fail(where, `scales ${o.spec.scaleTargetRef.name}, which is not defined`);
}
const workerHpa = byKind('HorizontalPodAutoscaler').find((x) => x.o.spec.scaleTargetRef.name === 'otp-worker');
const ext = workerHpa?.o.spec.metrics?.find((m) => m.type === 'External')?.external?.metric?.name;
const exported = readFileSync('apps/dashboard/src/metrics.ts', 'utf8');
if (!ext) fail('otp-worker', 'no HorizontalPodAutoscaler on an external queue metric');
else if (!exported.includes(`name: '${ext}'`))
  fail(workerHpa.where, `scales on ${ext}, which the dashboard does not export`);
for (const { o, where } of byKind('Secret')) {
  for (const k of Object.keys({ ...o.data, ...o.stringData })) if (!known.has(k)) fail(where, `${k} is not read`);
  if (kustomization?.o.resources?.includes(where.split(' ')[0])) fail(where, 'an example Secret must not be applied');
}
for (const r of kustomization?.o.resources ?? [])
  if (!files.includes(r)) fail('kustomization.yaml', `lists ${r}, missing`);
for (const f of files)
  if (f !== 'kustomization.yaml' && !f.includes('example') && !kustomization?.o.resources?.includes(f))
    fail('kustomization.yaml', `does not list ${f}`);

// The gateway's own config reader accepts what each container gets (ConfigMap + example Secret + its env),
// when the packages are built (scripts/test.sh builds them first).
let configChecked = false;
if (existsSync('packages/core/dist/index.js')) {
  const { loadConfig } = await import(pathToFileURL(resolve('packages/core/dist/index.js')).href);
  const data = Object.assign({}, ...byKind('ConfigMap').map((x) => x.o.data));
  const secret = Object.assign({}, ...byKind('Secret').map((x) => x.o.stringData));
  for (const { o, where } of deployments) {
    for (const c of o.spec.template.spec.containers) {
      const env = { ...data, ...secret, ...Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value])) };
      try {
        loadConfig(env);
      } catch (e) {
        fail(`${where} container ${c.name}`, `the gateway refuses this configuration: ${e.message}`);
      }
    }
  }
  configChecked = true;
}

if (problems.length) {
  console.error(`check-k8s:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
const kinds = [...new Set(resources.map((x) => x.o.kind))].join(', ');
console.log(`ok: ${resources.length} objects (${kinds}) in ${files.length} files valid against the Kubernetes schemas`);
console.log('ok: no unknown field (tsc against the kubernetes-models types)');
console.log(
  'ok: probes on /healthz and /readyz, resources, non-root, secrets from the Secret, worker grace >= drain, selectors, variables',
);
console.log(
  configChecked
    ? "ok: each container's configuration is accepted by the gateway's loadConfig"
    : 'note: packages/core is not built, so loadConfig was not run on the configuration',
);
