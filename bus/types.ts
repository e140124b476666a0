// The Bus: the one interface stages talk through (docs/design.md §2.3). Two implementations,
// kafkajs (distributed) and in-process (embedded), pass the same contract tests.

export type Headers = Record<string, string>;

export interface OutgoingMessage {
  key?: string | Buffer | null;
  value: string | Buffer | null;
  headers?: Headers;
  /** epoch ms; defaults to now */
  timestamp?: number;
  /** explicit partition; by default the key picks it (same key, same partition) */
  partition?: number;
}

export interface BusMessage {
  topic: string;
  partition: number;
  /** decimal string, as Kafka's offsets outgrow 2^53 in theory */
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Headers;
  timestamp: number;
}

export interface PublishOptions {
  compression?: 'none' | 'gzip';
  /** Kafka acks: -1 all in-sync replicas (default), 1 leader, 0 none */
  acks?: -1 | 0 | 1;
}

export interface PublishResult {
  topic: string;
  /** messages acknowledged */
  count: number;
  /** per partition written, the offset of this batch's first message there */
  partitions: { partition: number; baseOffset: string }[];
}

export interface TopicSpec {
  topic: string;
  partitions?: number;
  configs?: Record<string, string>;
}

export type BatchHandler = (messages: BusMessage[], ctx: BatchContext) => Promise<void>;

export interface BatchContext {
  topic: string;
  partition: number;
  /** false once the subscription is closing or the partition was revoked: stop early */
  isRunning(): boolean;
  heartbeat(): Promise<void>;
  /** the partition's high watermark (next offset to be written) when the batch was fetched:
   * a consumer at it has read everything there was (event-time merging, replay detection) */
  highWatermark?: string;
  /**
   * Stops fetching this partition (this batch is handled as usual) until the returned function is
   * called: a subscriber that merges its partitions holds back one that runs ahead instead of
   * buffering it (event-time alignment). Offsets and delivery are unchanged.
   */
  pause?(): () => void;
}

export interface Assignment {
  topic: string;
  partitions: number[];
}

export interface SubscribeOptions {
  topics: string[];
  groupId: string;
  /** with no committed offset for the group: from the start (true) or only new messages (false) */
  fromBeginning?: boolean;
  /** Called per batch of one partition, in offset order. Offsets of a batch are committed after
   * the handler resolves (at-least-once); a throwing handler gets the same batch again. */
  onBatch: BatchHandler;
  /** upper bound of messages handed to onBatch at once (the in-process bus honours it exactly) */
  maxBatch?: number;
  /**
   * Kafka: bytes one fetch takes from a partition at most (as stored, compressed; kafkajs's
   * default 1 MiB). A subscriber that merges its partitions holds each partition's fetch until
   * the others catch up, so this bounds its buffer (ingest's event-time merge). The in-process
   * bus has nothing to fetch and ignores it.
   */
  maxBytesPerPartition?: number;
  /** called with this member's partitions whenever the group assigns them (join, rebalance) */
  onAssign?: (assigned: Assignment[]) => void;
  /**
   * The offset to commit for a partition after a handled batch, given the next offset (the
   * default): a subscriber that keeps some of the batch's messages for later (a reorder buffer)
   * returns the first one it still holds, so after a crash or rebalance they come again.
   */
  commitOffset?: (topic: string, partition: number, next: string) => string;
  /**
   * Called whenever this member's position in a partition moves: after a handled batch, and past
   * records it never sees (transaction markers, aborted records), so a reader can tell that it
   * reached an end offset even when the partition ends with a commit marker.
   */
  onProgress?: (topic: string, partition: number, next: string) => void;
  /**
   * Who commits the offsets: the bus after handled batches (default, at-least-once), or the
   * subscriber in its own transactions (`Subscription.positions()` says what to commit; the bus
   * commits nothing, not even on close).
   */
  commits?: 'bus' | 'transactions';
  /** per assigned partition, where to start reading instead of the committed offset (a local
   * copy of the topic covers what is before) */
  startAt?: (topic: string, partition: number) => string | undefined;
  /**
   * Awaited before this member rejoins its group once a rebalance started (Kafka: before its
   * JoinGroup request goes out). A transactional subscriber resolves it once its transaction in
   * flight is resolved and visible, so no new owner of its partitions starts before it.
   */
  beforeRejoin?: () => Promise<void>;
}

/** Where this member stands in its group, for a subscriber committing in transactions. */
export interface Membership {
  /** bumped at every assignment (join, rebalance) */
  generation: number;
  /**
   * Offsets and effects may be committed now for this generation: no rebalance has started and
   * the last heartbeat is recent enough that the coordinator still counts this member in.
   */
  safe: boolean;
}

export interface Subscription {
  /** resolves once the consumer has joined its group and been assigned partitions */
  readonly ready: Promise<void>;
  /** commits every processed offset now (also done after each batch and on close) */
  commit(): Promise<void>;
  /**
   * Stops fetching, waits for the batch in hand, commits (`commits: 'bus'`), runs `beforeLeave`
   * while still a member of the group (a transactional subscriber's last commit), leaves.
   */
  close(opts?: { beforeLeave?: () => Promise<void> }): Promise<void>;
  /** `commits: 'transactions'`: per assigned partition, the offset to commit (after handled
   * batches, through `commitOffset` now) */
  positions?(): ConsumedOffset[];
  /** `commits: 'transactions'`: the member's generation and whether committing is safe now */
  membership?(): Membership;
}

export interface ConsumedOffset {
  topic: string;
  partition: number;
  /** the next offset to read */
  offset: string;
}

/** One transaction: what it publishes and the consumer offsets it commits go together or not at all. */
export interface Transaction {
  publish(topic: string, messages: OutgoingMessage[]): Promise<void>;
  /** commits `groupId`'s offsets with the transaction (the group's consumer commits none itself) */
  commitOffsets(groupId: string, offsets: ConsumedOffset[]): Promise<void>;
}

export interface TransactionOutcome {
  /** per topic and partition written, the offset of a record of this transaction there: once the
   * partition's last stable offset passed it, the transaction is visible there */
  written: { topic: string; partition: number; offset: string }[];
}

/** A producer whose writes go in transactions (Kafka: a transactional.id of its own). */
export interface TransactionalPublisher {
  /**
   * Runs `fill` in a new transaction and commits it; a `fill` that throws aborts it (and the
   * error is rethrown). One transaction at a time.
   */
  run(fill: (t: Transaction) => Promise<void>): Promise<TransactionOutcome>;
  /** the committed offsets of `groupId` as its coordinator has them now */
  committedOffsets(groupId: string, topic: string): Promise<ConsumedOffset[]>;
  close(): Promise<void>;
}

export interface TransactionalOptions {
  /** stable per instance across restarts: a restart fences the previous incarnation and aborts
   * what it left open */
  transactionalId: string;
  /** an open transaction of a dead producer is aborted by the broker after this (default 10 s) */
  transactionTimeoutMs?: number;
}

export interface TopicOffsets {
  partition: number;
  /** first available offset */
  low: string;
  /** next offset to be written */
  high: string;
}

export interface Bus {
  readonly kind: 'kafka' | 'memory';
  ensureTopics(specs: TopicSpec[]): Promise<void>;
  publish(topic: string, messages: OutgoingMessage[], opts?: PublishOptions): Promise<PublishResult>;
  subscribe(opts: SubscribeOptions): Promise<Subscription>;
  topicOffsets(topic: string): Promise<TopicOffsets[]>;
  /** Kafka only: a producer writing in transactions (exactly-once with `commits: 'transactions'`) */
  transactional?(opts: TransactionalOptions): Promise<TransactionalPublisher>;
  close(): Promise<void>;
}

/**
 * Why a bus call failed, so callers decide on a code and never on the wording of a message:
 * - `connect`: no broker answered (refused, unreachable, connection timed out or dropped)
 * - `timeout`: a broker took the request but did not answer in time
 * - `unknown-topic`: the topic (or partition) does not exist
 * - `auth`: the broker refused our credentials (SASL)
 * - `denied`: authenticated, but not allowed (topic, group or cluster authorization)
 * - `closed`: this bus was closed
 * - `invalid`: the call itself was wrong (no brokers given, bad partition count or number)
 * - `fenced`: another producer with the same transactional id took over (this one must stop)
 * - `unknown`: anything else (the cause says what)
 */
export type BusErrorCode =
  | 'connect'
  | 'timeout'
  | 'unknown-topic'
  | 'auth'
  | 'denied'
  | 'closed'
  | 'invalid'
  | 'fenced'
  | 'unknown';

export class BusError extends Error {
  override readonly name = 'BusError';
  readonly retriable: boolean;
  constructor(
    readonly code: BusErrorCode,
    message: string,
    options: { retriable?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retriable = options.retriable ?? false;
  }
}

/** No broker to talk to (none answered, or it refused our credentials): retrying or carrying on
 * without it is pointless, unlike a missing right to create a topic (`denied`). */
export function brokerUnreachable(err: unknown): boolean {
  return err instanceof BusError && (err.code === 'connect' || err.code === 'auth');
}

export function toBuffer(v: string | Buffer | null | undefined): Buffer | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}
