// What a learner is: declared variables, inputs it consumes, proposals it makes, state it saves.
// The host (host.ts) owns the envelope (gate, pins, outbox); learners only propose.
import type * as tfjs from '@tensorflow/tfjs';
import type { Logger } from '../runtime/log.ts';
import type { DroneSensorFrame, KernelEvent, WebcamFrame } from '../schemas/index.ts';
import type { LearnerState } from './learner-state.ts';

export type Tf = typeof tfjs;

export type VarType = 'int' | 'float' | 'bool' | 'ip' | 'string' | 'enum';

/**
 * What a variable's value is computed over, declared with the variable so a reader knows which
 * batch computation the streamed value must equal (README "Time"). Windows and decay run on event
 * time (the lines' and frames' own timestamps), never on the wall clock.
 * - `window`: the records of the last `seconds` of event time, ending at the host's newest record
 *   (a bounded replay ends with the window that ends at its last record; nothing slides past it);
 *   `tumbling`: fixed windows aligned to multiples of `seconds`, the value is the last closed one
 * - `history`: every record the learner admitted since its state began (whole history)
 * - `decayed`: every record, weighted by 0.5^(age / halfLifeSec), age in event time
 * - `latest`: the newest record alone (a sensor frame, a load sample), with what the model learnt
 */
export type VariableDefinition =
  | { kind: 'window'; seconds: number; tumbling?: boolean }
  | { kind: 'history' }
  | { kind: 'decayed'; halfLifeSec: number }
  | { kind: 'latest' };

/** One variable, declared once by the learner that owns it (docs/design.md §7.2). */
export interface VariableDecl {
  /** the key part of `host/key`, [A-Za-z0-9_.:/-]{1,128} */
  key: string;
  type: VarType;
  unit: string | null;
  /** one line: what the value means and what acts on it */
  description: string;
  /** numeric bounds (int, float): values are clamped into [min, max] */
  min?: number;
  max?: number;
  /** enum: the allowed values */
  values?: readonly string[];
  /** bool spelling: `true|false` (default) or Python's `True|False` (the original `match=True`) */
  boolStyle?: 'lower' | 'python';
  /** float: digits after the point on the wire */
  decimals?: number;
  /** what the value is computed over (window, whole history, decayed, latest record) */
  definition: VariableDefinition;
  /** minimum time between two changes of the emitted value, ms of the pipeline clock (event time
   * while replaying, processing time live; see learners/clock.ts) */
  dwellMs: number;
  /** numeric: a change smaller than this is no change */
  hysteresis?: number;
  /** the safe direction: changes toward it skip the dwell ('up'/'down' numeric, a value for bool/enum);
   * e.g. brake engages at once and releases only after the dwell */
  urgent?: 'up' | 'down' | string;
}

/** A learner's suggestion; the gate decides whether it becomes an emitted variable. */
export interface Proposal {
  host: string;
  key: string;
  value: number | string | boolean;
  /** the evidence: window, counts (the gate appends the model version and any clamping) */
  why: string;
  /** 0..1 */
  confidence: number;
  /** model version that produced the value */
  model: string;
}

export interface LearnerContext {
  tf: Tf | undefined;
  log: Logger;
  /** processing time (wall clock, or the test's); learners compute on event time, not on this */
  now(): number;
}

export type LearnerStats = Record<string, number | string>;

export interface Learner {
  readonly name: string;
  readonly variables: readonly VariableDecl[];
  /** a learner that needs tfjs says so; the host loads the backend only when one does */
  readonly needsTf: boolean;
  onEvents?(events: readonly KernelEvent[]): Promise<Proposal[]>;
  onDrone?(frames: readonly DroneSensorFrame[]): Promise<Proposal[]>;
  onWebcam?(frames: readonly WebcamFrame[]): Promise<Proposal[]>;
  /**
   * Its state in parts (learner-state.ts): per host (what follows a host to another instance) and
   * shared. A learner without it keeps everything with the instance (save/load only).
   */
  readonly state?: LearnerState;
  /** writes model artifacts and state into `dir` (an empty directory) */
  save(dir: string): Promise<void>;
  /** restores from a directory `save` wrote */
  load(dir: string): Promise<void>;
  stats(): LearnerStats;
  dispose(): void;
}

export type LearnerFactory = (ctx: LearnerContext, options?: Record<string, unknown>) => Promise<Learner>;
