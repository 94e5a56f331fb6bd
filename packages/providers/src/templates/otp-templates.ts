import { smsSegments } from '../sms.segments.js';

/**
 * SMS templates with placeholders, per locale: `{code}` (required), `{minutes}` (whole minutes left),
 * `{duration}` (the same with its unit, in the template's language: `10 minutes`, `10 Minuten`), `{brand}` and
 * `{appHash}` (the Android SMS Retriever hash of your app, 11 characters, so the app reads the code itself).
 * Checked once at start (compileTemplates): every template must hold `{code}`, use no other placeholder, and,
 * rendered with the longest code, the longest lifetime, the brand and the app hash, fit one SMS segment:
 * 160 characters in the GSM-7 alphabet, or 70 when any character is outside it (UCS-2).
 */
export const TEMPLATE_PLACEHOLDERS = ['code', 'minutes', 'duration', 'brand', 'appHash'] as const;

/** The built-in languages. Written in GSM-7 characters only (no ç, ã, ó...), so each fits 160 characters. */
const BUILT_IN = {
  en: 'Your verification code is {code}. It expires in {duration}. Do not share it with anyone.',
  fr: 'Votre code de vérification est {code}. Il expire dans {duration}. Ne le communiquez à personne.',
  es: 'Tu codigo de verificacion es {code}. Caduca en {duration}. No lo compartas con nadie.',
  de: 'Ihr Bestätigungscode lautet {code}. Er läuft in {duration} ab. Geben Sie ihn nicht weiter.',
  it: 'Il tuo codice di verifica è {code}. Scade tra {duration}. Non condividerlo con nessuno.',
  pt: 'O seu codigo de verificacao e {code}. Expira em {duration}. Nao o partilhe com ninguem.',
} as const;

const UNITS: Record<string, [one: string, many: string]> = {
  en: ['minute', 'minutes'],
  fr: ['minute', 'minutes'],
  es: ['minuto', 'minutos'],
  de: ['Minute', 'Minuten'],
  it: ['minuto', 'minuti'],
  pt: ['minuto', 'minutos'],
};

export type BuiltInLocale = keyof typeof BUILT_IN;
export const BUILT_IN_LOCALES = Object.freeze(Object.keys(BUILT_IN) as BuiltInLocale[]);

/** What an operator (or a tenant) sets: a brand, an app hash, and templates by locale (`de`, `pt-BR`). */
export interface TemplateSettings {
  readonly brand?: string | null;
  readonly appHash?: string | null;
  readonly templates?: Readonly<Record<string, string>>;
}

export interface RenderInput {
  readonly code: string;
  readonly ttlSeconds: number;
  readonly locale?: string | null;
}

/** Compiled templates: render one message; the locale resolves to its exact tag, its language, then English. */
export interface OtpTemplates {
  render(input: RenderInput): string;
  /** The locale a request's locale resolves to (exact tag, language, `en`). */
  resolve(locale: string | null | undefined): string;
}

/** Thrown by compileTemplates: every problem found, one sentence each. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
  }
}

const normal = (tag: string) => tag.trim().toLowerCase().replace('_', '-');

/**
 * Compiles and checks templates. `where` prefixes each problem (the variable or the tenant); `maxCodeLength` and
 * `maxTtlSeconds` give the longest rendering the check must fit.
 */
export function compileTemplates(
  s: TemplateSettings,
  opts: { maxCodeLength: number; maxTtlSeconds: number; where?: string },
): OtpTemplates {
  const where = opts.where ? `${opts.where}: ` : '';
  const problems: string[] = [];
  const brand = s.brand ?? '';
  const appHash = s.appHash ?? '';
  if (appHash && !/^[A-Za-z0-9+/]{11}$/.test(appHash)) {
    problems.push(`${where}the Android app hash must be the 11 characters the SMS Retriever API gives`);
  }
  const decorate = (t: string) => `${brand ? '{brand}: ' : ''}${t}${appHash ? '\n\n{appHash}' : ''}`;
  const table = new Map<string, string>();
  for (const [l, t] of Object.entries(BUILT_IN)) table.set(l, decorate(t));
  for (const [tag, text] of Object.entries(s.templates ?? {})) {
    const l = normal(tag);
    if (!/^[a-z]{2}(-[a-z]{2})?$/.test(l)) {
      problems.push(`${where}template locale "${tag}" must be a language (de) or language-region (pt-BR)`);
      continue;
    }
    table.set(l, text);
  }
  const fill = (text: string, locale: string, code: string, minutes: number) => {
    const lang = locale.split('-')[0] ?? 'en';
    const [one, many] = UNITS[lang] ?? UNITS.en!;
    const values: Record<string, string> = {
      code,
      minutes: String(minutes),
      duration: `${minutes} ${minutes === 1 ? one : many}`,
      brand,
      appHash,
    };
    return text.replace(/\{(\w+)\}/g, (m, name: string) => values[name] ?? m);
  };
  for (const [locale, text] of table) {
    const label = `${where}template ${locale}`;
    if (!text.includes('{code}')) problems.push(`${label} must contain {code}`);
    for (const [, name] of text.matchAll(/\{(\w*)\}/g)) {
      if (!(TEMPLATE_PLACEHOLDERS as readonly string[]).includes(name ?? '')) {
        problems.push(`${label} has an unknown placeholder {${name}} (known: ${TEMPLATE_PLACEHOLDERS.join(', ')})`);
      }
    }
    const longest = fill(
      text,
      locale,
      '9'.repeat(opts.maxCodeLength),
      Math.max(1, Math.floor(opts.maxTtlSeconds / 60)),
    );
    const seg = smsSegments(longest);
    if (seg.segments > 1) {
      const limit = seg.encoding === 'GSM-7' ? 160 : 70;
      problems.push(
        `${label} takes ${seg.segments} SMS segments with the longest code (${seg.units} ${seg.encoding} characters; one segment holds ${limit}${seg.encoding === 'UCS-2' ? ' when any character is outside GSM-7' : ''})`,
      );
    }
  }
  if (problems.length > 0) throw new TemplateError(problems);
  const resolve = (locale: string | null | undefined) => {
    const l = normal(locale ?? '');
    if (table.has(l)) return l;
    const lang = l.split('-')[0] ?? '';
    return table.has(lang) ? lang : 'en';
  };
  return Object.freeze({
    resolve,
    render({ code, ttlSeconds, locale }: RenderInput) {
      const l = resolve(locale);
      return fill(table.get(l)!, l, code, Math.max(1, Math.floor(ttlSeconds / 60)));
    },
  });
}

/**
 * The template check of one API key's settings (TENANTS_FILE): its templates and brand over the gateway-wide
 * ones, rendered with its longest code and lifetime. Problems are named after the key.
 */
export function tenantTemplateProblems(
  tenant: {
    name: string;
    brand: string | null;
    templates: Readonly<Record<string, string>>;
    ttlSeconds: number | null;
    codeLength: number | null;
  },
  base: { messages: TemplateSettings; otp: { codeLength: number; ttlSeconds: number } },
): string[] {
  try {
    compileTemplates(
      {
        brand: tenant.brand ?? base.messages.brand ?? null,
        appHash: base.messages.appHash ?? null,
        templates: { ...base.messages.templates, ...tenant.templates },
      },
      {
        maxCodeLength: tenant.codeLength ?? base.otp.codeLength,
        maxTtlSeconds: tenant.ttlSeconds ?? base.otp.ttlSeconds,
        where: `TENANTS_FILE key ${tenant.name}`,
      },
    );
    return [];
  } catch (e) {
    if (e instanceof TemplateError) return [...e.problems];
    throw e;
  }
}
