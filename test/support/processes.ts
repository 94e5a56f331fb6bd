import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Environment every spawned process gets unless a test overrides it. */
export const TEST_SECRET = 'test-secret-0123456789abcdefghijklmnopqrstuvwxyz';

/** A gateway process started from its built entry point (apps/<name>/dist/main.js). */
export interface AppProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Parsed JSON log lines so far. */
  logs(): Record<string, unknown>[];
  waitForLog(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Abuse guards that count but do not stop the load the suites send on purpose (hundreds of codes to one range,
 * never verified). The guards' own tests (test/abuse-guards.test.ts) run with the defaults or tighter.
 */
export const LOAD_TEST_GUARDS: Record<string, string> = {
  GUARD_VELOCITY_RANGE_MAX_UNVERIFIED: '1000000',
  GUARD_VELOCITY_COUNTRY_MAX_UNVERIFIED: '1000000',
  GUARD_CONVERSION_RANGE_MIN_SENDS: '0',
  GUARD_CONVERSION_COUNTRY_MIN_SENDS: '0',
};

export function startApp(app: string, env: Record<string, string>): AppProcess {
  const entry = join(ROOT, 'apps', app, 'dist', 'main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run pnpm build first`);
  const child = spawn(process.execPath, [entry], {
    cwd: ROOT,
    // DOTENV_CONFIG_PATH: an operator's .env in the checkout (README step 5) is not read: each test sets what it needs
    env: {
      PATH: process.env.PATH ?? '',
      DOTENV_CONFIG_PATH: '/dev/null',
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      OTP_SECRET: TEST_SECRET,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: (() => void)[] = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of waiters.splice(0)) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const logs = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  return {
    name: app,
    child,
    output: () => out,
    logs,
    async waitForLog(match, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = logs().find(match);
        if (hit) return hit;
        if (child.exitCode !== null) throw new Error(`${app} exited (${child.exitCode}):\n${out}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${app}: no matching log line within ${timeoutMs} ms:\n${out.slice(-4000)}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Waits until `url` answers 200. */
export async function waitForHttp(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls `check` until it returns a value that is not undefined. */
export async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`${what} not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
