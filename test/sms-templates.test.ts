import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startApp } from './support/processes.js';
import { STACK_KEY, type Stack, startStack } from './support/stack.js';

// Real processes: the worker renders each SMS from the configured templates, per locale.
let stack: Stack;
let n = 0;
const phone = () => `+3368${String(process.pid % 100).padStart(2, '0')}${String(++n).padStart(5, '0')}`;

beforeAll(async () => {
  stack = await startStack({
    env: {
      SMS_BRAND: 'ACME',
      SMS_ANDROID_APP_HASH: 'FA+9qCX9VSu',
      SMS_TEMPLATE_PT_BR: '{brand}: seu codigo e {code}. Valido por {minutes} min.\\n{appHash}',
    },
  });
});
afterAll(async () => stack?.stop());

const sendIn = async (to: string, locale?: string) => {
  const r = await fetch(`${stack.apiUrl}/v1/otp/send`, {
    method: 'POST',
    headers: { authorization: `Bearer ${STACK_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(locale ? { phoneNumber: to, locale } : { phoneNumber: to }),
  });
  expect(r.status).toBe(202);
  return eventually(async () => (await stack.inbox(to))[0]?.body, 15_000, 'sms');
};

describe('SMS templates', () => {
  it('each locale gets its language, with the brand and the Android app hash', async () => {
    expect(await sendIn(phone(), 'de-DE')).toMatch(
      /^ACME: Ihr Bestätigungscode lautet \d{6}\. Er läuft in 10 Minuten ab\. Geben Sie ihn nicht weiter\.\n\nFA\+9qCX9VSu$/,
    );
    expect(await sendIn(phone(), 'es')).toMatch(/^ACME: Tu codigo de verificacion es \d{6}\. Caduca en 10 minutos\./);
    expect(await sendIn(phone(), 'it')).toMatch(/Il tuo codice di verifica è \d{6}\. Scade tra 10 minuti\./);
    expect(await sendIn(phone(), 'pt-BR')).toMatch(
      /^ACME: seu codigo e \d{6}\. Valido por (9|10) min\.\nFA\+9qCX9VSu$/,
    );
    expect(await sendIn(phone(), 'pt-PT')).toMatch(/O seu codigo de verificacao e \d{6}\. Expira em (9|10) minutos\./);
    expect(await sendIn(phone(), 'ja')).toMatch(/^ACME: Your verification code is \d{6}\./);
  });

  it('a worker refuses to start with a template that has no {code} or takes two segments, naming both', async () => {
    const p = startApp('worker', {
      ...stack.env,
      SMS_TEMPLATE_FR: 'Votre code arrive',
      SMS_TEMPLATE_DE: `{code} ${'x'.repeat(160)}`,
    });
    const code = await new Promise<number | null>((r) => p.child.once('exit', (c) => r(c)));
    expect(code).toBe(78);
    expect(p.output()).toMatch(/template fr must contain \{code\}/);
    expect(p.output()).toMatch(/template de takes 2 SMS segments/);
  });
});
