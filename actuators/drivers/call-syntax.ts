// The original's request syntax, `name(arg,arg,…)` typed into telnet, parsed strictly: a request
// either names a known command with well-formed arguments or gets an error that says what was
// expected. Data arguments may themselves contain commas and parentheses, so each command splits
// its own arguments (first/last commas), never by a naive split.
import { DriverError, quote } from './driver-server.ts';

export interface Call {
  name: string;
  /** everything between the first `(` and the final `)` */
  inner: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `name(inner)`, or undefined when the line does not have that shape. */
export function parseCall(line: string): Call | undefined {
  const open = line.indexOf('(');
  if (open <= 0 || !line.endsWith(')')) return undefined;
  const name = line.slice(0, open).trim();
  if (!NAME.test(name)) return undefined;
  return { name, inner: line.slice(open + 1, -1) };
}

/** A call to one of `commands`, or a DriverError naming them. */
export function expectCall(line: string, commands: readonly string[]): Call {
  const call = parseCall(line);
  if (!call) {
    const bare = /^([A-Za-z_][A-Za-z0-9_]*)/.exec(line)?.[1];
    if (bare && commands.includes(bare)) {
      throw new DriverError('malformed', `${bare}: expected ${bare}(…) with the arguments in parentheses`);
    }
    throw new DriverError(
      'unknown-command',
      `${quote(line)} is not a request; expected one of ${commands.map((c) => `${c}(…)`).join(', ')} (or help)`,
    );
  }
  if (!commands.includes(call.name)) {
    throw new DriverError(
      'unknown-command',
      `unknown command ${quote(call.name)}; expected one of ${commands.join(', ')}`,
    );
  }
  return call;
}

/** Splits at the first `n` commas; the last part keeps any further commas. */
export function splitFirst(inner: string, n: number): string[] {
  const parts: string[] = [];
  let rest = inner;
  for (let i = 0; i < n; i++) {
    const c = rest.indexOf(',');
    if (c < 0) break;
    parts.push(rest.slice(0, c));
    rest = rest.slice(c + 1);
  }
  parts.push(rest);
  return parts;
}

/** Splits off the last `n` comma-separated parts; the first part keeps any other commas. */
export function splitLast(inner: string, n: number): string[] {
  const parts: string[] = [];
  let rest = inner;
  for (let i = 0; i < n; i++) {
    const c = rest.lastIndexOf(',');
    if (c < 0) break;
    parts.unshift(rest.slice(c + 1));
    rest = rest.slice(0, c);
  }
  parts.unshift(rest);
  return parts;
}

const U64_MAX = (1n << 64n) - 1n;

/** A decimal u64 (VUIDs): digits only, at most 2^64-1. */
export function parseU64(s: string, what: string): bigint {
  const t = s.trim();
  if (!/^\d{1,20}$/.test(t))
    throw new DriverError('malformed', `${what} must be a decimal number, got ${quote(t)}`);
  const v = BigInt(t);
  if (v > U64_MAX) throw new DriverError('malformed', `${what} ${t} is larger than 2^64-1`);
  return v;
}

/** A non-negative safe integer no larger than `max`. */
export function parseCount(s: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const t = s.trim();
  if (!/^\d{1,16}$/.test(t)) {
    throw new DriverError('malformed', `${what} must be a non-negative integer, got ${quote(t)}`);
  }
  const v = Number(t);
  if (v > max) throw new DriverError('too-large', `${what} ${v} is more than the limit of ${max}`);
  return v;
}
