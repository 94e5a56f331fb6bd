import { describe, expect, it } from 'vitest';
import { renderOtpMessage } from '../message.template.js';
import { smsSegments } from '../sms.segments.js';
import { BUILT_IN_LOCALES, compileTemplates, TemplateError } from './otp-templates.js';

const opts = { maxCodeLength: 10, maxTtlSeconds: 600 };

describe('compileTemplates', () => {
  it('renders English and French as the fixed templates did', () => {
    const t = compileTemplates({}, opts);
    for (const locale of ['en', 'fr', 'fr-FR']) {
      for (const ttlSeconds of [60, 600]) {
        expect(t.render({ code: '042917', ttlSeconds, locale })).toBe(
          renderOtpMessage({ code: '042917', ttlSeconds, locale }),
        );
      }
    }
  });

  it('speaks es, de, it, pt; a region falls back to its language, anything else to English', () => {
    const t = compileTemplates({}, opts);
    expect(t.render({ code: '1234', ttlSeconds: 300, locale: 'de-AT' })).toContain('1234. Er läuft in 5 Minuten ab.');
    expect(t.render({ code: '1234', ttlSeconds: 60, locale: 'es' })).toContain('Caduca en 1 minuto.');
    expect(t.render({ code: '1234', ttlSeconds: 600, locale: 'it' })).toContain('Scade tra 10 minuti.');
    expect(t.render({ code: '1234', ttlSeconds: 600, locale: 'pt_BR' })).toContain('Expira em 10 minutos.');
    for (const l of ['zz', '', null, undefined]) expect(t.resolve(l)).toBe('en');
  });

  it.each(BUILT_IN_LOCALES)('the built-in %s fits one GSM-7 segment with brand, app hash and the longest code', (l) => {
    const t = compileTemplates({ brand: 'ACME Shop', appHash: 'FA+9qCX9VSu' }, opts);
    const text = t.render({ code: '9'.repeat(10), ttlSeconds: 600, locale: l });
    expect(text.startsWith('ACME Shop: ')).toBe(true);
    expect(text.endsWith('\n\nFA+9qCX9VSu')).toBe(true);
    expect(smsSegments(text)).toMatchObject({ encoding: 'GSM-7', segments: 1 });
  });

  it('takes custom templates per locale and region with every placeholder', () => {
    const t = compileTemplates(
      {
        brand: 'ACME',
        appHash: 'FA+9qCX9VSu',
        templates: { 'pt-BR': '{brand}: seu codigo e {code} ({minutes} min)\n{appHash}', de: '{code} ist Ihr Code' },
      },
      opts,
    );
    expect(t.render({ code: '123456', ttlSeconds: 300, locale: 'pt-BR' })).toBe(
      'ACME: seu codigo e 123456 (5 min)\nFA+9qCX9VSu',
    );
    expect(t.render({ code: '123456', ttlSeconds: 300, locale: 'pt' })).toContain('Expira em 5 minutos.');
    expect(t.render({ code: '123456', ttlSeconds: 300, locale: 'de' })).toBe('123456 ist Ihr Code');
  });

  it('names every problem: no {code}, an unknown placeholder, two segments, a UCS-2 text over 70, a bad hash', () => {
    let err: unknown;
    try {
      compileTemplates(
        {
          appHash: 'short',
          templates: {
            en: 'Your code expires soon',
            fr: 'Code {code} pour {user}',
            de: `{code} ${'x'.repeat(150)}`,
            es: `Código {code} ${'ñ'.repeat(10)}${'ó'.repeat(50)}`,
            english: '{code}',
          },
        },
        { ...opts, where: 'TENANTS_FILE key shop' },
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TemplateError);
    const problems = (err as TemplateError).problems;
    expect(problems).toEqual([
      expect.stringMatching(/^TENANTS_FILE key shop: the Android app hash/),
      expect.stringMatching(/locale "english"/),
      expect.stringMatching(/template en must contain \{code\}/),
      expect.stringMatching(/template fr has an unknown placeholder \{user\}/),
      expect.stringMatching(/template es takes 2 SMS segments .*UCS-2 characters; one segment holds 70/),
      expect.stringMatching(/template de takes 2 SMS segments .*GSM-7 characters; one segment holds 160/),
    ]);
  });
});
