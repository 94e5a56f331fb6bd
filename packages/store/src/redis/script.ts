import { createHash } from 'node:crypto';
import type { RedisClient } from './connection.js';

/**
 * A Lua script with named KEYS and ARGV, in the manner of BullMQ's: the source starts with `#!lua` (so Redis 7
 * refuses any key outside the declared slot) and a header naming each key and argument; the body reads them
 * as `K.name` and `A.name` (strings: `tonumber()` where a number is meant). A trailing variable list is
 * `K.rest` / `A.rest` (Lua arrays) when `restKeys` / `restArgs` name it.
 *
 * Every script answers a flat list: an outcome, then name/value pairs, e.g. `{'limited', 'scope', 'ip', 'ms', 900}`,
 * which `run` decodes into `{ outcome: 'limited', scope: 'ip', ms: '900' }` (values as strings): callers read
 * results by name, never by position.
 */
export interface ScriptDef<K extends string, A extends string> {
  /** Its name, in its source's header and in the layout test's list. */
  readonly name: string;
  /** One line: what it does, for the header. */
  readonly doc: string;
  readonly keys: readonly K[];
  readonly args: readonly A[];
  readonly restKeys?: string;
  readonly restArgs?: string;
  /** Lua shared by several scripts (field names, helpers), placed before the body. */
  readonly lib?: string;
  readonly body: string;
}

/** A decoded answer: the outcome and the named values that came with it. */
export type ScriptResult = { readonly outcome: string } & Readonly<Record<string, string | undefined>>;

export interface Script<K extends string, A extends string> {
  readonly name: string;
  /** The Lua source as Redis sees it (header included). */
  readonly source: string;
  /** The source's SHA1, as EVALSHA names it. */
  readonly sha: string;
  run(
    redis: RedisClient,
    keys: Readonly<Record<K, string>>,
    args: Readonly<Record<A, string | number>>,
    rest?: { keys?: readonly string[]; args?: readonly (string | number)[] },
  ): Promise<ScriptResult>;
}

/** Every script of the store, as defined: the layout test checks each starts with `#!lua` and stays in one slot. */
export const SCRIPTS: Script<string, string>[] = [];

/**
 * Scripts run by EVALSHA, and by EVAL when the server does not know them yet (NOSCRIPT: a new server, a restart,
 * a failover, SCRIPT FLUSH); Redis caches the source then, so the next EVALSHA finds it.
 *
 * Why not ioredis' `defineCommand`: every pipeline ioredis builds copies each defined command onto itself. When the
 * API's connection was auto-pipelined (one pipeline per event-loop turn; off since, see connection.ts), that copy
 * was 3 to 7 % of the API's and the callbacks app's CPU under load, and a command defined after the current turn's
 * pipeline was made was missing from it: ioredis threw outside any promise (ioredis issue #1931). Plain EVALSHA
 * has neither problem.
 */
export function defineScript<K extends string, A extends string>(def: ScriptDef<K, A>): Script<K, A> {
  const source = luaSource(def);
  const sha = createHash('sha1').update(source).digest('hex');
  const script: Script<K, A> = {
    name: def.name,
    source,
    sha,
    async run(redis, keys, args, rest = {}) {
      const keyList = [...def.keys.map((k) => keys[k]), ...(rest.keys ?? [])];
      const argList = [...def.args.map((a) => args[a]), ...(rest.args ?? [])];
      let raw: unknown;
      try {
        raw = await redis.evalsha(sha, keyList.length, ...keyList, ...argList);
      } catch (err) {
        if (!isNoScript(err)) throw err;
        raw = await redis.eval(source, keyList.length, ...keyList, ...argList);
      }
      return decode(raw);
    },
  };
  SCRIPTS.push(script as unknown as Script<string, string>);
  return script;
}

const isNoScript = (err: unknown) => err instanceof Error && err.message.startsWith('NOSCRIPT');

function luaSource<K extends string, A extends string>(def: ScriptDef<K, A>): string {
  const header = [
    '#!lua',
    `-- ${def.name}: ${def.doc}`,
    `-- KEYS: ${[...def.keys, ...(def.restKeys ? [`${def.restKeys}...`] : [])].join(', ') || '(none)'}`,
    `-- ARGV: ${[...def.args, ...(def.restArgs ? [`${def.restArgs}...`] : [])].join(', ') || '(none)'}`,
    '-- Answers {outcome, name, value, ...}.',
  ];
  const bind = (table: string, src: string, names: readonly string[], rest: string | undefined) => {
    const fields = names.map((n, i) => `${n} = ${src}[${i + 1}]`);
    const lines = [`local ${table} = {${fields.join(', ')}}`];
    if (rest) {
      lines.push(`${table}.${rest} = {}`);
      lines.push(`for i = ${names.length + 1}, #${src} do ${table}.${rest}[#${table}.${rest} + 1] = ${src}[i] end`);
    }
    return lines.join('\n');
  };
  return [
    ...header,
    bind('K', 'KEYS', def.keys, def.restKeys),
    bind('A', 'ARGV', def.args, def.restArgs),
    def.lib ?? '',
    def.body.trim(),
    '',
  ].join('\n');
}

function decode(raw: unknown): ScriptResult {
  const list = Array.isArray(raw) ? raw : [raw];
  const out: Record<string, string> = { outcome: String(list[0]) };
  for (let i = 1; i + 1 < list.length; i += 2) out[String(list[i])] = list[i + 1] == null ? '' : String(list[i + 1]);
  return out as ScriptResult;
}

/** Lua: the time in ms: `arg` when a caller gave one (tests that move time), else this node's TIME. */
export const CLOCK_LUA = `
local function clock(arg)
  local n = tonumber(arg)
  if n and n > 0 then return n end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;
