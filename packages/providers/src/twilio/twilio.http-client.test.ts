import { describe, expect, it } from 'vitest';
import { createTwilioHttpClient } from './twilio.http-client.js';

describe("the twilio library's HTTP client", () => {
  it('refuses a request no send handed over (it would have no deadline and no abort), before connecting', async () => {
    const client = createTwilioHttpClient({ timeoutMs: 1000, scope: () => undefined });
    // port 9 (discard) on loopback: nothing should even be tried
    await expect(client.request({ method: 'post', uri: 'http://127.0.0.1:9/2010-04-01/x.json' })).rejects.toThrow(
      /outside a send/,
    );
  });
});
