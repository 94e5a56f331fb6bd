import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyPluginAsync } from 'fastify';
import { redactJobData } from './redact.js';

/** Where Bull Board lives (the contract's path). */
export const BOARD_PATH = '/admin/queues';

/** What an operator reads under each queue's name. */
const describe = (name: string): string =>
  name.startsWith('otp-send-')
    ? `SMS sends, shard ${name.slice('otp-send-'.length)}: one job per OTP (job id = OTP id; resends <id>-r<attempt>). Jobs hold the OTP id only.`
    : '';

/**
 * Bull Board routes that would write job data. Refused: a job whose data an operator edited or
 * duplicated (say, another `to` with the same sealed code) would send a live code to another number.
 * Retrying, promoting, cleaning and pausing stay allowed.
 */
export const REFUSED_BOARD_ROUTES: ReadonlySet<string> = new Set([
  `POST ${BOARD_PATH}/api/queues/:queueName/add`,
  `PATCH ${BOARD_PATH}/api/queues/:queueName/:jobId/update-data`,
]);

/**
 * Bull Board routes that delete jobs or stop work: emptying, cleaning, obliterating or pausing a queue loses or
 * holds OTPs in flight, and so does rescheduling a delayed job; and the rate-limit, concurrency and scheduler routes change how workers send. Refused
 * unless DASHBOARD_ALLOW_DESTRUCTIVE_ACTIONS is set. Retrying, promoting and resuming stay allowed.
 */
export const DESTRUCTIVE_BOARD_ROUTES: ReadonlySet<string> = new Set(
  [
    'PUT /api/queues/pause',
    'PUT /api/queues/:queueName/pause',
    'PUT /api/queues/:queueName/clean/:queueStatus',
    'PUT /api/queues/:queueName/:jobId/clean',
    'PUT /api/queues/:queueName/empty',
    'PUT /api/queues/:queueName/obliterate',
    'PUT /api/queues/:queueName/concurrency',
    'PUT /api/queues/:queueName/rate-limit',
    'PUT /api/queues/:queueName/job-schedulers/:schedulerId/remove',
    'PATCH /api/queues/:queueName/job-schedulers/:schedulerId',
    // a parked send job moved past its OTP's expiry is never sent (its id is the OTP's: nothing replaces it)
    'PATCH /api/queues/:queueName/:jobId/delay',
  ].map((r) => r.replace(' ', ` ${BOARD_PATH}`)),
);

/** Bull Board over `queues`, every job's data redacted (see redact.ts). Register with `{ prefix: BOARD_PATH }`. */
export function bullBoardPlugin(queues: readonly Queue[]): FastifyPluginAsync {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(BOARD_PATH);
  createBullBoard({
    queues: queues.map((queue) => {
      const adapter = new BullMQAdapter(queue, {
        allowRetries: true,
        description: describe(queue.name),
      });
      adapter.setFormatter('data', redactJobData);
      adapter.setFormatter('returnValue', redactJobData);
      return adapter;
    }),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'OTP gateway' } },
  });
  const plugin = serverAdapter.registerPlugin();
  return async (scope) => {
    await scope.register(plugin);
  };
}
