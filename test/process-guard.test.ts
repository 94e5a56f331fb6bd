import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './support/processes.js';

/**
 * guardProcess, as every entry point installs it, in a real Node process: an unhandled rejection is a bug whose
 * state cannot be trusted, so it is logged as one fatal JSON line and the process exits 1 for its supervisor.
 */
function run(body: string) {
  const service = join(ROOT, 'packages/service/dist/index.js');
  const script = `
    const { guardProcess } = await import(${JSON.stringify(service)});
    const log = {
      error: (o, m) => console.log(JSON.stringify({ level: 50, ...o, msg: m })),
      fatal: (o, m) => console.log(JSON.stringify({ level: 60, ...o, msg: m })),
    };
    guardProcess('test', log, () => {});
    ${body}
    setTimeout(() => console.log('still running'), 500);
  `;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
}

describe('guardProcess', () => {
  it('regression: an unhandled rejection is logged as fatal, with its message, and the process exits 1', () => {
    const r = run(`Promise.reject(new Error('lost promise'));`);
    expect(r.status).toBe(1);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines).not.toContain('still running');
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({
      level: 60,
      app: 'test',
      msg: 'unhandled rejection: exiting',
      err: { type: 'Error', message: 'lost promise' },
    });
  });

  it('an uncaught exception too', () => {
    const r = run(`setTimeout(() => { throw new TypeError('bad state'); }, 10);`);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('"msg":"uncaught exception: exiting"');
  });
});
