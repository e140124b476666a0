// Shared by benchmarks: percentiles, medians, timing, running third-party baselines.
import { spawn } from 'node:child_process';

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(xs: number[]): number {
  return percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
}

export function summarise(samples: number[]): { p50: number; p99: number; max: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] ?? Number.NaN, n: s.length };
}

/** Runs a command to completion; resolves with wall seconds, rejects on non-zero exit. */
export function timeCommand(cmd: string, args: string[], input?: string | Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    p.on('error', reject);
    p.on('close', (code) =>
      code === 0
        ? resolve(Number(process.hrtime.bigint() - t0) / 1e9)
        : reject(new Error(`${cmd} exited ${code}: ${err.slice(0, 500)}`)),
    );
    if (input !== undefined) p.stdin?.end(input);
  });
}

export const BENCH_BROKERS = (process.env.VIRGO_BENCH_BROKERS ?? '127.0.0.1:9092').split(',');

/** Where the public Loghub data sets come from; printed when an evaluation or benchmark lacks them. */
export const LOGHUB_SOURCE =
  'github.com/logpai/loghub (corrected ground truth: github.com/logpai/loghub-2.0; free for research ' +
  'and academic use, cite the Loghub paper; README.md, "Evaluation", says how)';

/** `--<name> DIR` naming a data folder: required (no default points outside the repository). */
export function requireDataDir(args: string[], name: string, who: string, needs: string): string {
  const i = args.indexOf(`--${name}`);
  const dir = i >= 0 ? args[i + 1] : undefined;
  if (dir === undefined || dir.startsWith('--')) {
    throw new DataDirError(
      `${who}: give --${name} DIR, a folder holding ${needs}; get them from ${LOGHUB_SOURCE}`,
    );
  }
  return dir;
}

export class DataDirError extends Error {}
