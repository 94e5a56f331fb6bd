import { describe, expect, it } from 'vitest';
import { MESSAGE_LOCALES, renderOtpMessage, resolveLocale } from './message.template.js';
import { smsSegments } from './sms.segments.js';

describe('renderOtpMessage', () => {
  it('names the code and its lifetime in minutes, in English by default', () => {
    expect(renderOtpMessage({ code: '042917', ttlSeconds: 600 })).toBe(
      'Your verification code is 042917. It expires in 10 minutes. Do not share it with anyone.',
    );
  });

  it('speaks French for fr, fr-FR and fr_CA', () => {
    for (const locale of ['fr', 'fr-FR', 'FR_ca']) {
      expect(renderOtpMessage({ code: '042917', ttlSeconds: 300, locale })).toBe(
        'Votre code de vérification est 042917. Il expire dans 5 minutes. Ne le communiquez à personne.',
      );
    }
  });

  it('falls back to English for unknown, empty or missing locales', () => {
    for (const locale of ['de-DE', '', null, undefined, 'zz']) expect(resolveLocale(locale)).toBe('en');
  });

  it('rounds the lifetime down to whole minutes, at least one, singular for one', () => {
    expect(renderOtpMessage({ code: '1', ttlSeconds: 119 })).toContain('expires in 1 minute.');
    expect(renderOtpMessage({ code: '1', ttlSeconds: 30 })).toContain('expires in 1 minute.');
    expect(renderOtpMessage({ code: '1', ttlSeconds: 150, locale: 'fr' })).toContain('expire dans 2 minutes.');
  });

  it.each(MESSAGE_LOCALES)('fits one GSM-7 segment in %s with the longest code and lifetime', (locale) => {
    const text = renderOtpMessage({ code: '9'.repeat(10), ttlSeconds: 600, locale });
    expect(smsSegments(text)).toMatchObject({ encoding: 'GSM-7', segments: 1 });
  });
});
