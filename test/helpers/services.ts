// Shared test helpers: real service addresses, unique names, waiting on events (not time).

import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';

export const BROKERS = (process.env.VIRGO_TEST_BROKERS ?? '127.0.0.1:9092').split(',');
export const REDIS_URL = process.env.VIRGO_TEST_REDIS ?? 'redis://127.0.0.1:6379';

/** A name no other test (or earlier run) uses: topics and groups are shared by the broker. */
export function unique(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Resolves when `check` returns a truthy value; polls on a short tick, fails with `what`. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 20_000,
  tickMs = 20,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, tickMs));
  }
}

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, feeding `input` to stdin. */
export function run(cmd: string, args: string[], input?: string | Buffer, timeoutMs = 60_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} ran over ${timeoutMs} ms`));
    }, timeoutMs);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    if (input !== undefined) p.stdin.end(input);
    else p.stdin.end();
  });
}

/** The `virgo` CLI as a child process (as a user runs it). */
export function virgo(args: string[], input?: string | Buffer, timeoutMs = 60_000): Promise<Ran> {
  return run(process.execPath, ['bin/virgo.js', ...args], input, timeoutMs);
}

export function spawnVirgo(args: string[]): ChildProcess {
  return spawn(process.execPath, ['bin/virgo.js', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
}
