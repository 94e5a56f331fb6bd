import type { RedisClient } from './connection.js';

/**
 * The offset between this process's clock and Redis's, so a script can refuse to act past a deadline
 * expressed in Redis time. Why: a command that times out on our side stays queued on the connection and
 * runs when a hung Redis wakes up; a request already answered 503 must then change nothing.
 */
export interface RedisClock {
  /** Redis-time epoch ms `ms` from now, or 0 (no deadline) before the first calibration. */
  deadline(ms: number): number;
  stop(): void;
}

/** Calibrates against Redis TIME now and every `everyMs` (midpoint of the round trip). */
export function startRedisClock(redis: RedisClient, everyMs = 15_000): RedisClock {
  let offset: number | null = null;
  const calibrate = async () => {
    try {
      const t0 = Date.now();
      const [s, us] = await redis.time();
      const t1 = Date.now();
      const rtt = t1 - t0;
      if (rtt < 200) offset = Number(s) * 1000 + Math.floor(Number(us) / 1000) - (t0 + t1) / 2;
    } catch {
      // Redis away: keep the last offset.
    }
  };
  const onReady = () => void calibrate();
  redis.on('ready', onReady);
  if (redis.status === 'ready') void calibrate();
  // Until the first calibration succeeds, try every second.
  let ticks = 0;
  const timer = setInterval(() => {
    ticks++;
    if (offset === null || ticks % Math.max(1, Math.round(everyMs / 1000)) === 0) void calibrate();
  }, 1000);
  timer.unref();
  return {
    deadline: (ms) => (offset === null ? 0 : Math.round(Date.now() + offset + ms)),
    stop: () => {
      clearInterval(timer);
      redis.off('ready', onReady);
    },
  };
}

/** Lua: true when the deadline (Redis-time ms, 0 = none) has passed. */
export const LATE_LUA = `
local function late(deadline)
  deadline = tonumber(deadline)
  if deadline == 0 then return false end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline
end
`;
