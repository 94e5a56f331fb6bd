import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { classifyOctopushResponse, octopushCode } from './octopush.errors.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8'));

describe('classifyOctopushResponse, from recorded Octopush error bodies', () => {
  it.each([
    ['error-101', 401, 'misconfigured'],
    ['error-108', 401, 'misconfigured'],
    ['error-104', 402, 'misconfigured'],
    ['error-106', 400, 'misconfigured'],
    ['error-112', 400, 'misconfigured'],
    ['error-113', 400, 'misconfigured'],
    ['error-107', 400, 'misconfigured'],
    ['error-117', 400, 'permanent'],
    ['error-500', 500, 'retryable'],
    ['error-429', 429, 'rate_limited'],
  ])('%s (HTTP %i) is %s', (name, status, kind) => {
    const body = fixture(name);
    expect(classifyOctopushResponse(status, body)).toMatchObject({
      name: 'ProviderError',
      kind,
      code: String(body.code),
    });
  });

  it('reads Retry-After of a 429', () => {
    expect(classifyOctopushResponse(429, fixture('error-429'), '3').retryAfterMs).toBe(3000);
    expect(classifyOctopushResponse(429, fixture('error-429')).retryAfterMs).toBeUndefined();
  });

  it('handles bodies that are not Octopush errors', () => {
    expect(classifyOctopushResponse(503, '<html>down</html>')).toMatchObject({ kind: 'retryable', code: '503' });
    expect(classifyOctopushResponse(403, null)).toMatchObject({ kind: 'misconfigured', code: '403' });
    expect(octopushCode({ code: '117' })).toBe(117);
    expect(octopushCode({ code: 'x' })).toBeNull();
  });
});
