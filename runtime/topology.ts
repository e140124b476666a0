// A topology: stages declared once, with what each needs, from which the start order and the
// lifecycle follow (the model is Vector's: each component a config plus a build function, one
// topology that wires them). This module is generic; cli/topology/ declares virgo's stages.
//
// The rule for the start order: a stage starts after every stage it names in `after`, and, among
// those free to start, a stage that listens starts before one that does not. Outgoing connections
// take ephemeral ports, and Linux's ephemeral range (32768-60999) holds well-known service ports
// (cloudfs 50000, the VIRGO queue 60000): a listener bound first cannot lose its port to them.
// Otherwise stages start in the order they are declared. Shutdown is the start order reversed.
import { createLogger } from './log.ts';

const log = createLogger('topology');

export interface StageNode {
  readonly name: string;
  /** binds ports other stages connect to */
  readonly listens?: boolean;
  /** stages this one starts after: it connects to them or reads what they started */
  readonly after?: readonly string[];
}

/** Where a stage can be reached, e.g. { feeder: '127.0.0.1:64000' }. */
export type Endpoints = Record<string, string>;

/**
 * The start order of `stages` (see the rule above). `after: ['*']` means after every stage that
 * does not say so itself. Only dependencies among `stages` count, so a subset (a mode without
 * some stage) orders too. Throws on a cycle.
 */
export function startOrder<S extends StageNode>(
  stages: readonly S[],
  afterOf: (s: S) => readonly string[] = (s) => s.after ?? [],
): S[] {
  const present = new Set(stages.map((s) => s.name));
  if (present.size !== stages.length) throw new Error('topology: two stages share a name');
  const last = new Set(stages.filter((s) => afterOf(s).includes('*')).map((s) => s.name));
  const notLast = stages.filter((s) => !last.has(s.name)).map((s) => s.name);
  const waitsFor = new Map(
    stages.map((s) => {
      const after = afterOf(s).flatMap((n) => (n === '*' ? notLast : [n]));
      return [s.name, new Set(after.filter((n) => present.has(n) && n !== s.name))];
    }),
  );
  const order: S[] = [];
  const left = [...stages];
  while (left.length > 0) {
    const free = left.filter((s) => waitsFor.get(s.name)!.size === 0);
    // a listener; else what a waiting listener needs (so it binds before the rest connect)
    const next = free.find((s) => s.listens) ?? free.find((s) => neededByListener(s.name)) ?? free[0];
    if (!next) {
      throw new Error(`topology: stages wait for each other: ${left.map((s) => s.name).join(', ')}`);
    }
    order.push(next);
    left.splice(left.indexOf(next), 1);
    for (const w of waitsFor.values()) w.delete(next.name);
  }
  return order;

  function neededByListener(name: string): boolean {
    const seen = new Set<string>();
    const visit = (n: string): boolean => {
      if (seen.has(n)) return false;
      seen.add(n);
      for (const [waiter, deps] of waitsFor) {
        // a stage that waits for all ('*') pulls none of them forward
        if (!deps.has(n) || last.has(waiter) || !left.some((s) => s.name === waiter)) continue;
        if (stages.find((s) => s.name === waiter)?.listens || visit(waiter)) return true;
      }
      return false;
    };
    return visit(name);
  }
}

/** A stage started in this process. */
export interface Started {
  /** the second phase: outgoing connections, once every stage in the process has bound its ports */
  connect?(): void | Promise<void>;
  /** stops it; runs newest first */
  close(): Promise<void>;
}

export interface RunningStages<R extends Started> {
  /** by stage name, in start order */
  readonly started: ReadonlyMap<string, R>;
  /** closes every stage, newest first, each even when another failed; idempotent */
  close(): Promise<void>;
}

/**
 * Starts `stages` in start order in this process: `build` each (bind, construct), then `connect`
 * each. `build` may return undefined for a stage that turns out to have nothing to run. When a
 * step fails, what was started is closed again, newest first, and the error is thrown.
 */
export async function startStages<S extends StageNode, R extends Started>(
  stages: readonly S[],
  build: (stage: S, started: ReadonlyMap<string, R>) => Promise<R | undefined>,
  opts: {
    afterOf?: (s: S) => readonly string[];
    /** what the stages share (a bus): closed after every stage */
    closeLast?: () => Promise<void>;
  } = {},
): Promise<RunningStages<R>> {
  const started = new Map<string, R>();
  const closers: { name: string; fn: () => Promise<void> }[] = [];
  if (opts.closeLast) closers.push({ name: 'shared', fn: opts.closeLast });
  const closeAll = async () => {
    for (const c of closers.splice(0).reverse()) {
      try {
        await c.fn();
      } catch (err) {
        log.error('stopping a stage failed', { stage: c.name, err });
      }
    }
  };
  try {
    for (const stage of startOrder(stages, opts.afterOf)) {
      const r = await build(stage, started);
      if (!r) continue;
      started.set(stage.name, r);
      closers.push({ name: stage.name, fn: () => r.close() });
    }
    for (const r of started.values()) await r.connect?.();
  } catch (err) {
    await closeAll();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    started,
    close: () => {
      closing ??= closeAll();
      return closing;
    },
  };
}
