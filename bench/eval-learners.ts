// npm run eval -- learners [--seeds 1,2,3,4,5] [--only netbw,load,webcam]
// Every tfjs learner against its naive baselines, prequentially (each prediction is recorded
// before the truth of its step is revealed; see bench/lib/prequential.ts), on labelled streams
// generated from the models stated below (no public labelled data exists for these three
// signals: see learners/README.md, "Evaluation"). Each seed is a fresh world; the table gives the
// median over the seeds, and --json prints every seed's figures.
//
// What is scored for the learners is what production would have emitted at that moment: the
// proposals pass through the declared variables' emission gate (dwell, hysteresis) on the stream's
// event time, and the value in force when the truth comes is the prediction. Kernel lines go
// through ingest's parser and template miner, as the consumer stage hands them over.
import { parseLine, TemplateMiner, toKernelEvent } from '../ingest/index.ts';
import { loadBackend } from '../learners/backend.ts';
import { EmissionGate } from '../learners/gate.ts';
import { LOAD_VARIABLES, LoadLearner } from '../learners/load.ts';
import { classifyNetEvent, congested, NETBW_VARIABLES, NetbwLearner } from '../learners/netbw.ts';
import type { Proposal, Tf, VariableDecl } from '../learners/types.ts';
import { WEBCAM_VARIABLES, WebcamLearner } from '../learners/webcam.ts';
import { Rng } from '../learners/window.ts';
import { setLogLevel } from '../runtime/log.ts';
import type { KernelEvent } from '../schemas/index.ts';
import {
  binary,
  brier,
  commonlyPredicted,
  eer,
  logLoss,
  mae,
  majority,
  medianOf,
  type OnlineModel,
  persistence,
  prequential,
  runningMean,
  type Scored,
  type Step,
} from './lib/prequential.ts';

const T0 = Date.UTC(2024, 0, 1);

const uni = (rng: Rng, lo: number, hi: number) => lo + (hi - lo) * rng.next();

/** Kernel lines through ingest's parser and miner, as the consumer stage does. */
class Parser {
  private readonly miner = new TemplateMiner();
  events(lines: readonly { ts: number; host: string; msg: string }[]): KernelEvent[] {
    return lines.map((l) => {
      const p = parseLine(`${new Date(l.ts).toISOString()} ${l.host} kernel: ${l.msg}`, {
        host: l.host,
        now: l.ts,
      });
      return toKernelEvent(p, this.miner.add(p.message));
    });
  }
}

/** The emission gate of a learner's variables; `inForce` is what a reader of the topic has now. */
class Emitted {
  private readonly gate: EmissionGate;
  readonly inForce = new Map<string, string>();
  constructor(learner: string, decls: readonly VariableDecl[]) {
    this.gate = new EmissionGate(new Map(decls.map((d) => [d.key, { decl: d, learner }])), () => undefined);
    this.learner = learner;
  }
  private readonly learner: string;
  apply(props: readonly Proposal[], now: number): void {
    for (const p of props) {
      const r = this.gate.propose(this.learner, p, now);
      if (r.variable) this.inForce.set(`${r.variable.host}/${r.variable.key}`, r.variable.value);
    }
    for (const v of this.gate.release(now)) this.inForce.set(`${v.host}/${v.key}`, v.value);
  }
  num(host: string, key: string): number {
    const v = this.inForce.get(`${host}/${key}`);
    return v === undefined ? Number.NaN : Number(v);
  }
  str(host: string, key: string): string | undefined {
    return this.inForce.get(`${host}/${key}`);
  }
}

// ==== netbw ====================================================================================

export const NETBW_MODEL = `netbw world: 12 hosts, 360 windows of 60 s (6 h) per seed. Each host's link is a hidden Markov
  chain over N(ormal) / D(egrading) / C(ongested), one step per window:
    N -> D 0.04, N -> C 0.01 (congestion without warning), else N
    D -> C 0.50, D -> N 0.20, D -> D 0.30
    C -> C 0.60, C -> N 0.40
  Lines per window: background (systemd/cron/audit) Poisson(lambda_h), lambda_h ~ U(5, 30) per host;
  UFW blocks Poisson(u_h), u_h ~ U(0, 8); and by state —
    N: a drop report w.p. 0.03, a NIC error w.p. 0.02 (false alarms)
    D: precursors — NETDEV WATCHDOG tx timeout w.p. 0.5, NIC error (e1000e Hardware Unit Hang) w.p. 0.6,
       a drop w.p. 0.3
    C: drops Poisson(4) w.p. 0.9, tx timeout w.p. 0.6, link down+up w.p. 0.15
  Truth for window t: the link was in C. Forecast: made at the end of window t-1, scored at t.`;

const NB = { hosts: 12, windows: 360, windowMs: 60_000 };

interface NetWorld {
  /** steps: x = window t-1's lines (and the watermark t), y = C in window t per host */
  steps: Step<{ events: KernelEvent[]; until: number }>[];
}

function netbwWorld(seed: number): NetWorld {
  const rng = new Rng(seed * 1_000_003 + 11);
  const parser = new Parser();
  const hosts = Array.from({ length: NB.hosts }, (_, i) => `edge-${i}`);
  const lambda = hosts.map(() => uni(rng, 5, 30));
  const ufw = hosts.map(() => uni(rng, 0, 8));
  const state = hosts.map(() => 'N' as 'N' | 'D' | 'C');
  const BG = [
    'systemd[1]: Started Session 12 of user root.',
    'CRON[2211]: (root) CMD (run-parts /etc/cron.hourly)',
    'audit: type=1400 audit(0.0:12): apparmor="STATUS" operation="profile_load"',
    'EXT4-fs (sda1): re-mounted. Opts: errors=remount-ro',
  ];
  const windows: { lines: KernelEvent[]; truth: number[] }[] = [];
  for (let w = 0; w < NB.windows; w++) {
    const lines: { ts: number; host: string; msg: string }[] = [];
    const at = () => T0 + w * NB.windowMs + Math.floor(rng.next() * NB.windowMs);
    hosts.forEach((h, i) => {
      const r = rng.next();
      const s = state[i]!;
      state[i] =
        s === 'N'
          ? r < 0.04
            ? 'D'
            : r < 0.05
              ? 'C'
              : 'N'
          : s === 'D'
            ? r < 0.5
              ? 'C'
              : r < 0.7
                ? 'N'
                : 'D'
            : r < 0.6
              ? 'C'
              : 'N';
      const st = state[i]!;
      const push = (msg: string, n = 1) => {
        for (let k = 0; k < n; k++) lines.push({ ts: at(), host: h, msg });
      };
      for (let k = rng.poisson(lambda[i]!); k > 0; k--) push(BG[rng.int(BG.length)]!);
      for (let k = rng.poisson(ufw[i]!); k > 0; k--)
        push(
          `[UFW BLOCK] IN=eth0 OUT= SRC=203.0.113.${rng.int(200)} DST=10.0.0.${i} PROTO=TCP SPT=4${rng.int(999)} DPT=${[22, 23, 3389][rng.int(3)]}`,
        );
      const drop = 'nf_conntrack: nf_conntrack: table full, dropping packet';
      const hang = 'e1000e 0000:00:19.0 eth0: Detected Hardware Unit Hang';
      const tx = 'NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out';
      if (st === 'N') {
        if (rng.next() < 0.03) push(drop);
        if (rng.next() < 0.02) push(hang);
      } else if (st === 'D') {
        if (rng.next() < 0.5) push(tx);
        if (rng.next() < 0.6) push(hang);
        if (rng.next() < 0.3) push(drop);
      } else {
        if (rng.next() < 0.9) push(drop, Math.max(1, rng.poisson(4)));
        if (rng.next() < 0.6) push(tx);
        if (rng.next() < 0.15) {
          push('e1000e: eth0 NIC Link is Down');
          push('e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: None');
        }
      }
    });
    lines.sort((a, b) => a.ts - b.ts);
    windows.push({ lines: parser.events(lines), truth: state.map((s) => (s === 'C' ? 1 : 0)) });
  }
  const steps: NetWorld['steps'] = [];
  for (let w = 1; w < NB.windows; w++) {
    steps.push({
      x: { events: windows[w - 1]!.lines, until: T0 + w * NB.windowMs },
      targets: hosts,
      y: windows[w]!.truth,
    });
  }
  return { steps };
}

type NetX = { events: KernelEvent[]; until: number };

/** The learner as emitted: its risk (for log loss and Brier) and its alert (for F1), both gated. */
function netbwLearnerModels(
  tf: Tf,
  seed: number,
): { risk: OnlineModel<NetX>; alert: OnlineModel<NetX>; dispose(): void } {
  const l = new NetbwLearner(tf, NetbwLearner.buildModel(tf, 0.05, 7 + seed), { seed: 7 + seed });
  const out = new Emitted('netbw', NETBW_VARIABLES(10, 1000));
  // the truth never reaches the learner: it labels itself from the next window's lines
  const learn = () => {};
  return {
    risk: {
      name: 'learner netbw (as emitted)',
      async predict(x, targets) {
        out.apply([...(await l.onEvents(x.events)), ...(await l.advance(x.until))], x.until);
        return targets.map((h) => out.num(h, 'netbw.congestion_risk'));
      },
      learn,
    },
    // listed after `risk`: reads what the same step emitted
    alert: {
      name: 'learner alert',
      predict: (_x, targets) =>
        targets.map((h) => {
          const v = out.str(h, 'netbw.congestion_expected');
          return v === undefined ? Number.NaN : v === 'true' ? 1 : 0;
        }),
      learn,
    },
    dispose: () => l.dispose(),
  };
}

// ==== load =====================================================================================

export const LOAD_MODEL = `load world: 8 nodes, 500 steps of 10 s per seed, 4 jobs per step on random nodes.
  Node n: speed factor s_n ~ U(0.7, 1.5) (hidden hardware heterogeneity), mean load mu_n ~ U(0.3, 5);
  load AR(1): load <- max(0, mu_n + 0.8 (load - mu_n) + N(0, 0.4)); runq ~ Poisson(1.5 load);
  hung-task reports: a node is 'sick' w.p. 0.25 (Poisson(0.3) reports per step) else Poisson(0.01),
  decayed with a 300 s half-life into h_n.
  exec_ms = s_n (20 + 40 load + 5 runq + 30 h_n) x LogNormal(0, 0.1)
  Each step every node's agent reports load and runq; then the jobs run and report exec_ms.
  Truth: exec_ms of each job (MAE); the fastest node = argmin of the noise-free expected exec_ms.`;

const LD = { nodes: 8, steps: 500, stepMs: 10_000, jobs: 4 };

interface LoadX {
  samples: KernelEvent[];
  at: number;
  /** the noise-free expected exec_ms per node now (for pick accuracy and regret only) */
  expected: Map<string, number>;
  loads: Map<string, number>;
  execLines: (y: readonly number[]) => KernelEvent[];
}

function loadWorld(seed: number): Step<LoadX>[] {
  const rng = new Rng(seed * 7_919 + 3);
  const parser = new Parser();
  const nodes = Array.from({ length: LD.nodes }, (_, i) => `node-${i}`);
  const speed = nodes.map(() => uni(rng, 0.7, 1.5));
  const mu = nodes.map(() => uni(rng, 0.3, 5));
  const sick = nodes.map(() => rng.next() < 0.25);
  const load = [...mu];
  const hung = nodes.map(() => 0);
  const steps: Step<LoadX>[] = [];
  for (let t = 0; t < LD.steps; t++) {
    const at = T0 + t * LD.stepMs;
    const lines: { ts: number; host: string; msg: string }[] = [];
    const runq: number[] = [];
    nodes.forEach((n, i) => {
      load[i] = Math.max(0, mu[i]! + 0.8 * (load[i]! - mu[i]!) + 0.4 * rng.normal());
      runq.push(rng.poisson(1.5 * load[i]!));
      hung[i] = hung[i]! * 0.5 ** (LD.stepMs / 300_000);
      for (let k = rng.poisson(sick[i] ? 0.3 : 0.01); k > 0; k--) {
        hung[i] = hung[i]! + 1;
        lines.push({
          ts: at - 1_000,
          host: n,
          msg: `INFO: task kworker/${i}:1:${100 + k} blocked for more than 120 seconds.`,
        });
      }
      lines.push({
        ts: at,
        host: n,
        msg: `virgo_load: node=${n} load=${load[i]!.toFixed(2)} runq=${runq[i]}`,
      });
    });
    const expected = new Map(
      nodes.map((n, i) => [n, speed[i]! * (20 + 40 * load[i]! + 5 * runq[i]! + 30 * hung[i]!)] as const),
    );
    const jobs = Array.from({ length: LD.jobs }, () => rng.int(LD.nodes));
    const y = jobs.map((j) => expected.get(nodes[j]!)! * Math.exp(0.1 * rng.normal()));
    const loads = new Map(nodes.map((n, i) => [n, load[i]!] as const));
    const snapshot = jobs.map((j) => ({ n: nodes[j]!, load: load[j]!, runq: runq[j]! }));
    steps.push({
      x: {
        samples: parser.events(lines.sort((a, b) => a.ts - b.ts)),
        at,
        expected,
        loads,
        execLines: (ys) =>
          parser.events(
            snapshot.map((s, k) => ({
              ts: at + 5_000,
              host: s.n,
              msg: `virgo_load: node=${s.n} load=${s.load.toFixed(2)} runq=${s.runq} exec_ms=${ys[k]!.toFixed(1)}`,
            })),
          ),
      },
      targets: jobs.map((j) => nodes[j]!),
      y,
    });
  }
  return steps;
}

function loadLearnerModel(tf: Tf, seed: number): OnlineModel<LoadX> & { pick(): string | undefined } {
  const l = new LoadLearner(tf, LoadLearner.buildModel(tf, 0.05, 13 + seed), { seed: 13 + seed });
  const out = new Emitted('load', LOAD_VARIABLES);
  return {
    name: 'learner load (as emitted)',
    async predict(x, targets) {
      out.apply(await l.onEvents(x.samples), x.at);
      return targets.map((n) => out.num(n, 'cpupooling.predicted_exec_ms'));
    },
    async learn(x, _targets, y) {
      // exec_ms is the learner's own input in production (the agent reports it after the job)
      out.apply(await l.onEvents(x.execLines(y)), x.at + 5_000);
    },
    pick: () => out.str('cluster', 'cpupooling.least_loaded_node'),
  };
}

// ==== webcam ===================================================================================

export const WEBCAM_MODEL = `webcam world: 128-d embeddings, 20 enrolled identities (5 enrolment shots each), 2400 frames at
  5 fps per seed. Identity k has a centroid c_k (uniform on the sphere); a shot of k is
  unit(c_k + 0.08 z), z ~ N(0, I) (cosine to c_k ~ 0.74). Visitors come in sessions of 1..15 frames:
  enrolled w.p. 0.6; otherwise an impostor: a stranger (fresh random centroid) w.p. 0.5, or a
  lookalike of an enrolled k (unit(c_k + 0.12 z'), cosine to c_k ~ 0.59).
  Truth per frame: the visitor is enrolled (match=True).`;

const WB = { d: 128, ids: 20, shots: 5, frames: 2400, frameMs: 200, noise: 0.08 };

interface WebcamX {
  embedding: number[];
  ts: number;
}

function unitVec(v: number[]): number[] {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

function webcamWorld(seed: number): { gallery: Record<string, number[][]>; steps: Step<WebcamX>[] } {
  const rng = new Rng(seed * 104_729 + 5);
  const gauss = () => Array.from({ length: WB.d }, () => rng.normal());
  const centroid = () => unitVec(gauss());
  const shot = (c: number[], s: number) => unitVec(c.map((x) => x + s * rng.normal()));
  const ids = Array.from({ length: WB.ids }, centroid);
  const gallery: Record<string, number[][]> = {};
  ids.forEach((c, k) => {
    gallery[`person-${k}`] = Array.from({ length: WB.shots }, () => shot(c, WB.noise));
  });
  const steps: Step<WebcamX>[] = [];
  let f = 0;
  while (f < WB.frames) {
    const len = 1 + rng.int(15);
    const enrolled = rng.next() < 0.6;
    const c = enrolled
      ? ids[rng.int(WB.ids)]!
      : rng.next() < 0.5
        ? centroid()
        : shot(ids[rng.int(WB.ids)]!, 0.12);
    for (let i = 0; i < len && f < WB.frames; i++, f++) {
      steps.push({
        x: { embedding: shot(c, WB.noise), ts: T0 + f * WB.frameMs },
        targets: ['cam-0'],
        y: [enrolled ? 1 : 0],
      });
    }
  }
  return { gallery, steps };
}

// ==== report ===================================================================================

interface Row {
  name: string;
  [metric: string]: number | string;
}

function table(title: string, metrics: string[], perSeed: Map<string, Row[]>): string {
  const names = [...perSeed.keys()];
  const lines = [title, `  ${'model'.padEnd(38)}${metrics.map((m) => m.padStart(14)).join('')}`];
  for (const n of names) {
    const rows = perSeed.get(n)!;
    const cells = metrics.map((m) => {
      const v = medianOf(rows.map((r) => Number(r[m])));
      return (Number.isFinite(v) ? (Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(3)) : '-').padStart(14);
    });
    lines.push(`  ${n.padEnd(38)}${cells.join('')}`);
  }
  return lines.join('\n');
}

function push(m: Map<string, Row[]>, r: Row): void {
  const l = m.get(r.name) ?? [];
  l.push(r);
  m.set(r.name, l);
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

/** What a grep says: the last window had congestion evidence (the learner's own label rule), so
 * the next will too. Needs no truth: it is what production could do without a model. */
function grepPersistence(): OnlineModel<NetX> {
  return {
    name: 'last window had drops/link down (grep)',
    predict(x, targets) {
      const counts = new Map<string, number[]>();
      for (const e of x.events) {
        const c = counts.get(e.host) ?? new Array<number>(8).fill(0);
        classifyNetEvent(e, c);
        counts.set(e.host, c);
      }
      return targets.map((h) => congested(counts.get(h) ?? [], 1));
    },
    learn() {},
  };
}

export async function evalNetbw(tf: Tf, seed: number): Promise<Row[]> {
  const world = netbwWorld(seed);
  const learner = netbwLearnerModels(tf, seed);
  const res = commonlyPredicted(
    await prequential(world.steps, [
      learner.risk,
      learner.alert,
      grepPersistence(),
      persistence(0, 'persistence of the truth (next = last)'),
      runningMean(0.5, 'running mean (per host)'),
      majority('majority class'),
    ]),
  );
  learner.dispose();
  const alert = binary(res.get(learner.alert.name)!);
  res.delete(learner.alert.name);
  return [...res].map(([name, rows]) => {
    // the learner's decision is its alert (threshold learnt online); a baseline's is p >= 0.5
    const b = name === learner.risk.name ? alert : binary(rows);
    return {
      name,
      logLoss: logLoss(rows),
      brier: brier(rows),
      f1: b.f1,
      precision: b.precision,
      recall: b.recall,
      n: rows.length,
    };
  });
}

export async function evalLoad(tf: Tf, seed: number): Promise<Row[]> {
  const steps = loadWorld(seed);
  const learner = loadLearnerModel(tf, seed);
  const pers = persistence<LoadX>(Number.NaN, 'persistence (last exec on node)');
  const mean = runningMean<LoadX>(Number.NaN, 'running mean (per node)');
  // Picks are judged at each step, before that step's exec_ms are revealed. A baseline's pick goes
  // through the same declared variable (its 30 s dwell) as the learner's: both as emitted.
  const picks = new Map<string, { ok: number; regret: number; n: number }>();
  const gates = new Map<string, Emitted>();
  const judge = (name: string, proposed: string | undefined, x: LoadX, gated = true) => {
    let node = proposed;
    if (gated && proposed !== undefined) {
      const g = gates.get(name) ?? new Emitted('load', LOAD_VARIABLES);
      gates.set(name, g);
      g.apply(
        [
          {
            host: 'cluster',
            key: 'cpupooling.least_loaded_node',
            value: proposed,
            why: name,
            confidence: 1,
            model: name,
          },
        ],
        x.at,
      );
      node = g.str('cluster', 'cpupooling.least_loaded_node');
    }
    if (node === undefined || !x.expected.has(node)) return;
    const best = Math.min(...x.expected.values());
    const s = picks.get(name) ?? { ok: 0, regret: 0, n: 0 };
    s.n++;
    s.regret += x.expected.get(node)! - best;
    if (x.expected.get(node)! === best) s.ok++;
    picks.set(name, s);
  };
  const argmin = (m: Map<string, number>): string | undefined => {
    let best: [string, number] | undefined;
    for (const [k, v] of m) if (Number.isFinite(v) && (!best || v < best[1])) best = [k, v];
    return best?.[0];
  };
  const nodes = Array.from({ length: LD.nodes }, (_, i) => `node-${i}`);
  // Listed after the learner, so it reads the pick the learner emitted on this step's samples.
  const picker: OnlineModel<LoadX> = {
    name: 'picks',
    async predict(x, targets) {
      // after the learner has seen this step's samples (it predicts first in the list)
      judge(learner.name, learner.pick(), x, false);
      judge('lowest load now', argmin(x.loads), x);
      const p = await pers.predict(x, nodes);
      judge(pers.name, argmin(new Map(nodes.map((n, i) => [n, p[i]!]))), x);
      const m = await mean.predict(x, nodes);
      judge(mean.name, argmin(new Map(nodes.map((n, i) => [n, m[i]!]))), x);
      return targets.map(() => 0);
    },
    learn() {},
  };
  const res = await prequential(steps, [learner, pers, mean, picker]);
  res.delete('picks');
  const scored = commonlyPredicted(res);
  const rows: Row[] = [...scored].map(([name, r]: [string, Scored[]]) => {
    const pk = picks.get(name);
    return {
      name,
      maeMs: mae(r),
      pickAccuracy: pk ? pk.ok / pk.n : Number.NaN,
      regretMs: pk ? pk.regret / pk.n : Number.NaN,
      n: r.length,
    };
  });
  const low = picks.get('lowest load now');
  if (low)
    rows.push({
      name: 'lowest load now',
      maeMs: Number.NaN,
      pickAccuracy: low.ok / low.n,
      regretMs: low.regret / low.n,
      n: low.n,
    });
  return rows;
}

export async function evalWebcam(tf: Tf, seed: number): Promise<Row[]> {
  const world = webcamWorld(seed);
  const l = new WebcamLearner(tf, { gallery: world.gallery });
  const out = new Emitted('webcam', WEBCAM_VARIABLES);
  const sims: number[] = [];
  const truth: boolean[] = [];
  const emitted: OnlineModel<WebcamX> = {
    name: 'learner webcam (as emitted)',
    async predict(x) {
      const props = await l.onWebcam([
        { deviceId: 'cam-0', seq: 0, ts: x.ts, faceDetected: true, embedding: x.embedding },
      ]);
      const s = props.find((p) => p.key === 'webcam.similarity');
      sims.push(typeof s?.value === 'number' ? s.value : -1);
      out.apply(props, x.ts);
      const v = out.str('cam-0', 'match');
      return [v === undefined ? Number.NaN : v === 'True' ? 1 : 0];
    },
    learn(_x, _t, y) {
      truth.push(y[0]! >= 0.5);
    },
  };
  const raw: OnlineModel<WebcamX> = {
    name: 'learner webcam (its decision, ungated)',
    predict: () => [sims.at(-1)! >= l.threshold ? 1 : 0],
    learn() {},
  };
  const res = commonlyPredicted(
    await prequential(world.steps, [
      emitted,
      raw,
      persistence(0, 'persistence (last visitor)'),
      majority('majority class'),
    ]),
  );
  const e = eer(sims, truth);
  l.dispose();
  return [...res].map(([name, r]) => {
    const b = binary(r);
    return { name, accuracy: b.accuracy, f1: b.f1, eer: name.startsWith('learner') ? e : 0.5, n: r.length };
  });
}

export default async function evalLearners(args: string[]): Promise<number> {
  setLogLevel('warn');
  const seeds = (flag(args, 'seeds') ?? '1,2,3,4,5').split(',').map(Number);
  const only = new Set((flag(args, 'only') ?? 'netbw,load,webcam').split(','));
  if (seeds.some((s) => !Number.isInteger(s))) {
    console.error('usage: npm run eval -- learners [--seeds 1,2,3] [--only netbw,load,webcam] [--json]');
    return 2;
  }
  const backend = await loadBackend();
  const tf = backend.tf;
  console.log(
    `tfjs backend: ${backend.name} (${backend.package} ${backend.version}); seeds ${seeds.join(',')}; medians over seeds`,
  );
  const all: Record<string, Record<number, Row[]>> = {};
  const run = async (
    name: string,
    model: string,
    metrics: string[],
    fn: (tf: Tf, seed: number) => Promise<Row[]>,
  ) => {
    if (!only.has(name)) return;
    const per = new Map<string, Row[]>();
    all[name] = {};
    const t0 = Date.now();
    for (const s of seeds) {
      const rows = await fn(tf, s);
      all[name][s] = rows;
      for (const r of rows) push(per, r);
    }
    console.log(`\n${model}`);
    console.log(table(`${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`, metrics, per));
  };
  await run('netbw', NETBW_MODEL, ['logLoss', 'brier', 'f1', 'precision', 'recall', 'n'], evalNetbw);
  await run('load', LOAD_MODEL, ['maeMs', 'pickAccuracy', 'regretMs', 'n'], evalLoad);
  await run('webcam', WEBCAM_MODEL, ['accuracy', 'f1', 'eer', 'n'], evalWebcam);
  if (args.includes('--json')) console.log(JSON.stringify({ backend: backend.name, seeds, results: all }));
  return 0;
}
