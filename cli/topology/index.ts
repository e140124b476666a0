// The virgo pipeline as one topology: the stages, declared once (one file each, beside this one),
// and the three ways to run them built from that list:
//   startPipeline()  `virgo up`: every stage in this process (embedded bus, or Kafka)
//   runSplit()       `virgo up --split`: every stage as its own `virgo` process, over Kafka
//   actuators.ts     `virgo drivers up`: the actuators stage alone
// Start order (runtime/topology.ts): a stage after the stages it names; listeners first.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Actuators } from '../../actuators/stage.ts';
import type { Bus } from '../../bus/index.ts';
import type { Feeder, RingConsumer, VariableTable } from '../../kernel-analytics/index.ts';
import type { LearnStage } from '../../learners/index.ts';
import type { QueueService } from '../../queue-bridge/index.ts';
import { type ChildStage, runChildren } from '../../runtime/children.ts';
import { CONNECTION_OPTIONS, type OptionDefs } from '../../runtime/config.ts';
import type { MetricsServer } from '../../runtime/metrics.ts';
import { findPortInUse } from '../../runtime/port-in-use.ts';
import { probeRedis } from '../../runtime/redis-probe.ts';
import {
  HANDSHAKE_TIMEOUT_OPTION,
  handshakeTimeoutMs,
  SECRET_FILE_OPTION,
  SECRET_FLAG_REFUSED,
} from '../../runtime/secret.ts';
import { type Endpoints, startOrder, startStages } from '../../runtime/topology.ts';
import { actuateStage } from './actuate.ts';
import { actuatorsStage } from './actuators.ts';
import { consumerStage } from './consumer.ts';
import { feederStage } from './feeder.ts';
import { learnStage } from './learn.ts';
import { metricsStage } from './metrics.ts';
import { queueStage } from './queue.ts';
import { type SourceKind, sourceStage } from './source.ts';
import type {
  Built,
  FlagValues,
  InProcess,
  PipelineHealth,
  PipelineOptions,
  PipelineStage,
} from './stage.ts';

export type { PipelineOptions, PipelineStage, SourceKind };

/**
 * The stages, in the order the data flows (and endpoints are listed). To add a stage: a file
 * beside this one exporting a PipelineStage, and one entry here.
 */
export const PIPELINE: readonly PipelineStage[] = [
  sourceStage,
  learnStage,
  feederStage,
  consumerStage,
  queueStage,
  actuatorsStage,
  actuateStage,
  metricsStage,
];

/** What moves a port `virgo up` binds, unless the stage says otherwise (PipelineStage.portFix). */
export const ANY_PORTS_FIX =
  'virgo up --any-ports takes free ports (printed when ready); --listen-host HOST binds another address';

const portFixOf = (s: PipelineStage) => s.portFix ?? ANY_PORTS_FIX;

/** `virgo up` flags every stage may read. */
export const SHARED_OPTIONS = {
  ...CONNECTION_OPTIONS,
  'state-dir': {
    type: 'string',
    env: 'VIRGO_STATE_DIR',
    default: '.virgo',
    arg: 'DIR',
    description: 'models, queue segments, conf file, cloudfs root',
  },
  'listen-host': {
    type: 'string',
    default: '127.0.0.1',
    arg: 'HOST',
    description: 'address every port binds',
  },
  'any-ports': {
    type: 'boolean',
    default: false,
    description: 'every listener takes a free port (printed when ready)',
  },
  'secret-file': SECRET_FILE_OPTION,
  secret: SECRET_FLAG_REFUSED,
  'handshake-timeout': HANDSHAKE_TIMEOUT_OPTION,
} as const satisfies OptionDefs;

/** The `virgo up` flags of the stages: each declared once, by the stage that reads it. */
export function stageOptions(stages: readonly PipelineStage[] = PIPELINE): OptionDefs {
  const out: OptionDefs = {};
  for (const s of stages) {
    for (const [name, def] of Object.entries(s.options ?? {})) {
      if (name in out || name in SHARED_OPTIONS) throw new Error(`topology: --${name} declared twice`);
      out[name] = def;
    }
  }
  return out;
}

/** Parsed `virgo up` flags into the pipeline's options: the shared ones, then each stage's. */
export function pipelineOptions(
  flags: FlagValues,
  shared: Pick<PipelineOptions, 'brokers' | 'stateDir'> & Partial<PipelineOptions>,
  stages: readonly PipelineStage[] = PIPELINE,
): PipelineOptions {
  const o: PipelineOptions = {
    ...shared,
    ...(flags.redis !== undefined ? { redisUrl: String(flags.redis) } : {}),
    listenHost: String(flags['listen-host'] ?? '127.0.0.1'),
    handshakeTimeoutMs: handshakeTimeoutMs(
      typeof flags['handshake-timeout'] === 'number' ? flags['handshake-timeout'] : undefined,
    ),
  };
  for (const s of stages) s.configure?.(flags, o);
  return o;
}

/** The stages' folders under the state dir (cloudfs serves only an existing root). */
function makeStateDirs(o: PipelineOptions): void {
  for (const d of ['kingcobra', 'learners', 'cloudfs', 'eventnet'])
    mkdirSync(join(o.stateDir, d), { recursive: true });
}

const inProcessAfter = (s: PipelineStage) => [...(s.after ?? []), ...(s.uses ?? [])];

/** The stages `virgo up` runs in one process, in start order. */
export function inProcessOrder(o: PipelineOptions, stages = PIPELINE): PipelineStage[] {
  return startOrder(
    stages.filter((s) => s.start && (s.enabled?.(o) ?? true)),
    inProcessAfter,
  );
}

/** The stages `virgo up --split` runs as processes, in start order. */
export function splitOrder(o: PipelineOptions, stages = PIPELINE): PipelineStage[] {
  return startOrder(stages.filter((s) => s.child && (s.enabled?.(o) ?? true)));
}

/** Endpoints in the order the stages are declared, whatever order they started in. */
function listEndpoints(stages: readonly PipelineStage[], byStage: ReadonlyMap<string, Endpoints>): Endpoints {
  const out: Endpoints = {};
  for (const s of stages) Object.assign(out, byStage.get(s.name) ?? {});
  return out;
}

export interface RunningTopology {
  readonly bus: Bus;
  readonly mode: 'embedded' | 'distributed';
  /** a started stage's handle; undefined when it does not run */
  handle<H>(stage: PipelineStage<H>): H | undefined;
  readonly endpoints: Endpoints;
  health(): PipelineHealth;
  close(): Promise<void>;
}

/** Starts `stages` in this process on one bus; on failure what started is closed again. */
export async function startInProcess(
  o: PipelineOptions,
  stages: readonly PipelineStage[] = PIPELINE,
): Promise<RunningTopology> {
  const { createBus, topicSpecs } = await import('../../bus/index.ts');
  // fail fast, naming the fix, rather than run with an export that never happens
  if (o.redisUrl) await probeRedis(o.redisUrl);
  const distributed = (o.brokers?.length ?? 0) > 0;
  const mode = distributed ? 'distributed' : 'embedded';
  const bus = createBus({
    ...(o.brokers ? { brokers: o.brokers } : {}),
    ...(o.namespace ? { namespace: o.namespace } : {}),
    clientId: 'virgo-up',
  });
  for (const d of ['kingcobra', 'learners', 'cloudfs', 'eventnet'])
    mkdirSync(join(o.stateDir, d), { recursive: true });
  let started: ReadonlyMap<string, Built<unknown>> = new Map();
  const endpointsBy = new Map<string, Endpoints>();
  const endpoints: Endpoints = {};
  const health = (): PipelineHealth => {
    const parts = [...started.values()].map((b) => b.health?.() ?? {});
    return {
      ok: parts.every((p) => p.ok !== false),
      mode,
      ...Object.assign({}, ...parts.map(({ ok: _ok, ...rest }) => rest)),
      endpoints,
    };
  };
  const ctx = (): InProcess => ({
    o,
    bus,
    distributed,
    listenHost: o.listenHost ?? '127.0.0.1',
    peer: <H>(s: PipelineStage<H>) => started.get(s.name)?.handle as H | undefined,
    health,
  });
  try {
    await bus.ensureTopics(topicSpecs(o.partitions ?? 4));
  } catch (err) {
    await bus.close().catch(() => {});
    throw err;
  }
  const running = await startStages<PipelineStage, Built<unknown>>(
    inProcessOrder(o, stages),
    async (stage, soFar) => {
      started = soFar;
      let b: Built<unknown>;
      try {
        b = await stage.start!(ctx());
      } catch (err) {
        // a taken port: the flag that moves it is one of `virgo up`'s (cli/main.ts prints it)
        const taken = findPortInUse(err);
        if (taken) {
          taken.fix = portFixOf(stage);
          throw taken;
        }
        throw err;
      }
      if (b.endpoints) {
        endpointsBy.set(stage.name, b.endpoints);
        // the same object /health shows: it fills in as stages bind
        for (const k of Object.keys(endpoints)) delete endpoints[k];
        Object.assign(endpoints, listEndpoints(stages, endpointsBy));
      }
      return b;
    },
    { afterOf: inProcessAfter, closeLast: () => bus.close() },
  );
  started = running.started;
  return {
    bus,
    mode,
    handle: <H>(s: PipelineStage<H>) => started.get(s.name)?.handle as H | undefined,
    endpoints,
    health,
    close: running.close,
  };
}

export interface Pipeline {
  bus: Bus;
  mode: 'embedded' | 'distributed';
  source: SourceKind;
  learn: LearnStage;
  feeder: Feeder;
  table: VariableTable;
  /** the ring-buffer consumers of `table` */
  consumers: readonly RingConsumer[];
  queue: QueueService;
  actuators: Actuators;
  metrics: MetricsServer | undefined;
  /** where things listen, for the ready line and /health */
  endpoints: Record<string, string>;
  published(): number;
  health(): PipelineHealth;
  /** stops the source, flushes and commits every stage, fsyncs the queue; idempotent */
  close(): Promise<void>;
}

/** `virgo up`: the whole pipeline in this process. */
export async function startPipeline(o: PipelineOptions): Promise<Pipeline> {
  const t = await startInProcess(o);
  const must = <H>(s: PipelineStage<H>): H => {
    const h = t.handle(s);
    if (h === undefined) throw new Error(`topology: stage ${s.name} did not start`);
    return h;
  };
  const source = must(sourceStage);
  return {
    bus: t.bus,
    mode: t.mode,
    source: source.kind,
    learn: must(learnStage),
    feeder: must(feederStage),
    table: must(consumerStage).table,
    consumers: must(consumerStage).consumers,
    queue: must(queueStage),
    actuators: must(actuatorsStage),
    metrics: t.handle(metricsStage),
    endpoints: t.endpoints,
    published: () => source.published(),
    health: t.health,
    close: t.close,
  };
}

const BIN = new URL('../../bin/virgo.js', import.meta.url).pathname;

/** The processes of `virgo up --split`, in start order. */
export function splitChildren(o: PipelineOptions, stages = PIPELINE): ChildStage[] {
  return splitOrder(o, stages).map((s) => ({
    name: s.name,
    listens: s.listens ?? false,
    spec: (endpoints) => {
      const c = s.child!(o, endpoints);
      if (!c) return undefined;
      return {
        argv: [process.execPath, BIN, ...c.args],
        env: {
          ...process.env,
          ...(o.namespace ? { VIRGO_NAMESPACE: o.namespace } : {}),
          // its "port in use" message names the flags of `virgo up`, the command that was run
          ...(s.listens ? { VIRGO_PORT_FIX: portFixOf(s) } : {}),
          ...(c.env ?? {}),
        },
        ...(c.stdin ? { stdin: true } : {}),
        ...(c.ready ? { ready: c.ready } : {}),
      };
    },
  }));
}

/** `virgo up --split`: runs until every child exits; the first failure's exit code. */
export async function runSplit(
  o: PipelineOptions,
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream },
): Promise<number> {
  if (o.redisUrl) await probeRedis(o.redisUrl);
  makeStateDirs(o);
  return runChildren(splitChildren(o), {
    stdout: io.stdout,
    stderr: io.stderr,
    onListening: (endpoints) => {
      const where = Object.entries(endpoints)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      io.stdout.write(`virgo up: split, ${where} (Ctrl-C stops)\n`);
    },
  });
}
