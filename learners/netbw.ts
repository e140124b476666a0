// Network bandwidth: logistic regression (one sigmoid unit) over per-window network features of a
// host, predicting whether the NEXT window is congested, mapped to MaxNetworkBandwidth (Mbps).
//
// Labels are self-supervised from the log itself: a window is congested when it holds a link-down
// or a packet-drop report (>= congestionEvents of them); NETDEV WATCHDOG tx timeouts and NIC errors
// are precursors, features only.
// Each closed window t yields the example (features(t-1) -> congested(t)), so the model learns
// which evidence precedes congestion; the risk for t+1 is predicted from features(t).
// The unit predicts and trains in plain JS (logistic-model.ts: tf.train.rmsprop's update on binary
// cross-entropy, to float32 precision): tfjs's per-call cost at every window close was most of this
// learner for nine weights. The tfjs model is its saved form (written from the unit when the state
// is saved or handed on, read into it when loaded), so saved states are unchanged.
import type { KernelEvent } from '../schemas/index.ts';
import { SavedUnit } from './dense-unit.ts';
import { type LearnerState, loadLearnerState, saveLearnerState } from './learner-state.ts';
import { LogisticRmsprop } from './logistic-model.ts';
import { ReplayBuffer } from './replay-buffer.ts';
import { type Model, requireTf } from './tf-util.ts';
import type { Learner, LearnerContext, Proposal, Tf, VariableDecl } from './types.ts';
import { ufwFields } from './ufw.ts';
import { Rng } from './window.ts';

export const NETBW_ARCH = 'netbw-logreg@1';

export const FEATURES = [
  'link_down',
  'link_up',
  'watchdog',
  'drops',
  'nic_errors',
  'ufw_blocks',
  'ufw_other',
  'events',
] as const;
const F = FEATURES.length;

export interface NetbwOptions {
  windowSec?: number;
  minMbps?: number;
  maxMbps?: number;
  /** label: a window is congested at this many link-down + drop events */
  congestionEvents?: number;
  /** examples seen before the learner emits anything (an untrained model says 0.5) */
  warmup?: number;
  /** optimiser steps per batch of closed windows */
  steps?: number;
  learningRate?: number;
  seed?: number;
  /** own forecasts (with their outcome, by the learner's label) before the alert threshold is learnt */
  alertMin?: number;
}

const LINK_DOWN_RE = /\blink (?:is )?down\b|NIC Link is Down|carrier lost|Lost carrier/i;
const LINK_UP_RE = /\blink (?:is )?up\b|NIC Link is Up|link becomes ready|Gained carrier/i;
const WATCHDOG_RE = /NETDEV WATCHDOG|transmit queue \d+ timed out|tx[ _]timeout/i;
const DROP_RE = /drop(?:ping|ped)? packet|\bdropped\b|table full|rx_missed|No buffer space/i;
const NIC_ERR_RE = /reset adapter|Unit Hang|tx hang|rx errors|hardware error|PCIe Bus Error/i;

/** Counts of one event towards the window features (indices into FEATURES). */
export function classifyNetEvent(e: KernelEvent, counts: number[]): void {
  counts[7]! += 1;
  const u = ufwFields(e);
  if (u) {
    if (u.action.includes('BLOCK')) counts[5]! += 1;
    else counts[6]! += 1;
    return;
  }
  const m = e.message;
  const state = e.fields?.state?.toLowerCase();
  if (e.family === 'link' && state === 'down') counts[0]! += 1;
  else if (e.family === 'link' && state === 'up') counts[1]! += 1;
  else if (LINK_DOWN_RE.test(m)) counts[0]! += 1;
  else if (LINK_UP_RE.test(m)) counts[1]! += 1;
  if (WATCHDOG_RE.test(m)) counts[2]! += 1;
  if (DROP_RE.test(m)) counts[3]! += 1;
  if (NIC_ERR_RE.test(m)) counts[4]! += 1;
}

export const NETBW_VARIABLES = (minMbps: number, maxMbps: number): VariableDecl[] => [
  {
    key: 'MaxNetworkBandwidth',
    type: 'int',
    unit: 'Mbps',
    description: 'bandwidth cap for the host, lowered as the predicted congestion risk rises',
    min: minMbps,
    max: maxMbps,
    hysteresis: 25,
    definition: { kind: 'window', seconds: 60, tumbling: true },
    dwellMs: 30_000,
    urgent: 'down',
  },
  {
    key: 'netbw.congestion_risk',
    type: 'float',
    unit: 'probability',
    description: 'predicted probability that the next window is congested (link-down, packet drops)',
    min: 0,
    max: 1,
    decimals: 3,
    hysteresis: 0.05,
    definition: { kind: 'window', seconds: 60, tumbling: true },
    dwellMs: 10_000,
  },
  {
    key: 'netbw.congestion_expected',
    type: 'bool',
    unit: null,
    description:
      'the next window is expected congested: risk at or above the alert threshold the learner keeps learning (raised at once, cleared after 30 s)',
    definition: { kind: 'window', seconds: 60, tumbling: true },
    dwellMs: 30_000,
    urgent: 'true',
  },
];

interface HostWin {
  window: number;
  counts: number[];
  /** features of the last closed window (log1p counts), the input for the next label */
  prev: number[] | null;
}

/** The instance's part of the state: the model's training state and the alert threshold. */
interface NetbwShared {
  replay: { x: number[]; y: number }[];
  rng: number;
  steps: number;
  examples: number;
  windows: number;
  calib: [number, number][];
  alert: number;
}

/** A host's part: its open window and the forecast it waits to judge. */
interface NetbwHost {
  win: HostWin;
  forecast?: number;
}

const REPLAY = 512;
/** fresh examples learnt per training round */
const EXAMPLES_PER_STEP = 64;
const BATCH = 48;
const MAX_GAP_WINDOWS = 3;
/** recent (forecast, outcome) pairs the alert threshold is learnt from */
const CALIB = 500;

/**
 * The cut on the forecast risk that maximises F1 over past (risk, outcome) pairs. A probability
 * is not a decision: the F1-best cut of a calibrated forecaster sits near half its best F1, well
 * below 0.5 when congestion is rare, so a fixed 0.5 would miss onsets a grep catches.
 */
export function f1Threshold(pairs: readonly (readonly [number, number])[], fallback = 0.5): number {
  const pos = pairs.reduce((a, [, y]) => a + (y >= 0.5 ? 1 : 0), 0);
  if (pos === 0 || pos === pairs.length) return fallback;
  const sorted = [...pairs].sort((a, b) => b[0] - a[0]);
  let tp = 0;
  let fp = 0;
  let best = -1;
  let cut = fallback;
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i]![1] >= 0.5) tp++;
    else fp++;
    // only between distinct risks: a cut cannot split equal forecasts
    const next = sorted[i + 1]?.[0];
    if (next !== undefined && next === sorted[i]![0]) continue;
    const f1 = (2 * tp) / (2 * tp + fp + (pos - tp));
    if (f1 > best) {
      best = f1;
      cut = next === undefined ? sorted[i]![0] : (sorted[i]![0] + next) / 2;
    }
  }
  return cut;
}

export function featuresOf(counts: ArrayLike<number>): number[] {
  return Array.from(counts, (c) => Math.log1p(c));
}

/** What closing windows yields: examples to learn and the windows to forecast from. */
class Closing {
  readonly closed: { host: string; x: number[]; counts: number[] }[] = [];
  readonly fresh: { x: number[]; y: number }[] = [];
  /** earlier forecasts whose window closed (their outcome is now known) */
  judged = 0;
}

/**
 * The self-supervised label: link-down + packet-drop reports in the window reach `threshold`.
 * A NETDEV WATCHDOG tx timeout is a precursor (a NIC or driver hiccup that often comes before the
 * drops), so it is a feature, not congestion itself: counting it as congestion taught the model to
 * forecast hiccups, and its alerts lost to a plain grep (npm run eval -- learners).
 */
export function congested(counts: ArrayLike<number>, threshold: number): number {
  return (counts[0] ?? 0) + (counts[3] ?? 0) >= threshold ? 1 : 0;
}

export class NetbwLearner implements Learner {
  readonly name = 'netbw';
  readonly needsTf = true;
  readonly variables: VariableDecl[];
  private readonly windowMs: number;
  private readonly minMbps: number;
  private readonly maxMbps: number;
  private readonly threshold: number;
  private readonly warmup: number;
  private readonly stepsPerBatch: number;
  private hosts = new Map<string, HostWin>();
  private replay = new ReplayBuffer<{ x: number[]; y: number }>(REPLAY);
  private rng: Rng;
  private steps = 0;
  private examples = 0;
  private windows = 0;
  /** per host: the risk forecast for its open window, judged when that window closes */
  private forecast = new Map<string, number>();
  private calib: [number, number][] = [];
  private alert = 0.5;
  private readonly alertMin: number;
  /** the sigmoid unit as trained in plain JS, and the tfjs model it is saved as */
  private readonly net: SavedUnit<LogisticRmsprop>;

  constructor(
    private readonly tf: Tf,
    model: Model,
    opts: NetbwOptions,
  ) {
    this.net = new SavedUnit(tf, model, (m) => LogisticRmsprop.of(m, tf.backend().epsilon()));
    this.windowMs = (opts.windowSec ?? 60) * 1000;
    this.minMbps = opts.minMbps ?? 10;
    this.maxMbps = opts.maxMbps ?? 1000;
    this.threshold = opts.congestionEvents ?? 1;
    this.warmup = opts.warmup ?? 20;
    this.stepsPerBatch = opts.steps ?? 4;
    this.rng = new Rng(opts.seed ?? 7);
    this.alertMin = opts.alertMin ?? 50;
    this.variables = NETBW_VARIABLES(this.minMbps, this.maxMbps);
  }

  static buildModel(tf: Tf, learningRate: number, seed: number): Model {
    const m = tf.sequential();
    m.add(
      tf.layers.dense({
        units: 1,
        inputShape: [F],
        activation: 'sigmoid',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
    );
    m.compile({ optimizer: tf.train.rmsprop(learningRate), loss: 'binaryCrossentropy' });
    return m;
  }

  get modelVersion(): string {
    return `${NETBW_ARCH}.${this.steps}`;
  }

  async onEvents(events: readonly KernelEvent[]): Promise<Proposal[]> {
    const closing = new Closing();
    for (const e of events) {
      const w = Math.floor(e.ts / this.windowMs);
      let s = this.hosts.get(e.host);
      if (!s) {
        s = { window: w, counts: new Array(F).fill(0), prev: null };
        this.hosts.set(e.host, s);
      }
      if (w > s.window) this.closeUpTo(e.host, s, w, closing);
      // A late event (w < s.window) counts in the open window rather than being lost.
      classifyNetEvent(e, s.counts);
    }
    return this.learnAndPropose(closing);
  }

  /**
   * Event time has reached `ts` on every host (a watermark: nothing older is still to come), so
   * every window that ended by then closes now, as the next event would close it. Lets a quiet
   * host's forecast go out without waiting for its next line, and the evaluation score each
   * forecast before the window it forecasts is seen.
   */
  async advance(ts: number): Promise<Proposal[]> {
    const closing = new Closing();
    const w = Math.floor(ts / this.windowMs);
    for (const [host, s] of this.hosts) if (w > s.window) this.closeUpTo(host, s, w, closing);
    return this.learnAndPropose(closing);
  }

  private closeUpTo(host: string, s: HostWin, w: number, c: Closing): void {
    const close = () => {
      const x = featuresOf(s.counts);
      const y = congested(s.counts, this.threshold);
      if (s.prev) c.fresh.push({ x: s.prev, y });
      const f = this.forecast.get(host);
      if (f !== undefined) {
        this.calib.push([f, y]);
        if (this.calib.length > CALIB) this.calib.shift();
        this.forecast.delete(host);
        c.judged++;
      }
      s.prev = x;
      c.closed.push({ host, x, counts: s.counts });
      this.windows++;
    };
    close();
    // Quiet windows in between are evidence too (nothing happened), up to a short gap;
    // across a long gap the previous window says nothing about the next.
    const gap = w - s.window - 1;
    if (gap > MAX_GAP_WINDOWS) s.prev = null;
    else {
      for (let i = 0; i < gap; i++) {
        s.counts = new Array(F).fill(0);
        close();
      }
    }
    s.window = w;
    s.counts = new Array(F).fill(0);
  }

  private learnAndPropose({ closed, fresh, judged }: Closing): Proposal[] {
    if (judged > 0 && this.calib.length >= this.alertMin) this.alert = f1Threshold(this.calib, this.alert);
    // A replayed log brings many examples at once: learn them in groups, each with its steps, as
    // they would have come live.
    for (let i = 0; i < fresh.length; i += EXAMPLES_PER_STEP)
      this.train(fresh.slice(i, i + EXAMPLES_PER_STEP));
    if (closed.length === 0 || this.examples < this.warmup) return [];
    // A forecast for every host whose window closed in this batch; the last window per host wins.
    const last = new Map<string, { x: number[]; counts: number[] }>();
    for (const c of closed) last.set(c.host, c);
    const hosts = [...last.keys()];
    const risks = hosts.map((h) => this.net.unit.predict(last.get(h)!.x));
    const out: Proposal[] = [];
    const model = this.modelVersion;
    hosts.forEach((host, i) => {
      const risk = risks[i]!;
      this.forecast.set(host, risk);
      const c = last.get(host)!.counts;
      const ev = FEATURES.map((f, j) => `${f}=${c[j]}`).join(' ');
      const why = `window=${this.windowMs / 1000}s next-window congestion risk=${risk.toFixed(3)} evidence: ${ev} examples=${this.examples} alert>=${this.alert.toFixed(3)}`;
      const confidence = Math.abs(risk - 0.5) * 2;
      out.push({
        host,
        key: 'MaxNetworkBandwidth',
        value: this.maxMbps - risk * (this.maxMbps - this.minMbps),
        why,
        confidence,
        model,
      });
      out.push({ host, key: 'netbw.congestion_risk', value: risk, why, confidence, model });
      out.push({ host, key: 'netbw.congestion_expected', value: risk >= this.alert, why, confidence, model });
    });
    return out;
  }

  /** The model's risk for raw window counts (tests and the CLI's explain use it). */
  risk(counts: number[][]): number[] {
    return counts.map((c) => this.net.unit.predict(featuresOf(c)));
  }

  private train(fresh: { x: number[]; y: number }[]): void {
    // Fresh examples plus a replayed sample, so one busy host cannot make the model forget others.
    const batch = this.replay.mix(fresh, BATCH, this.rng);
    this.replay.add(fresh, this.rng);
    this.examples += fresh.length;
    this.net.unit.train(batch, this.stepsPerBatch);
    this.steps += this.stepsPerBatch;
  }

  readonly state: LearnerState<NetbwShared, NetbwHost> = {
    learner: 'netbw',
    version: 1,
    shared: () => ({
      replay: this.replay.toJSON(),
      rng: this.rng.state,
      steps: this.steps,
      examples: this.examples,
      windows: this.windows,
      calib: this.calib,
      alert: this.alert,
    }),
    restoreShared: (j) => {
      this.replay = ReplayBuffer.fromJSON(REPLAY, j.replay);
      this.rng = new Rng(j.rng);
      this.steps = j.steps;
      this.examples = j.examples;
      this.windows = j.windows;
      this.calib = j.calib;
      this.alert = j.alert;
    },
    hosts: () => this.hosts.keys(),
    host: (h) => {
      const win = this.hosts.get(h);
      const forecast = this.forecast.get(h);
      if (!win) return undefined;
      return forecast === undefined ? { win } : { win, forecast };
    },
    restoreHost: (h, s) => {
      this.hosts.set(h, s.win);
      if (s.forecast === undefined) this.forecast.delete(h);
      else this.forecast.set(h, s.forecast);
    },
    dropHost: (h) => {
      this.hosts.delete(h);
      this.forecast.delete(h);
    },
    trained: () => this.examples,
    // The plain-JS unit is the truth; the tfjs model is written from it before it is saved or
    // handed on, and a loaded one is read back into it (a function, not this.net itself: the
    // state is built before the constructor sets net).
    model: { get: () => this.net.get(), set: (m) => this.net.set(m) },
    // Before the shared/host split: every field at the top, forecasts beside the windows.
    legacy: (j) => {
      const forecast = new Map((j.forecast as [string, number][] | undefined) ?? []);
      return {
        shared: {
          replay: j.replay as NetbwShared['replay'],
          rng: j.rng as number,
          steps: j.steps as number,
          examples: j.examples as number,
          windows: j.windows as number,
          calib: (j.calib as [number, number][] | undefined) ?? [],
          alert: (j.alert as number | undefined) ?? 0.5,
        },
        hosts: (j.hosts as [string, HostWin][]).map(([h, win]) => {
          const f = forecast.get(h);
          return [h, f === undefined ? { win } : { win, forecast: f }];
        }),
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
      hosts: this.hosts.size,
      windows: this.windows,
      examples: this.examples,
      warm: this.examples >= this.warmup ? 1 : 0,
      alert_threshold: Number(this.alert.toFixed(4)),
    };
  }

  dispose(): void {
    this.net.dispose();
  }
}

export async function createNetbwLearner(
  ctx: LearnerContext,
  opts: Record<string, unknown> = {},
): Promise<Learner> {
  const tf = requireTf(ctx.tf, 'netbw');
  const o = opts as NetbwOptions;
  return new NetbwLearner(tf, NetbwLearner.buildModel(tf, o.learningRate ?? 0.05, o.seed ?? 7), o);
}
