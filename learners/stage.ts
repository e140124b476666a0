// The learn stage: ingest's consumer (virgo.kernel-logs → KernelEvents) feeding the learner host,
// plus the device topics (virgo.drone-sensors, virgo.webcam-frames, Avro), a tick that releases
// values held by their dwell time, and periodic snapshots (learners, gate, template miner).
import { existsSync } from 'node:fs';
import { type Bus, type BusMessage, GROUPS, type Subscription, TOPICS, topicSpecs } from '../bus/index.ts';
import { type IngestStage, type IngestStats, startIngestStage, TemplateMiner } from '../ingest/index.ts';
import { createLogger } from '../runtime/log.ts';
import { AvroDecodeError, codecFor, type DroneSensorFrame, type WebcamFrame } from '../schemas/index.ts';
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
  now?: () => number;
  onEmit?: LearnerHostOptions['onEmit'];
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
      // Template ids are the miner's: saving it with the models keeps ids stable across restarts.
      attachments: [
        {
          name: 'miner.json',
          save: (p) => miner.save(p),
          load: (p) => {
            if (existsSync(p)) miner = TemplateMiner.load(p);
          },
        },
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
    pins: 0,
    savedAt: null,
  };
}
