// The learn stage: ingest's consumer (virgo.kernel-logs → KernelEvents) feeding the learner host,
// plus the device topics (virgo.drone-sensors, virgo.webcam-frames, Avro), a tick that releases
// values held by their dwell time, and periodic snapshots (learners, gate, template miner, and
// ingest's event-time state: reorder buffer, host watermarks, dedupe).
// Time: the host's pipeline clock follows event time while the input replays (a bounded input
// until finish(), or a backlog on the topic) and processing time otherwise (learners/clock.ts).
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Bus,
  type BusMessage,
  GROUPS,
  type Subscription,
  TOPICS,
  type TransactionalPublisher,
  topicSpecs,
} from '../bus/index.ts';
import {
  type HostOrderState,
  type IdBlock,
  IngestOrder,
  type IngestOrderOptions,
  type IngestStage,
  type IngestStats,
  type PartitionChange,
  startIngestStage,
  TemplateMiner,
} from '../ingest/index.ts';
import { createLogger } from '../runtime/log.ts';
import { AvroDecodeError, codecFor, type DroneSensorFrame, type WebcamFrame } from '../schemas/index.ts';
import { ChangelogStore, stateTopicFor, stateTopicSpec } from './changelog.ts';
import { PipelineClock, type PipelineClockOptions } from './clock.ts';
import { ExactlyOnce, type ExactlyOnceStats } from './exactly-once.ts';
import {
  createLearnerHost,
  type LearnerHost,
  type LearnerHostOptions,
  type LearnerHostStats,
  rejectInput,
  SplitPart,
} from './host.ts';
import { HostTemplates } from './host-templates.ts';
import { INPUTS, learnerNames } from './registry.ts';
import { readJson, writeJsonAtomic } from './snapshot.ts';

const log = createLogger('learners.stage');

export interface LearnStageOptions {
  bus: Bus;
  stateDir?: string;
  learners?: string[];
  /** with no committed offsets: read the topics from their start */
  fromBeginning?: boolean;
  /** consumer group of the log topic (default virgo-learners); the device topics use `<group>.devices` */
  groupId?: string;
  logsTopic?: string;
  droneTopic?: string;
  webcamTopic?: string;
  analyticsTopic?: string;
  pinsTopic?: string | false;
  /** snapshot period, ms (default 60 s; only with a stateDir) */
  saveEveryMs?: number;
  /** how often held values are re-checked against their dwell time, ms (default 1 s) */
  tickMs?: number;
  learnerOptions?: LearnerHostOptions['learnerOptions'];
  /** the wall clock (tests pass a fake one) */
  now?: () => number;
  onEmit?: LearnerHostOptions['onEmit'];
  /** the pipeline clock: mode auto|event|processing, tdf, lag threshold (default auto) */
  clock?: Omit<PipelineClockOptions, 'wall' | 'replaying'>;
  /** the input is bounded (a file read to its end): auto mode runs on event time until finish() */
  bounded?: boolean;
  /** allowed lateness, reorder buffer and dedupe bounds of the consumer stage */
  order?: IngestOrderOptions;
  /**
   * On Kafka: `exactly-once` (default) commits variables, host state (the changelog) and offsets
   * in one transaction every `commitIntervalMs`, and restores a host's state when its partition is
   * assigned here; `at-least-once` commits offsets after each batch and keeps state only in the
   * state dir. In-process there are no transactions: always at-least-once (README "Scaling out").
   */
  guarantee?: Guarantee;
  /** exactly-once: ms between two transactions (default 500) */
  commitIntervalMs?: number;
  /** the learner-state changelog topic (default: `stateTopicFor(logsTopic, groupId)`, virgo.learner-state for the default group and log topic) */
  stateTopic?: string;
  /** a failure the stage cannot go on after (another instance took its transactional id) */
  onFatal?: (err: unknown) => void;
}

export type Guarantee = 'exactly-once' | 'at-least-once';
export const GUARANTEES: readonly Guarantee[] = ['exactly-once', 'at-least-once'];

export interface LearnStageStats extends LearnerHostStats {
  ingest: IngestStats | null;
  devices: { drone: number; webcam: number; rejected: number };
  guarantee: Guarantee;
  /** exactly-once: transactions, changelog writes, hosts restored and handed over */
  exactlyOnce: ExactlyOnceStats | null;
}

export interface LearnStage {
  /** the learner host; available once `ready` resolved */
  readonly host: LearnerHost;
  readonly ready: Promise<void>;
  stats(): LearnStageStats;
  /**
   * The end of a bounded input (all of it published): once the consumer read it to its end,
   * every line still waiting for its event-time turn and every value held by dwell goes out, so
   * the last emitted value of each variable is the answer over the whole input.
   */
  finish(timeoutMs?: number): Promise<void>;
  /** stops consuming, delivers what is pending, saves a snapshot, releases everything */
  close(): Promise<void>;
}

export function startLearnStage(opts: LearnStageOptions): LearnStage {
  const names = learnerNames(opts.learners);
  const wants = new Set(names.map((n) => INPUTS[n]));
  const groupId = opts.groupId ?? GROUPS.learners;
  const droneTopic = opts.droneTopic ?? TOPICS.droneSensors;
  const webcamTopic = opts.webcamTopic ?? TOPICS.webcamFrames;
  let host: LearnerHost | undefined;
  let ingest: IngestStage | undefined;
  let devices: Subscription | undefined;
  let miner = new TemplateMiner();
  const order = new IngestOrder({ ...(opts.order ?? {}), ...(opts.now ? { now: opts.now } : {}) });
  let ended = false;
  const clock = new PipelineClock({
    ...(opts.clock ?? {}),
    ...(opts.now ? { wall: opts.now } : {}),
    // A replay: a bounded input not yet at its end, or partitions with unread data.
    replaying: () => (opts.bounded === true && !ended) || (ingest?.backlog() ?? false),
  });
  const timers: NodeJS.Timeout[] = [];
  const dev = { drone: 0, webcam: 0, rejected: 0 };
  let closing = false;

  const reject = (m: BusMessage, reason: string, err: unknown) => {
    dev.rejected++;
    rejectInput(m.topic, reason);
    // The first few in full, then one in a thousand: a bad producer must not flood the log.
    if (dev.rejected <= 10 || dev.rejected % 1000 === 0) {
      log.warn('rejected a device record', {
        topic: m.topic,
        partition: m.partition,
        offset: m.offset,
        reason,
        rejected: dev.rejected,
        err,
      });
    }
  };

  const decodeAll = <T>(batch: BusMessage[], record: 'DroneSensorFrame' | 'WebcamFrame'): T[] => {
    const codec = codecFor(record);
    const out: T[] = [];
    for (const m of batch) {
      if (!m.value) {
        reject(m, 'empty', undefined);
        continue;
      }
      try {
        out.push(codec.decode(m.value, { topic: m.topic, partition: m.partition, offset: m.offset }) as T);
      } catch (err) {
        reject(m, err instanceof AvroDecodeError ? err.reason : 'corrupt', err);
      }
    }
    return out;
  };

  const logsTopic = opts.logsTopic ?? TOPICS.kernelLogs;
  const eosWanted =
    opts.bus.kind === 'kafka' &&
    opts.bus.transactional !== undefined &&
    (opts.guarantee ?? 'exactly-once') === 'exactly-once';
  if (opts.guarantee === 'exactly-once' && !eosWanted)
    log.warn('exactly-once needs Kafka (transactions); the in-process bus runs at-least-once');
  const guarantee: Guarantee = eosWanted ? 'exactly-once' : 'at-least-once';
  let eos: ExactlyOnce | undefined;
  let store: ChangelogStore | undefined;
  let publisher: TransactionalPublisher | undefined;
  let instance = '';
  const templates = new HostTemplates(() => miner);
  /** hosts of log partitions in the snapshot's state (the changelog restores them instead) */
  let snapshotPartitioned: string[] = [];

  const ready = (async () => {
    if (eosWanted && wants.has('kernel')) {
      const stateTopic = opts.stateTopic ?? stateTopicFor(logsTopic, groupId);
      const spec = topicSpecs().find((t) => t.topic === TOPICS.kernelLogs)!;
      await opts.bus.ensureTopics([{ ...spec, topic: logsTopic }]);
      const partitions = (await opts.bus.topicOffsets(logsTopic)).length;
      await opts.bus.ensureTopics([stateTopicSpec(stateTopic, partitions)]);
      // First the producer: starting it fences this instance's previous incarnation and aborts
      // what it left open, so the changelog's committed end is where it can be.
      instance = instanceId(opts.stateDir);
      publisher = await opts.bus.transactional!({ transactionalId: `virgo-learn.${groupId}.${instance}` });
      store = new ChangelogStore({
        bus: opts.bus,
        topic: stateTopic,
        ...(opts.stateDir ? { cachePath: join(opts.stateDir, 'learners', 'changelog.bin') } : {}),
      });
      await store.start();
    }
    host = await createLearnerHost({
      bus: opts.bus,
      learners: names,
      ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
      ...(opts.now ? { now: opts.now } : {}),
      ...(opts.learnerOptions ? { learnerOptions: opts.learnerOptions } : {}),
      ...(opts.analyticsTopic ? { analyticsTopic: opts.analyticsTopic } : {}),
      ...(opts.pinsTopic !== undefined ? { pinsTopic: opts.pinsTopic } : {}),
      ...(opts.onEmit ? { onEmit: opts.onEmit } : {}),
      clock,
      // Template ids are the miner's: saving it with the models keeps ids stable across restarts.
      // The event-time state goes with the models too: what waited for its turn is not lost, and
      // what the learners took stays known (a line published again is a duplicate).
      attachments: [
        {
          name: 'miner.json',
          save: (p) => miner.save(p),
          load: (p) => {
            if (existsSync(p)) miner = TemplateMiner.load(p);
          },
        },
        { name: 'ingest-order', save: (p) => order.save(p), load: (p) => order.load(p) },
        {
          // which hosts are the log partitions' (their state is the changelog's, not the snapshot's)
          name: 'partitions.json',
          save: (p) => writeJsonAtomic(p, [...(ingest?.partitionedHosts() ?? [])]),
          load: (p) => {
            if (existsSync(p)) snapshotPartitioned = readJson<[string, number][]>(p).map(([h]) => h);
          },
        },
      ],
      ...(eosWanted && store
        ? {
            defer: (h: string) => ingest?.partitionOf(h) !== undefined,
            onTouched: (h: string) => eos?.touch(h),
            parts: [
              {
                name: 'order',
                // the dedupe identities in blocks (`order.<n>`): a commit writes the ones that changed
                get: (hosts: ReadonlySet<string>) => {
                  const out = new Map<string, SplitPart>();
                  for (const [h, e] of order.exportHosts(hosts))
                    out.set(
                      h,
                      new SplitPart(e.state, new Map([...e.blocks].map(([n, t]) => [String(n), t]))),
                    );
                  return out;
                },
                put: (h: string, v: unknown, more: ReadonlyMap<string, unknown>) => {
                  const blocks = new Map<number, IdBlock>();
                  for (const [sub, b] of more) if (/^\d+$/.test(sub)) blocks.set(Number(sub), b as IdBlock);
                  order.importHost(h, v as HostOrderState, blocks);
                },
                drop: (hosts: ReadonlySet<string>) => order.dropHosts(hosts),
              },
              templates,
            ],
            // The snapshot may hold effects no transaction committed: the hosts of log partitions
            // come from the changelog when their partition is assigned, never from it.
            afterRestore: (hh: LearnerHost) => {
              const drop = new Set([...snapshotPartitioned, ...store!.hosts()]);
              hh.dropHosts(drop);
            },
          }
        : {}),
    });
    const h = host;
    if (wants.has('kernel')) {
      if (eosWanted && store && publisher) {
        eos = new ExactlyOnce({
          bus: opts.bus,
          publisher,
          host: h,
          ingest: () => ingest,
          store,
          groupId,
          logsTopic,
          stateTopic: opts.stateTopic ?? stateTopicFor(logsTopic, groupId),
          analyticsTopic: opts.analyticsTopic ?? TOPICS.kernelAnalytics,
          dlqTopic: `${logsTopic}.dlq`,
          ...(opts.commitIntervalMs !== undefined ? { intervalMs: opts.commitIntervalMs } : {}),
          instanceId: instance,
          onFatal: (err) => {
            if (opts.onFatal) opts.onFatal(err);
            else log.error('the learn stage cannot go on', { err });
          },
        });
      }
      // A model that learnt more than this instance's (a fresh or long-stopped instance) is the
      // better start: the instances' shared parts are in the changelog.
      for (const doc of store?.sharedDocs() ?? []) await h.adoptShared(doc);
      const e = eos;
      ingest = await startIngestStage({
        bus: opts.bus,
        groupId,
        ...(opts.logsTopic ? { topic: opts.logsTopic } : {}),
        fromBeginning: opts.fromBeginning ?? false,
        miner,
        order,
        onEvents: e
          ? (events) => {
              templates.note(events);
              return h.handleEvents(events);
            }
          : (events) => h.handleEvents(events),
        ...(e
          ? {
              transactional: true,
              onPartitions: (c: PartitionChange) => e.onPartitions(c),
              beforeRejoin: () => e.beforeRejoin(),
            }
          : {}),
      });
      await ingest.ready;
      e?.start();
    }
    const deviceTopics = [
      ...(wants.has('drone') ? [droneTopic] : []),
      ...(wants.has('webcam') ? [webcamTopic] : []),
    ];
    if (deviceTopics.length > 0) {
      const specs = topicSpecs();
      await opts.bus.ensureTopics(
        deviceTopics.map((t) => ({
          ...(specs.find((s) => s.topic === (t === droneTopic ? TOPICS.droneSensors : TOPICS.webcamFrames)) ??
            {}),
          topic: t,
        })),
      );
      devices = await opts.bus.subscribe({
        topics: deviceTopics,
        groupId: `${groupId}.devices`,
        fromBeginning: opts.fromBeginning ?? false,
        maxBatch: 2_000,
        onBatch: async (batch, ctx) => {
          if (ctx.topic === droneTopic) {
            const frames = decodeAll<DroneSensorFrame>(batch, 'DroneSensorFrame');
            dev.drone += frames.length;
            if (frames.length > 0) await h.handleDrone(frames);
          } else {
            const frames = decodeAll<WebcamFrame>(batch, 'WebcamFrame');
            dev.webcam += frames.length;
            if (frames.length > 0) await h.handleWebcam(frames);
          }
        },
      });
      await devices.ready;
    }
    const tick = setInterval(() => {
      h.tick().catch((err: unknown) => log.error('tick failed', { err }));
    }, opts.tickMs ?? 1_000);
    tick.unref();
    timers.push(tick);
    if (opts.stateDir) {
      const save = setInterval(() => {
        h.save().catch((err: unknown) =>
          log.error('snapshot failed; the previous one stays current', { err }),
        );
        saveCache();
      }, opts.saveEveryMs ?? 60_000);
      save.unref();
      timers.push(save);
    }
    log.info('learn stage running', {
      learners: names.join(','),
      inputs: [...wants].join(','),
      group: groupId,
      backend: h.backend,
      guarantee,
    });
  })();

  const saveCache = () => {
    try {
      store?.saveCache();
    } catch (err) {
      log.error('could not save the local copy of the changelog; the topic is read again at start', { err });
    }
  };

  return {
    get host(): LearnerHost {
      if (!host) throw new Error('the learn stage is not ready yet: await stage.ready first');
      return host;
    },
    ready,
    finish: async (timeoutMs?: number) => {
      await ready;
      await ingest?.drain(timeoutMs);
      ended = true;
      await host?.finish();
      // exactly-once: what the final watermark released goes out with the next transaction: now
      await eos
        ?.cycle()
        .catch((err: unknown) => log.warn('transaction after the end of input failed', { err }));
    },
    stats: () => ({
      ...(host?.stats() ?? emptyStats()),
      ingest: ingest?.stats() ?? null,
      devices: { ...dev },
      guarantee,
      exactlyOnce: eos?.stats() ?? null,
    }),
    close: async () => {
      if (closing) return;
      closing = true;
      for (const t of timers) clearInterval(t);
      eos?.stop();
      await ready.catch(() => {});
      // Inputs first (each finishes its batch in hand and commits; exactly-once: the last
      // transaction while still a member of the group), then deliver and save.
      const e = eos;
      await ingest?.close(
        e
          ? {
              beforeLeave: () =>
                e.cycle().catch((err: unknown) => log.warn('last transaction failed', { err })),
            }
          : {},
      );
      await devices?.close();
      await host?.close();
      await publisher?.close();
      saveCache();
      await store?.close();
    },
  };
}

function emptyStats(): LearnerHostStats {
  return {
    backend: 'none',
    learners: {},
    inputs: { kernel: 0, drone: 0, webcam: 0 },
    verdicts: { emit: 0, unchanged: 0, hysteresis: 0, dwell: 0, pinned: 0, invalid: 0 },
    published: 0,
    publishFailures: 0,
    outbox: 0,
    held: 0,
    pins: 0,
    savedAt: null,
    clock: { mode: 'auto', tdf: 1, event: 0, processing: 0 },
    reannounced: 0,
  };
}

/**
 * This instance's id, kept in its state dir: its transactional id across restarts, so a restart
 * fences its previous incarnation (and aborts what that left open) at once. Without a state dir
 * each run is a new instance: what a crashed one left open is aborted by the broker's timeout.
 */
function instanceId(stateDir: string | undefined): string {
  if (!stateDir) return randomUUID();
  const path = join(stateDir, 'instance-id');
  if (existsSync(path)) {
    const id = readFileSync(path, 'utf8').trim();
    if (/^[A-Za-z0-9-]{8,64}$/.test(id)) return id;
  }
  const id = randomUUID();
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(path, `${id}\n`);
  return id;
}
