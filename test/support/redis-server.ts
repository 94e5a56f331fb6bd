import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A redis-server process the tests own: started on a free port, stopped (and its files removed) after. */
export interface LocalRedis {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Starts `redis-server` on a free loopback port. `port` and `dir` may be given to restart on the same port from
 * the same files (the caller then owns `dir`: stop() leaves it).
 */
export async function startLocalRedis(
  opts: { port?: number; args?: string[]; dir?: string } = {},
): Promise<LocalRedis> {
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'otp-redis-'));
  const child: ChildProcess = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--databases',
      '128',
      '--maxmemory-policy',
      'noeviction',
      ...(opts.args ?? []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (d) => {
    output += d;
  });
  child.stderr?.on('data', (d) => {
    output += d;
  });
  await new Promise<void>((resolve, reject) => {
    const settle = (err?: Error) => {
      clearInterval(poll);
      clearTimeout(t);
      if (err) reject(err);
      else resolve();
    };
    // one that does not start in time is not left running behind the failed run
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      settle(new Error(`redis-server did not start:\n${output}`));
    }, 10_000);
    child.once('error', (e) =>
      settle(new Error(`cannot run redis-server (${e.message}); install it (apt-get install -y redis-server)`)),
    );
    child.once('exit', (code) => settle(new Error(`redis-server exited with ${code}:\n${output}`)));
    const poll = setInterval(() => {
      if (output.includes('Ready to accept connections')) settle();
    }, 20);
  });
  child.removeAllListeners('exit');
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
