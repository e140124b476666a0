// The whole pipeline in one process (DESIGN.md section 1): a log source → virgo.kernel-logs →
// ingest + learners → virgo.kernel-analytics → feeder :64000 → ring-buffer consumer → table →
// exports (conf file, Redis), drivers, devices → VIRGO queue :60000 / KingCobra.
// Embedded (in-process bus and table) unless given brokers and a Redis URL.
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DRIVER_NAMES, type DriverName } from '../actuators/drivers/index.ts';
import {
  type Actuators,
  DEVICE_NAMES,
  type DeviceName,
  startActuators,
  tableFromFeeder,
} from '../actuators/stage.ts';
import { type Bus, createBus, topicSpecs } from '../bus/index.ts';
import { demoStream } from '../ingest/demo-stream.ts';
import { publishLogs } from '../ingest/index.ts';
import {
  ConfFileSink,
  exportTable,
  type Feeder,
  RedisExporter,
  startFeeder,
  type TableExport,
  type VariableTable,
} from '../kernel-analytics/index.ts';
import { type LearnStage, startLearnStage } from '../learners/index.ts';
import { type QueueService, startQueueService } from '../queue-bridge/index.ts';
import { createLogger } from '../runtime/log.ts';
import { enableProcessMetrics, type MetricsServer, serveMetrics } from '../runtime/metrics.ts';

const log = createLogger('pipeline');

export type SourceKind = 'file' | 'stdin' | 'journalctl' | 'dmesg' | 'kern.log' | 'demo' | 'none';

export interface PipelineOptions {
  brokers?: string[];
  /** topic and consumer-group prefix (pipelines sharing a cluster) */
  namespace?: string;
  redisUrl?: string;
  /** Redis key prefix (default virgo:analytics) */
  redisPrefix?: string;
  /** a file, '-' for stdin, 'demo', 'none' (others publish: rsyslog, kcat), or undefined: the
   * host's kernel log if readable, else demo */
  input?: string;
  follow?: boolean;
  stateDir: string;
  listenHost?: string;
  /** 0 for any free port */
  feederPort?: number;
  queuePort?: number;
  zmq?: string | false;
  metrics?: { host: string; port: number } | false;
  driverPorts?: Partial<Record<DriverName, number>>;
  drivers?: readonly DriverName[];
  devices?: readonly DeviceName[];
  learners?: string[];
  confPath?: string;
  partitions?: number;
  demoRate?: number;
  stdin?: NodeJS.ReadableStream;
}

export interface Pipeline {
  bus: Bus;
  mode: 'embedded' | 'distributed';
  source: SourceKind;
  learn: LearnStage;
  feeder: Feeder;
  table: VariableTable;
  queue: QueueService;
  actuators: Actuators;
  metrics: MetricsServer | undefined;
  /** where things listen, for the ready line and /health */
  endpoints: Record<string, string>;
  published(): number;
  health(): { ok: boolean; [k: string]: unknown };
  /** stops the source, flushes and commits every stage, fsyncs the queue; idempotent */
  close(): Promise<void>;
}

function readable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** A host log command that really works here: it must print within a moment and not fail. */
async function probeCommand(cmd: string, args: string[]): Promise<Readable | undefined> {
  return new Promise((resolve) => {
    let p: ReturnType<typeof spawn>;
    try {
      p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      resolve(undefined);
      return;
    }
    const out = p.stdout!;
    const fail = () => {
      clearTimeout(timer);
      p.kill();
      resolve(undefined);
    };
    const timer = setTimeout(fail, 1_500);
    p.once('error', fail);
    p.once('exit', fail);
    out.once('readable', () => {
      clearTimeout(timer);
      p.off('exit', fail);
      p.off('error', fail);
      out.once('close', () => p.kill());
      resolve(out);
    });
  });
}

async function openSource(
  o: PipelineOptions,
): Promise<{ kind: SourceKind; path: string; stream?: Readable | NodeJS.ReadableStream }> {
  if (o.input === 'none') return { kind: 'none', path: '-' };
  if (o.input === '-') return { kind: 'stdin', path: '-', stream: o.stdin ?? process.stdin };
  if (o.input === 'demo') return { kind: 'demo', path: '-', stream: demoStream({ rate: o.demoRate ?? 200 }) };
  if (o.input) return { kind: 'file', path: o.input };
  if (readable('/var/log/kern.log')) return { kind: 'kern.log', path: '/var/log/kern.log' };
  const journal = await probeCommand('journalctl', ['-k', '-f', '-o', 'short', '--no-pager', '-n', '1000']);
  if (journal) return { kind: 'journalctl', path: '-', stream: journal };
  const dmesg = await probeCommand('dmesg', ['-w']);
  if (dmesg) return { kind: 'dmesg', path: '-', stream: dmesg };
  log.info('no readable kernel log (/var/log/kern.log, journalctl -k, dmesg): using the bundled demo stream');
  return { kind: 'demo', path: '-', stream: demoStream({ rate: o.demoRate ?? 200 }) };
}

export async function startPipeline(o: PipelineOptions): Promise<Pipeline> {
  const host = o.listenHost ?? '127.0.0.1';
  const distributed = (o.brokers?.length ?? 0) > 0;
  const bus = createBus({
    ...(o.brokers ? { brokers: o.brokers } : {}),
    ...(o.namespace ? { namespace: o.namespace } : {}),
    clientId: 'virgo-up',
  });
  // Everything started is closed again, newest first, on close() or when a later step fails.
  const closers: { name: string; fn: () => Promise<void> }[] = [];
  const closeAll = async () => {
    for (const c of closers.splice(0).reverse()) {
      try {
        await c.fn();
      } catch (err) {
        log.error('stopping a stage failed', { stage: c.name, err });
      }
    }
  };
  closers.push({ name: 'bus', fn: () => bus.close() });
  for (const d of ['kingcobra', 'learners', 'cloudfs', 'eventnet'])
    mkdirSync(join(o.stateDir, d), { recursive: true });
  try {
    await bus.ensureTopics(topicSpecs(o.partitions ?? 4));

    const queue = await startQueueService({
      dir: join(o.stateDir, 'kingcobra'),
      listen: { host, port: o.queuePort ?? 60000 },
      zmq: o.zmq ?? false,
    });
    closers.push({ name: 'queue', fn: () => queue.close() });

    const learn = startLearnStage({
      bus,
      stateDir: join(o.stateDir, 'learners'),
      fromBeginning: true,
      ...(o.learners ? { learners: o.learners } : {}),
    });
    closers.push({ name: 'learners', fn: () => learn.close() });
    await learn.ready;

    const feeder = await startFeeder({ bus, listen: { host, port: o.feederPort ?? 64000 } });
    closers.push({ name: 'feeder', fn: () => feeder.close() });

    const devices = o.devices ?? DEVICE_NAMES;
    const deviceIds = { drone: 'pxrc-1', webcam: 'uvc-1' };
    // The ring-buffer consumer reads our own feeder over TCP, exactly as an external importer would.
    const fed = tableFromFeeder({
      host: host === '0.0.0.0' ? '127.0.0.1' : host,
      port: feeder.port,
      deviceHosts: devices.map((d) => deviceIds[d]),
      name: 'up',
    });
    closers.push({ name: 'consumers', fn: () => fed.close() });

    // The conf file is what one machine's kernel module read: latest value per key, from the
    // ring-buffer consumer. Redis keeps one hash per host, and the k=v wire carries no host, so
    // it follows the feeder's host-aware table (`virgo consume --host H` exports one host's).
    const conf = exportTable(fed.table, [
      new ConfFileSink(o.confPath ?? join(o.stateDir, 'virgo_kernel_analytics.conf')),
    ]);
    closers.push({ name: 'conf export', fn: () => conf.close() });
    if (o.redisUrl) {
      const redis: TableExport = exportTable(feeder.table, [
        await RedisExporter.create({ url: o.redisUrl, ...(o.redisPrefix ? { prefix: o.redisPrefix } : {}) }),
      ]);
      closers.push({ name: 'redis export', fn: () => redis.close() });
    }

    const actuators = await startActuators({
      variables: fed.table,
      drivers: o.drivers ?? DRIVER_NAMES,
      devices,
      bus,
      replies: { submit: (payload, clientAddr) => queue.submit(payload, clientAddr) },
      host,
      ...(o.driverPorts ? { ports: o.driverPorts } : {}),
      cloudfsRoot: join(o.stateDir, 'cloudfs'),
      eventnetDir: join(o.stateDir, 'eventnet'),
      deviceIds,
    });
    closers.push({ name: 'drivers and devices', fn: () => actuators.close() });

    let metrics: MetricsServer | undefined;
    const endpoints: Record<string, string> = {
      feeder: `${host}:${feeder.port}`,
      queue: `${host}:${queue.port}`,
      ...(queue.zmqEndpoint ? { zmq: queue.zmqEndpoint } : {}),
      ...Object.fromEntries(Object.entries(actuators.drivers.ports).map(([n, p]) => [n, `${host}:${p}`])),
    };

    const source = await openSource(o);
    const abort = new AbortController();
    let published = 0;
    let sourceError: Error | undefined;
    const publishing = (
      source.kind === 'none'
        ? Promise.resolve({ lines: 0, bytes: 0 })
        : publishLogs({
            bus,
            source: source.stream ? '-' : source.path,
            ...(source.stream ? { stdin: source.stream } : {}),
            follow: source.kind === 'kern.log' || (source.kind === 'file' && (o.follow ?? false)),
            ...(source.kind === 'journalctl' || source.kind === 'dmesg' || source.kind === 'kern.log'
              ? { host: hostname() }
              : {}),
            signal: abort.signal,
            onProgress: (p) => {
              published = p.lines;
            },
            progressEveryMs: 200,
          })
    ).then(
      (r) => {
        published = r.lines;
        log.info('log source ended', { source: source.kind, lines: r.lines });
      },
      (err: Error) => {
        if (abort.signal.aborted) return;
        sourceError = err;
        log.error('log source failed', { source: source.kind, err });
      },
    );
    closers.push({
      name: 'source',
      fn: async () => {
        abort.abort();
        if (source.stream && 'destroy' in source.stream) (source.stream as Readable).destroy();
        await publishing;
      },
    });

    const health = () => {
      const ls = learn.stats();
      const fs = feeder.stats();
      const q = queue.stats();
      return {
        ok: !sourceError,
        mode: distributed ? 'distributed' : 'embedded',
        source: source.kind,
        ...(sourceError ? { sourceError: sourceError.message } : {}),
        published,
        ingest: ls.ingest,
        learners: { published: ls.published, backend: ls.backend, pins: ls.pins },
        feeder: { clients: fs.clients, variables: fs.variables, linesSent: fs.linesSent },
        table: fed.table.size,
        queue: { requests: q.kingcobra, tcpClients: q.tcpClients },
        flights: actuators.flights.slice(-5),
        endpoints,
      };
    };
    if (o.metrics) {
      enableProcessMetrics();
      metrics = await serveMetrics({ host: o.metrics.host, port: o.metrics.port, health });
      closers.push({ name: 'metrics', fn: () => metrics!.close() });
      endpoints.metrics = `http://${o.metrics.host}:${metrics.port}/metrics`;
    }

    let closing: Promise<void> | undefined;
    return {
      bus,
      mode: distributed ? 'distributed' : 'embedded',
      source: source.kind,
      learn,
      feeder,
      table: fed.table,
      queue,
      actuators,
      metrics,
      endpoints,
      published: () => published,
      health,
      close: () => {
        closing ??= closeAll();
        return closing;
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
