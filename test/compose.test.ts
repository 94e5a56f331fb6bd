import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/processes.js';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** Variables a source file reads through its config reader: r.str('X'), int('X', ...), ... */
function variablesRead(source: string): Set<string> {
  return new Set([...source.matchAll(/\b(?:str|int|bool|url|required)\('([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1] ?? ''));
}

/** The simulator's per-provider fault variables, SIM_{TWILIO,OCTOPUSH}_<suffix>, from its FAULT_VARS table. */
function simulatorFaultVariables(source: string): string[] {
  const table = /const FAULT_VARS[^{]*\{([^}]*)\}/.exec(source)?.[1] ?? '';
  const suffixes = [...table.matchAll(/^\s*([A-Z_]+):/gm)].map((m) => m[1]);
  return ['TWILIO', 'OCTOPUSH'].flatMap((p) => suffixes.map((s) => `SIM_${p}_${s}`));
}

describe('docker-compose.yml', () => {
  it('passes scripts/check-compose.sh (docker-compose config, required secrets, shape)', () => {
    const r = spawnSync('bash', [join(ROOT, 'scripts/check-compose.sh')], { encoding: 'utf8', timeout: 280_000 });
    const output = `${r.stdout}\n${r.stderr}`;
    expect(r.status, `scripts/check-compose.sh failed:\n${output}`).toBe(0);
    expect(r.stdout).toContain('ok: without OTP_SECRET it refuses');
    expect(r.stdout).toContain('compose file ok');
  }, 300_000);
});

describe('.env.example', () => {
  const example = read('.env.example');
  const documented = new Set([...example.matchAll(/^#?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1] ?? ''));
  // config.ts and the readers beside it (redis.config.ts, status-webhooks.config.ts, messages.config.ts, ...)
  const gateway = new Set(
    readdirSync(join(ROOT, 'packages/core/src'))
      .filter((f) => f.endsWith('config.ts'))
      .flatMap((f) => [...variablesRead(read(`packages/core/src/${f}`))]),
  );
  const simSource = read('apps/simulator/src/sim.config.ts');
  const simulator = [...variablesRead(simSource), ...simulatorFaultVariables(simSource)];
  /** Read by docker-compose.yml only. */
  const composeOnly = [
    'DASHBOARD_BIND_ADDRESS',
    'MONITORING_BIND_ADDRESS',
    'PROMETHEUS_PORT',
    'GRAFANA_PORT',
    'PROMETHEUS_RETENTION',
  ];
  /** Read by the HTTP libraries (axios, twilio) and by the Twilio provider's choice of client (twilio.provider.ts). */
  const libraries = ['HTTPS_PROXY'];

  it('documents every variable the gateway and the simulator read', () => {
    expect(gateway.size).toBeGreaterThan(40);
    expect(simulator).toContain('SIM_OCTOPUSH_LOST_CALLBACK_RATE');
    const missing = [...gateway, ...simulator].filter((v) => !documented.has(v));
    expect(missing, 'add these to .env.example with their default and meaning').toEqual([]);
  });

  it('documents nothing that nothing reads', () => {
    const known = new Set([...gateway, ...simulator, ...composeOnly, ...libraries]);
    expect([...documented].filter((v) => !known.has(v))).toEqual([]);
  });

  it('leaves every line commented, so an untouched copy changes no default', () => {
    expect(example.split('\n').filter((l) => /^[A-Z]/.test(l))).toEqual([]);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

  it('builds in one stage and runs a production-only install as a non-root user in another', () => {
    expect(dockerfile).toMatch(/^FROM node:\$\{NODE_VERSION\}-slim AS build|^FROM base AS build/m);
    expect(dockerfile).toMatch(/pnpm install --frozen-lockfile --offline --prod/);
    expect(runtime).toMatch(/^FROM node:\$\{NODE_VERSION\}-slim AS runtime/m);
    expect(runtime).toMatch(/^USER node$/m);
    expect(runtime).toMatch(/HOST=0\.0\.0\.0/);
    expect(runtime).toMatch(/^CMD \["node", "apps\/api\/dist\/main\.js"\]$/m);
    expect(dockerfile).toContain('ARG NODE_VERSION=22');
  });

  it('keeps local installs, builds and secrets out of the build context', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['**/node_modules', '**/dist', '.env', '.git']) expect(ignored).toContain(entry);
  });
});
