import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mapTwilioStatus, TWILIO_PERMANENT_DELIVERY_ERRORS } from './twilio.status-map.js';

describe('mapTwilioStatus', () => {
  it.each([
    ['accepted', 'queued'],
    ['scheduled', 'queued'],
    ['queued', 'queued'],
    ['sending', 'sending'],
    ['sent', 'sent'],
    ['delivered', 'delivered'],
    ['read', 'delivered'],
    ['undelivered', 'undelivered'],
    ['failed', 'failed'],
    ['canceled', 'failed'],
  ])('maps %s to %s', (twilioStatus, status) => {
    expect(mapTwilioStatus(twilioStatus)).toBe(status);
  });

  it('answers null for a status it does not know', () => {
    expect(mapTwilioStatus('receiving')).toBeNull();
  });

  it('reads a recorded status callback', () => {
    const cb = JSON.parse(
      readFileSync(new URL('./fixtures/status-callback-undelivered.json', import.meta.url), 'utf8'),
    );
    expect(mapTwilioStatus(cb.MessageStatus)).toBe('undelivered');
    expect(TWILIO_PERMANENT_DELIVERY_ERRORS.has(cb.ErrorCode)).toBe(false);
    expect(TWILIO_PERMANENT_DELIVERY_ERRORS.has('30005')).toBe(true);
  });
});
