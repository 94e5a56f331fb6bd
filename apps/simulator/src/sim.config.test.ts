import { describe, expect, it } from 'vitest';
import { createFaultState } from './faults.js';
import { loadSimulatorConfig, SimulatorConfigError } from './sim.config.js';
import { NO_FAULTS, resolveSimulatorOptions, SIMULATOR_DEFAULTS } from './sim.options.js';

describe('loadSimulatorConfig', () => {
  it('gives dev defaults for an empty environment', () => {
    const c = loadSimulatorConfig({});
    expect(c).toMatchObject({ port: 3003, host: '127.0.0.1', logLevel: 'info' });
    expect(c.simulator.twilio).toEqual(SIMULATOR_DEFAULTS.twilio);
    expect(c.simulator.twilio?.accountSid).toMatch(/^AC.{32}$/);
    expect(resolveSimulatorOptions(c.simulator).faults.twilio).toEqual(NO_FAULTS);
  });

  it('reads credentials and per-provider faults', () => {
    const c = loadSimulatorConfig({
      SIMULATOR_PORT: '4000',
      SIM_TWILIO_AUTH_TOKEN: 'tok',
      SIM_OCTOPUSH_CALLBACK_URL: 'http://127.0.0.1:3001/webhooks/octopush/delivery/abc',
      SIM_TWILIO_LATENCY_MS: '120',
      SIM_TWILIO_DOWN: 'true',
      SIM_OCTOPUSH_ERROR_RATE: '0.25',
      SIM_CALLBACK_DELAY_MS: '50',
      SIM_OCTOPUSH_CALLBACK_DELAY_MS: '70',
    });
    expect(c.port).toBe(4000);
    expect(c.simulator.twilio?.authToken).toBe('tok');
    expect(c.simulator.octopush?.callbackUrl).toBe('http://127.0.0.1:3001/webhooks/octopush/delivery/abc');
    expect(c.simulator.faults?.twilio).toMatchObject({ latencyMs: 120, down: true, callbackDelayMs: 50 });
    expect(c.simulator.faults?.octopush).toMatchObject({ errorRate: 0.25, callbackDelayMs: 70 });
  });

  it('names every bad variable at once', () => {
    const env = {
      SIMULATOR_PORT: 'x',
      SIM_TWILIO_ERROR_RATE: '2',
      SIM_OCTOPUSH_DOWN: 'maybe',
      SIM_OCTOPUSH_DUPLICATE_REQUEST: 'skip',
    };
    let err: unknown;
    try {
      loadSimulatorConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SimulatorConfigError);
    const text = (err as Error).message;
    for (const name of Object.keys(env)) expect(text).toContain(name);
  });
});

describe('fault draws', () => {
  it('applies failNext before down and rates, then the rates in order timeout, 429, 500', () => {
    let r = 0;
    const faults = createFaultState(
      { twilio: { ...NO_FAULTS, timeoutRate: 0.1, rateLimitRate: 0.1, errorRate: 0.1 }, octopush: NO_FAULTS },
      () => r,
    );
    faults.update('twilio', { failNext: { count: 1, kind: 'auth' } });
    expect(faults.draw('twilio')).toBe('auth');
    expect(faults.get('twilio').failNext).toBeNull();
    const at = (x: number) => {
      r = x;
      return faults.draw('twilio');
    };
    expect([at(0.05), at(0.15), at(0.25), at(0.35)]).toEqual(['timeout', 'rate_limit', 'server_error', null]);
    faults.reset();
    expect(faults.get('twilio').failNext).toBeNull();
  });
});
