// The Bus: the one interface stages talk through (DESIGN.md section 1). Two implementations,
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

export class BusError extends Error {
  override readonly name = 'BusError';
  constructor(
    message: string,
    readonly retriable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function toBuffer(v: string | Buffer | null | undefined): Buffer | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}
