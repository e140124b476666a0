// The write ports' shared secret: where it comes from (a file or the environment, never a flag:
// a command line shows in `ps` and shell history) and how it is compared (digests of equal length,
// in constant time, so neither the content nor the length of the secret leaks through timing).
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { type OptionDef, UsageError } from './config.ts';
import { createLogger } from './log.ts';

const log = createLogger('secret');

/** The services that take a secret, each with its own environment variable. */
export const SECRET_ENV = {
  queue: 'VIRGO_QUEUE_SECRET',
  drivers: 'VIRGO_DRIVERS_SECRET',
  /** pins through the web dashboard (Authorization: Bearer, cli/dashboard/guard.ts) */
  dashboard: 'VIRGO_DASHBOARD_SECRET',
} as const;
export type SecretService = keyof typeof SECRET_ENV;

/** The secret every write port shares unless its own variable says otherwise. */
export const SHARED_SECRET_ENV = 'VIRGO_SECRET';

/** The longest secret accepted: it travels in one `AUTH <secret>` line. */
export const MAX_SECRET_BYTES = 1024;

/** `--secret-file FILE`, for every command that serves or uses a write port. */
export const SECRET_FILE_OPTION = {
  type: 'string',
  env: 'VIRGO_SECRET_FILE',
  arg: 'FILE',
  description:
    'write ports (queue, ZeroMQ, drivers) and pins from the dashboard require this secret (the first line of FILE); VIRGO_QUEUE_SECRET / VIRGO_DRIVERS_SECRET / VIRGO_DASHBOARD_SECRET / VIRGO_SECRET set it from the environment',
} as const satisfies OptionDef;

/**
 * `--secret`, kept only to refuse it with the way out: a secret on the command line is readable by
 * every user of the machine (`ps`, /proc/PID/cmdline) and stays in shell history.
 */
export const SECRET_FLAG_REFUSED = {
  type: 'string',
  hidden: true,
  description: 'refused: use --secret-file or the environment',
} as const satisfies OptionDef;

/** Throws a UsageError naming the file and environment forms when `--secret` was given. */
export function refuseSecretFlag(value: unknown, service: SecretService | 'all'): void {
  if (value === undefined) return;
  const env = service === 'all' ? `${SECRET_ENV.queue} / ${SECRET_ENV.drivers}` : SECRET_ENV[service];
  throw new UsageError(
    '--secret is not accepted: a secret on the command line (or in the config file) is visible to ' +
      `every user in ps and stays in shell history. Put it in a file only you can read and give ` +
      `--secret-file FILE (or VIRGO_SECRET_FILE=FILE), or set ${env} or ${SHARED_SECRET_ENV} in the environment`,
  );
}

export interface ResolvedSecret {
  secret: string;
  /** where it came from, for logs (never the secret itself) */
  source: string;
}

/** Refuses what cannot travel in one `AUTH <secret>` line. */
export function checkSecret(secret: string, source: string): string {
  if (secret === '') throw new UsageError(`the secret from ${source} is empty`);
  if (/[\r\n\0]/.test(secret)) {
    throw new UsageError(`the secret from ${source} contains a line break or NUL; it must be one line`);
  }
  if (Buffer.byteLength(secret) > MAX_SECRET_BYTES) {
    throw new UsageError(`the secret from ${source} is longer than ${MAX_SECRET_BYTES} bytes`);
  }
  return secret;
}

/** The first line of `path`, without its line ending. Warns when others may read the file. */
export function readSecretFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(
      `cannot read the secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const line = text.replace(/\r?\n$/, '');
  if (line.includes('\n')) {
    throw new UsageError(
      `the secret file ${path} holds more than one line; put the secret alone on one line`,
    );
  }
  const secret = checkSecret(line, `the file ${path}`);
  try {
    if ((statSync(path).mode & 0o077) !== 0) {
      log.warn('the secret file is readable by other users; chmod 600 it', { path });
    }
  } catch {
    // read a moment ago; a stat failure now changes nothing
  }
  return secret;
}

/**
 * The secret of `service`, or undefined when none is configured. A service's own variable wins
 * (VIRGO_QUEUE_SECRET, VIRGO_DRIVERS_SECRET: several services, several secrets); else the shared
 * one: `secretFile` (--secret-file, VIRGO_SECRET_FILE or the config file), else VIRGO_SECRET.
 */
export function resolveSecret(
  service: SecretService,
  secretFile: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedSecret | undefined {
  const own = env[SECRET_ENV[service]];
  if (own !== undefined && own !== '') {
    return { secret: checkSecret(own, SECRET_ENV[service]), source: SECRET_ENV[service] };
  }
  if (secretFile !== undefined && secretFile !== '') {
    return { secret: readSecretFile(secretFile), source: `file ${secretFile}` };
  }
  const shared = env[SHARED_SECRET_ENV];
  if (shared !== undefined && shared !== '') {
    return { secret: checkSecret(shared, SHARED_SECRET_ENV), source: SHARED_SECRET_ENV };
  }
  return undefined;
}

/** SHA-256 of the secret: what a server keeps and compares. */
export function secretDigest(secret: string | Buffer): Buffer {
  return createHash('sha256').update(secret).digest();
}

/**
 * Whether `offered` is the secret whose digest is `expected`. Both sides are hashed to 32 bytes
 * first, so timingSafeEqual always compares equal lengths and the time taken says nothing about
 * the secret's length or how much of it matched.
 */
export function secretMatches(expected: Buffer, offered: string | Buffer): boolean {
  return timingSafeEqual(expected, secretDigest(offered));
}

/** `--handshake-timeout SECONDS`: how long a connection may take to authenticate. */
export const HANDSHAKE_TIMEOUT_OPTION = {
  type: 'number',
  env: 'VIRGO_HANDSHAKE_TIMEOUT',
  default: 5,
  arg: 'SECONDS',
  description: 'with a secret: a connection that has not authenticated within this long is closed',
} as const satisfies OptionDef;

/** The handshake timeout in ms, from `--handshake-timeout` seconds. */
export function handshakeTimeoutMs(seconds: number | undefined): number {
  const s = seconds ?? HANDSHAKE_TIMEOUT_OPTION.default;
  if (!Number.isFinite(s) || s <= 0 || s > 3600) {
    throw new UsageError(`--handshake-timeout must be between 0 and 3600 seconds, got ${s}`);
  }
  return Math.round(s * 1000);
}
