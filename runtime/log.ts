// Levelled, structured logging to stderr (stdout stays for data: `virgo subscribe | jq`).
// One line per event, JSON when piped, short text on a TTY. Level from VIRGO_LOG_LEVEL.
import { inspect } from 'node:util';

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const;
export type Level = (typeof LEVELS)[number];
const RANK: Record<Level, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, silent: 100 };

export type Fields = Record<string, unknown>;

export interface Logger {
  readonly name: string;
  trace(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(name: string): Logger;
  enabled(level: Level): boolean;
}

interface Sink {
  level: Level;
  json: boolean;
  write(line: string): void;
}

function defaultLevel(): Level {
  const env = process.env.VIRGO_LOG_LEVEL?.toLowerCase();
  if (env && (LEVELS as readonly string[]).includes(env)) return env as Level;
  // Tests run quiet unless asked: their output is the assertions.
  return process.env.VITEST ? 'error' : 'info';
}

const sink: Sink = {
  level: defaultLevel(),
  json: !process.stderr.isTTY || process.env.VIRGO_LOG_FORMAT === 'json',
  write: (line) => process.stderr.write(line),
};

export function setLogLevel(level: Level): void {
  sink.level = level;
}

export function getLogLevel(): Level {
  return sink.level;
}

/** Redirects log output (tests capture it; the live status view keeps the screen clean). */
export function setLogWriter(write: (line: string) => void, json = true): void {
  sink.write = write;
  sink.json = json;
}

function serialise(v: unknown): unknown {
  if (v instanceof Error) return { error: v.name, message: v.message };
  if (typeof v === 'bigint') return v.toString();
  if (Buffer.isBuffer(v)) return `<${v.length} bytes>`;
  return v;
}

function emit(name: string, level: Level, msg: string, fields?: Fields): void {
  if (RANK[level] < RANK[sink.level]) return;
  if (sink.json) {
    const rec: Fields = { t: new Date().toISOString(), level, name, msg };
    if (fields) for (const [k, v] of Object.entries(fields)) rec[k] = serialise(v);
    sink.write(`${JSON.stringify(rec)}\n`);
  } else {
    const extra = fields
      ? ` ${Object.entries(fields)
          .map(
            ([k, v]) =>
              `${k}=${typeof v === 'string' ? v : inspect(serialise(v), { breakLength: Infinity })}`,
          )
          .join(' ')}`
      : '';
    sink.write(`${level.toUpperCase().padEnd(5)} ${name}: ${msg}${extra}\n`);
  }
}

export function createLogger(name: string): Logger {
  return {
    name,
    trace: (m, f) => emit(name, 'trace', m, f),
    debug: (m, f) => emit(name, 'debug', m, f),
    info: (m, f) => emit(name, 'info', m, f),
    warn: (m, f) => emit(name, 'warn', m, f),
    error: (m, f) => emit(name, 'error', m, f),
    child: (sub) => createLogger(`${name}.${sub}`),
    enabled: (level) => RANK[level] >= RANK[sink.level],
  };
}
