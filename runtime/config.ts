// Options resolve flags > environment > config file > default (docs/design.md §10).
// A command declares its options once; parsing, help text and errors come from that table.
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

export type OptionType = 'string' | 'number' | 'boolean';

export interface OptionDef {
  type: OptionType;
  description: string;
  env?: string;
  default?: string | number | boolean;
  short?: string;
  /** shown in help as the value's name, e.g. host:port */
  arg?: string;
  /** may be given more than once (string only) */
  multiple?: boolean;
  /** parsed but left out of --help (a refused, former flag) */
  hidden?: boolean;
}

export type OptionDefs = Record<string, OptionDef>;

type ValueOf<D extends OptionDef> = D['type'] extends 'number'
  ? number
  : D['type'] extends 'boolean'
    ? boolean
    : D['multiple'] extends true
      ? string[]
      : string;

export type OptionValues<D extends OptionDefs> = { [K in keyof D]: ValueOf<D[K]> | undefined };

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Options every command takes. */
export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h', description: 'show this help' },
  config: {
    type: 'string',
    env: 'VIRGO_CONFIG',
    arg: 'FILE',
    description: 'JSON config file (default ~/.config/virgo/config.json when present)',
  },
  'log-level': {
    type: 'string',
    env: 'VIRGO_LOG_LEVEL',
    arg: 'LEVEL',
    description: 'trace, debug, info, warn, error or silent',
  },
} as const satisfies OptionDefs;

/** Options of every command that talks to the Bus or Redis. */
export const CONNECTION_OPTIONS = {
  brokers: {
    type: 'string',
    env: 'VIRGO_BROKERS',
    arg: 'HOST:PORT,…',
    description: 'Kafka bootstrap brokers; without it the embedded in-process bus is used',
  },
  redis: {
    type: 'string',
    env: 'VIRGO_REDIS_URL',
    arg: 'URL',
    description: 'Redis URL (redis://127.0.0.1:6379); without it an in-process table is used',
  },
} as const satisfies OptionDefs;

function configFile(path: string | undefined): Record<string, unknown> {
  const p = path ?? join(homedir(), '.config', 'virgo', 'config.json');
  if (!existsSync(p)) {
    if (path) throw new UsageError(`config file ${p} does not exist`);
    return {};
  }
  try {
    const v = JSON.parse(readFileSync(p, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new UsageError(`config file ${p}: ${(err as Error).message}; expected {"brokers": "…", …}`);
  }
}

function coerce(
  name: string,
  def: OptionDef,
  raw: unknown,
  source: string,
): string | number | boolean | string[] {
  if (def.type === 'number') {
    const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
    if (!Number.isFinite(n) || String(raw).trim() === '') {
      throw new UsageError(`--${name} (${source}) must be a number, got ${JSON.stringify(raw)}`);
    }
    return n;
  }
  if (def.type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    const s = String(raw).toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(s)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
    throw new UsageError(`--${name} (${source}) must be true or false, got ${JSON.stringify(raw)}`);
  }
  if (def.multiple) return Array.isArray(raw) ? raw.map(String) : [String(raw)];
  return String(raw);
}

export interface Parsed<D extends OptionDefs> {
  values: OptionValues<D>;
  positionals: string[];
}

export function parseOptions<D extends OptionDefs>(
  defs: D,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Parsed<D> {
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, d] of Object.entries(defs)) {
    spec[name] = {
      type: d.type === 'boolean' ? 'boolean' : 'string',
      ...(d.short ? { short: d.short } : {}),
      ...(d.multiple ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options: spec, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]} (see --help)`);
  }
  const flags = parsed.values as Record<string, unknown>;
  const cfgPath = (flags.config as string | undefined) ?? env.VIRGO_CONFIG;
  const file = flags.help ? {} : configFile(cfgPath);
  const values: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(defs)) {
    if (flags[name] !== undefined) values[name] = coerce(name, d, flags[name], 'flag');
    else if (d.env && env[d.env] !== undefined && env[d.env] !== '')
      values[name] = coerce(name, d, env[d.env], `env ${d.env}`);
    else if (file[name] !== undefined) values[name] = coerce(name, d, file[name], 'config file');
    else values[name] = d.default;
  }
  return { values: values as OptionValues<D>, positionals: parsed.positionals };
}

export function optionsHelp(defs: OptionDefs): string {
  const rows = Object.entries(defs)
    .filter(([, d]) => !d.hidden)
    .map(([name, d]) => {
      const left = `${d.short ? `-${d.short}, ` : '    '}--${name}${d.type === 'boolean' ? '' : ` ${d.arg ?? (d.type === 'number' ? 'N' : 'VALUE')}`}`;
      const extra = [d.env ? `env ${d.env}` : '', d.default !== undefined ? `default ${d.default}` : '']
        .filter(Boolean)
        .join(', ');
      return [left, `${d.description}${extra ? ` (${extra})` : ''}`] as const;
    });
  const w = Math.min(34, Math.max(...rows.map(([l]) => l.length)) + 2);
  return rows.map(([l, r]) => `  ${l.padEnd(w)}${r}`).join('\n');
}

/** "host:port" or ":port" or "port" into parts, with a clear error. */
export function parseHostPort(s: string, defaultHost = '127.0.0.1'): { host: string; port: number } {
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) throw new UsageError(`"${s}" is not host:port (e.g. 127.0.0.1:64000)`);
  return { host: m[1] || defaultHost, port };
}

/** `--only a,b` style lists: each name one of `allowed`; "none" or "" is the empty list. */
export function parseNameList<T extends string>(flag: string, raw: string, allowed: readonly T[]): T[] {
  if (raw === 'none' || raw === '') return [];
  const out = raw.split(',').map((s) => s.trim());
  for (const x of out) {
    if (!(allowed as readonly string[]).includes(x)) {
      throw new UsageError(`--${flag}: ${JSON.stringify(x)} is not one of ${allowed.join(', ')} (or none)`);
    }
  }
  return out as T[];
}

/** `--allow a,b`: client addresses, each an IP as the server sees it (127.0.0.1, ::1, 10.0.0.7). */
export function parseAllowList(raw: unknown): string[] | undefined {
  if (raw === undefined || raw === '') return undefined;
  const list = String(raw)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const a of list) {
    if (isIP(a) === 0)
      throw new UsageError(`--allow: ${JSON.stringify(a)} is not an IP address (e.g. 127.0.0.1,10.0.0.7)`);
  }
  return list;
}
