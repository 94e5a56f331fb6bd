import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeRedisClients, type IsolatedStore, isolatedRedis } from '../../../../test/support/redis.js';
import { createStatusEventQueue } from '../events/status-events.js';
import { createSendQueues } from './send-jobs.js';

let store: IsolatedStore;
beforeEach(async () => {
  store = await isolatedRedis();
});
afterEach(async () => closeRedisClients(store.redis));

describe('queues on a request connection', () => {
  it('regression: a lost answer to INFO at start-up no longer breaks every later add (BullMQ version check)', async () => {
    // the API's connections fail a command after 700 ms and never retry it: here, INFO fails as a timeout would
    const flaky = new Proxy(store.redis, {
      get(target, name, receiver) {
        if (name === 'info') return () => Promise.reject(new Error('Command timed out'));
        const value = Reflect.get(target, name, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const queues = createSendQueues(flaky as never, store.ks, {
      sendShards: 1,
      keepCompleted: 10,
      keepFailedSeconds: 60,
    });
    const events = createStatusEventQueue(flaky as never, store.ks);
    try {
      const id = `otp_${'a'.repeat(32)}`;
      await expect(queues.forOtp(id).add('send', { otpId: id }, { jobId: id })).resolves.toMatchObject({ id });
      await expect(events.add('otp.sent', { webhookId: 'w1', keyName: 'k', body: '{}' })).resolves.toBeTruthy();
    } finally {
      await queues.close();
      await events.close();
    }
  });
});
