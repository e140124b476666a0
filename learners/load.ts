// Process load / execution time: a tfjs linear regression from a node's scheduler and loadavg
// evidence to the execution time of a job there, feeding the CPU pooling balancer its
// least-loaded node (docs/design.md §6.2, the analytics-driven rule).
//
// Evidence lines accepted (the message part of a syslog/kernel line):
//   virgo_load: node=<name> load=<loadavg1> [runq=<runnable>] [exec_ms=<ms>]   an agent's sample;
//       with exec_ms it is also a training example (node defaults to the line's host)
//   INFO: task <comm>:<pid> blocked for more than <n> seconds.                 hung task
//   watchdog: BUG: soft lockup - CPU#<n> stuck for <n>s! [<comm>:<pid>]        soft lockup
//   sched: RT throttling activated                                             RT throttling
// Hung tasks, lockups and throttling are counted with exponential decay (half-life halfLifeSec).
// Training runs per event-time window (windowSec, default 10 s): the examples of a window are
// learnt in one round of `steps` optimiser steps when the first line of a later window arrives.
// The regression is computed in plain JS (linear-model.ts: tf.train.momentum's update on mean
// squared error, to float32 precision), because tfjs's per-call cost was 95% of this learner for
// six weights; the tfjs model is its saved form (the weights are written into it when the state
// is saved or handed on, and read from it when loaded), so saved states are unchanged.
import type { KernelEvent } from '../schemas/index.ts';
import { isSpaceCode, isWordCode } from './char-class.ts';
import { SavedUnit } from './dense-unit.ts';
import { type LearnerState, loadLearnerState, saveLearnerState } from './learner-state.ts';
import { LinearMomentum } from './linear-model.ts';
import { ReplayBuffer } from './replay-buffer.ts';
import { type Model, requireTf } from './tf-util.ts';
import type { Learner, LearnerContext, Proposal, Tf, VariableDecl } from './types.ts';
import { HOST_RE } from './variables.ts';
import { Rng } from './window.ts';

export const LOAD_ARCH = 'load-linreg@1';
export const LOAD_HEURISTIC = 'load-heuristic@1';
export const CLUSTER_HOST = 'cluster';

export interface LoadOptions {
  halfLifeSec?: number;
  /** a node that reported nothing for this long (event time) is not a candidate */
  staleSec?: number;
  /** training examples before the regression replaces the raw-load heuristic */
  warmup?: number;
  /** a new least-loaded node must beat the current one by this fraction */
  switchMargin?: number;
  steps?: number;
  learningRate?: number;
  seed?: number;
  /** event-time window whose examples are learnt together, when it closes (default 10 s) */
  windowSec?: number;
}

export const LOAD_VARIABLES: readonly VariableDecl[] = [
  {
    key: 'cpupooling.least_loaded_node',
    type: 'string',
    unit: null,
    description: 'node with the lowest predicted execution time, for the analytics-driven CPU pooling rule',
    definition: { kind: 'decayed', halfLifeSec: 300 },
    dwellMs: 30_000,
  },
  {
    key: 'cpupooling.predicted_exec_ms',
    type: 'float',
    unit: 'ms',
    description: 'predicted execution time of a pooled job on this node',
    min: 0,
    max: 3_600_000,
    decimals: 1,
    hysteresis: 5,
    definition: { kind: 'decayed', halfLifeSec: 300 },
    dwellMs: 5_000,
  },
];

const LOAD_RE = /virgo_load:\s*(.*)$/;
const KV_RE = /(\w+)=(\S+)/g;
const HUNG_RE = /task \S+:\d+ blocked for more than \d+ seconds/;
const LOCKUP_RE = /soft lockup - CPU#\d+ stuck/;
const THROTTLE_RE = /RT throttling activated/;

/** feature scales: keep inputs near unit range so plain gradient steps behave */
const SCALE = { load: 8, runq: 16, hung: 4, lockup: 4, throttle: 4 } as const;
const Y_SCALE = 1000; // exec_ms -> seconds
const REPLAY = 1024;
/** examples of one window learnt at most; past it the window is learnt early (a flood) */
const MAX_PENDING = 4096;
/** weight of one example in a node's correction, and the correction's bound (log scale, x/÷ 4) */
const BIAS_RATE = 0.1;
const MAX_BIAS = Math.log(4);
const BATCH = 64;

interface Decayed {
  v: number;
  t: number;
}

interface NodeState {
  load: number;
  runq: number;
  hung: Decayed;
  lockup: Decayed;
  throttle: Decayed;
  lastTs: number;
}

/** The instance's part of the state: the regression's training state and the chosen node. */
interface LoadShared {
  replay: { x: number[]; y: number }[];
  rng: number;
  steps: number;
  examples: number;
  current: string | null;
  latest: number;
  /** absent in states older than windowed training: the open window and its examples */
  window?: number | null;
  pending?: Example[];
}

interface Example {
  x: number[];
  y: number;
  node: string;
}

/** A host's part: the nodes its lines report (itself, or those an agent names with node=), each
 * with its learnt correction. */
interface LoadHost {
  nodes: [string, NodeState, number | null][];
}

export interface LoadSample {
  node: string;
  load?: number;
  runq?: number;
  execMs?: number;
}

const LOAD_MARK = 'virgo_load:';

/** A `virgo_load:` figure: a finite number >= 0, else absent. */
function loadNum(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** whether `s` holds a line terminator from `from` on (what `.` and `$` of a regex stop at) */
function hasLineTerminator(s: string, from: number): boolean {
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 10 || c === 13 || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}

/**
 * The `virgo_load:` sample of a message, if it is one. A character scan, not `matchAll` (an array
 * and two strings per pair, per load line): it reads the pairs `/(\w+)=(\S+)/g` would read after
 * `/virgo_load:\s*(.*)$/`, the last of a repeated key winning, and only the four keys used. A
 * message with a line terminator (never a kernel line) takes the regular expressions themselves.
 */
export function parseLoadLine(message: string, host: string): LoadSample | undefined {
  const at = message.indexOf(LOAD_MARK);
  if (at < 0) return undefined;
  if (hasLineTerminator(message, at)) return parseLoadLineRe(message, host);
  let node: string | undefined;
  let load: string | undefined;
  let runq: string | undefined;
  let execMs: string | undefined;
  const n = message.length;
  let i = at + LOAD_MARK.length;
  while (i < n) {
    if (!isWordCode(message.charCodeAt(i))) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < n && isWordCode(message.charCodeAt(j))) j++;
    // `\w+` ends where the word does; a pair needs `=` and one non-space right after it
    if (j + 1 >= n || message.charCodeAt(j) !== 61 || isSpaceCode(message.charCodeAt(j + 1))) {
      i = j;
      continue;
    }
    let k = j + 2;
    while (k < n && !isSpaceCode(message.charCodeAt(k))) k++;
    const len = j - i;
    if (len === 4 && message.startsWith('node', i)) node = message.slice(j + 1, k);
    else if (len === 4 && message.startsWith('load', i)) load = message.slice(j + 1, k);
    else if (len === 4 && message.startsWith('runq', i)) runq = message.slice(j + 1, k);
    else if (len === 7 && message.startsWith('exec_ms', i)) execMs = message.slice(j + 1, k);
    i = k;
  }
  return sample(host, node, load, runq, execMs);
}

function sample(
  host: string,
  node: string | undefined,
  load: string | undefined,
  runq: string | undefined,
  execMs: string | undefined,
): LoadSample {
  const out: LoadSample = { node: node ?? host };
  const l = loadNum(load);
  const r = loadNum(runq);
  const x = loadNum(execMs);
  if (l !== undefined) out.load = l;
  if (r !== undefined) out.runq = r;
  if (x !== undefined) out.execMs = x;
  return out;
}

/** The regular-expression reading, for the messages the scan leaves to it. */
function parseLoadLineRe(message: string, host: string): LoadSample | undefined {
  const m = LOAD_RE.exec(message);
  if (!m) return undefined;
  const kv: Record<string, string> = {};
  for (const x of m[1]!.matchAll(KV_RE)) kv[x[1]!] = x[2]!;
  return sample(host, kv.node, kv.load, kv.runq, kv.exec_ms);
}

export class LoadLearner implements Learner {
  readonly name = 'load';
  readonly needsTf = true;
  readonly variables = LOAD_VARIABLES;
  private readonly halfLifeMs: number;
  private readonly staleMs: number;
  private readonly warmup: number;
  private readonly margin: number;
  private readonly stepsPerBatch: number;
  private nodes = new Map<string, NodeState>();
  private replay = new ReplayBuffer<{ x: number[]; y: number }>(REPLAY);
  private rng: Rng;
  private steps = 0;
  private examples = 0;
  private current: string | null = null;
  /** newest event time seen, the clock of staleness */
  private latest = 0;
  /**
   * Per node, the log of how much slower (or faster) its jobs run than the shared regression says:
   * nodes differ in hardware, which no load figure shows. Learnt from each node's own examples.
   */
  private bias = new Map<string, number>();
  /** node -> the host whose lines report it: the node's state goes where that host goes */
  private owner = new Map<string, string>();
  rejected = 0;
  private readonly windowMs: number;
  /** the regression as trained in plain JS, and the tfjs model it is saved as */
  private readonly net: SavedUnit<LinearMomentum>;
  /** the open training window (event time, index of windowMs) and its examples, not learnt yet */
  private window: number | null = null;
  private pending: Example[] = [];

  constructor(
    private readonly tf: Tf,
    model: Model,
    opts: LoadOptions,
  ) {
    this.halfLifeMs = (opts.halfLifeSec ?? 300) * 1000;
    this.staleMs = (opts.staleSec ?? 600) * 1000;
    this.warmup = opts.warmup ?? 16;
    this.margin = opts.switchMargin ?? 0.1;
    this.stepsPerBatch = opts.steps ?? 10;
    this.rng = new Rng(opts.seed ?? 13);
    this.windowMs = (opts.windowSec ?? 10) * 1000;
    this.net = new SavedUnit(tf, model, LinearMomentum.of);
  }

  static buildModel(tf: Tf, learningRate: number, seed: number): Model {
    const m = tf.sequential();
    m.add(
      tf.layers.dense({
        units: 1,
        inputShape: [5],
        activation: 'linear',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
    );
    m.compile({ optimizer: tf.train.momentum(learningRate, 0.9), loss: 'meanSquaredError' });
    return m;
  }

  get warm(): boolean {
    return this.examples >= this.warmup;
  }

  get modelVersion(): string {
    return this.warm ? `${LOAD_ARCH}.${this.steps}` : LOAD_HEURISTIC;
  }

  private decayed(d: Decayed, t: number): number {
    return d.v * 0.5 ** (Math.max(0, t - d.t) / this.halfLifeMs);
  }

  private bump(d: Decayed, t: number): void {
    d.v = this.decayed(d, t) + 1;
    d.t = Math.max(d.t, t);
  }

  private node(name: string, t: number, reportedBy: string): NodeState {
    let n = this.nodes.get(name);
    if (!n) {
      n = { load: 0, runq: 0, hung: { v: 0, t }, lockup: { v: 0, t }, throttle: { v: 0, t }, lastTs: t };
      this.nodes.set(name, n);
    }
    if (this.owner.get(name) !== reportedBy) this.owner.set(name, reportedBy);
    n.lastTs = Math.max(n.lastTs, t);
    return n;
  }

  features(n: NodeState, t: number): number[] {
    return [
      n.load / SCALE.load,
      n.runq / SCALE.runq,
      this.decayed(n.hung, t) / SCALE.hung,
      this.decayed(n.lockup, t) / SCALE.lockup,
      this.decayed(n.throttle, t) / SCALE.throttle,
    ];
  }

  async onEvents(events: readonly KernelEvent[]): Promise<Proposal[]> {
    /** windows that closed in this batch, in order: each is one training round */
    const closed: Example[][] = [];
    let touched = false;
    for (const e of events) {
      const m = e.message;
      const sample = m.includes('virgo_load:') ? parseLoadLine(m, e.host) : undefined;
      if (sample) {
        if (!HOST_RE.test(sample.node)) {
          this.rejected++;
          continue;
        }
        const n = this.node(sample.node, e.ts, e.host);
        if (sample.load !== undefined) n.load = sample.load;
        if (sample.runq !== undefined) n.runq = sample.runq;
        if (sample.execMs !== undefined) {
          this.roll(e.ts, closed);
          this.pending.push({ x: this.features(n, e.ts), y: sample.execMs / Y_SCALE, node: sample.node });
          if (this.pending.length >= MAX_PENDING) {
            closed.push(this.pending);
            this.pending = [];
          }
        }
      } else if (HUNG_RE.test(m)) this.bump(this.node(e.host, e.ts, e.host).hung, e.ts);
      else if (LOCKUP_RE.test(m)) this.bump(this.node(e.host, e.ts, e.host).lockup, e.ts);
      else if (THROTTLE_RE.test(m)) this.bump(this.node(e.host, e.ts, e.host).throttle, e.ts);
      else continue;
      this.roll(e.ts, closed);
      this.latest = Math.max(this.latest, e.ts);
      touched = true;
    }
    // Each closed window is learnt in one round, in order, as it would have been live.
    for (const group of closed) {
      this.learnBias(group);
      this.train(group.map(({ x, y }) => ({ x, y })));
    }
    return touched ? this.propose() : [];
  }

  /** Event time reached `ts`: the open window closes when `ts` is in a later one. */
  private roll(ts: number, closed: Example[][]): void {
    const w = Math.floor(ts / this.windowMs);
    if (this.window === null || w > this.window) {
      if (this.pending.length > 0) closed.push(this.pending);
      this.pending = [];
      this.window = w;
    }
  }

  /** Each node's correction moves toward how far its examples sit from the regression (before
   * the regression learns them, so the correction is judged on unseen jobs). */
  private learnBias(group: readonly Example[]): void {
    if (!this.warm || group.length === 0) return;
    // every prediction before any update of this group, as one batched predict did
    const preds = group.map((g) => this.net.unit.predict(g.x));
    group.forEach((g, i) => {
      const pred = preds[i]!;
      if (pred <= 0 || g.y <= 0) return;
      const b = this.bias.get(g.node) ?? 0;
      const next = b + BIAS_RATE * (Math.log(g.y / pred) - b);
      this.bias.set(g.node, Math.max(-MAX_BIAS, Math.min(MAX_BIAS, next)));
    });
  }

  /** Predicted execution time (ms) per live node, in one batched call once the model is warm. */
  predict(): Map<string, number> {
    const live = [...this.nodes].filter(([, n]) => this.latest - n.lastTs <= this.staleMs);
    const out = new Map<string, number>();
    if (live.length === 0) return out;
    if (!this.warm) {
      // Before the regression has seen enough, rank by raw load (the original loadfactor idea).
      for (const [name, n] of live) out.set(name, n.load);
      return out;
    }
    for (const [name, n] of live) {
      const y = this.net.unit.predict(this.features(n, this.latest));
      out.set(name, Math.max(0, y * Y_SCALE * Math.exp(this.bias.get(name) ?? 0)));
    }
    return out;
  }

  private propose(): Proposal[] {
    const pred = this.predict();
    if (pred.size === 0) return [];
    const model = this.modelVersion;
    const out: Proposal[] = [];
    let best: [string, number] | undefined;
    for (const [name, v] of [...pred].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!best || v < best[1]) best = [name, v];
      if (this.warm) {
        const n = this.nodes.get(name)!;
        out.push({
          host: name,
          key: 'cpupooling.predicted_exec_ms',
          value: v,
          why: `load=${n.load} runq=${n.runq} hung=${this.decayed(n.hung, this.latest).toFixed(2)} lockup=${this.decayed(n.lockup, this.latest).toFixed(2)} throttle=${this.decayed(n.throttle, this.latest).toFixed(2)} half_life=${this.halfLifeMs / 1000}s node_factor=${Math.exp(this.bias.get(name) ?? 0).toFixed(2)} examples=${this.examples}`,
          confidence: Math.min(1, this.examples / (this.warmup * 4)),
          model,
        });
      }
    }
    // Stickiness: keep the current node unless the new best is clearly better, so near-equal
    // nodes do not trade places on noise.
    let chosen = best!;
    const cur = this.current !== null ? pred.get(this.current) : undefined;
    if (cur !== undefined && this.current !== chosen[0] && chosen[1] > cur * (1 - this.margin)) {
      chosen = [this.current!, cur];
    }
    this.current = chosen[0];
    const unit = this.warm ? 'ms' : 'loadavg';
    const ranking = [...pred]
      .sort((a, b) => a[1] - b[1])
      .slice(0, 4)
      .map(([n, v]) => `${n}:${v.toFixed(1)}`)
      .join(' ');
    out.push({
      host: CLUSTER_HOST,
      key: 'cpupooling.least_loaded_node',
      value: chosen[0],
      why: `nodes=${pred.size} predicted ${unit}: ${ranking} margin=${this.margin}`,
      confidence: this.warm ? Math.min(1, this.examples / (this.warmup * 4)) : 0.3,
      model,
    });
    return out;
  }

  /** The regression's weights in feature units (tests compare them with the generator's). */
  coefficients(): { w: number[]; b: number } {
    const w = Array.from(this.net.unit.w);
    const scales = [SCALE.load, SCALE.runq, SCALE.hung, SCALE.lockup, SCALE.throttle];
    return { w: w.map((x, i) => (x * Y_SCALE) / scales[i]!), b: this.net.unit.b * Y_SCALE };
  }

  private train(fresh: { x: number[]; y: number }[]): void {
    const batch = this.replay.mix(fresh, BATCH, this.rng);
    this.replay.add(fresh, this.rng);
    this.examples += fresh.length;
    this.net.unit.train(batch, this.stepsPerBatch);
    this.steps += this.stepsPerBatch;
  }

  readonly state: LearnerState<LoadShared, LoadHost> = {
    learner: 'load',
    version: 1,
    shared: () => ({
      replay: this.replay.toJSON(),
      rng: this.rng.state,
      steps: this.steps,
      examples: this.examples,
      current: this.current,
      latest: this.latest,
      window: this.window,
      pending: this.pending,
    }),
    restoreShared: (j) => {
      this.replay = ReplayBuffer.fromJSON(REPLAY, j.replay);
      this.rng = new Rng(j.rng);
      this.steps = j.steps;
      this.examples = j.examples;
      this.current = j.current;
      this.latest = j.latest;
      this.window = j.window ?? null;
      this.pending = j.pending ?? [];
    },
    hosts: () => new Set(this.owner.values()),
    host: (h) => {
      const nodes: LoadHost['nodes'] = [];
      for (const [node, by] of this.owner) {
        const n = this.nodes.get(node);
        if (by === h && n) nodes.push([node, n, this.bias.get(node) ?? null]);
      }
      return nodes.length > 0 ? { nodes } : undefined;
    },
    restoreHost: (h, s) => {
      for (const [node, n, b] of s.nodes) {
        this.nodes.set(node, n);
        this.owner.set(node, h);
        if (b === null) this.bias.delete(node);
        else this.bias.set(node, b);
      }
    },
    dropHost: (h) => {
      for (const [node, by] of [...this.owner]) {
        if (by !== h) continue;
        this.owner.delete(node);
        this.nodes.delete(node);
        this.bias.delete(node);
      }
    },
    trained: () => this.examples,
    // The plain-JS regression is the truth; the tfjs model is written from it before it is saved
    // or handed on, and a loaded one is read back into it.
    // (a function, not this.net itself: the state is built before the constructor sets net)
    model: { get: () => this.net.get(), set: (m) => this.net.set(m) },
    // Before the shared/host split: every field at the top; each node taken as its own host.
    legacy: (j) => {
      const bias = new Map((j.bias as [string, number][] | undefined) ?? []);
      return {
        shared: {
          replay: j.replay as LoadShared['replay'],
          rng: j.rng as number,
          steps: j.steps as number,
          examples: j.examples as number,
          current: j.current as string | null,
          latest: j.latest as number,
        },
        hosts: (j.nodes as [string, NodeState][]).map(([node, n]) => [
          node,
          { nodes: [[node, n, bias.get(node) ?? null]] },
        ]),
      };
    },
  };

  save(dir: string): Promise<void> {
    return saveLearnerState(dir, this.state, this.tf);
  }

  load(dir: string): Promise<void> {
    return loadLearnerState(dir, this.state, this.tf);
  }

  stats(): Record<string, number | string> {
    return {
      model: this.modelVersion,
      nodes: this.nodes.size,
      examples: this.examples,
      least_loaded: this.current ?? '',
      rejected: this.rejected,
    };
  }

  dispose(): void {
    this.net.dispose();
  }
}

export async function createLoadLearner(
  ctx: LearnerContext,
  opts: Record<string, unknown> = {},
): Promise<Learner> {
  const tf = requireTf(ctx.tf, 'load');
  const o = opts as LoadOptions;
  return new LoadLearner(tf, LoadLearner.buildModel(tf, o.learningRate ?? 0.05, o.seed ?? 13), o);
}
