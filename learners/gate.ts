// The emission gate: the only way a learner's proposal becomes an AnalyticsVariable. It enforces
// the declaration (clamp, dwell, hysteresis, urgent direction) and operators' pins, and records
// the evidence in `why`. Decisions are made here; delivery (the outbox) is the host's job.
// Time: every `now` is a reading of the host's pipeline clock (learners/clock.ts: event time while
// replaying, processing time live), `ts` the stamp the variable carries; the gate never reads a
// clock itself, so a replay and a live run take the same decisions for the same readings.
import type { AnalyticsVariable } from '../schemas/index.ts';
import type { Proposal, VariableDecl } from './types.ts';
import { HOST_RE, type Normalised, normalise, ValueError } from './variables.ts';

export type Verdict = 'emit' | 'unchanged' | 'hysteresis' | 'dwell' | 'pinned' | 'invalid';

export const OPERATOR = 'operator';
const MAX_WHY = 900;

/** An operator's value as it goes out (learner and model `operator`, full confidence): the one
 * place it is built, for the gate, the learner host and `virgo pin`. */
export function operatorVariable(
  host: string,
  key: string,
  value: string,
  decl: Pick<VariableDecl, 'type' | 'unit'> | undefined,
  why: string,
  ts: number,
): AnalyticsVariable {
  return {
    host,
    key,
    value,
    why: clip(why),
    learner: OPERATOR,
    model: OPERATOR,
    confidence: 1,
    ts,
    type: decl?.type ?? 'string',
    unit: decl?.unit ?? null,
  };
}

interface Pending {
  n: Normalised;
  p: Proposal;
  learner: string;
  at: number;
  /** what holds it: the dwell (released once it passed) or the hysteresis (released only when
   * the replay it came from is over, or at the end of a bounded input) */
  by?: 'dwell' | 'hysteresis';
  /** the host's clock source when it was proposed */
  mode?: 'event' | 'processing';
}

interface Slot {
  value: string;
  num?: number;
  /** when the emitted value last changed; null: the next change may go at once (after an unpin) */
  changedAt: number | null;
  learner: string;
  model: string;
  pending?: Pending;
  /** the learner proposed this number and the declaration's bounds cut it */
  clampedFrom?: number;
  /** the variable as last emitted: what a restart re-announces */
  last?: AnalyticsVariable;
}

/** Per-host clock readings (the host's PipelineClock); a number means one reading for every host. */
export interface GateClock {
  now(host: string): number;
  stamp(host: string): number;
  /** which source the host's clock follows (a replay is over when event turned processing) */
  modeOf?(host: string): 'event' | 'processing';
}

function clockOf(c: number | GateClock): GateClock {
  return typeof c === 'number' ? { now: () => c, stamp: () => c } : c;
}

export interface GateResult {
  verdict: Verdict;
  variable?: AnalyticsVariable;
  error?: string;
}

export type PinLookup = (host: string, key: string) => { value: string } | undefined;

export interface DeclaredVariable {
  decl: VariableDecl;
  learner: string;
}

/** What the gate knows of one variable, for read-only views (the dashboard). */
export interface VariableState {
  host: string;
  key: string;
  /** the value emitted last, by a learner or an operator */
  value: string;
  learner: string;
  model: string;
  /** an operator's pin holds it */
  pinned: boolean;
  /** the last emitted value is the declaration's bound, not the learner's number */
  clamped?: { from: number; min: number | undefined; max: number | undefined };
  /** a newer proposal waits for the dwell time to pass (gate clock, ms) */
  held?: { value: string; since: number; dwellMs: number };
}

export interface GateSnapshot {
  slots: [string, Slot][];
}

function urgentChange(d: VariableDecl, from: Slot, to: Normalised): boolean {
  if (d.urgent === undefined) return false;
  if (d.type === 'int' || d.type === 'float') {
    if (from.num === undefined || to.num === undefined) return false;
    return d.urgent === 'up' ? to.num > from.num : to.num < from.num;
  }
  return to.value.toLowerCase() === d.urgent.toLowerCase();
}

function clip(s: string): string {
  return s.length > MAX_WHY ? `${s.slice(0, MAX_WHY - 1)}…` : s;
}

export class EmissionGate {
  private readonly slots = new Map<string, Slot>();
  /** host -> keys of its slots */
  private readonly byHost = new Map<string, Set<string>>();

  constructor(
    private readonly declared: ReadonlyMap<string, DeclaredVariable>,
    private readonly pinned: PinLookup,
  ) {}

  decl(key: string): VariableDecl | undefined {
    return this.declared.get(key)?.decl;
  }

  /** The last value emitted for host/key, by a learner or an operator. */
  current(host: string, key: string): { value: string; learner: string } | undefined {
    const s = this.slots.get(`${host}/${key}`);
    return s ? { value: s.value, learner: s.learner } : undefined;
  }

  /**
   * Judges one proposal at the proposing host's clock reading. Hysteresis holds a small change
   * back while the value moves (live); the held proposal still goes out when the replay it came
   * from is over or a bounded input ends, so a replay ends with the exact answer.
   */
  propose(learner: string, p: Proposal, clock: number | GateClock): GateResult {
    const c = clockOf(clock);
    const now = c.now(p.host);
    const ts = c.stamp(p.host);
    const mode = c.modeOf?.(p.host);
    const dv = this.declared.get(p.key);
    if (!dv || dv.learner !== learner) {
      return { verdict: 'invalid', error: `learner ${learner} did not declare ${p.key}` };
    }
    if (!HOST_RE.test(p.host)) {
      return {
        verdict: 'invalid',
        error: `host ${JSON.stringify(p.host)} must match [A-Za-z0-9_.:-]{1,128}`,
      };
    }
    const id = `${p.host}/${p.key}`;
    const slot = this.slots.get(id);
    if (this.pinned(p.host, p.key)) {
      if (slot) delete slot.pending;
      return { verdict: 'pinned' };
    }
    let n: Normalised;
    try {
      n = normalise(dv.decl, p.value, true);
    } catch (err) {
      if (err instanceof ValueError) return { verdict: 'invalid', error: err.message };
      throw err;
    }
    const d = dv.decl;
    if (!slot) return { verdict: 'emit', variable: this.commit(id, d, n, p, learner, now, ts) };
    if (slot.value === n.value) {
      // The proposal came back to what is out there: nothing to release later either.
      delete slot.pending;
      return { verdict: 'unchanged' };
    }
    if (
      d.hysteresis !== undefined &&
      slot.num !== undefined &&
      n.num !== undefined &&
      Math.abs(n.num - slot.num) < d.hysteresis &&
      n.num !== d.min &&
      n.num !== d.max
    ) {
      slot.pending = { n, p, learner, at: now, by: 'hysteresis', ...(mode ? { mode } : {}) };
      return { verdict: 'hysteresis' };
    }
    if (slot.changedAt !== null && now - slot.changedAt < d.dwellMs && !urgentChange(d, slot, n)) {
      slot.pending = { n, p, learner, at: now, by: 'dwell', ...(mode ? { mode } : {}) };
      return { verdict: 'dwell' };
    }
    return { verdict: 'emit', variable: this.commit(id, d, n, p, learner, now, ts) };
  }

  /**
   * Emits the held proposals whose dwell has passed (the last one proposed wins), and those of a
   * host whose replay is over (proposed on event time, the host now on processing time: it
   * caught up). With `final` (the end of a bounded input: a final watermark), every held proposal
   * goes out, so the last emitted value of each variable is the answer over the whole input.
   */
  release(clock: number | GateClock, final = false): AnalyticsVariable[] {
    const c = clockOf(clock);
    const out: AnalyticsVariable[] = [];
    for (const [id, slot] of this.slots) {
      const pend = slot.pending;
      if (!pend) continue;
      const d = this.declared.get(pend.p.key)?.decl;
      if (!d) continue;
      if (this.pinned(pend.p.host, pend.p.key)) {
        delete slot.pending;
        continue;
      }
      const now = c.now(pend.p.host);
      const hysteresis = pend.by === 'hysteresis';
      const due = !hysteresis && (slot.changedAt === null || now - slot.changedAt >= d.dwellMs);
      const replayOver = pend.mode === 'event' && c.modeOf?.(pend.p.host) === 'processing';
      if (!due && !final && !replayOver) continue;
      const held = ((now - pend.at) / 1000).toFixed(1);
      const what = hysteresis ? `by the ${d.hysteresis} hysteresis` : `by the ${d.dwellMs / 1000}s dwell`;
      const until = due ? '' : final ? ' until the end of the input' : ' until the replay caught up';
      const p = { ...pend.p, why: `${pend.p.why}; held ${held}s ${what}${until}` };
      out.push(this.commit(id, d, pend.n, p, pend.learner, now, c.stamp(pend.p.host)));
    }
    return out;
  }

  /** The current value of every variable, as last emitted (a restart re-announces them). */
  announce(): AnalyticsVariable[] {
    const out: AnalyticsVariable[] = [];
    for (const [id, slot] of this.slots) {
      const v = slot.last ?? this.rebuild(id, slot);
      if (v) out.push(v);
    }
    return out;
  }

  /** A variable from a slot saved before slots kept their last variable. */
  private rebuild(id: string, slot: Slot): AnalyticsVariable | undefined {
    const i = id.indexOf('/');
    if (i <= 0) return undefined;
    const key = id.slice(i + 1);
    const d = this.declared.get(key)?.decl;
    return {
      host: id.slice(0, i),
      key,
      value: slot.value,
      why: 'restored from the saved state',
      learner: slot.learner,
      model: slot.model,
      confidence: 1,
      ts: slot.changedAt ?? 0,
      type: d?.type ?? 'string',
      unit: d?.unit ?? null,
    };
  }

  /** An operator's pin: the value goes out once as learner `operator` (unless it already has). */
  pin(
    host: string,
    key: string,
    value: string,
    why: string,
    now: number,
    ts: number = now,
  ): AnalyticsVariable | undefined {
    const id = `${host}/${key}`;
    const slot = this.slots.get(id);
    if (slot && slot.learner === OPERATOR && slot.value === value) {
      delete slot.pending;
      return undefined;
    }
    const d = this.declared.get(key)?.decl;
    const v = operatorVariable(host, key, value, d, why, ts);
    this.set(id, {
      value,
      changedAt: now,
      learner: OPERATOR,
      model: OPERATOR,
      ...numOf(d, value),
      last: v,
    });
    return v;
  }

  /** After an unpin the learners take over at their next proposal: no dwell, no hysteresis. */
  unpin(host: string, key: string): void {
    const slot = this.slots.get(`${host}/${key}`);
    if (!slot) return;
    slot.changedAt = null;
    // The operator's number is no baseline for the learner's hysteresis.
    delete slot.num;
  }

  /** Every variable's state, copied: a view for dashboards that changes nothing. */
  states(): VariableState[] {
    const out: VariableState[] = [];
    for (const [id, s] of this.slots) {
      const i = id.indexOf('/');
      const host = id.slice(0, i);
      const key = id.slice(i + 1);
      const d = this.declared.get(key)?.decl;
      out.push({
        host,
        key,
        value: s.value,
        learner: s.learner,
        model: s.model,
        pinned: this.pinned(host, key) !== undefined,
        ...(s.clampedFrom !== undefined
          ? { clamped: { from: s.clampedFrom, min: d?.min, max: d?.max } }
          : {}),
        ...(s.pending
          ? { held: { value: s.pending.n.value, since: s.pending.at, dwellMs: d?.dwellMs ?? 0 } }
          : {}),
      });
    }
    return out;
  }

  snapshot(): GateSnapshot {
    return { slots: [...this.slots].map(([k, s]) => [k, structuredClone(s)]) };
  }

  restore(s: GateSnapshot): void {
    this.slots.clear();
    this.byHost.clear();
    for (const [k, v] of s.slots) this.set(k, v);
  }

  /** Hosts with variables here. */
  hosts(): IterableIterator<string> {
    return this.byHost.keys();
  }

  /** One host's slots (what was emitted, what is held), copied: what follows the host elsewhere. */
  hostSlots(host: string): GateSnapshot['slots'] | undefined {
    const keys = this.byHost.get(host);
    if (!keys) return undefined;
    return [...keys].map((k) => [`${host}/${k}`, structuredClone(this.slots.get(`${host}/${k}`)!)]);
  }

  /** Puts a host's slots back (from `hostSlots`, maybe of another instance), replacing its own. */
  restoreHost(host: string, slots: GateSnapshot['slots']): void {
    this.dropHost(host);
    for (const [k, v] of slots) this.set(k, v);
  }

  /** Forgets a host's variables (its partition went to another instance). */
  dropHost(host: string): void {
    const keys = this.byHost.get(host);
    if (!keys) return;
    for (const k of keys) this.slots.delete(`${host}/${k}`);
    this.byHost.delete(host);
  }

  private set(id: string, slot: Slot): void {
    this.slots.set(id, slot);
    const i = id.indexOf('/');
    const host = id.slice(0, i);
    let keys = this.byHost.get(host);
    if (!keys) {
      keys = new Set();
      this.byHost.set(host, keys);
    }
    keys.add(id.slice(i + 1));
  }

  get size(): number {
    return this.slots.size;
  }

  /** Proposals held by their dwell, waiting for release. */
  get held(): number {
    let n = 0;
    for (const s of this.slots.values()) if (s.pending) n++;
    return n;
  }

  private commit(
    id: string,
    d: VariableDecl,
    n: Normalised,
    p: Proposal,
    learner: string,
    now: number,
    ts: number,
  ): AnalyticsVariable {
    const clamped =
      n.clampedFrom !== undefined ? `; clamped from ${n.clampedFrom} to [${d.min}, ${d.max}]` : '';
    const confidence = Number.isFinite(p.confidence) ? Math.min(1, Math.max(0, p.confidence)) : 0;
    const v: AnalyticsVariable = {
      host: p.host,
      key: p.key,
      value: n.value,
      why: clip(`${p.why}; model=${p.model}${clamped}`),
      learner,
      model: p.model,
      confidence,
      ts,
      type: d.type,
      unit: d.unit,
    };
    this.set(id, {
      value: n.value,
      changedAt: now,
      learner,
      model: p.model,
      ...(n.num !== undefined ? { num: n.num } : {}),
      ...(n.clampedFrom !== undefined ? { clampedFrom: n.clampedFrom } : {}),
      last: v,
    });
    return v;
  }
}

function numOf(d: VariableDecl | undefined, value: string): { num?: number } {
  if (d && (d.type === 'int' || d.type === 'float')) {
    const n = Number(value);
    if (Number.isFinite(n)) return { num: n };
  }
  return {};
}
