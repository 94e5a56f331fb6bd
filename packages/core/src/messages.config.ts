import type { EnvReader } from './env-reader.js';

/**
 * What the SMS says, beyond the built-in templates (the workers check it at start: packages/providers
 * compileTemplates): SMS_BRAND, SMS_ANDROID_APP_HASH, and SMS_TEMPLATE_<LOCALE> per locale (SMS_TEMPLATE_DE,
 * SMS_TEMPLATE_PT_BR), each with `{code}` and optionally `{minutes}`, `{duration}`, `{brand}`, `{appHash}`.
 */
export interface MessageConfig {
  readonly brand: string | null;
  readonly appHash: string | null;
  /** Templates by locale tag (`de`, `pt-br`). */
  readonly templates: Readonly<Record<string, string>>;
}

export function readMessageConfig(r: EnvReader, env: NodeJS.ProcessEnv): MessageConfig {
  const brand = r.str('SMS_BRAND');
  if (brand !== null && brand.length > 30) r.problems.push('SMS_BRAND must be at most 30 characters');
  const templates: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    const m = /^SMS_TEMPLATE_([A-Z]{2})(?:_([A-Z]{2}))?$/.exec(name);
    if (!m || !value?.trim()) continue;
    templates[m[2] ? `${m[1]}-${m[2]}`.toLowerCase() : m[1]!.toLowerCase()] = value.trim().replace(/\\n/g, '\n');
  }
  return { brand, appHash: r.str('SMS_ANDROID_APP_HASH'), templates: Object.freeze(templates) };
}
