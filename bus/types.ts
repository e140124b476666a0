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
}

export interface Subscription {
  /** resolves once the consumer has joined its group and been assigned partitions */
  readonly ready: Promise<void>;
  /** commits every processed offset now (also done after each batch and on close) */
  commit(): Promise<void>;
  /** stops fetching, waits for the batch in hand, commits, leaves the group */
  close(): Promise<void>;
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
