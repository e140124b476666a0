// UFW firewall miner: the original Spark job's `SRC=` result (most prominent blocked source IP),
// plus block rate and top destination port, per host, by two declared definitions:
// - over a sliding event-time window (exact, whole buckets): `ufw.top_src_ip`, `ufw.block_rate`,
//   `ufw.top_dst_port`, what is happening now;
// - over the whole history (everything admitted since the state began), the original job's own
//   answer over a log: `ufw.history.top_src_ip`, `ufw.history.blocks`, `ufw.history.top_dst_port`,
//   exact up to `historyKeys` distinct sources (ports) per host, then Space-Saving with its error
//   bound in `why` (learners/heavy-hitters.ts).
import { counter } from '../runtime/metrics.ts';
import type { KernelEvent } from '../schemas/index.ts';
import { HeavyHitters, type HeavyHittersJson, type Hitter } from './heavy-hitters.ts';
import { type LearnerState, loadLearnerState, saveLearnerState } from './learner-state.ts';
import type { Learner, LearnerContext, Proposal, VariableDecl } from './types.ts';
import { SlidingCounter, type SlidingCounterJson } from './window.ts';

export const UFW_MODEL = 'ufw-exact@1';

const mLate = counter(
  'virgo_learner_late_total',
  "records a learner's event-time window could no longer take (older than its oldest bucket)",
  ['learner'],
);

export interface UfwOptions {
  /** window length, seconds (default 600: ten minutes) */
  windowSec?: number;
  /** bucket length, seconds; the window slides by whole buckets (default 10) */
  bucketSec?: number;
  /** whole-history counts: distinct sources (and ports) per host counted exactly (default 10,000) */
  historyKeys?: number;
}

/** The declarations for a window of `windowSec` seconds. */
export function ufwVariables(windowSec = 600): VariableDecl[] {
  const window = { kind: 'window', seconds: windowSec } as const;
  const history = { kind: 'history' } as const;
  return [
    {
      key: 'ufw.top_src_ip',
      type: 'ip',
      unit: null,
      description: 'source IP with the most UFW BLOCKs over the window (what is attacking now)',
      definition: window,
      dwellMs: 30_000,
    },
    {
      key: 'ufw.block_rate',
      type: 'float',
      unit: 'blocks/min',
      description: 'UFW BLOCK lines per minute over the window',
      definition: window,
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
      definition: window,
      min: 0,
      max: 65_535,
      dwellMs: 30_000,
    },
    {
      key: 'ufw.history.top_src_ip',
      type: 'ip',
      unit: null,
      description:
        'source IP with the most UFW BLOCKs over everything seen (the original Spark job SRC= answer)',
      definition: history,
      dwellMs: 30_000,
    },
    {
      key: 'ufw.history.blocks',
      type: 'int',
      unit: 'blocks',
      description: 'UFW BLOCK lines seen over everything seen',
      definition: history,
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
      dwellMs: 30_000,
    },
    {
      key: 'ufw.history.top_dst_port',
      type: 'int',
      unit: 'port',
      description: 'destination port with the most UFW BLOCKs over everything seen',
      definition: history,
      min: 0,
      max: 65_535,
      dwellMs: 30_000,
    },
  ];
}

export const UFW_VARIABLES: readonly VariableDecl[] = ufwVariables();

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

interface History {
  blocks: number;
  src: HeavyHitters;
  port: HeavyHitters;
}

interface HostState {
  src: SlidingCounter;
  port: SlidingCounter;
  history: History;
}

/** A host's part of the state: its two windows and its whole history. */
interface UfwHost {
  src: SlidingCounterJson;
  port: SlidingCounterJson;
  /** absent in states saved before the history existed: it starts now (said in the README) */
  history?: { blocks: number; src: HeavyHittersJson; port: HeavyHittersJson };
}

/** The instance's part: counts for stats. */
interface UfwShared {
  events: number;
  blocks: number;
}

export class UfwLearner implements Learner {
  readonly name = 'ufw';
  readonly variables: readonly VariableDecl[];
  readonly needsTf = false;
  private readonly hosts = new Map<string, HostState>();
  private readonly bucketMs: number;
  private readonly buckets: number;
  private readonly historyKeys: number;
  private events = 0;
  private blocks = 0;
  private late = 0;

  constructor(opts: UfwOptions = {}) {
    const windowSec = opts.windowSec ?? 600;
    const bucketSec = opts.bucketSec ?? 10;
    this.bucketMs = bucketSec * 1000;
    this.buckets = Math.max(1, Math.round(windowSec / bucketSec));
    this.historyKeys = opts.historyKeys ?? 10_000;
    this.variables = ufwVariables(this.windowSec);
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
        history: this.newHistory(),
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
      if (!s.src.add(e.ts, u.src ?? '')) {
        // Older than the window's oldest bucket: the consumer stage's allowed lateness is shorter
        // than the window, so this is a configuration mistake, counted rather than hidden.
        this.late++;
        mLate.inc({ learner: 'ufw' });
      } else if (u.dport !== undefined) s.port.add(e.ts, u.dport);
      else s.port.advance(e.ts);
      // The whole history takes every admitted block, whatever the window made of it.
      s.history.blocks++;
      if (u.src !== undefined) s.history.src.add(u.src);
      if (u.dport !== undefined) s.history.port.add(u.dport);
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

  private newHistory(): History {
    return {
      blocks: 0,
      src: new HeavyHitters(this.historyKeys),
      port: new HeavyHitters(this.historyKeys),
    };
  }

  /** The whole-history answer for one host. */
  historyAnswer(host: string): { blocks: number; topSrc?: Hitter; topPort?: Hitter; exact: boolean } {
    const h = this.hosts.get(host)?.history;
    if (!h) return { blocks: 0, exact: true };
    const topSrc = h.src.top();
    const topPort = h.port.top();
    return {
      blocks: h.blocks,
      ...(topSrc ? { topSrc } : {}),
      ...(topPort ? { topPort } : {}),
      exact: h.src.exact && h.port.exact,
    };
  }

  private historyProposals(host: string): Proposal[] {
    const s = this.hosts.get(host)!.history;
    const a = this.historyAnswer(host);
    const bound = (hh: HeavyHitters, t: Hitter) =>
      hh.exact
        ? 'exact'
        : `space-saving k=${hh.capacity} overestimate<=${t.error}${hh.topIsCertain() ? ' certain' : ' not certain'}`;
    const w = `history blocks=${a.blocks} distinct_src${s.src.exact ? '' : '>='}=${s.src.size}`;
    const out: Proposal[] = [
      { host, key: 'ufw.history.blocks', value: a.blocks, why: w, confidence: 1, model: UFW_MODEL },
    ];
    if (a.topSrc) {
      out.push({
        host,
        key: 'ufw.history.top_src_ip',
        value: a.topSrc.key,
        why: `${w} top_src=${a.topSrc.key} count=${a.topSrc.count} (${bound(s.src, a.topSrc)})`,
        confidence: a.topSrc.count / Math.max(1, a.blocks),
        model: UFW_MODEL,
      });
    }
    if (a.topPort) {
      out.push({
        host,
        key: 'ufw.history.top_dst_port',
        value: Number(a.topPort.key),
        why: `${w} top_dpt=${a.topPort.key} count=${a.topPort.count} (${bound(s.port, a.topPort)})`,
        confidence: a.topPort.count / Math.max(1, a.blocks),
        model: UFW_MODEL,
      });
    }
    return out;
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
    out.push(...this.historyProposals(host));
    return out;
  }

  readonly state: LearnerState<UfwShared, UfwHost> = {
    learner: 'ufw',
    version: 1,
    shared: () => ({ events: this.events, blocks: this.blocks }),
    restoreShared: (j) => {
      this.events = j.events;
      this.blocks = j.blocks;
    },
    hosts: () => this.hosts.keys(),
    host: (h) => {
      const s = this.hosts.get(h);
      if (!s) return undefined;
      return {
        src: s.src.toJSON(),
        port: s.port.toJSON(),
        history: { blocks: s.history.blocks, src: s.history.src.toJSON(), port: s.history.port.toJSON() },
      };
    },
    restoreHost: (h, s) => {
      this.hosts.set(h, {
        src: SlidingCounter.fromJSON(s.src),
        port: SlidingCounter.fromJSON(s.port),
        history: s.history
          ? {
              blocks: s.history.blocks,
              src: HeavyHitters.fromJSON(s.history.src),
              port: HeavyHitters.fromJSON(s.history.port),
            }
          : this.newHistory(),
      });
    },
    dropHost: (h) => void this.hosts.delete(h),
    // Before the shared/host split: hosts beside the counts.
    legacy: (j) => ({
      shared: { events: j.events as number, blocks: j.blocks as number },
      hosts: j.hosts as [string, UfwHost][],
    }),
  };

  save(dir: string): Promise<void> {
    return saveLearnerState(dir, this.state);
  }

  load(dir: string): Promise<void> {
    return loadLearnerState(dir, this.state);
  }

  stats(): Record<string, number | string> {
    return {
      model: UFW_MODEL,
      events: this.events,
      blocks: this.blocks,
      late: this.late,
      hosts: this.hosts.size,
    };
  }

  dispose(): void {}
}

export async function createUfwLearner(
  _ctx: LearnerContext,
  opts: Record<string, unknown> = {},
): Promise<Learner> {
  return new UfwLearner(opts as UfwOptions);
}
