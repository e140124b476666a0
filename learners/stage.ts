// The learn stage: ingest's consumer (virgo.kernel-logs → KernelEvents) feeding the learner host,
// plus the device topics (virgo.drone-sensors, virgo.webcam-frames, Avro), a tick that releases
// values held by their dwell time, and periodic snapshots (learners, gate, template miner, and
// ingest's event-time state: reorder buffer, host watermarks, dedupe).
// Time: the host's pipeline clock follows event time while the input replays (a bounded input
// until finish(), or a backlog on the topic) and processing time otherwise (learners/clock.ts).
import { existsSync } from 'node:fs';
import { type Bus, type BusMessage, GROUPS, type Subscription, TOPICS, topicSpecs } from '../bus/index.ts';
import {
  IngestOrder,
  type IngestOrderOptions,
  type IngestStage,
  type IngestStats,
  startIngestStage,
  TemplateMiner,
} from '../ingest/index.ts';
import { createLogger } from '../runtime/log.ts';
import { AvroDecodeError, codecFor, type DroneSensorFrame, type WebcamFrame } from '../schemas/index.ts';
import { PipelineClock, type PipelineClockOptions } from './clock.ts';
import {
  createLearnerHost,
  type LearnerHost,
  type LearnerHostOptions,
  type LearnerHostStats,
  rejectInput,
} from './host.ts';
import { INPUTS, learnerNames } from './registry.ts';

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
}

export interface LearnStageStats extends LearnerHostStats {
  ingest: IngestStats | null;
  devices: { drone: number; webcam: number; rejected: number };
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

  const ready = (async () => {
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
      ],
    });
    const h = host;
    if (wants.has('kernel')) {
      ingest = await startIngestStage({
        bus: opts.bus,
        groupId,
        ...(opts.logsTopic ? { topic: opts.logsTopic } : {}),
        fromBeginning: opts.fromBeginning ?? false,
        miner,
        order,
        onEvents: (events) => h.handleEvents(events),
      });
      await ingest.ready;
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
      }, opts.saveEveryMs ?? 60_000);
      save.unref();
      timers.push(save);
    }
    log.info('learn stage running', {
      learners: names.join(','),
      inputs: [...wants].join(','),
      group: groupId,
      backend: h.backend,
    });
  })();

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
    },
    stats: () => ({
      ...(host?.stats() ?? emptyStats()),
      ingest: ingest?.stats() ?? null,
      devices: { ...dev },
    }),
    close: async () => {
      if (closing) return;
      closing = true;
      for (const t of timers) clearInterval(t);
      await ready.catch(() => {});
      // Inputs first (each finishes its batch in hand and commits), then deliver and save.
      await ingest?.close();
      await devices?.close();
      await host?.close();
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
