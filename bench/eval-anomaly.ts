// npm run eval -- anomaly --log FILE (--strip-label | --labels FILE [--strip-label]) [--window SEC]
//                        [--threshold NATS] [--learner-options JSON] [--json]
//                        [--windows OUT.jsonl]
//
// The anomaly learner on a labelled log, online, beside the baselines a reviewer asks for, all in
// one run over the same windows.
//
// Labels never reach the learner. Loghub-style logs carry the label as the first field (`-` =
// normal, a tag such as KERNDTLB = alert): `--strip-label` takes it as the truth and removes it
// before anything reads the line. With `--labels FILE` (one label per line, first token, or a CSV
// with a Label column) a log whose first field still looks like a label is refused unless
// `--strip-label` is given too.
//
// Lines go the way production takes them: the ingest parser (host, event time, severity,
// message), the template miner, KernelEvents in file order, in batches of 1000. The learner
// judges each host's 60 s windows as they close, before it learns them. What counts as the
// learner's answer (the headline) is what production would have emitted at that moment: the
// value of host/kernel.anomaly in the emission gate right after the window's proposals went
// through it (virtual clock = the window's end; the gate raises at once and clears after its
// 60 s dwell). Every window is judged, from the first: there is no warm-up to hide.
//
// Units: a host-window (the learner's unit, one verdict each), a fleet minute (a minute is
// flagged when any host-window of it is; truth when any line of it is labelled), and a line (the
// learner: a line of a flagged window whose template the flag is attributed to; severity
// baselines: the line itself; first occurrence: the lines of a template first seen; flag-all and
// PCA: every line of a flagged window).
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { hpcLabel, parseLine, TemplateMiner, toKernelEvent } from '../ingest/index.ts';
import { AnomalyLearner, type AnomalyOptions, type ScoredWindow } from '../learners/anomaly.ts';
import { EmissionGate } from '../learners/gate.ts';
import { declarationsOf } from '../learners/registry.ts';
import { severityOf } from '../learners/severity.ts';
import type { Proposal } from '../learners/types.ts';
import { fnv1a } from '../learners/window.ts';
import type { KernelEvent } from '../schemas/index.ts';
import { fitPca, type PcaModel, spe } from './pca.ts';

export interface AnomalyEvalOptions {
  /** the log's lines as read */
  lines: string[];
  /** one label per line (a labels file); absent: the first field of each line (needs stripLabel) */
  labels?: string[];
  /** the first field of each line is a label: remove it before parsing */
  stripLabel?: boolean;
  /** the clock the parser reads year-less stamps against (the file's mtime) */
  now?: number;
  windowSec?: number;
  learner?: Omit<AnomalyOptions, 'onWindow' | 'windowSec'>;
}

export interface Scores {
  precision: number;
  recall: number;
  f1: number;
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export interface MethodScores {
  hostWindows: Scores;
  fleetMinutes: Scores;
  lines: Scores;
}

export const METHODS = [
  'learner (gate, emitted)',
  'learner (decision)',
  'baseline flag-all',
  'baseline severity-only',
  'baseline severity+words',
  'baseline first-occurrence',
  'baseline PCA (SPE)',
] as const;
export type Method = (typeof METHODS)[number];

export interface AnomalyEvalResult {
  lines: number;
  anomalousLines: number;
  hosts: number;
  formats: Record<string, number>;
  windowSec: number;
  hostWindows: number;
  anomalousHostWindows: number;
  fleetMinutes: number;
  anomalousFleetMinutes: number;
  /** lines the learner counted into a later window than their own (arrived after it closed) */
  late: number;
  methods: Record<Method, MethodScores>;
  /** learner (gate) host-window F1 / the best baseline's */
  ratio: number;
  bestBaseline: Method;
  /** every judged host-window: its truth, the emitted verdict and the learner's why */
  windows: { host: string; start: string; truth: boolean; emitted: boolean; score: number; why: string }[];
}

export class EvalInputError extends Error {
  override readonly name = 'EvalInputError';
}

export function scores(pred: readonly boolean[], truth: readonly boolean[]): Scores {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  pred.forEach((p, i) => {
    const t = truth[i]!;
    if (p && t) tp++;
    else if (p) fp++;
    else if (t) fn++;
    else tn++;
  });
  const precision = tp + fp === 0 ? 0 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 0 : tp / (tp + fn);
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { precision, recall, f1, tp, fp, fn, tn };
}

/** Labels from a labels file: a CSV with a Label column, or the first token of each line. */
export function readLabels(text: string): string[] {
  const rows = text.split(/\r?\n/);
  while (rows.length > 0 && rows[rows.length - 1] === '') rows.pop();
  const header = rows[0]?.split(',').map((h) => h.trim().replace(/^"|"$/g, ''));
  const col = header ? header.indexOf('Label') : -1;
  if (col >= 0)
    return rows.slice(1).map((r) => (r.split(',')[col] ?? '').trim().replace(/^"|"$/g, '') || '-');
  return rows.map((r) => r.trim().split(/\s+/)[0] || '-');
}

const TAG_RE = /^[A-Z][A-Z0-9_]{2,31}$/;

/**
 * Whether the first field of these lines is a Loghub-style label: on a sample, at least 90% start
 * with `-` or an upper-case tag followed by a blank and at least 45% with `-` (no syslog, kernel
 * or HPC line starts that way), or the ingest parser sees a label before a BGL/Thunderbird
 * header on most of them (hpcLabel).
 */
export function looksLabelled(lines: readonly string[]): boolean {
  const sample = lines.filter((l) => l.trim() !== '').slice(0, 500);
  if (sample.length === 0) return false;
  let dash = 0;
  let tag = 0;
  let hpc = 0;
  for (const l of sample) {
    if (hpcLabel(l) !== undefined) hpc++;
    const sp = l.indexOf(' ');
    if (sp <= 0) continue;
    const first = l.slice(0, sp);
    if (first === '-') dash++;
    else if (TAG_RE.test(first)) tag++;
  }
  const n = sample.length;
  return hpc >= n * 0.9 || (dash + tag >= n * 0.9 && dash >= n * 0.45);
}

/** Severity-only baseline: a level token of the HPC formats, or a parsed syslog severity err or worse. */
const LEVEL_RE = /\b(?:FATAL|SEVERE|FAILURE|ERROR|CRIT|CRITICAL|ALERT|EMERG)\b/;

interface Prepared {
  events: KernelEvent[];
  truth: boolean[];
  /** the raw line as the parser got it (label stripped) */
  raw: string[];
  formats: Record<string, number>;
}

function prepare(opts: AnomalyEvalOptions): Prepared {
  const lines = [...opts.lines];
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  const labelled = looksLabelled(lines);
  let labels = opts.labels;
  if (labels && labelled && !opts.stripLabel) {
    throw new EvalInputError(
      'the log itself starts with a label field (`-` or an alert tag on most lines): it would reach the parser and the miner. Pass --strip-label to remove it, or give the log without labels',
    );
  }
  if (!labels && !opts.stripLabel) {
    throw new EvalInputError(
      labelled
        ? 'no labels given: the first field of this log looks like a label; pass --strip-label to take it as the truth and remove it before parsing'
        : 'no labels given: pass --labels FILE, or --strip-label when the first field of each line is its label',
    );
  }
  if (opts.stripLabel && !labelled) {
    throw new EvalInputError(
      '--strip-label given, but the first field of this log does not look like a label (`-` or an upper-case tag on most lines)',
    );
  }
  const stripped: string[] = [];
  const first: string[] = [];
  for (const l of lines) {
    const line = l.replace(/\r$/, '');
    if (opts.stripLabel) {
      const sp = line.indexOf(' ');
      first.push(sp < 0 ? line : line.slice(0, sp));
      stripped.push(sp < 0 ? '' : line.slice(sp + 1));
    } else stripped.push(line);
  }
  labels ??= first;
  if (labels.length !== stripped.length) {
    throw new EvalInputError(
      `the labels file has ${labels.length} labels for ${stripped.length} log lines; they must pair up line by line`,
    );
  }
  // The ingest stage's path: parse, mine the message, KernelEvent (ingest/stage.ts).
  const now = opts.now ?? Date.now();
  const miner = new TemplateMiner();
  const events: KernelEvent[] = [];
  const truth: boolean[] = [];
  const raw: string[] = [];
  const formats: Record<string, number> = {};
  let untimed = 0;
  let lastTs = Number.NaN;
  stripped.forEach((line, i) => {
    if (line.trim() === '') return;
    const p = parseLine(line, { host: 'log', now });
    const at = p.messageAt;
    const mined = at >= 0 ? miner.add(line, at, at + p.message.length) : miner.add(p.message);
    const e = toKernelEvent(p, mined);
    formats[p.format] = (formats[p.format] ?? 0) + 1;
    if (!p.hasTime) {
      untimed++;
      // a stray line without a stamp stays with the line before it
      if (Number.isFinite(lastTs)) e.ts = lastTs;
    } else lastTs = e.ts;
    events.push(e);
    truth.push(labels[i] !== '-');
    raw.push(line);
  });
  if (events.length > 0 && untimed > events.length * 0.05) {
    const top = Object.entries(formats).sort((a, b) => b[1] - a[1])[0]![0];
    throw new EvalInputError(
      `the ingest parser found no time on ${untimed} of ${events.length} lines (format "${top}"); windows need event time, so this log format is not supported by the parser yet`,
    );
  }
  return { events, truth, raw, formats };
}

const key = (host: string, start: number) => `${host}\u0000${start}`;

function windowVector(counts: Map<string, number>, dims: number): number[] {
  const v = new Array<number>(dims).fill(0);
  for (const [id, n] of counts) v[fnv1a(id) % dims]! += Math.log1p(n);
  const norm = Math.sqrt(v.reduce((a, x) => a + x * x, 0));
  return norm > 0 ? v.map((x) => x / norm) : v;
}

export async function evaluateAnomaly(opts: AnomalyEvalOptions): Promise<AnomalyEvalResult> {
  const { events, truth: lineTruth, raw, formats } = prepare(opts);
  const windowSec = opts.windowSec ?? 60;
  const windowMs = windowSec * 1000;

  const scored: ScoredWindow[] = [];
  const learner = new AnomalyLearner({
    ...(opts.learner ?? {}),
    windowSec,
    onWindow: (w) => void scored.push(w),
  });
  // The emission gate as the learner host runs it, on a virtual clock (event time).
  const gate = new EmissionGate(declarationsOf([learner]), () => undefined);
  const emitted = new Map<string, boolean>();
  let clock = Number.NEGATIVE_INFINITY;
  const through = (proposals: Proposal[]) => {
    // proposals come in pairs per window, in the order the windows were judged
    let w = scored.length - proposals.length / 2;
    for (let i = 0; i < proposals.length; i += 2) {
      const s = scored[w++]!;
      clock = Math.max(clock, s.start + windowMs);
      gate.release(clock);
      for (const p of [proposals[i]!, proposals[i + 1]!]) gate.propose('anomaly', p, clock);
      emitted.set(key(s.host, s.start), gate.current(s.host, 'kernel.anomaly')?.value === 'true');
    }
  };
  for (let i = 0; i < events.length; i += 1000) through(await learner.onEvents(events.slice(i, i + 1000)));
  through(await learner.flush());
  const late = Number(learner.stats().late);
  learner.dispose();

  // Truth and the baselines' inputs per host-window (the learner's grid: host × event-time window).
  interface Cell {
    truth: boolean;
    severe: boolean;
    severeWords: boolean;
    counts: Map<string, number>;
    lines: number[];
  }
  const cells = new Map<string, Cell>();
  events.forEach((e, i) => {
    const k = key(e.host, Math.floor(e.ts / windowMs) * windowMs);
    let c = cells.get(k);
    if (!c) {
      c = { truth: false, severe: false, severeWords: false, counts: new Map(), lines: [] };
      cells.set(k, c);
    }
    c.truth ||= lineTruth[i]!;
    c.severe ||= isSevere(e, raw[i]!);
    c.severeWords ||= (severityOf(e) ?? 9) <= 3;
    c.counts.set(e.templateId, (c.counts.get(e.templateId) ?? 0) + 1);
    c.lines.push(i);
  });
  const empty: Cell = { truth: false, severe: false, severeWords: false, counts: new Map(), lines: [] };
  const cellOf = (s: ScoredWindow) => cells.get(key(s.host, s.start)) ?? empty;
  const truthW = scored.map((s) => cellOf(s).truth);

  // Prequential baselines, in the order the learner judged the windows.
  const seen = new Set<string>();
  const firstW: boolean[] = [];
  const firstLine = new Set<number>();
  const pcaW: boolean[] = [];
  const history: number[][] = [];
  let pca: PcaModel | undefined;
  for (const s of scored) {
    const c = cellOf(s);
    const fresh = [...c.counts.keys()].filter((t) => !seen.has(t));
    firstW.push(fresh.length > 0);
    for (const i of c.lines) if (fresh.includes(events[i]!.templateId)) firstLine.add(i);
    for (const t of fresh) seen.add(t);
    const v = windowVector(c.counts, 64);
    if (history.length >= 50 && (!pca || history.length % 25 === 0)) pca = fitPca(history.slice(-2000));
    pcaW.push(pca !== undefined && spe(pca, v) > pca.threshold);
    history.push(v);
  }

  const windowPreds: Record<Method, boolean[]> = {
    'learner (gate, emitted)': scored.map((s) => emitted.get(key(s.host, s.start)) ?? false),
    'learner (decision)': scored.map((s) => s.anomalous),
    'baseline flag-all': scored.map(() => true),
    'baseline severity-only': scored.map((s) => cellOf(s).severe),
    'baseline severity+words': scored.map((s) => cellOf(s).severeWords),
    'baseline first-occurrence': firstW,
    'baseline PCA (SPE)': pcaW,
  };

  // Lines: each line's verdict from its host-window.
  const windowIndex = new Map<string, number>();
  scored.forEach((s, i) => {
    windowIndex.set(key(s.host, s.start), i);
  });
  const lineWindow = events.map((e) => windowIndex.get(key(e.host, Math.floor(e.ts / windowMs) * windowMs)));
  const byWindow = (pred: boolean[]) => lineWindow.map((w) => (w === undefined ? false : pred[w]!));
  const attributed = (pred: boolean[]) =>
    lineWindow.map(
      (w, i) => w !== undefined && pred[w]! && scored[w]!.flagged.includes(events[i]!.templateId),
    );
  const linePreds: Record<Method, boolean[]> = {
    'learner (gate, emitted)': attributed(windowPreds['learner (gate, emitted)']),
    'learner (decision)': attributed(windowPreds['learner (decision)']),
    'baseline flag-all': events.map(() => true),
    'baseline severity-only': events.map((e, i) => isSevere(e, raw[i]!)),
    'baseline severity+words': events.map((e) => (severityOf(e) ?? 9) <= 3),
    'baseline first-occurrence': events.map((_, i) => firstLine.has(i)),
    'baseline PCA (SPE)': byWindow(pcaW),
  };

  // Fleet minutes: flagged when any host-window of the minute is.
  const minuteOf = (t: number) => Math.floor(t / 60_000);
  const minutes = [...new Set(events.map((e) => minuteOf(e.ts)))].sort((a, b) => a - b);
  const minuteTruth = new Map<number, boolean>();
  events.forEach((e, i) => {
    const m = minuteOf(e.ts);
    minuteTruth.set(m, (minuteTruth.get(m) ?? false) || lineTruth[i]!);
  });
  const fleet = (pred: boolean[]) => {
    const flagged = new Set<number>();
    // a host-window of W s covers the minutes it spans
    scored.forEach((s, i) => {
      if (!pred[i]) return;
      for (let t = s.start; t < s.start + windowMs; t += 60_000) flagged.add(minuteOf(t));
    });
    return minutes.map((m) => flagged.has(m));
  };
  const mTruth = minutes.map((m) => minuteTruth.get(m)!);

  const methods = {} as Record<Method, MethodScores>;
  for (const m of METHODS) {
    methods[m] = {
      hostWindows: scores(windowPreds[m], truthW),
      fleetMinutes: scores(fleet(windowPreds[m]), mTruth),
      lines: scores(linePreds[m], lineTruth),
    };
  }
  const baselines = METHODS.filter((m) => m.startsWith('baseline'));
  const bestBaseline = baselines.reduce((a, b) =>
    methods[b].hostWindows.f1 > methods[a].hostWindows.f1 ? b : a,
  );
  const best = methods[bestBaseline].hostWindows.f1;
  return {
    lines: events.length,
    anomalousLines: lineTruth.filter(Boolean).length,
    hosts: new Set(events.map((e) => e.host)).size,
    formats,
    windowSec,
    hostWindows: scored.length,
    anomalousHostWindows: truthW.filter(Boolean).length,
    fleetMinutes: minutes.length,
    anomalousFleetMinutes: mTruth.filter(Boolean).length,
    late,
    methods,
    ratio: best > 0 ? methods['learner (gate, emitted)'].hostWindows.f1 / best : Number.POSITIVE_INFINITY,
    bestBaseline,
    windows: scored.map((s, i) => ({
      host: s.host,
      start: new Date(s.start).toISOString(),
      truth: truthW[i]!,
      emitted: windowPreds['learner (gate, emitted)'][i]!,
      score: Number(s.score.toFixed(3)),
      why: s.why,
    })),
  };
}

function isSevere(e: KernelEvent, raw: string): boolean {
  return (e.severity !== null && e.severity <= 3) || LEVEL_RE.test(raw);
}

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new EvalInputError(`${name} needs a value`);
  return v;
}

const USAGE =
  'usage: npm run eval -- anomaly --log FILE (--strip-label | --labels FILE [--strip-label]) [--window SEC] [--threshold NATS] [--learner-options JSON] [--json] [--windows OUT.jsonl]';

const pct = (x: number) => x.toFixed(3);

function row(name: string, m: MethodScores): string {
  const w = m.hostWindows;
  const l = m.lines;
  return `${name.padEnd(27)} ${pct(w.precision)} ${pct(w.recall)} ${pct(w.f1)} (${String(w.tp).padStart(4)}/${String(w.fp).padStart(4)}/${String(w.fn).padStart(4)})   ${pct(m.fleetMinutes.f1)}   ${pct(l.precision)} ${pct(l.recall)} ${pct(l.f1)}`;
}

export function report(path: string, r: AnomalyEvalResult): string {
  const fmts = Object.entries(r.formats)
    .sort((a, b) => b[1] - a[1])
    .map(([f, n]) => `${f} ${n}`)
    .join(', ');
  return [
    `anomaly eval: ${path}`,
    `${r.lines} lines (${r.anomalousLines} labelled anomalous), ${r.hosts} hosts; ingest parser formats: ${fmts}`,
    `${r.hostWindows} host-windows of ${r.windowSec} s judged online, every one, each before it was learnt (${r.anomalousHostWindows} anomalous); ${r.fleetMinutes} fleet minutes (${r.anomalousFleetMinutes} anomalous); late lines ${r.late}`,
    `${''.padEnd(27)} host-windows: P     R     F1    (  tp/  fp/  fn)   fleet-min F1   lines: P     R     F1`,
    ...METHODS.map((m) => row(m, r.methods[m])),
    `headline: learner (gate, emitted) host-window F1 ${pct(r.methods['learner (gate, emitted)'].hostWindows.f1)} = ${r.ratio.toFixed(2)} x the best baseline (${r.bestBaseline.replace('baseline ', '')}, ${pct(r.methods[r.bestBaseline].hostWindows.f1)})`,
  ].join('\n');
}

export default async function main(args: string[]): Promise<number> {
  try {
    const log = arg(args, '--log');
    if (!log) throw new EvalInputError('--log FILE is required (a labelled log; nothing is read by default)');
    const labelsPath = arg(args, '--labels');
    const num = (name: string) => {
      const v = arg(args, name);
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!(n > 0)) throw new EvalInputError(`${name} must be a positive number, got ${v}`);
      return n;
    };
    const read = (p: string) => {
      try {
        return readFileSync(p, 'utf8');
      } catch (err) {
        throw new EvalInputError(`cannot read ${p}: ${(err as Error).message}`);
      }
    };
    const text = read(log);
    const lines = text.split('\n');
    const labels = labelsPath ? readLabels(read(labelsPath)) : undefined;
    const windowSec = num('--window');
    const threshold = num('--threshold');
    // other learner options, for sensitivity runs (the figures that count use the defaults)
    const extra = arg(args, '--learner-options');
    let learnerOptions: Record<string, unknown> = {};
    if (extra) {
      try {
        learnerOptions = JSON.parse(extra) as Record<string, unknown>;
      } catch (err) {
        throw new EvalInputError(`--learner-options must be a JSON object: ${(err as Error).message}`);
      }
    }
    const r = await evaluateAnomaly({
      lines,
      ...(labels ? { labels } : {}),
      stripLabel: args.includes('--strip-label'),
      // year-less stamps (RFC 3164) are read against the time the log was last written
      now: statSync(log).mtimeMs,
      ...(windowSec ? { windowSec } : {}),
      learner: {
        ...(learnerOptions as Omit<AnomalyOptions, 'onWindow' | 'windowSec'>),
        ...(threshold ? { threshold } : {}),
      },
    });
    const dump = arg(args, '--windows');
    if (dump) writeFileSync(dump, `${r.windows.map((w) => JSON.stringify(w)).join('\n')}\n`);
    const { windows: _, ...summary } = r;
    console.log(
      args.includes('--json') ? JSON.stringify({ path: log, ...summary }, null, 2) : report(log, r),
    );
    return 0;
  } catch (err) {
    if (err instanceof EvalInputError) {
      console.error(`eval anomaly: ${err.message}\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}
