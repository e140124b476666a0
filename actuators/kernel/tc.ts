// Bandwidth caps with tc: a token-bucket filter (tbf) as an interface's root qdisc. Read through
// `tc -j qdisc show` (iproute2's stable JSON), written with `tc qdisc replace … root tbf`.
// Only two starting points are accepted, because only they can be put back exactly: the kernel's
// default root qdisc (handle 0:, restored by deleting ours) and a tbf (restored with its rate,
// burst and latency or limit). Anything else an operator configured (htb, cake, fq_codel with a
// handle …) makes the actuator refuse to start rather than replace it.
import type { CommandRunner } from './commands.ts';

export type RootQdisc =
  /** the kernel's own (noqueue, pfifo_fast, mq …, or none while the link is down) */
  | { kind: 'default'; qdisc: string }
  | { kind: 'tbf'; rateBytes: number; burstBytes: number; latencyUs?: number; limitBytes?: number }
  | { kind: 'foreign'; qdisc: string; handle: string };

interface TcQdiscJson {
  kind?: string;
  handle?: string;
  root?: boolean;
  options?: { rate?: number; burst?: number; lat?: number; limit?: number };
}

export async function readRoot(run: CommandRunner, dev: string): Promise<RootQdisc> {
  const out = await run.run(['tc', '-j', 'qdisc', 'show', 'dev', dev]);
  return rootFromJson(out);
}

export function rootFromJson(out: string): RootQdisc {
  const list = (out.trim() === '' ? [] : JSON.parse(out)) as TcQdiscJson[];
  const root = list.find((q) => q.root === true);
  if (!root) return { kind: 'default', qdisc: 'none' };
  const qdisc = root.kind ?? 'unknown';
  if (root.handle === '0:') return { kind: 'default', qdisc };
  const o = root.options ?? {};
  if (qdisc === 'tbf' && typeof o.rate === 'number' && typeof o.burst === 'number') {
    return {
      kind: 'tbf',
      rateBytes: o.rate,
      burstBytes: o.burst,
      ...(typeof o.lat === 'number' ? { latencyUs: o.lat } : {}),
      ...(typeof o.limit === 'number' && typeof o.lat !== 'number' ? { limitBytes: o.limit } : {}),
    };
  }
  return { kind: 'foreign', qdisc, handle: root.handle ?? '?' };
}

/** The bucket when the policy names none: 10 ms of traffic at the rate, at least 32 KiB. */
export function defaultBurst(mbit: number): number {
  return Math.max(32 * 1024, Math.ceil((mbit * 1e6) / 8 / 100));
}

export function tbfArgv(dev: string, mbit: number, burstBytes: number, latencyMs: number): string[] {
  return replaceTbf(dev, `${mbit}mbit`, burstBytes, ['latency', `${latencyMs}ms`]);
}

/** `tc qdisc replace dev DEV root tbf rate RATE burst BYTES` and what bounds its queue (`tail`). */
function replaceTbf(dev: string, rate: string, burstBytes: number, tail: string[]): string[] {
  return [
    'tc',
    'qdisc',
    'replace',
    'dev',
    dev,
    'root',
    'tbf',
    'rate',
    rate,
    'burst',
    String(burstBytes),
    ...tail,
  ];
}

/** The command that puts `original` back, or undefined when `current` already is it. */
export function restoreArgv(dev: string, original: RootQdisc, current: RootQdisc): string[] | undefined {
  if (original.kind === 'default') {
    return current.kind === 'default' ? undefined : ['tc', 'qdisc', 'del', 'dev', dev, 'root'];
  }
  if (original.kind === 'tbf') {
    if (current.kind === 'tbf' && sameTbf(original, current)) return undefined;
    const tail =
      original.latencyUs !== undefined
        ? ['latency', `${original.latencyUs}us`]
        : ['limit', String(original.limitBytes ?? original.burstBytes)];
    return replaceTbf(dev, `${original.rateBytes * 8}bit`, original.burstBytes, tail);
  }
  throw new Error(`cannot restore a ${original.qdisc} qdisc on ${dev}: it was not the actuator's to replace`);
}

/** tc rounds rates to its clock's resolution: equal within 0.1 %. */
export function sameRate(aBytes: number, bBytes: number): boolean {
  return Math.abs(aBytes - bBytes) <= Math.max(1, 0.001 * Math.max(aBytes, bBytes));
}

function sameTbf(a: { rateBytes: number }, b: { rateBytes: number }): boolean {
  return sameRate(a.rateBytes, b.rateBytes);
}

/** The rate a root qdisc caps at, in Mbit/s; undefined when it caps nothing. */
export function cappedMbit(q: RootQdisc): number | undefined {
  return q.kind === 'tbf' ? (q.rateBytes * 8) / 1e6 : undefined;
}

export function describeRoot(q: RootQdisc): string {
  switch (q.kind) {
    case 'default':
      return `kernel default qdisc (${q.qdisc})`;
    case 'tbf':
      return `tbf ${round1((q.rateBytes * 8) / 1e6)} Mbit/s`;
    case 'foreign':
      return `${q.qdisc} ${q.handle} (not the actuator's)`;
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
