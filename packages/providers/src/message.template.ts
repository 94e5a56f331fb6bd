/** What an OTP message says: the code, and how long it lasts. */
export interface OtpMessageInput {
  readonly code: string;
  readonly ttlSeconds: number;
  /** BCP 47 tag or language (`fr`, `fr-FR`, `fr_FR`); unknown ones fall back to English. */
  readonly locale?: string | null;
}

/**
 * One template per language, in GSM-7 characters only, so that a message with a 10-digit code still
 * fits one 160-character SMS segment (see message.template.test.ts).
 */
const TEMPLATES = {
  en: (code: string, minutes: number) =>
    `Your verification code is ${code}. It expires in ${minutes} ${minutes === 1 ? 'minute' : 'minutes'}. Do not share it with anyone.`,
  fr: (code: string, minutes: number) =>
    `Votre code de vérification est ${code}. Il expire dans ${minutes} ${minutes === 1 ? 'minute' : 'minutes'}. Ne le communiquez à personne.`,
} as const satisfies Record<string, (code: string, minutes: number) => string>;

export type MessageLocale = keyof typeof TEMPLATES;
export const MESSAGE_LOCALES = Object.freeze(Object.keys(TEMPLATES) as MessageLocale[]);
export const DEFAULT_LOCALE: MessageLocale = 'en';

/** The template language for a requested locale: its language part if we have it, else English. */
export function resolveLocale(locale: string | null | undefined): MessageLocale {
  const lang = (locale ?? '').trim().toLowerCase().split(/[-_]/)[0] ?? '';
  return lang in TEMPLATES ? (lang as MessageLocale) : DEFAULT_LOCALE;
}

/**
 * The SMS text of an OTP. The lifetime is told in whole minutes, rounded down (never promising more
 * time than the code has), and at least 1.
 */
export function renderOtpMessage({ code, ttlSeconds, locale }: OtpMessageInput): string {
  const minutes = Math.max(1, Math.floor(ttlSeconds / 60));
  return TEMPLATES[resolveLocale(locale)](code, minutes);
}
