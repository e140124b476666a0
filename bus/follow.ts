// Reading a topic from its start to the end it has now, then following it: what a reader of a
// compacted topic (the analytics table, pins, learner state) does before it trusts its copy.
// The end is each partition's end offset when reading starts (on Kafka the last stable offset: a
// read-committed reader cannot pass an open transaction); a partition counts as read once this
// member's position reached it, which also steps over transaction markers at the end.
import { createLogger } from '../runtime/log.ts';
import type { BatchHandler, Bus, Subscription } from './types.ts';

const log = createLogger('bus.follow');

export interface FollowOptions {
  topics: string[];
  /** a group of the reader's own: every reader gets every partition */
  groupId: string;
  onBatch: BatchHandler;
  maxBatch?: number;
  /** give up waiting for the end after this long (a record compacted away after the offsets were
   * read may never come); `caughtUp` then resolves false (default 15 s) */
  timeoutMs?: number;
  /** per partition, where to start instead of the beginning (a local copy covers what is before) */
  startAt?: (topic: string, partition: number) => string | undefined;
}

export interface Followed {
  sub: Subscription;
  /** true once every partition was read to the end it had when reading started; false on timeout */
  caughtUp: Promise<boolean>;
  /** the partition's position (next offset to read), once a batch or marker moved it */
  position(topic: string, partition: number): bigint | undefined;
  /** resolves once `topic`'s `partitions` are read to their end offsets now (a later end than at start) */
  readTo(topic: string, partitions: readonly number[], timeoutMs?: number): Promise<boolean>;
}

const slot = (topic: string, partition: number) => `${topic}\0${partition}`;

/** Subscribes from the beginning and tells when the topics' current ends were read. */
export async function followFromStart(bus: Bus, opts: FollowOptions): Promise<Followed> {
  const positions = new Map<string, bigint>();
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const waitFor = async (
    ends: Map<string, bigint>,
    timeoutMs: number,
    what: () => Record<string, unknown>,
  ): Promise<boolean> => {
    const done = () => {
      for (const [k, end] of ends) if ((positions.get(k) ?? -1n) < end) return false;
      return true;
    };
    if (done()) return true;
    return new Promise<boolean>((resolve) => {
      const check = () => {
        if (!done()) return;
        finish(true);
      };
      const timer = setTimeout(() => {
        log.warn('topic not read to its end in time; going on with what was read', {
          timeoutMs,
          ...what(),
        });
        finish(false);
      }, timeoutMs);
      timer.unref();
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        waiters.delete(check);
        resolve(ok);
      };
      waiters.add(check);
    });
  };
  const endsOf = async (topic: string, only?: readonly number[]): Promise<Map<string, bigint>> => {
    const ends = new Map<string, bigint>();
    for (const o of await bus.topicOffsets(topic)) {
      if (only && !only.includes(o.partition)) continue;
      // an empty partition (or one whose records all expired) has nothing to wait for
      if (BigInt(o.high) > BigInt(o.low)) ends.set(slot(topic, o.partition), BigInt(o.high));
    }
    return ends;
  };
  const startEnds = new Map<string, bigint>();
  for (const t of opts.topics) for (const [k, v] of await endsOf(t)) startEnds.set(k, v);
  if (opts.startAt) {
    for (const [k, end] of startEnds) {
      const [t, p] = k.split('\0') as [string, string];
      const at = opts.startAt(t, Number(p));
      if (at === undefined) continue;
      // a partition that starts at its end needs no reading to be caught up
      if (BigInt(at) >= end) startEnds.delete(k);
      positions.set(k, BigInt(at));
    }
  }
  const sub = await bus.subscribe({
    topics: opts.topics,
    groupId: opts.groupId,
    fromBeginning: true,
    ...(opts.maxBatch !== undefined ? { maxBatch: opts.maxBatch } : {}),
    ...(opts.startAt ? { startAt: opts.startAt } : {}),
    onBatch: opts.onBatch,
    onProgress: (topic, partition, next) => {
      const k = slot(topic, partition);
      const n = BigInt(next);
      if ((positions.get(k) ?? -1n) < n) positions.set(k, n);
      wake();
    },
  });
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const caughtUp = waitFor(startEnds, timeoutMs, () => ({ topics: opts.topics.join(',') }));
  return {
    sub,
    caughtUp,
    position: (topic, partition) => positions.get(slot(topic, partition)),
    readTo: async (topic, partitions, ms = timeoutMs) =>
      waitFor(await endsOf(topic, partitions), ms, () => ({ topic, partitions: partitions.join(',') })),
  };
}
