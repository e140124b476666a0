// Bus over Apache Kafka (kafkajs). The only module of the project that imports kafkajs.
import {
  type Admin,
  CompressionTypes,
  type Consumer,
  type ConsumerRunConfig,
  type EachBatchPayload,
  type IHeaders,
  Kafka,
  type KafkaConfig,
  type KafkaMessage,
  logLevel,
  type Message,
  Partitioners,
  type Producer,
} from 'kafkajs';
import { createLogger, type Logger } from '../runtime/log.ts';
import { counter } from '../runtime/metrics.ts';
import {
  installFastPath,
  PACKED_FETCH,
  type PackedFetch,
  type TopicOffsetsReader,
  topicOffsetsReader,
} from './kafka-fastpath.ts';
import { installJoinBarrier, setJoinBarrier } from './kafka-join-barrier.ts';
import { packedRounds, planPartitions, type TopicPartitions } from './kafka-produce.ts';
import {
  type Bus,
  BusError,
  type BusErrorCode,
  type BusMessage,
  type Headers,
  type OutgoingMessage,
  type PublishOptions,
  type PublishResult,
  type SubscribeOptions,
  type Subscription,
  type TopicOffsets,
  type TopicSpec,
  type TransactionalOptions,
  type TransactionalPublisher,
} from './types.ts';

const log = createLogger('bus.kafka');
const consumerRestarts = counter(
  'virgo_bus_consumer_restarts_total',
  'subscriptions restarted by the bus after kafkajs gave up on their consumer',
  ['group'],
);

/** Pause before the bus restarts a consumer kafkajs gave up on: doubles per attempt up to the cap. */
const RESTART_INITIAL_MS = 1_000;
const RESTART_MAX_MS = 30_000;
/** A consumer not heard from for this long is out of its group (its partitions go to others). */
const SESSION_TIMEOUT_MS = 10_000;
/** Handled offsets are committed at most this long after their batch (and on commit()/close()). */
export const COMMIT_INTERVAL_MS = 200;

export interface KafkaBusOptions {
  brokers: string[];
  clientId?: string;
  /** retries before a call gives up with an error (bounded: a dead broker is reported, not waited on forever) */
  retries?: number;
  connectionTimeoutMs?: number;
  /** SASL/SSL come from the environment only, never from a flag that would land in shell history */
  ssl?: boolean;
  sasl?: KafkaConfig['sasl'];
}

function kafkaLogger(base: Logger) {
  // kafkajs logs conditions it retries itself (rebalances, a broker restarting) as ERROR; what
  // finally fails reaches the caller as a BusError, so its own reports are warnings here.
  const map: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
    [logLevel.ERROR]: 'warn',
    [logLevel.WARN]: 'warn',
    [logLevel.INFO]: 'debug', // kafkajs is chatty at INFO
    [logLevel.DEBUG]: 'trace' as 'debug',
  };
  return () =>
    ({ level, log: entry }: { level: number; log: { message: string; [k: string]: unknown } }) => {
      const { message, timestamp: _t, logger: _l, ...rest } = entry;
      // Said of every idempotent producer with bounded retries; ours are transactional, where a
      // send that runs out of retries aborts the transaction and the next one carries it all.
      if (message.startsWith('Limiting retries for the idempotent producer')) return;
      const lvl = map[level] ?? 'debug';
      (lvl === ('trace' as string) ? base.trace : base[lvl])(message, rest);
    };
}

/** Bytes of a record batch (one partition's part of a produce request), before compression: well
 * under Kafka's default message.max.bytes (1 MiB), which refuses a bigger batch whole. */
const MAX_BATCH_BYTES = 512 * 1024;

function sizeOf(v: string | Buffer | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'string' ? Buffer.byteLength(v) : v.length;
}

/** An outgoing message as kafkajs's own codec takes it (the stock and transactional producers). */
function kafkajsMessage(m: OutgoingMessage): Message {
  return {
    key: m.key ?? null,
    value: m.value,
    ...(m.headers ? { headers: m.headers } : {}),
    ...(m.timestamp !== undefined ? { timestamp: String(m.timestamp) } : {}),
    ...(m.partition !== undefined ? { partition: m.partition } : {}),
  };
}

function* chunksBySize(messages: OutgoingMessage[], maxBytes: number): Generator<OutgoingMessage[]> {
  let chunk: OutgoingMessage[] = [];
  let bytes = 0;
  for (const m of messages) {
    let size = 70 + sizeOf(m.key) + sizeOf(m.value); // 70: record overhead, roughly
    if (m.headers) for (const [k, v] of Object.entries(m.headers)) size += k.length + v.length + 4;
    if (chunk.length > 0 && bytes + size > maxBytes) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(m);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}

function headersOf(h: IHeaders | undefined): Headers {
  const out: Headers = {};
  if (!h) return out;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const one = Array.isArray(v) ? v[v.length - 1] : v;
    out[k] = one === undefined || one === null ? '' : one.toString();
  }
  return out;
}

// kafkajs names its errors by class (`name`) and carries the broker's error code as `type`; a
// call that ran out of retries wraps the last error as its `cause`.
const BY_NAME: Record<string, BusErrorCode> = {
  KafkaJSConnectionError: 'connect',
  KafkaJSConnectionClosedError: 'connect',
  KafkaJSBrokerNotFound: 'connect',
  KafkaJSRequestTimeoutError: 'timeout',
  KafkaJSTimeout: 'timeout',
  KafkaJSSASLAuthenticationError: 'auth',
  KafkaJSTopicMetadataNotLoaded: 'unknown-topic',
};
const BY_TYPE: Record<string, BusErrorCode> = {
  UNKNOWN_TOPIC_OR_PARTITION: 'unknown-topic',
  REQUEST_TIMED_OUT: 'timeout',
  SASL_AUTHENTICATION_FAILED: 'auth',
  UNSUPPORTED_SASL_MECHANISM: 'auth',
  ILLEGAL_SASL_STATE: 'auth',
  TOPIC_AUTHORIZATION_FAILED: 'denied',
  GROUP_AUTHORIZATION_FAILED: 'denied',
  CLUSTER_AUTHORIZATION_FAILED: 'denied',
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 'denied',
  // another producer with our transactional id started (the old Produce/EndTxn versions kafkajs
  // speaks get INVALID_PRODUCER_EPOCH where newer clients get PRODUCER_FENCED)
  INVALID_PRODUCER_EPOCH: 'fenced',
  TRANSACTION_COORDINATOR_FENCED: 'fenced',
};

/** The BusError code of an error thrown by kafkajs: the innermost cause that names one. */
export function kafkaErrorCode(err: unknown): BusErrorCode {
  let found: BusErrorCode = 'unknown';
  if (err instanceof BusError) return err.code;
  const seen = new Set<unknown>();
  for (let e = err; e && typeof e === 'object' && !seen.has(e); ) {
    seen.add(e);
    const x = e as { name?: string; type?: string; cause?: unknown; errors?: unknown[] };
    found = (x.type && BY_TYPE[x.type]) || (x.name && BY_NAME[x.name]) || found;
    // an aggregate (createTopics) holds one error per topic: the first decides
    e = x.cause ?? x.errors?.[0];
  }
  return found;
}

export class KafkaBus implements Bus {
  readonly kind = 'kafka' as const;
  readonly kafka: Kafka;
  private producer: Producer | undefined;
  private producerReady: Promise<Producer> | undefined;
  private admin: Admin | undefined;
  /** topic offsets in one round trip (bus/kafka-fastpath.ts), where the fast path is installed */
  private offsetsReader: TopicOffsetsReader | undefined;
  private readonly subs = new Set<Subscription>();
  /** the fast record codec is in kafkajs (bus/kafka-fastpath.ts) */
  private readonly fast: boolean;
  /** JoinGroup waits for a transactional subscriber's barrier (bus/kafka-join-barrier.ts) */
  readonly joinBarrier: boolean;
  /** per topic, the partitions kafkajs's producer last saw (updated on every send) */
  private readonly topicParts = new Map<string, TopicPartitions>();

  constructor(readonly opts: KafkaBusOptions) {
    if (opts.brokers.length === 0)
      throw new BusError('invalid', 'no Kafka brokers given (--brokers host:port)');
    this.kafka = new Kafka({
      clientId: opts.clientId ?? 'virgo-analytics',
      brokers: opts.brokers,
      connectionTimeout: opts.connectionTimeoutMs ?? 3_000,
      requestTimeout: 30_000,
      retry: { retries: opts.retries ?? 5, initialRetryTime: 200, maxRetryTime: 3_000 },
      logLevel: logLevel.INFO,
      logCreator: kafkaLogger(log),
      ...(opts.ssl ? { ssl: true } : {}),
      ...(opts.sasl ? { sasl: opts.sasl } : {}),
    });
    this.fast = installFastPath();
    this.offsetsReader = topicOffsetsReader(this.kafka);
    this.joinBarrier = installJoinBarrier();
  }

  /** Notes the partitions of `topic` as kafkajs's metadata has them (its partitioner is told). */
  private notePartitions(topic: string, meta: { partitionId: number; leader: number }[]): void {
    const prev = this.topicParts.get(topic);
    if (prev && prev.count === meta.length && prev.available.length === meta.length) return;
    const available = meta.filter((p) => p.leader >= 0).map((p) => p.partitionId);
    if (prev && prev.count === meta.length) prev.available = available;
    else
      this.topicParts.set(topic, {
        count: meta.length,
        available,
        keyCache: new Map(),
        roundRobin: Math.floor(Math.random() * 0x7fffffff),
      });
  }

  /** The partitions of `topic`: kafkajs's last view, else asked once; undefined if it does not exist. */
  private async partitionsOf(topic: string): Promise<TopicPartitions | undefined> {
    const known = this.topicParts.get(topic);
    if (known) return known;
    try {
      const admin = await this.getAdmin();
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const meta = topics.find((t) => t.name === topic)?.partitions ?? [];
      if (meta.length === 0) return undefined;
      this.notePartitions(topic, meta);
    } catch {
      // unknown (to be auto-created by the producer) or unreachable: kafkajs's own path decides
      return undefined;
    }
    return this.topicParts.get(topic);
  }

  private describeFailure(what: string, err: unknown): BusError {
    const e = err as Error;
    const retriable = (e as { retriable?: boolean }).retriable ?? false;
    const code = kafkaErrorCode(err);
    return new BusError(
      code,
      `${what} failed against Kafka at ${this.opts.brokers.join(',')}: ${e.message}` +
        (code === 'connect' ? ' (is the broker running? `npm run services:up` starts a local one)' : ''),
      { retriable, cause: err },
    );
  }

  private async getProducer(): Promise<Producer> {
    if (!this.producerReady) {
      const p = this.kafka.producer({
        // kafkajs's own partitioner, which also tells us the partitions its metadata holds
        createPartitioner: () => {
          const partitioner = Partitioners.DefaultPartitioner();
          return (args) => {
            this.notePartitions(args.topic, args.partitionMetadata);
            return partitioner(args);
          };
        },
        allowAutoTopicCreation: true,
      });
      this.producerReady = p.connect().then(
        () => {
          this.producer = p;
          return p;
        },
        (err) => {
          this.producerReady = undefined;
          throw this.describeFailure('connecting the producer', err);
        },
      );
    }
    return this.producerReady;
  }

  private async getAdmin(): Promise<Admin> {
    if (!this.admin) {
      const a = this.kafka.admin();
      try {
        await a.connect();
      } catch (err) {
        throw this.describeFailure('connecting the admin client', err);
      }
      this.admin = a;
    }
    return this.admin;
  }

  async ensureTopics(specs: TopicSpec[]): Promise<void> {
    const admin = await this.getAdmin();
    // A broker that has just started (or restarted) answers with retriable errors while it
    // elects leaders (UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE): ride that out, bounded.
    for (let attempt = 0; ; attempt++) {
      try {
        const existing = new Set(await admin.listTopics());
        const missing = specs.filter((s) => !existing.has(s.topic));
        if (missing.length === 0) return;
        await admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((s) => ({
            topic: s.topic,
            numPartitions: s.partitions ?? 1,
            replicationFactor: 1,
            configEntries: Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value })),
          })),
        });
        return;
      } catch (err) {
        // Another instance may have created it between list and create.
        if ((err as { type?: string }).type === 'TOPIC_ALREADY_EXISTS') return;
        const retriable = (err as { retriable?: boolean }).retriable === true;
        if (!retriable || attempt >= 5) {
          throw this.describeFailure(`creating topics ${specs.map((s) => s.topic).join(',')}`, err);
        }
        log.warn('topic creation will be retried', { attempt, err });
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
      }
    }
  }

  async publish(
    topic: string,
    messages: OutgoingMessage[],
    opts: PublishOptions = {},
  ): Promise<PublishResult> {
    if (messages.length === 0) return { topic, count: 0, partitions: [] };
    const producer = await this.getProducer();
    const parts = this.fast ? await this.partitionsOf(topic) : undefined;
    const partitions = new Map<number, string>();
    const acks = opts.acks ?? -1;
    const compression = opts.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    if (!parts) return this.publishStock(producer, topic, messages, acks, compression);
    const plan = planPartitions(topic, messages, parts);
    try {
      // One produce request per round (the next batch of every partition); the next round is
      // encoded while this one is in flight, and sent once it is acknowledged, so a retried
      // batch never lands behind a later one of its partition.
      const rounds = packedRounds(
        messages,
        plan,
        compression === CompressionTypes.GZIP ? 1 : 0,
        MAX_BATCH_BYTES,
      );
      let round = await rounds.next();
      while (!round.done) {
        const sent = producer.send({ topic, acks, compression, messages: round.value });
        sent.catch(() => {}); // awaited below; a failure must not surface as unhandled meanwhile
        // encode the next round after kafkajs has written this one (its path to the socket is
        // promise callbacks, which run before setImmediate's)
        const following = new Promise((r) => setImmediate(r)).then(() => rounds.next());
        following.catch(() => {}); // awaited below, unless this round failed first
        for (const r of await sent)
          if (!partitions.has(r.partition)) partitions.set(r.partition, r.baseOffset ?? '-1');
        round = await following;
      }
    } catch (err) {
      if (err instanceof BusError) throw err;
      throw this.describeFailure(`publishing ${messages.length} messages to ${topic}`, err);
    }
    return {
      topic,
      count: messages.length,
      partitions: [...partitions].map(([partition, baseOffset]) => ({ partition, baseOffset })),
    };
  }

  /** kafkajs's own encoding: a topic not known yet (the producer may create it), or another kafkajs. */
  private async publishStock(
    producer: Producer,
    topic: string,
    messages: OutgoingMessage[],
    acks: number,
    compression: CompressionTypes,
  ): Promise<PublishResult> {
    const partitions = new Map<number, string>();
    try {
      // kafkajs sends one call as one record batch per partition; a batch over the broker's
      // message.max.bytes (1 MiB by default) is refused whole. Split by size, in order.
      for (const chunk of chunksBySize(messages, MAX_BATCH_BYTES)) {
        const meta = await producer.send({
          topic,
          acks,
          compression,
          messages: chunk.map(kafkajsMessage),
        });
        for (const r of meta)
          if (!partitions.has(r.partition)) partitions.set(r.partition, r.baseOffset ?? '-1');
      }
      return {
        topic,
        count: messages.length,
        partitions: [...partitions].map(([partition, baseOffset]) => ({ partition, baseOffset })),
      };
    } catch (err) {
      throw this.describeFailure(`publishing ${messages.length} messages to ${topic}`, err);
    }
  }

  async topicOffsets(topic: string): Promise<TopicOffsets[]> {
    const reader = this.offsetsReader;
    // A topic another process has just created may have no leader known here yet (NOT_LEADER,
    // LEADER_NOT_AVAILABLE: two instances starting together, one creating the topic): refresh
    // its metadata and ask again, bounded.
    for (let attempt = 0; ; attempt++) {
      try {
        const offs = reader
          ? await reader.read(topic)
          : await (await this.getAdmin()).fetchTopicOffsets(topic);
        return offs
          .map((o) => ({ partition: o.partition, low: o.low, high: o.high }))
          .sort((a, b) => a.partition - b.partition);
      } catch (err) {
        const retriable = (err as { retriable?: boolean }).retriable === true;
        if (!retriable || attempt >= 5) throw this.describeFailure(`reading offsets of ${topic}`, err);
        log.warn('reading offsets will be retried', { topic, attempt, err });
        await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
        if (!reader) await (await this.getAdmin()).fetchTopicMetadata({ topics: [topic] }).catch(() => {});
      }
    }
  }

  async subscribe(opts: SubscribeOptions): Promise<Subscription> {
    const consumer: Consumer = this.kafka.consumer({
      groupId: opts.groupId,
      sessionTimeout: SESSION_TIMEOUT_MS,
      rebalanceTimeout: 10_000,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: 100,
      ...(opts.maxBytesPerPartition ? { maxBytesPerPartition: opts.maxBytesPerPartition } : {}),
      retry: { retries: this.opts.retries ?? 5, initialRetryTime: 200, maxRetryTime: 3_000 },
    });
    // next offset to commit per topic/partition, advanced only after a batch is handled
    const processed = new Map<string, { topic: string; partition: number; offset: string }>();
    let running = true;
    let resolveReady!: () => void;
    const ready = new Promise<void>((r) => {
      resolveReady = r;
    });
    let restartDelay = RESTART_INITIAL_MS;
    let restartTimer: NodeJS.Timeout | undefined;
    const transactional = opts.commits === 'transactions';
    // Where the member stands (commits: 'transactions'): its assignment, a generation bumped at
    // each, whether a rebalance started since, and when the coordinator last took a heartbeat.
    const assignedNow = new Set<string>();
    let generation = 0;
    let rebalancing = true;
    let lastHeartbeat = 0;
    /** false once the consumer stops: it is leaving its group */
    let member = true;
    let memberId: string | undefined;
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      restartDelay = RESTART_INITIAL_MS;
      if (opts.beforeRejoin && e.payload.memberId !== memberId) {
        if (memberId !== undefined) setJoinBarrier(opts.groupId, memberId, undefined);
        memberId = e.payload.memberId;
        setJoinBarrier(opts.groupId, memberId, opts.beforeRejoin);
      }
      const a = e.payload.memberAssignment as Record<string, number[]>;
      assignedNow.clear();
      for (const [topic, partitions] of Object.entries(a))
        for (const p of partitions) {
          assignedNow.add(`${topic}\0${p}`);
          const at = opts.startAt?.(topic, p);
          if (at !== undefined) consumer.seek({ topic, partition: p, offset: at });
        }
      // Offsets of partitions this member lost are their new owner's to commit.
      for (const k of [...processed.keys()]) if (!assignedNow.has(k)) processed.delete(k);
      generation++;
      rebalancing = false;
      lastHeartbeat = Date.now();
      if (opts.onAssign) {
        opts.onAssign(
          Object.entries(a).map(([topic, partitions]) => ({ topic, partitions: [...partitions] })),
        );
      }
      resolveReady();
    });
    consumer.on(consumer.events.REBALANCING, () => {
      rebalancing = true;
    });
    consumer.on(consumer.events.HEARTBEAT, () => {
      lastHeartbeat = Date.now();
    });
    if (opts.beforeRejoin && !this.joinBarrier)
      log.warn('this kafkajs rejoins without waiting for the transaction in flight (no barrier)', {
        group: opts.groupId,
      });
    // kafkajs restarts a crashed consumer itself only after errors it deems retriable. Others
    // (e.g. "Failed to find group coordinator" while a restarted broker still loads its offsets
    // topic, slow under load) leave it stopped for good: the subscription would stop following
    // its topics with nothing but a log line. While the subscription is open, start it again.
    const restartLater = (): void => {
      if (!running || restartTimer) return;
      const delay = restartDelay;
      restartDelay = Math.min(RESTART_MAX_MS, restartDelay * 2);
      restartTimer = setTimeout(() => {
        restartTimer = undefined;
        if (!running) return;
        consumerRestarts.inc({ group: opts.groupId });
        log.warn('restarting the consumer kafkajs gave up on', { group: opts.groupId });
        consumer.run(runConfig).catch((err: unknown) => {
          log.error('consumer restart failed; trying again', { group: opts.groupId, err });
          restartLater();
        });
      }, delay);
      restartTimer.unref();
    };
    // A fetch that held only transaction markers or aborted records never reaches eachBatch on
    // kafkajs's own codec: kafkajs steps over it by itself and says so with an empty batch event.
    if (opts.onProgress) {
      consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
        const b = e.payload as { topic: string; partition: number; batchSize: number; lastOffset: string };
        if (b.batchSize === 0 && running)
          opts.onProgress!(b.topic, b.partition, (BigInt(b.lastOffset) + 1n).toString());
      });
    }
    consumer.on(consumer.events.CRASH, (e) => {
      const { error, restart } = e.payload as { error: Error; restart: boolean };
      log.error('consumer crashed', { group: opts.groupId, err: error, restart });
      if (!restart) restartLater();
    });

    // Commits go one at a time (a failed one puts its offsets back only where no newer one was
    // recorded meanwhile), and after a handled batch at most every COMMIT_INTERVAL_MS: a commit
    // is a round trip to the group coordinator, which per batch cost a third of the consume
    // rate. Only offsets whose handler resolved are ever recorded, so a crash redelivers at most
    // what was handled in the last interval (at-least-once holds).
    let commits: Promise<void> = Promise.resolve();
    let lastCommit = 0;
    let commitTimer: NodeJS.Timeout | undefined;
    const commitNow = async (): Promise<void> => {
      clearTimeout(commitTimer);
      commitTimer = undefined;
      lastCommit = Date.now();
      if (processed.size === 0) return;
      const list = [...processed.values()];
      processed.clear();
      try {
        await consumer.commitOffsets(list);
      } catch (err) {
        // Put them back so the next commit retries; a rebalance may have moved the partition.
        for (const o of list) {
          const k = `${o.topic}\0${o.partition}`;
          if (!processed.has(k)) processed.set(k, o);
        }
        throw this.describeFailure(`committing offsets of group ${opts.groupId}`, err);
      }
    };
    const commit = (): Promise<void> => {
      const next = commits.catch(() => {}).then(commitNow);
      commits = next;
      return next;
    };
    /** After a handled batch: commit now if the last commit is COMMIT_INTERVAL_MS old, else soon. */
    const commitSoon = async (): Promise<void> => {
      const age = Date.now() - lastCommit;
      if (age >= COMMIT_INTERVAL_MS) return commit();
      if (commitTimer) return;
      commitTimer = setTimeout(() => {
        commitTimer = undefined;
        if (running) commit().catch((err) => log.warn('commit failed; offsets kept for the next', { err }));
      }, COMMIT_INTERVAL_MS - age);
      commitTimer.unref();
    };

    try {
      await consumer.connect();
      await consumer.subscribe({ topics: opts.topics, fromBeginning: opts.fromBeginning ?? false });
    } catch (err) {
      await consumer.disconnect().catch(() => {});
      throw this.describeFailure(`subscribing group ${opts.groupId} to ${opts.topics.join(',')}`, err);
    }
    const maxBatch = opts.maxBatch ?? 10_000;
    const runConfig: ConsumerRunConfig = {
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: async (payload) => {
        const handling = handleBatch(payload);
        inBatch = handling;
        try {
          await handling;
        } finally {
          if (inBatch === handling) inBatch = undefined;
        }
      },
    };
    /** The batch being handled, which close() lets finish before its final commit. */
    let inBatch: Promise<void> | undefined;
    async function handleBatch({
      batch,
      resolveOffset,
      heartbeat,
      isRunning,
      isStale,
      pause,
    }: EachBatchPayload) {
      // With the fast codec (bus/kafka-fastpath.ts) a partition's records arrive as one packed
      // message whose offset is the last one the fetch covered; otherwise as kafkajs's own.
      const first = batch.messages[0] as (KafkaMessage & { [PACKED_FETCH]?: PackedFetch }) | undefined;
      const packed = first?.[PACKED_FETCH];
      const all: BusMessage[] = packed
        ? packed.messages
        : batch.messages.map((m) => ({
            topic: batch.topic,
            partition: batch.partition,
            offset: m.offset,
            key: m.key ?? null,
            value: m.value ?? null,
            headers: headersOf(m.headers),
            timestamp: Number(m.timestamp),
          }));
      const done = (last: string) => {
        resolveOffset(last);
        const next = (BigInt(last) + 1n).toString();
        // a batch fetched before a rebalance took its partition away: the new owner's to commit
        if (!assignedNow.has(`${batch.topic}\0${batch.partition}`)) return;
        processed.set(`${batch.topic}\0${batch.partition}`, {
          topic: batch.topic,
          partition: batch.partition,
          // a subscriber that still holds some of the batch commits no further than its first
          // (in transactions it is asked when the offsets are taken: what it holds then counts)
          offset:
            opts.commitOffset && !transactional
              ? opts.commitOffset(batch.topic, batch.partition, next)
              : next,
        });
        opts.onProgress?.(batch.topic, batch.partition, next);
      };
      for (let i = 0; i < all.length; i += maxBatch) {
        if (!running || !isRunning() || isStale()) return;
        const chunk = all.length <= maxBatch ? all : all.slice(i, i + maxBatch);
        await opts.onBatch(chunk, {
          topic: batch.topic,
          partition: batch.partition,
          isRunning: () => running && isRunning() && !isStale(),
          heartbeat,
          highWatermark: batch.highWatermark,
          // kafkajs leaves a paused partition out of its fetches until resumed
          pause,
        });
        done(chunk[chunk.length - 1]!.offset);
        if (!transactional) await commitSoon();
        await heartbeat();
      }
      // Past control records (transaction markers) after the last message, or that were all
      // the fetch held, as kafkajs's own resolveOffset does: the packed message's offset, or
      // the batch's last offset, covers them.
      const end = packed ? first!.offset : batch.lastOffset();
      if (all.length === 0 || BigInt(all[all.length - 1]!.offset) < BigInt(end)) {
        if (!running || !isRunning() || isStale()) return;
        done(end);
      }
    }
    await consumer.run(runConfig);

    const sub: Subscription = {
      ready,
      commit: transactional ? async () => {} : commit,
      close: async (o = {}) => {
        if (!running) return;
        running = false;
        clearTimeout(restartTimer);
        try {
          // The batch in hand finishes (it stops at its next chunk), then the commit, while the
          // consumer is still a member of its group: once stopped, kafkajs can commit nothing.
          await inBatch?.catch(() => {});
          if (!transactional) await commit().catch((err) => log.warn('final commit failed', { err }));
          if (o.beforeLeave)
            await o
              .beforeLeave()
              .catch((err) => log.warn('last work before leaving the group failed', { err }));
          member = false;
          await consumer.stop();
        } finally {
          if (memberId !== undefined) setJoinBarrier(opts.groupId, memberId, undefined);
          await consumer.disconnect().catch(() => {});
          this.subs.delete(sub);
        }
      },
      ...(transactional
        ? {
            positions: () =>
              [...processed.values()]
                .filter((o) => assignedNow.has(`${o.topic}\0${o.partition}`))
                .map((o) => ({
                  topic: o.topic,
                  partition: o.partition,
                  offset: opts.commitOffset ? opts.commitOffset(o.topic, o.partition, o.offset) : o.offset,
                })),
            membership: () => ({
              generation,
              // half the session: a commit started now ends while the coordinator counts us in
              // (also while closing: the last commit runs before the member leaves)
              safe: member && !rebalancing && Date.now() - lastHeartbeat < SESSION_TIMEOUT_MS / 2,
            }),
          }
        : {}),
    };
    this.subs.add(sub);
    return sub;
  }

  /**
   * A producer of its own with a transactional id (idempotent, one request in flight), on
   * kafkajs's own record encoding: the fast codec packs a partition's records as one message,
   * which the sequence numbers of an idempotent producer would count as one record.
   */
  async transactional(o: TransactionalOptions): Promise<TransactionalPublisher> {
    const make = async (): Promise<Producer> => {
      const p = this.kafka.producer({
        transactionalId: o.transactionalId,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: o.transactionTimeoutMs ?? 10_000,
        // CONCURRENT_TRANSACTIONS (the previous transaction's markers still being written) is
        // retried: at kafkajs's default 300 ms first pause a transaction took 300 ms, at 20 ms 20.
        retry: { retries: this.opts.retries ?? 8, initialRetryTime: 20, maxRetryTime: 1_000 },
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      try {
        await p.connect();
      } catch (err) {
        await p.disconnect().catch(() => {});
        throw this.describeFailure(`starting transactional producer ${o.transactionalId}`, err);
      }
      return p;
    };
    let producer = await make();
    // kafkajs keeps a transaction whose abort failed (the broker away) as its state for good: every
    // later transaction() then throws (ABORTING, "already an ongoing transaction"; kafkajs issues
    // #1355, #1416). Such a producer is replaced before the next transaction: a new one under the
    // same transactional id gets a new epoch, and the broker aborts what the old one left open.
    let broken = false;
    let fenced: BusError | undefined;
    const note = (e: BusError): BusError => {
      if (e.code === 'fenced') fenced = e;
      return e;
    };
    const renew = async (): Promise<void> => {
      await producer.disconnect().catch(() => {});
      producer = await make();
      broken = false;
      log.info('transactional producer renewed after a failed transaction', { id: o.transactionalId });
    };
    let busy: Promise<unknown> = Promise.resolve();
    const one = <T>(fn: () => Promise<T>): Promise<T> => {
      const p = busy.then(fn);
      busy = p.catch(() => {});
      return p;
    };
    const publisher: TransactionalPublisher = {
      run: (fill) =>
        one(async () => {
          // Fenced: another producer took the id; renewing would fence it in turn (two owners).
          if (fenced) throw fenced;
          if (broken) await renew();
          let tx: Awaited<ReturnType<Producer['transaction']>>;
          try {
            tx = await producer.transaction();
          } catch (err) {
            broken = true;
            throw note(this.describeFailure('beginning a transaction', err));
          }
          const written = new Map<string, { topic: string; partition: number; offset: string }>();
          try {
            await fill({
              publish: async (topic, messages) => {
                for (const chunk of chunksBySize(messages, MAX_BATCH_BYTES)) {
                  const meta = await tx.send({
                    topic,
                    acks: -1,
                    messages: chunk.map(kafkajsMessage),
                  });
                  for (const r of meta) {
                    if (r.baseOffset === undefined) continue;
                    const k = `${topic}\0${r.partition}`;
                    const prev = written.get(k);
                    if (!prev || BigInt(prev.offset) < BigInt(r.baseOffset))
                      written.set(k, { topic, partition: r.partition, offset: r.baseOffset });
                  }
                }
              },
              commitOffsets: async (groupId, offsets) => {
                if (offsets.length === 0) return;
                const topics = new Map<string, { partition: number; offset: string }[]>();
                for (const x of offsets) {
                  const l = topics.get(x.topic) ?? [];
                  l.push({ partition: x.partition, offset: x.offset });
                  topics.set(x.topic, l);
                }
                await tx.sendOffsets({
                  consumerGroupId: groupId,
                  topics: [...topics].map(([topic, partitions]) => ({ topic, partitions })),
                });
              },
            });
            await tx.commit();
          } catch (err) {
            await tx.abort().catch((e: unknown) => {
              broken = true;
              log.warn('aborting the transaction failed; the producer is renewed before the next', {
                err: e,
              });
            });
            throw note(err instanceof BusError ? err : this.describeFailure('a transaction', err));
          }
          return { written: [...written.values()] };
        }),
      committedOffsets: async (groupId, topic) => {
        const admin = await this.getAdmin();
        try {
          const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
          return (t?.partitions ?? []).map((p) => ({ topic, partition: p.partition, offset: p.offset }));
        } catch (err) {
          throw this.describeFailure(`reading the offsets of group ${groupId}`, err);
        }
      },
      close: async () => {
        await busy;
        await producer.disconnect().catch(() => {});
      },
    };
    return publisher;
  }

  async close(): Promise<void> {
    await Promise.all([...this.subs].map((s) => s.close()));
    await this.producer?.disconnect().catch(() => {});
    await this.admin?.disconnect().catch(() => {});
    await this.offsetsReader?.close();
    this.producer = undefined;
    this.producerReady = undefined;
    this.admin = undefined;
  }
}
