// npm run bench -- queue [--seconds S] [--records N]
//
// 1. Durable acknowledged appends/s of the KingCobra segment log (group commit) with P concurrent
//    producers, next to this disk's own group-commit ceiling measured in the same run: a tight
//    node loop of write + fdatasync of batches of the same size (the average batch our log
//    formed) and the same record size. Target: ours ≥ 50% of it.
// 2. The queue service end to end (request and reply both made durable): in-process submit()
//    and TCP clients.
// 3. Replay records/s of N records into the real broker, next to `kcat -P` producing the same
//    count of same-sized messages in the same run.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { connect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KafkaBus } from '../bus/index.ts';
import { encodeFrameV2, openSegmentLog, replay, startQueueService } from '../queue-bridge/index.ts';
import { setLogLevel } from '../runtime/log.ts';
import { codecFor, type KingCobraMessage } from '../schemas/index.ts';
import { BENCH_BROKERS, median, summarise, timeCommand } from './util.ts';

const PAYLOAD = 'virgo_cloud_malloc(1024) from drone-7 telemetry seq=000000 '.padEnd(80, 'x');

function record(p: number, i: number): KingCobraMessage {
  return {
    id: `bench-${p}-${i}`,
    kind: 'REQUEST',
    clientAddr: '127.0.0.1',
    ts_sec: 1_700_000_000 + i,
    ts_nsec: i,
    payload: PAYLOAD,
    inReplyTo: null,
  };
}

const now = () => performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** P producers append in a loop, each awaiting its ack, for `seconds`. */
async function ourAppends(dir: string, producers: number, seconds: number) {
  const log = await openSegmentLog(dir);
  let stop = false;
  const lat: number[] = [];
  // latency sampled on every 16th append: the harness should cost the log as little as it can
  const run = async (p: number) => {
    for (let i = 0; !stop; i++) {
      if ((i & 15) === 0) {
        const t = now();
        await log.append(record(p, i));
        lat.push(now() - t);
      } else {
        await log.append(record(p, i));
      }
    }
  };
  const t0 = now();
  const all = Array.from({ length: producers }, (_, p) => run(p));
  await sleep(seconds * 1000);
  stop = true;
  await Promise.all(all);
  const s = (now() - t0) / 1000;
  const st = log.stats();
  await log.close();
  const l = summarise(lat);
  return {
    producers,
    ackedPerSec: Math.round(st.appends / s),
    fdatasyncsPerSec: Math.round(st.batches / s),
    avgBatch: Number((st.appends / st.batches).toFixed(1)),
    ackLatencyMs: { p50: Number(l.p50.toFixed(2)), p99: Number(l.p99.toFixed(2)) },
  };
}

/** The disk's ceiling: write + fdatasync of `batch` records' bytes, back to back. */
async function diskGroupCommit(dir: string, batch: number, frameBytes: number, seconds: number) {
  const fh = await open(join(dir, `baseline-${randomUUID().slice(0, 6)}.bin`), 'w');
  const buf = Buffer.alloc(Math.max(1, Math.round(batch)) * frameBytes, 0x5a);
  let pos = 0;
  let syncs = 0;
  const t0 = now();
  while (now() - t0 < seconds * 1000) {
    await fh.write(buf, 0, buf.length, pos);
    pos += buf.length;
    await fh.datasync();
    syncs++;
  }
  const s = (now() - t0) / 1000;
  await fh.close();
  return {
    batch: Math.max(1, Math.round(batch)),
    recordsPerSec: Math.round((syncs * Math.max(1, Math.round(batch))) / s),
    fdatasyncsPerSec: Math.round(syncs / s),
  };
}

async function serviceSubmit(dir: string, clients: number, seconds: number) {
  const svc = await startQueueService({ dir, listen: false, maxQueue: 100_000, recoverPending: false });
  let stop = false;
  let done = 0;
  const t0 = now();
  const all = Array.from({ length: clients }, async (_, c) => {
    while (!stop) {
      await svc.submit(PAYLOAD, `device-${c}`);
      done++;
    }
  });
  await sleep(seconds * 1000);
  stop = true;
  await Promise.all(all);
  const s = (now() - t0) / 1000;
  await svc.close();
  return { clients, requestsPerSec: Math.round(done / s) };
}

async function serviceTcp(dir: string, connections: number, seconds: number) {
  const svc = await startQueueService({
    dir,
    listen: { host: '127.0.0.1', port: 0 },
    maxQueue: 100_000,
    recoverPending: false,
  });
  let done = 0;
  let stop = false;
  const t0 = now();
  const all = Array.from(
    { length: connections },
    () =>
      new Promise<void>((resolve) => {
        const sock = connect({ port: svc.port, host: '127.0.0.1' });
        let rest = '';
        sock.setEncoding('utf8');
        sock.on('connect', () => sock.write(`${PAYLOAD}\n`));
        sock.on('data', (d: string) => {
          const lines = (rest + d).split('\n');
          rest = lines.pop() ?? '';
          done += lines.length;
          if (stop) sock.end();
          else sock.write(`${PAYLOAD}\n`.repeat(lines.length));
        });
        sock.on('close', () => resolve());
        sock.on('error', () => resolve());
      }),
  );
  await sleep(seconds * 1000);
  stop = true;
  await Promise.all(all);
  const s = (now() - t0) / 1000;
  await svc.close();
  return { connections, requestsPerSec: Math.round(done / s) };
}

async function replayRun(dir: string, n: number) {
  const topic = `bench-kc-replay-${randomUUID().slice(0, 8)}`;
  const bus = new KafkaBus({ brokers: BENCH_BROKERS, clientId: 'virgo-bench-replay' });
  const r = await replay({ log: dir, bus, topic, checkpoint: false });
  await bus.close();
  if (r.published !== n) throw new Error(`replayed ${r.published} of ${n}`);
  return n / r.seconds;
}

async function kcatRun(file: string, n: number) {
  const topic = `bench-kc-kcat-${randomUUID().slice(0, 8)}`;
  const bus = new KafkaBus({ brokers: BENCH_BROKERS });
  await bus.ensureTopics([{ topic, partitions: 1 }]);
  await bus.close();
  const s = await timeCommand('kcat', [
    '-P',
    '-b',
    BENCH_BROKERS.join(','),
    '-t',
    topic,
    '-K',
    '\t',
    '-l',
    file,
  ]);
  return n / s;
}

export default async function queueBench(args: string[]): Promise<Record<string, unknown>> {
  const { values } = parseArgs({
    args,
    options: { seconds: { type: 'string', default: '2' }, records: { type: 'string', default: '50000' } },
  });
  const seconds = Number(values.seconds);
  const n = Number(values.records);
  setLogLevel('error');
  const loadStart = loadavg().map((x) => Number(x.toFixed(2)));
  const root = mkdtempSync(join(tmpdir(), 'virgo-bench-queue-'));
  const frameBytes = encodeFrameV2(codecFor('KingCobraMessage').encodeBody(record(1, 1)), 0, 0).length;
  try {
    // 1. group commit vs the disk, alternating runs so both see the same (noisy, shared) disk
    const groupCommit = [];
    for (const producers of [1, 32, 256]) {
      const rounds = [];
      for (let round = 0; round < 3; round++) {
        const o = await ourAppends(join(root, `log-${producers}-${round}`), producers, seconds);
        const d = await diskGroupCommit(root, o.avgBatch, frameBytes, seconds);
        rounds.push({ ours: o, disk: d, ratio: o.ackedPerSec / d.recordsPerSec });
      }
      groupCommit.push({
        producers,
        ours: rounds.map((r) => r.ours),
        disk: rounds.map((r) => r.disk),
        medianRatio: Number(median(rounds.map((r) => r.ratio)).toFixed(3)),
      });
    }

    // 2. the service: request and reply both durable
    const service = {
      submit: await serviceSubmit(join(root, 'svc-submit'), 256, seconds),
      tcp: await serviceTcp(join(root, 'svc-tcp'), 64, seconds),
    };

    // 3. replay vs kcat -P, same count and message sizes
    const logDir = join(root, 'replay-log');
    const log = await openSegmentLog(logDir);
    const recs: KingCobraMessage[] = [];
    for (let i = 0; i < n; i++) recs.push(record(0, i));
    await Promise.all(recs.map((r) => log.append(r)));
    await log.close();
    const valueBytes = codecFor('KingCobraMessage').encode(recs[0]!).length;
    const kcatFile = join(root, 'kcat-input.txt');
    writeFileSync(kcatFile, recs.map((r) => `${r.id}\t${'v'.repeat(valueBytes)}\n`).join(''));
    const ourRates: number[] = [];
    const kcatRates: number[] = [];
    for (let round = 0; round < 2; round++) {
      ourRates.push(await replayRun(logDir, n));
      kcatRates.push(await kcatRun(kcatFile, n));
    }
    const replayResult = {
      records: n,
      valueBytes,
      oursPerSec: ourRates.map(Math.round),
      kcatPerSec: kcatRates.map(Math.round),
      medianRatio: Number((median(ourRates) / median(kcatRates)).toFixed(3)),
      note: 'ours: kafkajs through the Bus, one 5000-record publish in flight (keeps the order), acks=all, a durable checkpoint per batch; kcat: librdkafka, its time includes process start-up (npm run bench -- bus compares the two clients alone)',
    };
    return {
      frameBytes,
      seconds,
      // the machine is shared: its load says how much to trust the CPU-bound numbers
      loadAverage: { atStart: loadStart, atEnd: loadavg().map((x) => Number(x.toFixed(2))) },
      groupCommit,
      service,
      replay: replayResult,
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
