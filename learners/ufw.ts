// UFW firewall miner: the original Spark job's `SRC=` result (most prominent blocked source IP),
// plus block rate and top destination port, exact over a sliding event-time window per host.
import { join } from 'node:path';
import type { KernelEvent } from '../schemas/index.ts';
import { readJson, writeJsonAtomic } from './snapshot.ts';
import type { Learner, LearnerContext, Proposal, VariableDecl } from './types.ts';
import { SlidingCounter, type SlidingCounterJson } from './window.ts';

export const UFW_MODEL = 'ufw-exact@1';

export interface UfwOptions {
  /** window length, seconds (default 600: ten minutes) */
  windowSec?: number;
  /** bucket length, seconds; the window slides by whole buckets (default 10) */
  bucketSec?: number;
}

export const UFW_VARIABLES: readonly VariableDecl[] = [
  {
    key: 'ufw.top_src_ip',
    type: 'ip',
    unit: null,
    description: 'source IP with the most UFW BLOCKs over the window (the original Spark job SRC= result)',
    dwellMs: 30_000,
  },
  {
    key: 'ufw.block_rate',
    type: 'float',
    unit: 'blocks/min',
    description: 'UFW BLOCK lines per minute over the window',
    min: 0,
    max: 1_000_000,
    decimals: 2,
    hysteresis: 0.5,
    dwellMs: 10_000,
  },
  {
    key: 'ufw.top_dst_port',
    type: 'int',
    unit: 'port',
    description: 'destination port with the most UFW BLOCKs over the window',
    min: 0,
    max: 65_535,
    dwellMs: 30_000,
  },
];

export interface UfwFields {
  action: string;
  src: string | undefined;
  dport: string | undefined;
}

const ACTION_RE = /\[UFW ([A-Z ]+?)\]/;
const SRC_RE = /\bSRC=(\S+)/;
const DPT_RE = /\bDPT=(\d+)/;

/** The UFW facts of an event: the parser's typed fields, else the message itself. */
export function ufwFields(e: KernelEvent): UfwFields | undefined {
  const isUfw = e.family === 'ufw' || e.message.includes('[UFW ');
  if (!isUfw) return undefined;
  const f = e.fields ?? {};
  const action = (f.action ?? f.ACTION ?? ACTION_RE.exec(e.message)?.[1] ?? '').toUpperCase();
  return {
    action,
    src: f.SRC ?? SRC_RE.exec(e.message)?.[1],
    dport: f.DPT ?? DPT_RE.exec(e.message)?.[1],
  };
}

interface HostState {
  src: SlidingCounter;
  port: SlidingCounter;
}

interface UfwStateJson {
  hosts: [string, { src: SlidingCounterJson; port: SlidingCounterJson }][];
  events: number;
  blocks: number;
}

export class UfwLearner implements Learner {
  readonly name = 'ufw';
  readonly variables = UFW_VARIABLES;
  readonly needsTf = false;
  private readonly hosts = new Map<string, HostState>();
  private readonly bucketMs: number;
  private readonly buckets: number;
  private events = 0;
  private blocks = 0;

  constructor(opts: UfwOptions = {}) {
    const windowSec = opts.windowSec ?? 600;
    const bucketSec = opts.bucketSec ?? 10;
    this.bucketMs = bucketSec * 1000;
    this.buckets = Math.max(1, Math.round(windowSec / bucketSec));
  }

  get windowSec(): number {
    return (this.bucketMs * this.buckets) / 1000;
  }

  private host(h: string): HostState {
    let s = this.hosts.get(h);
    if (!s) {
      s = {
        src: new SlidingCounter(this.bucketMs, this.buckets),
        port: new SlidingCounter(this.bucketMs, this.buckets),
      };
      this.hosts.set(h, s);
    }
    return s;
  }

  async onEvents(events: readonly KernelEvent[]): Promise<Proposal[]> {
    const touched = new Set<string>();
    for (const e of events) {
      const u = ufwFields(e);
      if (!u) continue;
      this.events++;
      if (!u.action.includes('BLOCK')) continue;
      this.blocks++;
      const s = this.host(e.host);
      // Every block counts towards the rate, including those without a source (PROTO=2 multicast).
      s.src.add(e.ts, u.src ?? '');
      if (u.dport !== undefined) s.port.add(e.ts, u.dport);
      else s.port.advance(e.ts);
      touched.add(e.host);
    }
    const out: Proposal[] = [];
    for (const h of touched) out.push(...this.propose(h));
    return out;
  }

  /** The current answer for one host (also what the tests check against brute force). */
  answer(host: string): {
    topSrc?: { ip: string; count: number };
    topPort?: { port: number; count: number };
    blocks: number;
    ratePerMin: number;
  } {
    const s = this.hosts.get(host);
    if (!s) return { blocks: 0, ratePerMin: 0 };
    // The source-less blocks count in the total but cannot be the top source.
    const srcCounts = s.src.counts;
    let topSrc: { ip: string; count: number } | undefined;
    for (const [ip, c] of srcCounts) {
      if (ip === '') continue;
      if (!topSrc || c > topSrc.count || (c === topSrc.count && ip < topSrc.ip)) topSrc = { ip, count: c };
    }
    const p = s.port.top();
    return {
      ...(topSrc ? { topSrc } : {}),
      ...(p ? { topPort: { port: Number(p.key), count: p.count } } : {}),
      blocks: s.src.total,
      ratePerMin: s.src.total / (this.windowSec / 60),
    };
  }

  private propose(host: string): Proposal[] {
    const a = this.answer(host);
    const s = this.hosts.get(host)!;
    const w = `window=${this.windowSec}s blocks=${a.blocks} distinct_src=${s.src.counts.size}`;
    const out: Proposal[] = [
      {
        host,
        key: 'ufw.block_rate',
        value: a.ratePerMin,
        why: w,
        confidence: 1,
        model: UFW_MODEL,
      },
    ];
    if (a.topSrc) {
      out.push({
        host,
        key: 'ufw.top_src_ip',
        value: a.topSrc.ip,
        why: `${w} top_src=${a.topSrc.ip} count=${a.topSrc.count}`,
        confidence: a.topSrc.count / Math.max(1, a.blocks),
        model: UFW_MODEL,
      });
    }
    if (a.topPort) {
      out.push({
        host,
        key: 'ufw.top_dst_port',
        value: a.topPort.port,
        why: `${w} top_dpt=${a.topPort.port} count=${a.topPort.count}`,
        confidence: a.topPort.count / Math.max(1, a.blocks),
        model: UFW_MODEL,
      });
    }
    return out;
  }

  async save(dir: string): Promise<void> {
    const j: UfwStateJson = {
      hosts: [...this.hosts].map(([h, s]) => [h, { src: s.src.toJSON(), port: s.port.toJSON() }]),
      events: this.events,
      blocks: this.blocks,
    };
    writeJsonAtomic(join(dir, 'state.json'), j);
  }

  async load(dir: string): Promise<void> {
    const j = readJson<UfwStateJson>(join(dir, 'state.json'));
    this.hosts.clear();
    for (const [h, s] of j.hosts) {
      this.hosts.set(h, { src: SlidingCounter.fromJSON(s.src), port: SlidingCounter.fromJSON(s.port) });
    }
    this.events = j.events;
    this.blocks = j.blocks;
  }

  stats(): Record<string, number | string> {
    return { model: UFW_MODEL, events: this.events, blocks: this.blocks, hosts: this.hosts.size };
  }

  dispose(): void {}
}

export async function createUfwLearner(
  _ctx: LearnerContext,
  opts: Record<string, unknown> = {},
): Promise<Learner> {
  return new UfwLearner(opts as UfwOptions);
}
