// In-process Bus for the embedded mode: Kafka's semantics that the stages rely on (partitions by
// key, per-partition order, consumer groups that split partitions, committed offsets, compaction)
// without a broker. Memory is bounded by a per-partition retention cap.
import { createLogger } from '../runtime/log.ts';
import { counter } from '../runtime/metrics.ts';
import {
  type Bus,
  BusError,
  type BusMessage,
  type OutgoingMessage,
  type PublishResult,
  type SubscribeOptions,
  type Subscription,
  type TopicOffsets,
  type TopicSpec,
  toBuffer,
} from './types.ts';

const log = createLogger('bus.memory');
const dropped = counter(
  'virgo_bus_memory_dropped_total',
  'messages the in-process bus dropped past its retention before a group read them',
  ['topic'],
);

interface Partition {
  /** messages[head..] are the log, sorted by offset (compaction leaves gaps); the slots before
   * `head` were trimmed and are dropped in one go once they are half the array (amortised O(1)
   * per message, where a splice per message past retention cost O(retention)) */
  messages: BusMessage[];
  head: number;
  next: number;
}

interface Topic {
  name: string;
  partitions: Partition[];
  compacted: boolean;
  roundRobin: number;
}

interface Member {
  id: number;
  topics: Set<string>;
  wake: () => void;
}

interface Group {
  members: Member[];
  /** `${topic}\0${partition}` -> next offset to read */
  committed: Map<string, number>;
  /** `${topic}\0${partition}` -> next offset not yet handed to a member (retention checks it) */
  handed: Map<string, number>;
}

export interface MemoryBusOptions {
  /** messages kept per partition before the oldest go (compacted topics keep the latest per key) */
  retention?: number;
  defaultPartitions?: number;
}

/** Same key, same partition: FNV-1a over the key bytes. */
export function partitionForKey(key: Buffer, partitions: number): number {
  let h = 0x811c9dc5;
  for (const b of key) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

const slot = (topic: string, partition: number): string => `${topic}\0${partition}`;

export class MemoryBus implements Bus {
  readonly kind = 'memory' as const;
  private readonly topics = new Map<string, Topic>();
  private readonly groups = new Map<string, Group>();
  private readonly retention: number;
  private readonly defaultPartitions: number;
  private nextMemberId = 1;
  private closed = false;
  private readonly subscriptions = new Set<Subscription>();

  constructor(opts: MemoryBusOptions = {}) {
    // In-process consumers keep up within a batch or two; a deep log only costs memory.
    this.retention = opts.retention ?? 20_000;
    this.defaultPartitions = opts.defaultPartitions ?? 1;
  }

  async ensureTopics(specs: TopicSpec[]): Promise<void> {
    for (const s of specs) this.topic(s.topic, s);
  }

  private topic(name: string, spec?: TopicSpec): Topic {
    let t = this.topics.get(name);
    if (!t) {
      const n = spec?.partitions ?? this.defaultPartitions;
      if (!Number.isInteger(n) || n < 1)
        throw new BusError('invalid', `topic ${name}: partitions must be >= 1, got ${n}`);
      t = {
        name,
        partitions: Array.from({ length: n }, () => ({ messages: [], head: 0, next: 0 })),
        compacted: spec?.configs?.['cleanup.policy']?.includes('compact') ?? false,
        roundRobin: 0,
      };
      this.topics.set(name, t);
      // A new topic can change the assignment of members subscribed to it.
      this.wakeAll();
    }
    return t;
  }

  async publish(topic: string, messages: OutgoingMessage[]): Promise<PublishResult> {
    if (this.closed) throw new BusError('closed', 'bus is closed');
    const t = this.topic(topic);
    for (const m of messages) {
      if (m.partition !== undefined && !(m.partition >= 0 && m.partition < t.partitions.length)) {
        throw new BusError('invalid', `topic ${topic} has no partition ${m.partition}`);
      }
    }
    const base = new Map<number, string>();
    const now = Date.now();
    for (const m of messages) {
      const key = toBuffer(m.key);
      let p: number;
      if (m.partition !== undefined) p = m.partition;
      else if (key) p = partitionForKey(key, t.partitions.length);
      else p = t.roundRobin++ % t.partitions.length;
      const part = t.partitions[p]!;
      const offset = part.next++;
      part.messages.push({
        topic,
        partition: p,
        offset: String(offset),
        key,
        value: toBuffer(m.value),
        headers: { ...(m.headers ?? {}) },
        timestamp: m.timestamp ?? now,
      });
      if (!base.has(p)) base.set(p, String(offset));
    }
    // retention once per call and partition written, not per message
    for (const p of base.keys()) {
      const part = t.partitions[p]!;
      if (part.messages.length - part.head > this.retention) this.trim(t, part);
    }
    this.wakeAll();
    return {
      topic,
      count: messages.length,
      partitions: [...base].map(([partition, baseOffset]) => ({ partition, baseOffset })),
    };
  }

  private trim(t: Topic, part: Partition): void {
    const live = part.messages.length - part.head;
    if (t.compacted) {
      // Keep the newest message of each key, as Kafka's log cleaner eventually does; only once
      // the log is a quarter past retention, so a log of more keys than retention is not
      // compacted again on every message.
      if (live <= this.retention + Math.max(16, this.retention >> 2)) return;
      const seen = new Set<string>();
      const kept: BusMessage[] = [];
      for (let i = part.messages.length - 1; i >= part.head; i--) {
        const m = part.messages[i]!;
        const k = m.key ? m.key.toString('latin1') : `\0${m.offset}`;
        if (seen.has(k)) continue;
        seen.add(k);
        kept.push(m);
      }
      kept.reverse();
      part.messages = kept.length > this.retention ? kept.slice(kept.length - this.retention) : kept;
      part.head = 0;
      return;
    }
    const cut = live - this.retention;
    const firstKept = Number(part.messages[part.head + cut]!.offset);
    // A group that has not read up to the cut loses messages: say so, never silently.
    for (const [groupId, g] of this.groups) {
      const key = slot(t.name, part.messages[part.head]!.partition);
      const handed = g.handed.get(key);
      if (handed !== undefined && handed < firstKept && g.members.some((m) => m.topics.has(t.name))) {
        const lost = firstKept - handed;
        dropped.inc({ topic: t.name }, lost);
        log.warn('in-process retention dropped unread messages; the consumer is too slow', {
          topic: t.name,
          group: groupId,
          lost,
          retention: this.retention,
        });
        g.handed.set(key, firstKept);
      }
    }
    part.head += cut;
    if (part.head >= 1024 && part.head * 2 >= part.messages.length) {
      part.messages = part.messages.slice(part.head);
      part.head = 0;
    }
  }

  async topicOffsets(topic: string): Promise<TopicOffsets[]> {
    const t = this.topics.get(topic);
    if (!t) throw new BusError('unknown-topic', `unknown topic ${topic}`);
    return t.partitions.map((p, i) => ({
      partition: i,
      low: String(p.messages[p.head] ? Number(p.messages[p.head]!.offset) : p.next),
      high: String(p.next),
    }));
  }

  private wakeAll(): void {
    for (const g of this.groups.values()) for (const m of g.members) m.wake();
  }

  /** Partitions of `topic` that `member` owns: round-robin over the group's members by id. */
  private assigned(group: Group, member: Member, topic: string): number[] {
    const t = this.topics.get(topic);
    if (!t) return [];
    const peers = group.members.filter((m) => m.topics.has(topic));
    const idx = peers.indexOf(member);
    if (idx < 0) return [];
    const out: number[] = [];
    for (let p = idx; p < t.partitions.length; p += peers.length) out.push(p);
    return out;
  }

  async subscribe(opts: SubscribeOptions): Promise<Subscription> {
    if (this.closed) throw new BusError('closed', 'bus is closed');
    // In-process there is nothing to commit transactionally with: a crash loses the bus itself.
    if (opts.commits === 'transactions')
      throw new BusError('invalid', 'the in-process bus has no transactions (commits: transactions)');
    let group = this.groups.get(opts.groupId);
    if (!group) {
      group = { members: [], committed: new Map(), handed: new Map() };
      this.groups.set(opts.groupId, group);
    }
    const g = group;
    let signal: (() => void) | undefined;
    let pendingWake = false;
    const member: Member = {
      id: this.nextMemberId++,
      topics: new Set(opts.topics),
      wake: () => {
        pendingWake = true;
        signal?.();
      },
    };
    g.members.push(member);
    this.wakeAll();

    const maxBatch = opts.maxBatch ?? 10_000;
    // next offset to read per slot; starts at the committed offset or the reset policy
    const positions = new Map<string, number>();
    // slots the subscriber paused (BatchContext.pause): skipped until resumed
    const paused = new Set<string>();
    const pauseSlot = (key: string) => (): (() => void) => {
      paused.add(key);
      return () => {
        if (paused.delete(key)) member.wake();
      };
    };
    let running = true;

    const startOffset = (t: Topic, p: number): number => {
      const at = opts.startAt?.(t.name, p);
      if (at !== undefined) return Number(at);
      const committed = g.committed.get(slot(t.name, p));
      if (committed !== undefined) return committed;
      const part = t.partitions[p]!;
      return opts.fromBeginning ? 0 : part.next;
    };

    const fetch = (t: Topic, p: number): BusMessage[] => {
      const key = slot(t.name, p);
      let pos = positions.get(key);
      if (pos === undefined) {
        pos = startOffset(t, p);
        positions.set(key, pos);
      }
      const { messages: msgs, head } = t.partitions[p]!;
      // first message with offset >= pos (offsets are sorted, compaction leaves gaps)
      let lo = head;
      let hi = msgs.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (Number(msgs[mid]!.offset) < pos) lo = mid + 1;
        else hi = mid;
      }
      const batch = msgs.slice(lo, lo + maxBatch);
      const after = batch.length > 0 ? Number(batch[batch.length - 1]!.offset) + 1 : pos;
      if ((g.handed.get(key) ?? -1) < after) g.handed.set(key, after);
      return batch;
    };

    let lastAssigned = '';
    const reportAssignment = () => {
      if (!opts.onAssign) return;
      const a = opts.topics.map((topic) => ({ topic, partitions: this.assigned(g, member, topic) }));
      const text = JSON.stringify(a);
      if (text === lastAssigned) return;
      lastAssigned = text;
      opts.onAssign(a);
    };
    const loop = async (): Promise<void> => {
      let failures = 0;
      while (running) {
        pendingWake = false;
        let delivered = false;
        reportAssignment();
        for (const topic of opts.topics) {
          const t = this.topics.get(topic);
          if (!t) continue;
          for (const p of this.assigned(g, member, topic)) {
            if (!running) break;
            if (paused.has(slot(topic, p))) continue;
            const batch = fetch(t, p);
            if (batch.length === 0) continue;
            try {
              await opts.onBatch(batch, {
                topic,
                partition: p,
                isRunning: () => running && this.assigned(g, member, topic).includes(p),
                heartbeat: async () => {},
                highWatermark: String(t.partitions[p]!.next),
                pause: pauseSlot(slot(topic, p)),
              });
              failures = 0;
            } catch (err) {
              // At-least-once: the same batch comes again, after a growing pause.
              failures++;
              log.error('batch handler failed; will retry the batch', {
                topic,
                partition: p,
                offset: batch[0]!.offset,
                err,
              });
              await new Promise((r) => setTimeout(r, Math.min(5_000, 50 * 2 ** Math.min(failures, 7))));
              delivered = true;
              continue;
            }
            const next = Number(batch[batch.length - 1]!.offset) + 1;
            positions.set(slot(topic, p), next);
            g.committed.set(
              slot(topic, p),
              opts.commitOffset ? Number(opts.commitOffset(topic, p, String(next))) : next,
            );
            opts.onProgress?.(topic, p, String(next));
            delivered = true;
          }
        }
        if (!running) break;
        if (delivered) {
          // Let publishers and timers run between batches.
          await new Promise((r) => setImmediate(r));
        } else if (!pendingWake) {
          await new Promise<void>((r) => {
            signal = r;
          });
          signal = undefined;
        }
      }
    };

    const done = loop().catch((err) => log.error('subscription loop died', { err }));
    const sub: Subscription = {
      ready: Promise.resolve(),
      commit: async () => {},
      close: async (o = {}) => {
        if (!running) return done;
        running = false;
        member.wake();
        await done;
        await o
          .beforeLeave?.()
          .catch((err) => log.warn('last work before leaving the group failed', { err }));
        g.members.splice(g.members.indexOf(member), 1);
        this.subscriptions.delete(sub);
        // Survivors take over the partitions this member held, from the committed offsets.
        this.wakeAll();
      },
    };
    this.subscriptions.add(sub);
    return sub;
  }

  async close(): Promise<void> {
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    this.closed = true;
  }
}
