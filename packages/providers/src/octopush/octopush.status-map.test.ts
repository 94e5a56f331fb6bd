import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mapOctopushStatus, OCTOPUSH_PERMANENT_STATUSES } from './octopush.status-map.js';

describe('mapOctopushStatus', () => {
  it.each([
    ['ACK', 'sent'],
    ['SENT', 'sent'],
    ['UNKNOWN_DELIVERY', 'sent'],
    ['DELIVERED', 'delivered'],
    ['NOT_DELIVERED', 'undelivered'],
    ['NOT_ALLOWED', 'failed'],
    ['BAD_DESTINATION', 'failed'],
    ['BLACKLISTED_NUMBER', 'failed'],
  ])('maps %s to %s', (octopushStatus, status) => {
    expect(mapOctopushStatus(octopushStatus)).toBe(status);
  });

  it('answers null for UNDEFINED and unknown statuses', () => {
    expect(mapOctopushStatus('UNDEFINED')).toBeNull();
    expect(mapOctopushStatus('OPENED')).toBeNull();
  });

  it('marks bad and blacklisted numbers as permanent, reading a recorded report', () => {
    const report = JSON.parse(readFileSync(new URL('./fixtures/delivery-delivered.json', import.meta.url), 'utf8'));
    expect(mapOctopushStatus(report.status)).toBe('delivered');
    expect([...OCTOPUSH_PERMANENT_STATUSES].sort()).toEqual(['BAD_DESTINATION', 'BLACKLISTED_NUMBER']);
  });
});
