// npm run eval -- anomaly --log FILE [--labels FILE] [--window SEC | --window-lines N]
// Precision, recall and F1 of the anomaly learner on a labelled log, per window.
//
// Labels, Loghub style: a line whose first token is `-` is normal, any other first token (an
// alert tag such as KERNDTLB) marks it anomalous; the tag is stripped before parsing. With
// --labels the log is plain and the labels come from FILE, one per log line (its first token), or
// from a CSV with a `Label` column (Loghub-2.0 structured files). A line starting with an epoch
// (BGL, Thunderbird: `- 1117838570 …`) is timed by it; otherwise by its syslog stamp; a log
// without times is cut into windows of --window-lines lines.
// A window is anomalous when any of its lines is. Windows are scored online (before the model
// learns them); those scored during the warm-up are not judged. Two baselines run on the same
// windows: "new template" (flags a window holding a template no earlier window had) and "all".
import { readFileSync } from 'node:fs';
import { parseLine, TemplateMiner } from '../ingest/index.ts';
import { AnomalyLearner, type AnomalyOptions, type ScoredWindow } from '../learners/anomaly.ts';
import { loadBackend } from '../learners/backend.ts';
import type { KernelEvent } from '../schemas/index.ts';

export interface AnomalyEvalOptions {
  lines: string[];
  /** one label per line; absent: the first token of each line is its label */
  labels?: string[];
  windowSec?: number;
  /** windows of N lines when the log has no times */
  windowLines?: number;
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

export interface AnomalyEvalResult {
  lines: number;
  anomalousLines: number;
  windows: number;
  judged: number;
  anomalousWindows: number;
  windowing: string;
  model: Scores;
  baselines: { newTemplate: Scores; all: Scores };
  backend: string;
}

export class EvalInputError extends Error {
  override readonly name = 'EvalInputError';
}

function scores(pred: boolean[], truth: boolean[]): Scores {
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

const EPOCH_RE = /^(\d{9,10})(?:\s|$)/;

export async function evaluateAnomaly(opts: AnomalyEvalOptions): Promise<AnomalyEvalResult> {
  const raw = opts.lines.filter((l, i) => l.trim() !== '' || (opts.labels && i < opts.labels.length));
  if (opts.labels && opts.labels.length !== raw.length) {
    throw new EvalInputError(
      `the labels file has ${opts.labels.length} labels for ${raw.length} log lines; they must pair up line by line`,
    );
  }
  const windowMs = (opts.windowSec ?? 60) * 1000;
  const miner = new TemplateMiner();
  const events: KernelEvent[] = [];
  const truthOf: boolean[] = [];
  let timed = 0;
  const base = Date.UTC(2000, 0, 1);
  raw.forEach((line, i) => {
    let label = opts.labels?.[i];
    let rest = line.replace(/\r$/, '');
    if (label === undefined) {
      const sp = rest.indexOf(' ');
      label = sp < 0 ? rest : rest.slice(0, sp);
      rest = sp < 0 ? '' : rest.slice(sp + 1);
    }
    const epoch = EPOCH_RE.exec(rest);
    let ts: number | undefined;
    let message: string;
    if (epoch) {
      ts = Number(epoch[1]) * 1000;
      message = rest.slice(epoch[0].length);
    } else {
      const p = parseLine(rest, { host: 'log', now: base });
      if (p.hasTime) ts = p.ts;
      message = p.message;
    }
    if (ts !== undefined) timed++;
    const m = miner.add(message);
    events.push({
      host: 'log',
      ts: ts ?? Number.NaN,
      mono: null,
      program: null,
      pid: null,
      severity: null,
      message,
      family: 'other',
      fields: {},
      templateId: m.templateId,
      template: m.template,
      params: m.params,
      flags: [],
    });
    truthOf.push(label !== '-');
  });
  // Times when (nearly) every line has one; else windows of N lines.
  const byTime = events.length > 0 && timed >= events.length * 0.95;
  const windowLines = opts.windowLines ?? 100;
  let last = Number.NEGATIVE_INFINITY;
  events.forEach((e, i) => {
    if (byTime) {
      // untimed stragglers and clock steps backwards stay in the current window
      e.ts = Number.isFinite(e.ts) && e.ts >= last ? e.ts : last;
      last = e.ts;
    } else {
      e.ts = Math.floor(i / windowLines) * windowMs + (i % windowLines);
    }
  });

  const { tf, name: backend } = await loadBackend();
  const scored: ScoredWindow[] = [];
  const o = { ...(opts.learner ?? {}) };
  const learner = new AnomalyLearner(
    tf,
    AnomalyLearner.buildModel(tf, o.dims ?? 64, o.hidden ?? 8, o.learningRate ?? 0.01, o.seed ?? 11),
    {
      ...o,
      windowSec: windowMs / 1000,
      onWindow: (w) => void scored.push(w),
    },
  );
  for (let i = 0; i < events.length; i += 1000) await learner.onEvents(events.slice(i, i + 1000));
  await learner.flush();
  learner.dispose();

  // Ground truth and the new-template baseline per window, in the learner's window grid.
  const windowOf = (ts: number) => Math.floor(ts / windowMs) * windowMs;
  const truth = new Map<number, boolean>();
  const templates = new Map<number, Set<string>>();
  events.forEach((e, i) => {
    const w = windowOf(e.ts);
    truth.set(w, (truth.get(w) ?? false) || truthOf[i]!);
    let s = templates.get(w);
    if (!s) {
      s = new Set();
      templates.set(w, s);
    }
    s.add(e.templateId);
  });
  const seen = new Set<string>();
  const newTemplate = new Map<number, boolean>();
  for (const w of [...templates.keys()].sort((a, b) => a - b)) {
    const s = templates.get(w)!;
    newTemplate.set(
      w,
      [...s].some((t) => !seen.has(t)),
    );
    for (const t of s) seen.add(t);
  }
  const judged = scored.filter((s) => s.warm);
  const t = judged.map((s) => truth.get(s.start) ?? false);
  return {
    lines: events.length,
    anomalousLines: truthOf.filter(Boolean).length,
    windows: scored.length,
    judged: judged.length,
    anomalousWindows: t.filter(Boolean).length,
    windowing: byTime ? `${windowMs / 1000} s windows` : `windows of ${windowLines} lines`,
    model: scores(
      judged.map((s) => s.anomalous),
      t,
    ),
    baselines: {
      newTemplate: scores(
        judged.map((s) => newTemplate.get(s.start) ?? false),
        t,
      ),
      all: scores(
        judged.map(() => true),
        t,
      ),
    },
    backend,
  };
}

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new EvalInputError(`${name} needs a value`);
  return v;
}

const USAGE =
  'usage: npm run eval -- anomaly --log FILE [--labels FILE] [--window SEC | --window-lines N] [--warmup N] [--k K] [--json]';

function line(name: string, s: Scores): string {
  return `${name.padEnd(24)} precision=${s.precision.toFixed(3)} recall=${s.recall.toFixed(3)} f1=${s.f1.toFixed(3)}  (tp=${s.tp} fp=${s.fp} fn=${s.fn} tn=${s.tn})`;
}

export default async function main(args: string[]): Promise<number> {
  try {
    const log = arg(args, '--log');
    if (!log) throw new EvalInputError('--log FILE is required');
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
    if (lines[lines.length - 1] === '') lines.pop();
    const labels = labelsPath ? readLabels(read(labelsPath)) : undefined;
    const warmup = num('--warmup');
    const k = num('--k');
    const windowSec = num('--window');
    const windowLines = num('--window-lines');
    const r = await evaluateAnomaly({
      lines,
      ...(labels ? { labels } : {}),
      ...(windowSec ? { windowSec } : {}),
      ...(windowLines ? { windowLines } : {}),
      learner: { ...(warmup ? { warmup } : {}), ...(k ? { k } : {}) },
    });
    if (args.includes('--json')) {
      console.log(JSON.stringify(r, null, 2));
      return 0;
    }
    console.log(
      `anomaly eval: ${r.lines} lines (${r.anomalousLines} anomalous), ${r.windows} ${r.windowing}, ${r.judged} judged after the warm-up, ${r.anomalousWindows} of them anomalous`,
    );
    console.log(line('model (autoencoder)', r.model));
    console.log(line('baseline new-template', r.baselines.newTemplate));
    console.log(line('baseline all-anomalous', r.baselines.all));
    console.log(`backend: ${r.backend}`);
    return 0;
  } catch (err) {
    if (err instanceof EvalInputError) {
      console.error(`eval anomaly: ${err.message}\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}
