import type { TestProject } from 'vitest/node';
import { type LocalRedis, startLocalRedis } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A Redis for integration tests; each test file takes its own database (see redis.ts). */
    redisUrl: string;
  }
}

/**
 * One Redis for the run: REDIS_URL when given, else a testcontainers Redis when a Docker engine answers,
 * else a local redis-server on a free port, stopped after the run.
 */
export default async function setup(project: TestProject) {
  if (process.env.REDIS_URL) {
    project.provide('redisUrl', process.env.REDIS_URL);
    return;
  }
  const container = await tryContainer();
  if (container) {
    project.provide('redisUrl', container.url);
    return () => container.stop();
  }
  const local: LocalRedis = await startLocalRedis();
  project.provide('redisUrl', local.url);
  return () => local.stop();
}

async function tryContainer(): Promise<{ url: string; stop(): Promise<unknown> } | null> {
  if (process.env.OTP_TEST_NO_DOCKER === '1') return null;
  try {
    const { getContainerRuntimeClient, GenericContainer, Wait } = await import('testcontainers');
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('docker timeout')), 5000)),
    ]);
    const c = await new GenericContainer('redis:7-alpine')
      .withCommand(['redis-server', '--databases', '128', '--save', '', '--appendonly', 'no'])
      .withExposedPorts(6379)
      .withWaitStrategy(Wait.forLogMessage('Ready to accept connections'))
      .start();
    return { url: `redis://${c.getHost()}:${c.getMappedPort(6379)}`, stop: () => c.stop() };
  } catch {
    return null;
  }
}
