// Load: 1,000 concurrent clients on the feeder and on the VIRGO queue, some of them slow readers
// that never read. Memory stays bounded (the servers' own queued-byte counters, and the process
// RSS, generously), slow readers are dropped or held back without stalling anyone, and every fast
// client gets everything it is owed.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { startFeeder } from '../../kernel-analytics/feeder.ts';
import { openSegmentLog, startQueueService } from '../../queue-bridge/index.ts';
import { registry } from '../../runtime/metrics.ts';
import { waitFor } from '../helpers/services.ts';
import { Report } from './lib/summary.ts';

const CLIENTS = 1_000;
const report = new Report(import.meta.url);
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const MB = 1024 * 1024;
const rss = () => process.memoryUsage().rss;

/** A bare client: counts the lines it reads (no per-line objects kept), or reads nothing at all. */
class Client {
  readonly sock: Socket;
  lines = 0;
  last = '';
  closed = false;
  private rest = '';
  readonly connected: Promise<void>;

  constructor(port: number, read: boolean, onLine?: (c: Client, line: string) => void) {
    this.sock = connect({ port, host: '127.0.0.1' });
    this.connected = new Promise((resolve, reject) => {
      this.sock.once('connect', () => resolve());
      this.sock.once('error', reject);
    });
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      this.closed = true;
    });
    if (!read) {
      this.sock.pause();
      return;
    }
    this.sock.setEncoding('utf8');
    this.sock.on('data', (d: string) => {
      const parts = (this.rest + d).split('\n');
      this.rest = parts.pop() ?? '';
      this.lines += parts.length;
      if (parts.length > 0) this.last = parts[parts.length - 1]!;
      if (onLine) for (const p of parts) onLine(this, p);
    });
  }
}

async function connectAll(clients: Client[]): Promise<void> {
  // in waves, so the listen backlog never overflows
  for (let i = 0; i < clients.length; i += 200)
    await Promise.all(clients.slice(i, i + 200).map((c) => c.connected));
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return m
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((n, v) => n + v.value, 0);
}

describe('load: 1,000 concurrent clients with slow readers', () => {
  it('feeder: slow readers are dropped at their buffer bound, every fast client gets every update', async () => {
    const SLOW = 20;
    const maxClientBuffer = 64 * 1024;
    const feeder = await startFeeder({
      listen: { host: '127.0.0.1', port: 0 },
      maxClients: CLIENTS + 10,
      maxClientBuffer,
      snapshotDelayMs: 20,
      name: 'load-feeder',
    });
    const rss0 = rss();
    let peakRss = rss0;
    const t0 = performance.now();
    // fast clients follow host "small"; slow readers ask for host "bulk" (big values) and never read
    const fast = Array.from({ length: CLIENTS - SLOW }, () => new Client(feeder.port, true));
    const slow = Array.from({ length: SLOW }, () => new Client(feeder.port, false));
    await connectAll([...fast, ...slow]);
    for (const c of fast) c.sock.write('KERNEL_ANALYTICS_STREAMING_START\nHOST small\n');
    for (const c of slow) c.sock.write('HOST bulk\n');
    await waitFor(() => feeder.stats().clients === CLIENTS, 'every client connected');

    const bulk = 'b'.repeat(900);
    let rounds = 0;
    let maxBatch = 0;
    // Rounds of changes, each in its own tick: small ones for everyone, big ones for the bulk host,
    // until the feeder has dropped every slow reader.
    while (feeder.stats().drops['slow-reader'] !== SLOW && rounds < 400) {
      for (let k = 0; k < 10; k++) feeder.update({ host: 'small', key: `load.s${k}`, value: `r${rounds}` });
      for (let k = 0; k < 100; k++)
        feeder.update({ host: 'bulk', key: `load.b${k}`, value: `${rounds}:${bulk}` });
      maxBatch = Math.max(maxBatch, 100 * (bulk.length + 16));
      rounds++;
      await tick();
      if (rounds % 10 === 0) {
        peakRss = Math.max(peakRss, rss());
        // let the fast clients read now and then, as real ones would
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    // the last change of host "small" reaches every fast client
    feeder.update({ host: 'small', key: 'load.done', value: 'yes' });
    await waitFor(
      () => fast.every((c) => c.last === 'load.done=yes'),
      'the final update at every fast client',
      60_000,
    );
    peakRss = Math.max(peakRss, rss());
    const s = feeder.stats();
    const served = fast.filter((c) => !c.closed && c.lines >= rounds * 10 + 1).length;
    const ms = Math.round(performance.now() - t0);
    for (const c of [...fast, ...slow]) c.sock.destroy();
    await feeder.close();
    // slow readers: their buffer bound plus the one write that crossed it; fast clients: a few
    // rounds of host "small" at most in flight
    const bound = SLOW * (maxClientBuffer + maxBatch) + (CLIENTS - SLOW) * 4096;
    report.load({
      target: 'feeder :64000',
      clients: CLIENTS,
      slowReaders: SLOW,
      servedFast: served,
      slowDropped: s.drops['slow-reader'] ?? 0,
      maxQueuedBytes: s.maxQueuedBytes,
      queuedBound: bound,
      rssGrowthMB: Math.round((peakRss - rss0) / MB),
      ms,
      counts: { rounds, updates: rounds * 110 + 1, linesSent: s.linesSent },
    });
    expect(s.drops['slow-reader']).toBe(SLOW);
    expect(served).toBe(CLIENTS - SLOW);
    expect(s.maxQueuedBytes).toBeLessThanOrEqual(bound);
    // generous: clients and server share this process
    expect(peakRss - rss0).toBeLessThan(400 * MB);
  }, 120_000);

  it('VIRGO queue: fast clients all get their replies in order while slow readers flood it and never read', async () => {
    const FLOODERS = 5;
    const SILENT = 15;
    const FAST = CLIENTS - FLOODERS - SILENT;
    const PER_CLIENT = 3;
    const dir = mkdtempSync(join(tmpdir(), 'virgo-rel-load-q-'));
    dirs.push(dir);
    const q = await startQueueService({
      dir,
      listen: { host: '127.0.0.1', port: 0 },
      zmq: false,
      maxClients: CLIENTS + 10,
    });
    const rss0 = rss();
    let peakRss = rss0;
    const t0 = performance.now();
    const ok = new Map<Client, number>();
    const wrong: string[] = [];
    const fast = Array.from(
      { length: FAST },
      (_, i) =>
        new Client(q.port, true, (c, line) => {
          if (line.startsWith('REPLY#')) ok.set(c, (ok.get(c) ?? 0) + 1);
          else wrong.push(`${i}: ${line}`);
        }),
    );
    const silent = Array.from({ length: SILENT }, () => new Client(q.port, false));
    const flooders = Array.from({ length: FLOODERS }, () => new Client(q.port, false));
    await connectAll([...fast, ...silent, ...flooders]);
    // flooders: 6 MB of requests each, more than the kernel buffers between us and the server
    const floodLine = `${'f'.repeat(1000)}\n`;
    let backedUp = 0;
    for (const f of flooders) {
      let more = true;
      for (let n = 0; n < 6_000 && more; n++) more = f.sock.write(floodLine);
    }
    for (const c of silent) c.sock.write('silent 1\nsilent 2\nsilent 3\n');
    fast.forEach((c, i) => {
      c.sock.write(Array.from({ length: PER_CLIENT }, (_, k) => `fast ${i} ${k}\n`).join(''));
    });
    await waitFor(
      () => {
        peakRss = Math.max(peakRss, rss());
        backedUp = Math.max(backedUp, flooders.filter((f) => f.sock.writableLength > 0).length);
        return fast.every((c) => (ok.get(c) ?? 0) >= PER_CLIENT);
      },
      'every fast client to get its replies',
      90_000,
      50,
    );
    const ms = Math.round(performance.now() - t0);
    const slowDropped = await metric('virgo_tcp_rejects_total', {
      service: 'kingcobra',
      reason: 'slow-reader',
    });
    const stats = q.stats();
    for (const c of [...fast, ...silent, ...flooders]) c.sock.destroy();
    await q.close();
    // every fast request is in the log, once, in each client's order
    const log = await openSegmentLog(dir, { readOnly: true });
    const order = new Map<string, number[]>();
    for await (const r of log.read()) {
      const m = /^fast (\d+) (\d+)$/.exec(r.message.payload);
      if (r.message.kind !== 'REQUEST' || !m) continue;
      const list = order.get(m[1]!) ?? [];
      list.push(Number(m[2]));
      order.set(m[1]!, list);
    }
    await log.close();
    const inOrder = [...order.values()].filter((l) => l.join(',') === '0,1,2').length;
    report.load({
      target: 'VIRGO queue :60000',
      clients: CLIENTS,
      slowReaders: FLOODERS + SILENT,
      servedFast: fast.filter((c) => ok.get(c) === PER_CLIENT).length,
      slowDropped,
      maxQueuedBytes: 0,
      queuedBound: 0,
      rssGrowthMB: Math.round((peakRss - rss0) / MB),
      ms,
      counts: {
        fastRequests: FAST * PER_CLIENT,
        persistedInOrder: inOrder,
        floodersHeldBack: backedUp,
        busy: stats.kingcobra.busy,
        accepted: stats.kingcobra.accepted,
      },
    });
    expect(wrong).toEqual([]);
    expect(inOrder).toBe(FAST);
    expect(stats.kingcobra.busy).toBe(0);
    // the server stopped reading the floods (input backpressure) instead of buffering them
    expect(backedUp).toBe(FLOODERS);
    expect(peakRss - rss0).toBeLessThan(400 * MB);
  }, 120_000);
});
