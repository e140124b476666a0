// Exactly once on Kafka (docs/design.md §2.4, §7.6): every commit interval one Kafka transaction
// carries, together, the analytics variables the learners emitted for the hosts of this
// instance's log partitions, the changed parts of those hosts' state (the changelog), the dead
// letters of the lines handled, and the consumer group's offsets. Read-committed readers (the
// feeder, consumers, dashboards, a restoring instance) see all of it or none of it, so a crash at
// any moment neither loses nor repeats a variable change and no line is counted twice: whatever
// the last transaction did not commit is read again from the committed offsets into the state it
// committed.
//
// A cycle takes what to commit between two batches (ingest's turn, then the host's: the state,
// the offsets and the outbox are of the same instant), then runs the transaction while batches go
// on. It commits only while the consumer's membership is safe (no rebalance started, heartbeats
// recent), and the consumer's rejoin waits for a transaction in flight and for its markers to be
// visible (`beforeRejoin`), so the next owner of a partition starts from exactly what was
// committed. When partitions change hands, the revoked ones' hosts are dropped and the assigned
// ones' hosts restored from the changelog store before their first line is handled.
//
// Time: the commit interval is processing time; nothing here reads event time.
import {
  type Bus,
  BusError,
  type ConsumedOffset,
  type OutgoingMessage,
  type TransactionalPublisher,
  type TransactionOutcome,
} from '../bus/index.ts';
import type { IngestStage, PartitionChange, PendingDeadLetter } from '../ingest/index.ts';
import { createLogger } from '../runtime/log.ts';
import { counter, gauge, histogram } from '../runtime/metrics.ts';
import type { AnalyticsVariable } from '../schemas/index.ts';
import { type ChangelogStore, encodeHostParts, SHARED_PREFIX } from './changelog.ts';
import type { LearnerHost } from './host.ts';
import { variableMessage } from './variables.ts';

const log = createLogger('learners.eos');

const mTxns = counter('virgo_learner_transactions_total', 'learn-stage transactions by outcome', ['outcome']);
const mStateBytes = counter(
  'virgo_learner_state_bytes_total',
  'compressed bytes of host state written to the learner-state changelog',
);
const mStateRecords = counter(
  'virgo_learner_state_records_total',
  'records written to the learner-state changelog',
);
const mRestored = counter(
  'virgo_learner_hosts_restored_total',
  'hosts whose state was restored when their partition was assigned here, by where it came from',
  ['from'],
);
const mDropped = counter(
  'virgo_learner_hosts_handed_over_total',
  'hosts dropped here because their partition went to another instance',
);
const hRestore = histogram(
  'virgo_learner_restore_seconds',
  'time from a partition assignment to its hosts restored (changelog read to its end, state imported)',
  [],
  [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
);
const gOwned = gauge('virgo_learner_hosts_owned', 'hosts of the log partitions this instance owns now');

export interface ExactlyOnceOptions {
  bus: Bus;
  publisher: TransactionalPublisher;
  host: LearnerHost;
  ingest: () => IngestStage | undefined;
  store: ChangelogStore;
  /** consumer group of the log topic */
  groupId: string;
  logsTopic: string;
  stateTopic: string;
  analyticsTopic: string;
  dlqTopic: string;
  /** processing time between two transactions, ms (default 500) */
  intervalMs?: number;
  /** a fatal failure (another instance took our transactional id): the stage must stop */
  onFatal: (err: unknown) => void;
  /** this instance's id: its shared parts go under `~<id>/<learner>` */
  instanceId: string;
  /** ms between two writes of the shared parts (models; default 30 s) */
  sharedEveryMs?: number;
}

export interface ExactlyOnceStats {
  transactions: number;
  aborted: number;
  /** records and compressed bytes written to the changelog */
  stateRecords: number;
  stateBytes: number;
  /** hosts restored when their partition was assigned here, from the topic or the local copy */
  restored: { changelog: number; cache: number };
  /** hosts handed over to another instance */
  handedOver: number;
  /** partitions assigned here, over time (each assignment's new ones) */
  assignments: {
    at: number;
    assigned: number[];
    revoked: number[];
    restoredHosts: string[];
    seconds: number;
  }[];
  owned: number;
  lastCommitAt: number | null;
}

interface Committed {
  text: Map<string, string>;
  chunks: Map<string, number>;
}

interface Capture {
  generation: number;
  seqs: Map<string, number>;
  /** per host: parts changed (text, or null: gone) and its partition */
  writes: { host: string; partition: number; parts: Map<string, string | null>; text: Map<string, string> }[];
  variables: AnalyticsVariable[];
  positions: ConsumedOffset[];
  dead: PendingDeadLetter[];
  /** the learners' shared parts, when their turn came (JSON text per learner) */
  shared?: Map<string, string>;
}

class Unsafe extends Error {
  override readonly name = 'Unsafe';
}

export class ExactlyOnce {
  private readonly dirty = new Map<string, number>();
  private seq = 0;
  private readonly committed = new Map<string, Committed>();
  /**
   * host -> key -> the value last committed to the analytics topic. The outbox keeps the newest
   * value per variable, so a change and its undoing within one commit interval (many minutes of
   * event time in a replay) would otherwise go out as the value already out there: a repeat.
   */
  private readonly sent = new Map<string, Map<string, string>>();
  private lastPositions = '';
  private inFlight: Promise<void> | undefined;
  private running: Promise<void> = Promise.resolve();
  private last: { outcome: TransactionOutcome; positions: ConsumedOffset[] } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private sharedAt = 0;
  private sharedChunks = new Map<string, number>();
  private readonly s: ExactlyOnceStats = {
    transactions: 0,
    aborted: 0,
    stateRecords: 0,
    stateBytes: 0,
    restored: { changelog: 0, cache: 0 },
    handedOver: 0,
    assignments: [],
    owned: 0,
    lastCommitAt: null,
  };

  constructor(private readonly o: ExactlyOnceOptions) {}

  /** A host's state changed (called by the learner host). */
  touch(host: string): void {
    this.dirty.set(host, ++this.seq);
  }

  /** Commits every interval until `stop`. */
  start(): void {
    const every = this.o.intervalMs ?? 500;
    const loop = () => {
      this.timer = setTimeout(() => {
        this.cycle()
          .catch(() => {})
          .finally(() => {
            if (!this.stopped) loop();
          });
      }, every);
      this.timer.unref();
    };
    loop();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  stats(): ExactlyOnceStats {
    return { ...this.s, restored: { ...this.s.restored }, assignments: [...this.s.assignments] };
  }

  /**
   * One commit: what changed since the last, in one transaction. Cycles run one at a time; a
   * call while one runs waits for it and runs after.
   */
  cycle(): Promise<void> {
    const next = this.running.then(() => this.once());
    this.running = next.catch(() => {});
    return next;
  }

  /** The rejoin barrier: the transaction in flight resolved and its markers visible. */
  async beforeRejoin(): Promise<void> {
    await this.inFlight?.catch(() => {});
    await this.waitVisible();
  }

  /** Partitions changed hands: drop the revoked ones' hosts, restore the assigned ones'. Runs in
   * ingest's turn (no line on its way to the learners), before any line of the assignment. */
  async onPartitions(change: PartitionChange): Promise<void> {
    const ingest = this.o.ingest();
    const host = this.o.host;
    const t0 = Date.now();
    if (change.revokedHosts.size > 0) {
      await host.exclusive(() => {
        host.dropHosts(change.revokedHosts);
        for (const h of change.revokedHosts) {
          this.committed.delete(h);
          this.dirty.delete(h);
          this.sent.delete(h);
        }
      });
      this.s.handedOver += change.revokedHosts.size;
      mDropped.inc(change.revokedHosts.size);
      log.info('partitions handed over: their hosts are dropped here', {
        partitions: change.revoked.join(','),
        hosts: change.revokedHosts.size,
      });
    }
    const restoredHosts: string[] = [];
    if (change.assigned.length > 0) {
      if (!(await this.o.store.readTo(change.assigned)))
        log.warn('restoring from a changelog not read to its end', { partitions: change.assigned.join(',') });
      let fromCache = 0;
      let fromTopic = 0;
      await host.exclusive(() => {
        for (const p of change.assigned) {
          for (const h of this.o.store.hostsIn(p)) {
            const r = this.o.store.assemble(h);
            if (!r) continue;
            host.importHost(h, r.parts);
            ingest?.setPartitionOf(h, p);
            this.committed.set(h, { text: r.text, chunks: r.chunks });
            // the gate's slots were committed with what they say went out
            const sent = new Map<string, string>();
            const slots = r.parts.get('gate');
            if (Array.isArray(slots))
              for (const [id, slot] of slots as [string, { value?: unknown }][])
                if (typeof slot?.value === 'string') sent.set(id.slice(id.indexOf('/') + 1), slot.value);
            this.sent.set(h, sent);
            this.dirty.delete(h);
            restoredHosts.push(h);
            if (r.fromCache) fromCache++;
            else fromTopic++;
          }
        }
      });
      this.s.restored.changelog += fromTopic;
      this.s.restored.cache += fromCache;
      if (fromTopic) mRestored.inc({ from: 'changelog' }, fromTopic);
      if (fromCache) mRestored.inc({ from: 'cache' }, fromCache);
    }
    const seconds = (Date.now() - t0) / 1000;
    hRestore.observe(seconds);
    this.s.owned = ingest?.partitionedHosts().size ?? 0;
    gOwned.set(this.s.owned);
    this.s.assignments.push({
      at: Date.now(),
      assigned: change.assigned,
      revoked: change.revoked,
      restoredHosts,
      seconds,
    });
    if (this.s.assignments.length > 100) this.s.assignments.shift();
    log.info('partitions assigned', {
      assigned: change.assigned.join(','),
      revoked: change.revoked.join(','),
      restored: restoredHosts.length,
      seconds,
    });
  }

  private async once(): Promise<void> {
    const ingest = this.o.ingest();
    if (!ingest) return;
    const cap = await ingest.exclusive(() => this.o.host.exclusive(() => this.capture(ingest)));
    if (!cap) return;
    const records: OutgoingMessage[] = [];
    let bytes = 0;
    let sharedChunks: Map<string, number> | undefined;
    if (cap.shared && cap.shared.size > 0) {
      const e = encodeHostParts(`${SHARED_PREFIX}${this.o.instanceId}`, 0, cap.shared, this.sharedChunks);
      records.push(...e.messages);
      bytes += e.bytes;
      sharedChunks = e.chunks;
    }
    for (const w of cap.writes) {
      const before = this.committed.get(w.host)?.chunks ?? new Map<string, number>();
      const e = encodeHostParts(w.host, w.partition, w.parts, before);
      records.push(...e.messages);
      bytes += e.bytes;
      (w as typeof w & { chunks?: Map<string, number> }).chunks = e.chunks;
    }
    const changes = cap.variables.filter((v) => this.sent.get(v.host)?.get(v.key) !== v.value);
    const run = this.o.publisher.run(async (t) => {
      if (records.length > 0) await t.publish(this.o.stateTopic, records);
      if (changes.length > 0) await t.publish(this.o.analyticsTopic, changes.map(variableMessage));
      if (cap.dead.length > 0)
        await t.publish(
          this.o.dlqTopic,
          cap.dead.map((d) => d.message),
        );
      await t.commitOffsets(this.o.groupId, cap.positions);
      // The last moment to refuse: past it the transaction commits.
      const m = ingest.membership();
      if (!m?.safe || m.generation !== cap.generation)
        throw new Unsafe('the group is rebalancing (or this member may be out of it)');
    });
    this.inFlight = run.then(
      () => {},
      () => {},
    );
    try {
      const outcome = await run;
      this.last = { outcome, positions: cap.positions };
      if (sharedChunks) this.sharedChunks = sharedChunks;
      this.lastPositions = JSON.stringify(cap.positions);
      await this.o.host.exclusive(() => {
        const out = new Set(changes);
        this.o.host.delivered(
          changes,
          cap.variables.filter((v) => !out.has(v)),
        );
        for (const v of changes) {
          // a host handed over meanwhile is not ours to remember
          if (ingest.partitionOf(v.host) === undefined) continue;
          let m = this.sent.get(v.host);
          if (!m) {
            m = new Map();
            this.sent.set(v.host, m);
          }
          m.set(v.key, v.value);
        }
        for (const w of cap.writes) {
          // a host handed over meanwhile is not ours to remember
          if (ingest.partitionOf(w.host) === undefined) continue;
          const c = this.committed.get(w.host) ?? { text: new Map(), chunks: new Map() };
          for (const [part, text] of w.parts) {
            if (text === null) c.text.delete(part);
            else c.text.set(part, text);
          }
          for (const [part, n] of (w as typeof w & { chunks: Map<string, number> }).chunks) {
            if (n === 0) c.chunks.delete(part);
            else c.chunks.set(part, n);
          }
          this.committed.set(w.host, c);
        }
        for (const [h, seq] of cap.seqs) if (this.dirty.get(h) === seq) this.dirty.delete(h);
      });
      this.s.transactions++;
      this.s.stateRecords += records.length;
      this.s.stateBytes += bytes;
      this.s.lastCommitAt = Date.now();
      mTxns.inc({ outcome: 'committed' });
      mStateRecords.inc(records.length);
      mStateBytes.inc(bytes);
    } catch (err) {
      ingest.putBackDeadLetters(cap.dead);
      this.s.aborted++;
      mTxns.inc({ outcome: err instanceof Unsafe ? 'refused' : 'aborted' });
      if (err instanceof BusError && err.code === 'fenced') {
        log.error(
          'another instance took this transactional id: stopping (two virgo learn on one state dir?)',
          {
            err,
          },
        );
        this.stop();
        this.o.onFatal(err);
      } else if (err instanceof Unsafe)
        log.info('commit refused while the group rebalances; the next one carries it');
      else log.warn('transaction failed; the next one carries what it held', { err });
      throw err;
    }
  }

  /** What to commit now; undefined when nothing changed or committing is not safe. */
  private async capture(ingest: IngestStage): Promise<Capture | undefined> {
    const m = ingest.membership();
    if (!m?.safe) return undefined;
    let shared: Map<string, string> | undefined;
    if (Date.now() - this.sharedAt >= (this.o.sharedEveryMs ?? 30_000)) {
      this.sharedAt = Date.now();
      shared = new Map([...(await this.o.host.exportShared())].map(([l, d]) => [l, JSON.stringify(d)]));
    }
    const hosts = new Set<string>();
    const seqs = new Map<string, number>();
    for (const [h, seq] of this.dirty) {
      if (ingest.partitionOf(h) === undefined) continue;
      hosts.add(h);
      seqs.set(h, seq);
    }
    const now = this.o.host.exportHosts(hosts);
    const writes: Capture['writes'] = [];
    for (const h of hosts) {
      const parts = now.get(h) ?? new Map<string, string>();
      const before = this.committed.get(h)?.text ?? new Map<string, string>();
      const changed = new Map<string, string | null>();
      for (const [part, text] of parts) if (before.get(part) !== text) changed.set(part, text);
      for (const part of before.keys()) if (!parts.has(part)) changed.set(part, null);
      if (changed.size > 0)
        writes.push({ host: h, partition: ingest.partitionOf(h)!, parts: changed, text: parts });
    }
    const variables = this.o.host.deferred();
    const positions = ingest.positions();
    const dead = ingest.takeDeadLetters(positions);
    if (
      writes.length === 0 &&
      variables.length === 0 &&
      dead.length === 0 &&
      !shared?.size &&
      JSON.stringify(positions) === this.lastPositions
    ) {
      // nothing to say: what was dirty is as committed
      for (const [h, seq] of seqs) if (this.dirty.get(h) === seq) this.dirty.delete(h);
      return undefined;
    }
    return {
      generation: m.generation,
      seqs,
      writes,
      variables,
      positions,
      dead,
      ...(shared ? { shared } : {}),
    };
  }

  /** Until the last transaction is visible to read-committed readers: its records below the last
   * stable offsets of their partitions, its offsets the group's committed ones (at most 10 s). */
  private async waitVisible(): Promise<void> {
    const last = this.last;
    if (!last) return;
    const deadline = Date.now() + 10_000;
    const topics = new Set(last.outcome.written.map((w) => w.topic));
    for (;;) {
      let visible = true;
      try {
        for (const t of topics) {
          const lso = new Map((await this.o.bus.topicOffsets(t)).map((o) => [o.partition, BigInt(o.high)]));
          for (const w of last.outcome.written)
            if (w.topic === t && (lso.get(w.partition) ?? 0n) <= BigInt(w.offset)) visible = false;
        }
        if (visible && last.positions.length > 0) {
          const c = new Map(
            (await this.o.publisher.committedOffsets(this.o.groupId, this.o.logsTopic)).map((o) => [
              o.partition,
              o.offset,
            ]),
          );
          for (const p of last.positions) if (c.get(p.partition) !== p.offset) visible = false;
        }
      } catch (err) {
        log.debug('could not check the last transaction is visible; checking again', { err });
        visible = false;
      }
      if (visible) {
        if (this.last === last) this.last = undefined;
        return;
      }
      if (Date.now() > deadline) {
        log.warn('the last transaction is not visible after 10 s; rejoining anyway');
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
