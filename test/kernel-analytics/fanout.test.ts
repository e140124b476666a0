// Many readers at once: fast ones keep receiving, slow ones (paused sockets) are dropped once their
// queue passes maxClientBuffer, and the feeder's queued bytes stay bounded. Assertions are on
// counters and bytes, not on timing.
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { type Feeder, startFeeder } from '../../kernel-analytics/index.ts';
import { cleanupAfterEach } from '../helpers/cleanup.ts';
import { LineClient } from '../helpers/line-client.ts';
import { Nc } from '../helpers/nc.ts';
import { waitFor } from '../helpers/services.ts';

const cleanups = cleanupAfterEach();

/** A cheap reader: remembers only the last complete line and counts bytes. */
class TailClient {
  readonly sock: Socket;
  last = '';
  bytes = 0;
  private rest = '';
  constructor(port: number, hello: string) {
    this.sock = connect({ port, host: '127.0.0.1' });
    this.sock.setEncoding('latin1');
    this.sock.on('error', () => {});
    this.sock.write(hello);
    this.sock.on('data', (d: string) => {
      this.bytes += d.length;
      const s = this.rest + d;
      const end = s.lastIndexOf('\n');
      if (end < 0) {
        this.rest = s;
        return;
      }
      const prev = s.lastIndexOf('\n', end - 1);
      this.last = s.slice(prev + 1, end);
      this.rest = s.slice(end + 1);
    });
  }
}

const MAX_BUF = 64 * 1024;
const BIG = 'x'.repeat(990);

/** Flood `host` with ~bytesPerRound per loop turn for `rounds` turns, plus one `tick` for `tickHost`. */
async function flood(f: Feeder, host: string, tickHost: string, rounds: number, bytesPerRound: number) {
  const perRound = Math.ceil(bytesPerRound / 1000);
  for (let r = 1; r <= rounds; r++) {
    for (let i = 0; i < perRound; i++) f.update({ host, key: `big${i}`, value: `${r}${BIG}` });
    f.update({ host: tickHost, key: 'tick', value: String(r) });
    await new Promise((res) => setImmediate(res));
  }
}

describe('feeder fan-out', () => {
  it('1,000 concurrent clients (one a real nc) with 6 paused ones: fast keep receiving, slow dropped, memory bounded', async () => {
    const f = await startFeeder({ listen: { port: 0 }, maxClients: 1100, maxClientBuffer: MAX_BUF });
    cleanups.push(() => f.close());
    f.update({ host: 'fast', key: 'tick', value: '0' });
    f.update({ host: 'flood', key: 'big0', value: '0' });

    const fast: TailClient[] = [];
    for (let i = 0; i < 993; i++)
      fast.push(new TailClient(f.port, 'KERNEL_ANALYTICS_STREAMING_START\nHOST fast\n'));
    const slow: TailClient[] = [];
    for (let i = 0; i < 6; i++) slow.push(new TailClient(f.port, 'HOST flood\n'));
    cleanups.push(() => {
      for (const c of [...fast, ...slow]) c.sock.destroy();
    });
    const nc = new Nc(['127.0.0.1', String(f.port)]);
    cleanups.push(() => nc.kill());
    nc.type('HOST fast\n');

    await waitFor(() => fast.every((c) => c.last === 'tick=0'), 'every fast client has its snapshot');
    await waitFor(() => slow.every((c) => c.last === 'big0=0'), 'every slow client has its snapshot');
    await waitFor(() => nc.lines().includes('tick=0'), 'nc has its snapshot');
    expect(f.stats().clients).toBe(1000);
    for (const c of slow) c.sock.pause();

    // ~8 MB at each paused client: well past what the kernel buffers (~4 MB on loopback) plus MAX_BUF.
    const rounds = 80;
    const perRound = 100_000;
    await flood(f, 'flood', 'fast', rounds, perRound);

    await waitFor(
      () => fast.every((c) => c.last === `tick=${rounds}`),
      'every fast client has the last tick',
    );
    await waitFor(() => nc.lines().at(-1) === `tick=${rounds}`, 'nc has the last tick');
    await waitFor(() => (f.stats().drops['slow-reader'] ?? 0) === slow.length, 'all slow clients dropped');
    const s = f.stats();
    expect(s.clients).toBe(1000 - slow.length);
    // Unbounded queues would hold ~4 MB per paused client here; the bound is one buffer plus one
    // tick's batch each (the check happens before a write), and the fast clients' small lines.
    const bound = slow.length * (MAX_BUF + perRound * 1.1) + 994 * 4096;
    expect(s.maxQueuedBytes).toBeLessThan(bound);
    expect(s.maxQueuedBytes).toBeGreaterThan(0);
    // nc may be slower to say HOST than the snapshot grace time: then it gets a second snapshot for
    // its selection, repeating one value. Otherwise every tick arrives once, in order, none missing.
    const ticks = nc
      .lines()
      .filter((l) => l.startsWith('tick='))
      .map((l) => Number(l.slice(5)));
    expect(ticks.every((t, i) => i === 0 || t >= ticks[i - 1]!)).toBe(true);
    expect(new Set(ticks)).toEqual(new Set(Array.from({ length: rounds + 1 }, (_, i) => i)));
    expect(ticks.length).toBeLessThanOrEqual(rounds + 2);

    // Still serving: a newcomer gets the snapshot.
    const late = new LineClient(f.port);
    cleanups.push(() => late.close());
    late.send('HOST fast');
    await late.until(() => late.lines.includes(`tick=${rounds}`), 'late client snapshot');
  });

  it('same stream: fast readers of the flood keep up while paused readers of it are dropped', async () => {
    const f = await startFeeder({ listen: { port: 0 }, maxClientBuffer: MAX_BUF });
    cleanups.push(() => f.close());
    // No HOST line: the every-host view, host-qualified lines.
    f.update({ host: 'h', key: 'tick', value: '0' });
    const fast = Array.from(
      { length: 12 },
      () => new TailClient(f.port, 'KERNEL_ANALYTICS_STREAMING_START\n'),
    );
    const slow = Array.from(
      { length: 2 },
      () => new TailClient(f.port, 'KERNEL_ANALYTICS_STREAMING_START\n'),
    );
    cleanups.push(() => {
      for (const c of [...fast, ...slow]) c.sock.destroy();
    });
    await waitFor(() => [...fast, ...slow].every((c) => c.last === 'h/tick=0'), 'snapshots');
    for (const c of slow) c.sock.pause();
    const rounds = 70;
    await flood(f, 'h', 'h', rounds, 100_000);
    await waitFor(() => fast.every((c) => c.last === `h/tick=${rounds}`), 'fast readers got everything');
    await waitFor(() => (f.stats().drops['slow-reader'] ?? 0) === 2, 'slow readers dropped');
    for (const c of fast) expect(c.bytes).toBeGreaterThan(rounds * 100_000 * 0.95);
    expect(f.stats().clients).toBe(12);
  });
});
