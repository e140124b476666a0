// The learner host: runs the chosen learners on batches of records, passes every proposal through
// the emission gate (declaration, dwell, pins), and delivers emitted variables to
// virgo.kernel-analytics through an outbox (latest value per host/key, kept until the Bus
// acknowledges it). Work is serialised: one batch at a time, so learners never interleave.
// Time: dwell runs on each host's pipeline clock (learners/clock.ts), fed with the event times of
// the records handed over; at start the current value of every variable is announced again, so a
// restart on a saved state reaches whoever listens now (the in-process bus starts empty).

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Bus, TOPICS, topicSpecs } from '../bus/index.ts';
import { hop } from '../runtime/latency.ts';
import { createLogger } from '../runtime/log.ts';
import { counter, histogram } from '../runtime/metrics.ts';
import type { AnalyticsVariable, DroneSensorFrame, KernelEvent, WebcamFrame } from '../schemas/index.ts';
import { loadBackend } from './backend.ts';
import {
  type HostClockJson,
  PipelineClock,
  type PipelineClockJson,
  type PipelineClockOptions,
} from './clock.ts';
import {
  type DeclaredVariable,
  EmissionGate,
  type GateSnapshot,
  operatorVariable,
  type VariableState,
  type Verdict,
} from './gate.ts';
import { exportShared, importShared, type SharedDoc } from './learner-state.ts';
import { checkPin, PINS_TOPIC, type PinDiff, Pins } from './pins.ts';
import { declarationsOf, FACTORIES, type LearnerName, learnerNames } from './registry.ts';
import { currentSnapshot, readJson, writeJsonAtomic, writeSnapshot } from './snapshot.ts';
import type { Learner, LearnerStats, Proposal, Tf } from './types.ts';
import { variableMessage } from './variables.ts';

const log = createLogger('learners');

const mInputs = counter('virgo_learner_inputs_total', 'records handed to the learners', ['input']);
const mVerdicts = counter('virgo_learner_proposals_total', 'learner proposals by gate verdict', [
  'learner',
  'verdict',
]);
const mPublished = counter('virgo_learner_published_total', 'analytics variables published');
const mAnnounced = counter(
  'virgo_learner_reannounced_total',
  'current values published again at start (a restart re-announces what the state restored)',
);
const mPublishFailures = counter(
  'virgo_learner_publish_failures_total',
  'failed publishes of analytics variables',
);
const mRejected = counter('virgo_learner_rejected_total', 'bad input records rejected', ['input', 'reason']);
const hBatch = histogram(
  'virgo_learner_batch_seconds',
  'time one learner spends on one batch',
  ['learner'],
  [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
);
// Latency hops (runtime/latency.ts), processing time: a batch through every learner and the gate;
// a flush of the outbox to the analytics topic until the Bus acknowledged it.
const hLearners = hop('learners');
const hToAnalytics = hop('learners→analytics');

export interface LearnerHostOptions {
  bus: Bus;
  /** learner names; all when absent */
  learners?: string[];
  /** where snapshots (learners/) and pins (pins/) live; without it nothing persists */
  stateDir?: string;
  /** the wall clock (processing time) under the pipeline clock; tests pass a fake one */
  now?: () => number;
  /** the pipeline clock of dwell times and of the variables' ts: mode (auto|event|processing),
   * --tdf, lag threshold, or a clock the caller keeps (default: auto on `now`) */
  clock?: PipelineClockOptions | PipelineClock;
  /** per-learner options, e.g. { ufw: { windowSec: 60 } } */
  learnerOptions?: Partial<Record<LearnerName, Record<string, unknown>>>;
  /** where variables go (default virgo.kernel-analytics) */
  analyticsTopic?: string;
  /** the compacted pins topic; default virgo.learner-pins with Kafka, none in-process */
  pinsTopic?: string | false;
  /** called for every variable once the Bus took it (the CLI prints them) */
  onEmit?: (v: AnalyticsVariable) => void;
  /** more state saved in (and restored from) each snapshot, e.g. the template miner */
  attachments?: SnapshotAttachment[];
  /**
   * Hosts whose variables wait in the outbox for the caller's transaction (`deferred()` and
   * `delivered()`) instead of being published by the host: with exactly-once on Kafka, the hosts
   * of the log partitions this instance owns.
   */
  defer?: (host: string) => boolean;
  /** a host's state changed (its records reached the learners, a variable of it went out, a pin) */
  onTouched?: (host: string) => void;
  /** per-host state kept outside the learners, exported and imported with theirs */
  parts?: HostPart[];
  /** after the snapshot was restored, before the re-announce (the learn stage drops the hosts
   * the changelog restores instead) */
  afterRestore?: (host: LearnerHost) => void | Promise<void>;
}

/** A piece of per-host state kept outside the learners and the gate (ingest's watermarks and
 * dedupe, the templates a host's lines matched), registered by the learn stage. */
export interface HostPart {
  /** the part's name in the changelog */
  readonly name: string;
  /** the parts of `hosts` (JSON-able, or a `SplitPart`); a host without one is left out */
  get(hosts: ReadonlySet<string>): Map<string, unknown>;
  /** `more`: the records `<name>.<sub>` of a part written as a `SplitPart`, parsed, by sub */
  put(host: string, value: unknown, more: ReadonlyMap<string, unknown>): void;
  drop(hosts: ReadonlySet<string>): void;
}

/**
 * A part kept in several changelog records: `head` (JSON-able) under the part's name, and each
 * of `more` under `<name>.<sub>` as the JSON text given. The part keeps a text that did not change
 * the same string, so comparing it with the one committed costs nothing and it is not written
 * again (ingest's dedupe identities, in blocks: most of them unchanged from one commit to the next).
 */
export class SplitPart {
  constructor(
    readonly head: unknown,
    readonly more: ReadonlyMap<string, string>,
  ) {}
}

export interface SnapshotAttachment {
  /** file or directory name inside the snapshot */
  name: string;
  save(path: string): void | Promise<void>;
  load(path: string): void | Promise<void>;
}

export interface LearnerHostStats {
  backend: string;
  learners: Record<string, LearnerStats & { batches: number; seconds: number }>;
  inputs: { kernel: number; drone: number; webcam: number };
  verdicts: Record<Verdict, number>;
  published: number;
  publishFailures: number;
  outbox: number;
  /** proposals held by their dwell (released by tick, or all by finish) */
  held: number;
  pins: number;
  savedAt: number | null;
  /** the pipeline clock: its mode and how many hosts follow which source now */
  clock: { mode: string; tdf: number; event: number; processing: number };
  /** current values published again at start */
  reannounced: number;
}

export interface LearnerHost {
  /** the tfjs backend ('cpu', 'tensorflow') or 'none' when no chosen learner needs tfjs */
  readonly backend: string;
  readonly names: readonly LearnerName[];
  readonly variables: ReadonlyMap<string, DeclaredVariable>;
  handleEvents(events: KernelEvent[]): Promise<void>;
  handleDrone(frames: DroneSensorFrame[]): Promise<void>;
  handleWebcam(frames: WebcamFrame[]): Promise<void>;
  /** Pins host/key at value (checked against the declaration, not clamped); publishes it once. */
  pin(host: string, key: string, value: string): Promise<AnalyticsVariable>;
  /** Lifts a pin; false when there was none. */
  unpin(host: string, key: string): Promise<boolean>;
  /** Releases values held by their dwell time and retries undelivered ones. */
  tick(): Promise<void>;
  /** The end of a bounded input (a final watermark): every value held by dwell goes out now. */
  finish(): Promise<void>;
  /** the pipeline clock the gate reads */
  readonly clock: PipelineClock;
  /** Writes a snapshot of every learner and the gate; returns its directory. */
  save(): Promise<string | undefined>;
  stats(): LearnerHostStats;
  /** what the gate knows of each variable (pinned, clamped, held by dwell): read-only, copied */
  variableStates(): VariableState[];
  learner<T extends Learner = Learner>(name: LearnerName): T | undefined;
  /** Delivers what is pending, saves (unless told not to) and releases everything. */
  close(opts?: { save?: boolean }): Promise<void>;
  /** Runs `fn` in turn with batches, ticks and pins: it sees the state between two of them. */
  exclusive<T>(fn: () => T | Promise<T>): Promise<T>;
  /**
   * Per host, its state as JSON text per part: one part per learner that keeps host state (its
   * name), `gate`, `clock` and the registered parts. Call inside `exclusive`.
   */
  exportHosts(hosts: ReadonlySet<string>): Map<string, Map<string, string>>;
  /** Replaces a host's state with the parts given (parsed JSON, by part name). Inside `exclusive`. */
  importHost(host: string, parts: ReadonlyMap<string, unknown>): void;
  /** Forgets hosts: their state, held values and undelivered variables. Inside `exclusive`. */
  dropHosts(hosts: ReadonlySet<string>): void;
  /** every host some learner, the gate or the clock holds state for */
  hostsHeld(): Set<string>;
  /** Per learner that hands its shared part between instances (LearnerState.trained), that part
   * and its model as a document. Inside `exclusive`. */
  exportShared(): Promise<Map<string, SharedDoc>>;
  /** Starts a learner from another instance's shared part when it learnt more than this one's;
   * true when taken. */
  adoptShared(doc: SharedDoc): Promise<boolean>;
  /** the undelivered variables of deferred hosts, as they are now */
  deferred(): AnalyticsVariable[];
  /**
   * These went out (committed): out of the outbox unless a newer value replaced them meanwhile;
   * `unchanged` too, which did not go out (what is out there already says the same).
   */
  delivered(vs: readonly AnalyticsVariable[], unchanged?: readonly AnalyticsVariable[]): void;
}

interface GateFileJson {
  gate: GateSnapshot;
  outbox: AnalyticsVariable[];
  clock?: PipelineClockJson;
}

const ZERO_VERDICTS: Record<Verdict, number> = {
  emit: 0,
  unchanged: 0,
  hysteresis: 0,
  dwell: 0,
  pinned: 0,
  invalid: 0,
};

export async function createLearnerHost(opts: LearnerHostOptions): Promise<LearnerHost> {
  const names = learnerNames(opts.learners);
  const needsTf = names.some((n) => n !== 'ufw' && n !== 'drone' && n !== 'anomaly');
  const backend = needsTf ? await loadBackend() : undefined;
  const now = opts.now ?? Date.now;
  const clock =
    opts.clock instanceof PipelineClock
      ? opts.clock
      : new PipelineClock({ wall: now, ...(opts.clock ?? {}) });
  const learners = new Map<LearnerName, Learner>();
  for (const n of names) {
    const l = await FACTORIES[n]({ tf: backend?.tf, log: log.child(n), now }, opts.learnerOptions?.[n] ?? {});
    learners.set(n, l);
  }
  const host = new Host(opts, names, learners, backend ? backend.name : 'none', now, clock, backend?.tf);
  await host.start();
  return host;
}

class Host implements LearnerHost {
  readonly variables: Map<string, DeclaredVariable>;
  private readonly gate: EmissionGate;
  private readonly pins: Pins;
  private readonly outbox = new Map<string, AnalyticsVariable>();
  private readonly analyticsTopic: string;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly perLearner = new Map<string, { batches: number; seconds: number }>();
  private readonly verdicts: Record<Verdict, number> = { ...ZERO_VERDICTS };
  private readonly inputs = { kernel: 0, drone: 0, webcam: 0 };
  private published = 0;
  private reannounced = 0;
  private publishFailures = 0;
  private savedAt: number | null = null;
  private closed = false;

  constructor(
    private readonly opts: LearnerHostOptions,
    readonly names: LearnerName[],
    private readonly learners: Map<LearnerName, Learner>,
    readonly backend: string,
    private readonly now: () => number,
    readonly clock: PipelineClock,
    private readonly tf: Tf | undefined,
  ) {
    this.variables = declarationsOf([...learners.values()]);
    // The gate asks the pins in force; they exist before the first proposal reaches it.
    this.gate = new EmissionGate(this.variables, (h, k) => this.pins.get(h, k));
    this.analyticsTopic = opts.analyticsTopic ?? TOPICS.kernelAnalytics;
    const pinsTopic = opts.pinsTopic ?? (opts.bus.kind === 'kafka' ? PINS_TOPIC : false);
    this.pins = new Pins({
      bus: opts.bus,
      variables: this.variables,
      ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
      ...(pinsTopic !== false ? { topic: pinsTopic } : {}),
      now,
      apply: (diff, force) => this.applyPins(diff, force),
      run: (fn) =>
        this.run(async () => {
          const r = await fn();
          await this.flush();
          return r;
        }),
      rejected: () => mRejected.inc({ input: 'pins', reason: 'malformed' }),
    });
    for (const n of names) this.perLearner.set(n, { batches: 0, seconds: 0 });
  }

  async start(): Promise<void> {
    const spec = topicSpecs().find((s) => s.topic === TOPICS.kernelAnalytics)!;
    await this.opts.bus.ensureTopics([{ ...spec, topic: this.analyticsTopic }]);
    if (this.opts.stateDir) await this.restore(join(this.opts.stateDir, 'learners'));
    await this.opts.afterRestore?.(this);
    // Whatever the state restored goes out again: the gate believes these values were delivered,
    // but whoever listens now (an empty in-process bus, a new feeder, a device in failsafe) has
    // not seen them. Downstream an unchanged value is a no-op (the table judges it unchanged).
    // Undelivered variables restored into the outbox are newer and win; pins, applied next, too.
    for (const v of this.gate.announce()) {
      const id = `${v.host}/${v.key}`;
      if (this.outbox.has(id)) continue;
      this.outbox.set(id, v);
      this.reannounced++;
    }
    mAnnounced.inc(this.reannounced);
    await this.pins.start();
    await this.run(() => this.flush());
    log.info('learners ready', {
      learners: this.names.join(','),
      backend: this.backend,
      pins: this.pins.count,
      reannounced: this.reannounced,
      clock: this.clock.mode,
      ...(this.clock.tdf !== 1 ? { tdf: this.clock.tdf } : {}),
    });
  }

  /** Serialises host work: one batch (or pin, or save) at a time. */
  private run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => {});
    return p;
  }

  learner<T extends Learner = Learner>(name: LearnerName): T | undefined {
    return this.learners.get(name) as T | undefined;
  }

  handleEvents(events: KernelEvent[]): Promise<void> {
    this.inputs.kernel += events.length;
    mInputs.inc({ input: 'kernel' }, events.length);
    return this.run(() => {
      const touched = this.opts.onTouched;
      if (touched) {
        let last = '';
        for (const e of events) {
          this.clock.observe(e.host, e.ts);
          if (e.host !== last) {
            last = e.host;
            touched(last);
          }
        }
      } else for (const e of events) this.clock.observe(e.host, e.ts);
      return this.dispatch((l) => (l.onEvents ? l.onEvents(events) : undefined));
    });
  }

  handleDrone(frames: DroneSensorFrame[]): Promise<void> {
    this.inputs.drone += frames.length;
    mInputs.inc({ input: 'drone' }, frames.length);
    return this.run(() => {
      for (const f of frames) this.clock.observe(f.deviceId, f.ts);
      return this.dispatch((l) => (l.onDrone ? l.onDrone(frames) : undefined));
    });
  }

  handleWebcam(frames: WebcamFrame[]): Promise<void> {
    this.inputs.webcam += frames.length;
    mInputs.inc({ input: 'webcam' }, frames.length);
    return this.run(() => {
      for (const f of frames) this.clock.observe(f.deviceId, f.ts);
      return this.dispatch((l) => (l.onWebcam ? l.onWebcam(frames) : undefined));
    });
  }

  private async dispatch(call: (l: Learner) => Promise<Proposal[]> | undefined): Promise<void> {
    if (this.closed) throw new Error('learner host is closed');
    const started = performance.now();
    for (const [name, l] of this.learners) {
      const t0 = process.hrtime.bigint();
      const pending = call(l);
      if (!pending) continue;
      let proposals: Proposal[];
      try {
        proposals = await pending;
      } catch (err) {
        // One learner's failure (a bad model file, a tfjs error) must not stop the others.
        log.error('learner failed on a batch', { learner: name, err });
        mRejected.inc({ input: name, reason: 'learner-error' });
        continue;
      }
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const pl = this.perLearner.get(name)!;
      pl.batches++;
      pl.seconds += secs;
      hBatch.observe({ learner: name }, secs);
      for (const p of proposals) {
        const r = this.gate.propose(name, p, this.clock);
        this.verdicts[r.verdict]++;
        mVerdicts.inc({ learner: name, verdict: r.verdict });
        if (r.variable) this.enqueue(r.variable);
        else if (r.error)
          log.warn('proposal rejected', { learner: name, host: p.host, key: p.key, error: r.error });
      }
    }
    for (const v of this.gate.release(this.clock)) this.enqueue(v);
    hLearners.record(performance.now() - started);
    await this.flush();
  }

  private enqueue(v: AnalyticsVariable): void {
    this.outbox.set(`${v.host}/${v.key}`, v);
    this.opts.onTouched?.(v.host);
  }

  /** Publishes the outbox; what fails stays for the next flush (the newest value per key wins).
   * Deferred hosts' variables stay for the caller's transaction. */
  private async flush(): Promise<void> {
    if (this.outbox.size === 0) return;
    const defer = this.opts.defer;
    const batch = defer ? [...this.outbox].filter(([, v]) => !defer(v.host)) : [...this.outbox];
    if (batch.length === 0) return;
    const msgs = batch.map(([, v]) => variableMessage(v));
    const t0 = performance.now();
    try {
      await this.opts.bus.publish(this.analyticsTopic, msgs);
      hToAnalytics.record(performance.now() - t0);
    } catch (err) {
      this.publishFailures++;
      mPublishFailures.inc();
      log.error('publishing analytics failed; keeping them for the next attempt', {
        topic: this.analyticsTopic,
        pending: this.outbox.size,
        err,
      });
      return;
    }
    for (const [id, v] of batch) {
      if (this.outbox.get(id) === v) this.outbox.delete(id);
      this.opts.onEmit?.(v);
    }
    this.published += batch.length;
    mPublished.inc(batch.length);
  }

  tick(): Promise<void> {
    return this.run(async () => {
      for (const v of this.gate.release(this.clock)) this.enqueue(v);
      await this.flush();
    });
  }

  finish(): Promise<void> {
    return this.run(async () => {
      const out = this.gate.release(this.clock, true);
      for (const v of out) this.enqueue(v);
      if (out.length > 0)
        log.info('end of input: released the values held by dwell', { released: out.length });
      await this.flush();
    });
  }

  private applyPins(diff: PinDiff, force?: string): void {
    for (const e of [...diff.pinned, ...diff.unpinned]) this.opts.onTouched?.(e.host);
    for (const e of diff.pinned) {
      // An operator acts in processing time; the dwell after an unpin is the host's own clock.
      const v = this.gate.pin(
        e.host,
        e.key,
        e.value,
        `pinned by ${e.by} at ${new Date(e.ts).toISOString()}`,
        this.clock.now(e.host),
        this.now(),
      );
      if (v && (!e.announced || force === `${e.host}/${e.key}`)) this.enqueue(v);
      log.info('pin in force', { variable: `${e.host}/${e.key}`, value: e.value, by: e.by });
    }
    for (const e of diff.unpinned) {
      this.gate.unpin(e.host, e.key);
      log.info('pin lifted', { variable: `${e.host}/${e.key}` });
    }
  }

  async pin(host: string, key: string, value: string): Promise<AnalyticsVariable> {
    const c = checkPin(this.variables, host, key, value);
    return this.run(async () => {
      const entry = await this.pins.pin(host, key, c.value);
      const announced = this.outbox.get(`${host}/${key}`);
      await this.flush();
      return announced ?? operatorVariable(host, key, c.value, c, 'already pinned at this value', entry.ts);
    });
  }

  unpin(host: string, key: string): Promise<boolean> {
    return this.run(() => this.pins.unpin(host, key));
  }

  private async restore(base: string): Promise<void> {
    const dir = currentSnapshot(base);
    if (!dir) return;
    for (const [name, l] of this.learners) {
      const sub = join(dir, name);
      if (!existsSync(sub)) continue;
      try {
        await l.load(sub);
      } catch (err) {
        log.error('cannot restore a learner; it starts afresh (remove the snapshot to silence this)', {
          learner: name,
          dir: sub,
          err,
        });
      }
    }
    for (const a of this.opts.attachments ?? []) {
      const p = join(dir, a.name);
      if (!existsSync(p)) continue;
      try {
        await a.load(p);
      } catch (err) {
        log.error('cannot restore saved state; starting it afresh', { state: a.name, path: p, err });
      }
    }
    const gatePath = join(dir, 'gate.json');
    if (existsSync(gatePath)) {
      const g = readJson<GateFileJson>(gatePath);
      this.gate.restore(g.gate);
      if (g.clock) this.clock.restore(g.clock);
      for (const v of g.outbox) this.outbox.set(`${v.host}/${v.key}`, v);
    }
    log.info('restored learner state', { snapshot: dir });
  }

  save(): Promise<string | undefined> {
    const stateDir = this.opts.stateDir;
    if (!stateDir) return Promise.resolve(undefined);
    return this.run(async () => {
      const dir = await writeSnapshot(join(stateDir, 'learners'), async (d) => {
        for (const [name, l] of this.learners) {
          const sub = join(d, name);
          mkdirSync(sub);
          await l.save(sub);
        }
        for (const a of this.opts.attachments ?? []) await a.save(join(d, a.name));
        const g: GateFileJson = {
          gate: this.gate.snapshot(),
          outbox: [...this.outbox.values()],
          clock: this.clock.toJSON(),
        };
        writeJsonAtomic(join(d, 'gate.json'), g);
      });
      this.savedAt = this.now();
      return dir;
    });
  }

  stats(): LearnerHostStats {
    const learners: LearnerHostStats['learners'] = {};
    for (const [name, l] of this.learners) learners[name] = { ...l.stats(), ...this.perLearner.get(name)! };
    return {
      backend: this.backend,
      learners,
      inputs: { ...this.inputs },
      verdicts: { ...this.verdicts },
      published: this.published,
      publishFailures: this.publishFailures,
      outbox: this.outbox.size,
      held: this.gate.held,
      pins: this.pins.count,
      savedAt: this.savedAt,
      clock: { mode: this.clock.mode, tdf: this.clock.tdf, ...this.clock.counts() },
      reannounced: this.reannounced,
    };
  }

  variableStates(): VariableState[] {
    return this.gate.states();
  }

  exclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.run(async () => fn());
  }

  exportHosts(hosts: ReadonlySet<string>): Map<string, Map<string, string>> {
    const out = new Map<string, Map<string, string>>();
    const putText = (h: string, part: string, text: string) => {
      let m = out.get(h);
      if (!m) {
        m = new Map();
        out.set(h, m);
      }
      m.set(part, text);
    };
    const put = (h: string, part: string, v: unknown) => {
      if (v !== undefined) putText(h, part, JSON.stringify(v));
    };
    for (const h of hosts) {
      for (const [name, l] of this.learners) if (l.state) put(h, name, l.state.host(h));
      put(h, 'gate', this.gate.hostSlots(h));
      put(h, 'clock', this.clock.hostState(h));
    }
    for (const part of this.opts.parts ?? [])
      for (const [h, v] of part.get(hosts)) {
        if (!(v instanceof SplitPart)) {
          put(h, part.name, v);
          continue;
        }
        put(h, part.name, v.head);
        for (const [sub, text] of v.more) putText(h, `${part.name}.${sub}`, text);
      }
    return out;
  }

  importHost(host: string, parts: ReadonlyMap<string, unknown>): void {
    this.dropHosts(new Set([host]));
    // the records `<part>.<sub>` of a SplitPart go to its part with the head
    const subs = new Map<string, Map<string, unknown>>();
    const registered = (name: string) => this.opts.parts?.find((p) => p.name === name);
    for (const [name, v] of parts) {
      const dot = name.indexOf('.');
      if (dot <= 0 || !registered(name.slice(0, dot))) continue;
      const base = name.slice(0, dot);
      let m = subs.get(base);
      if (!m) {
        m = new Map();
        subs.set(base, m);
      }
      m.set(name.slice(dot + 1), v);
    }
    for (const [name, v] of parts) {
      const l = this.learners.get(name as LearnerName);
      if (l?.state) l.state.restoreHost(host, v);
      else if (name === 'gate') this.gate.restoreHost(host, v as GateSnapshot['slots']);
      else if (name === 'clock') this.clock.restoreHost(host, v as HostClockJson);
      else {
        const part = registered(name);
        // a part of a learner not running here (or not known to this version) is left out
        if (part) part.put(host, v, subs.get(name) ?? new Map());
        else if (!subs.has(name.slice(0, Math.max(0, name.indexOf('.')))))
          log.debug('restored state has a part nobody here keeps', { host, part: name });
      }
    }
  }

  dropHosts(hosts: ReadonlySet<string>): void {
    if (hosts.size === 0) return;
    for (const h of hosts) {
      for (const l of this.learners.values()) l.state?.dropHost(h);
      this.gate.dropHost(h);
      this.clock.dropHost(h);
    }
    for (const part of this.opts.parts ?? []) part.drop(hosts);
    for (const [id, v] of this.outbox) if (hosts.has(v.host)) this.outbox.delete(id);
  }

  async exportShared(): Promise<Map<string, SharedDoc>> {
    const out = new Map<string, SharedDoc>();
    for (const [name, l] of this.learners)
      if (l.state?.trained) out.set(name, await exportShared(l.state, this.tf));
    return out;
  }

  adoptShared(doc: SharedDoc): Promise<boolean> {
    return this.run(async () => {
      const l = this.learners.get(doc.learner as LearnerName);
      if (!l?.state?.trained || doc.trained <= l.state.trained()) return false;
      const before = l.state.trained();
      const ok = await importShared(l.state, doc, this.tf);
      if (ok)
        log.info("starting from another instance's model: it learnt from more", {
          learner: doc.learner,
          examples: doc.trained,
          here: before,
        });
      return ok;
    });
  }

  hostsHeld(): Set<string> {
    const out = new Set<string>(this.gate.hosts());
    for (const l of this.learners.values()) if (l.state) for (const h of l.state.hosts()) out.add(h);
    for (const h of this.clock.hostNames()) out.add(h);
    return out;
  }

  deferred(): AnalyticsVariable[] {
    const defer = this.opts.defer;
    if (!defer) return [];
    return [...this.outbox.values()].filter((v) => defer(v.host));
  }

  delivered(vs: readonly AnalyticsVariable[], unchanged: readonly AnalyticsVariable[] = []): void {
    for (const v of [...vs, ...unchanged]) {
      const id = `${v.host}/${v.key}`;
      if (this.outbox.get(id) === v) this.outbox.delete(id);
    }
    for (const v of vs) this.opts.onEmit?.(v);
    this.published += vs.length;
    mPublished.inc(vs.length);
  }

  async close(opts: { save?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    await this.pins.close();
    await this.run(() => this.flush());
    if (this.outbox.size > 0) {
      log.error('closing with undelivered analytics variables (saved in the snapshot when there is one)', {
        pending: this.outbox.size,
      });
    }
    if (opts.save ?? true) await this.save();
    this.closed = true;
    for (const l of this.learners.values()) l.dispose();
  }
}

/** Rejects bad device records with a count, never an exception: for the stage's decoders. */
export function rejectInput(input: string, reason: string): void {
  mRejected.inc({ input, reason });
}
