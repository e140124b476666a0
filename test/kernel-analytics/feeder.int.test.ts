import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBus } from '../../bus/index.ts';
import { type Feeder, startFeeder } from '../../kernel-analytics/index.ts';
import { type AnalyticsVariable, codecFor } from '../../schemas/index.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';
import { LineClient, Nc } from './helpers.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function feeder(opts: Parameters<typeof startFeeder>[0] = {}): Promise<Feeder> {
  const f = await startFeeder({ listen: { port: 0 }, ...opts });
  cleanups.push(() => f.close());
  return f;
}

function variable(host: string, key: string, value: string): AnalyticsVariable {
  return {
    host,
    key,
    value,
    why: 'test',
    learner: 'test',
    model: 'v1',
    confidence: 1,
    ts: Date.now(),
    type: 'string',
    unit: null,
  };
}

describe('feeder', () => {
  it('a real `nc 127.0.0.1 <port>` gets the snapshot, then live updates; the start line is ignored', async () => {
    const f = await feeder();
    f.update({ key: 'k1', value: 'v1' });
    f.update({ key: 'match', value: 'True' });
    const nc = new Nc(['127.0.0.1', String(f.port)]);
    cleanups.push(() => nc.kill());
    nc.type('KERNEL_ANALYTICS_STREAMING_START\n');
    await waitFor(() => nc.lines().length >= 2, 'snapshot at nc');
    expect(nc.lines().sort()).toEqual(['k1=v1', 'match=True']);
    f.update({ key: 'k2', value: 'v2' });
    f.update({ key: 'k1', value: 'v1b' });
    f.update({ key: 'k1', value: 'v1b' }); // unchanged: not sent again
    await waitFor(() => nc.lines().length >= 4, 'live updates at nc');
    await waitFor(() => f.stats().linesSent >= 2, 'stats');
    expect(nc.lines().slice(2)).toEqual(['k2=v2', 'k1=v1b']);
    expect(f.stats()).toMatchObject({ clients: 1, variables: 3, updates: { changed: 4, unchanged: 1 } });
  });

  it('refuses invalid variables, counted, and keeps serving', async () => {
    const f = await feeder();
    expect(f.update({ key: 'bad key', value: 'x' })).toBe('invalid');
    expect(f.update({ key: 'k', value: 'two\nlines' })).toBe('invalid');
    expect(f.update({ key: 'k', value: 'ok' })).toBe('added');
    const c = new LineClient(f.port);
    cleanups.push(() => c.close());
    await c.until(() => c.lines.length === 1, 'snapshot');
    expect(c.lines).toEqual(['k=ok']);
    expect(f.stats().updates.invalid).toBe(2);
  });

  it('host filter per connection (HOST <name>, HOST *) and per feeder', async () => {
    const f = await feeder();
    f.update({ host: 'a', key: 'load', value: '1' });
    f.update({ host: 'b', key: 'load', value: '2' });
    f.update({ host: 'b', key: 'only_b', value: 'x' });
    const all = new LineClient(f.port);
    const onlyA = new LineClient(f.port);
    cleanups.push(
      () => all.close(),
      () => onlyA.close(),
    );
    await all.until(() => all.table().size === 2, 'all-host snapshot');
    expect(Object.fromEntries(all.table())).toEqual({ load: '2', only_b: 'x' });
    onlyA.send('KERNEL_ANALYTICS_STREAMING_START');
    onlyA.send('HOST a');
    await onlyA.until(() => onlyA.lines.includes('load=1'), 'host a snapshot');
    f.update({ host: 'b', key: 'load', value: '3' });
    f.update({ host: 'a', key: 'load', value: '4' });
    await onlyA.until(() => onlyA.lines.includes('load=4'), 'host a update');
    await all.until(() => all.lines.includes('load=4'), 'all update');
    expect(onlyA.lines.filter((l) => l !== 'load=1' && l !== 'load=2' && l !== 'only_b=x')).toEqual([
      'load=4',
    ]);
    expect(all.lines.slice(2)).toEqual(['load=3', 'load=4']);
    onlyA.send('HOST *');
    await onlyA.until(() => onlyA.lines.includes('only_b=x'), 'widened snapshot');

    const fb = await feeder({ hostFilter: 'b' });
    fb.update({ host: 'a', key: 'k', value: 'from-a' });
    fb.update({ host: 'b', key: 'k', value: 'from-b' });
    const c = new LineClient(fb.port);
    cleanups.push(() => c.close());
    await c.until(() => c.lines.length === 1, 'filtered snapshot');
    expect(c.lines).toEqual(['k=from-b']);
    expect(fb.stats().updates.filtered).toBe(1);
  });

  it('clients joining while updates stream see every change after their snapshot exactly once', async () => {
    const f = await feeder();
    const N = 600;
    const clients: LineClient[] = [];
    // Three updates per loop turn; a client joins every 40 turns, so joins land between an
    // update and its flush (accept runs in the poll phase, flushes in the check phase).
    for (let i = 1; i <= N; i += 3) {
      for (let j = i; j < i + 3 && j <= N; j++) f.update({ key: 'n', value: String(j) });
      if (i % 120 === 1) {
        const c = new LineClient(f.port);
        clients.push(c);
        cleanups.push(() => c.close());
      }
      await new Promise((r) => setImmediate(r));
    }
    for (const c of clients) {
      await c.until(() => c.lines.at(-1) === `n=${N}`, 'last value');
      const seen = c.lines.map((l) => Number(l.slice(2)));
      const first = seen[0]!;
      // consecutive from the snapshot value to N: no gap, no duplicate, no stale value
      expect(seen).toEqual(Array.from({ length: N - first + 1 }, (_, k) => first + k));
    }
    expect(clients.length).toBe(5);
  });

  it('bad client input (binary, overlong) closes that client only; max clients; idle timeout', async () => {
    const f = await feeder({ maxClients: 3, idleTimeoutMs: 300 });
    f.update({ key: 'k', value: 'v' });
    const good = new LineClient(f.port);
    const binary = new LineClient(f.port);
    const long = new LineClient(f.port);
    cleanups.push(
      () => good.close(),
      () => binary.close(),
      () => long.close(),
    );
    await good.until(() => good.lines.length === 1, 'good snapshot');
    await binary.until(() => binary.lines.length === 1, 'binary snapshot');
    await long.until(() => long.lines.length === 1, 'long snapshot');
    const extra = new LineClient(f.port);
    cleanups.push(() => extra.close());
    await extra.until(() => extra.closed, 'refused over max clients');
    expect(extra.lines[0]).toMatch(/busy, 3 clients/);
    binary.sock.write(Buffer.from([0xff, 0xfe, 0x00, 0x0a]));
    long.sock.write(`${'x'.repeat(5000)}\n`);
    await binary.until(() => binary.closed, 'binary client closed');
    await long.until(() => long.closed, 'overlong client closed');
    // Keep the good one busy so it is not idle, and prove it still receives.
    good.send('KERNEL_ANALYTICS_STREAMING_START');
    f.update({ key: 'k', value: 'v2' });
    await good.until(() => good.lines.includes('k=v2'), 'good client still served');
    expect(f.stats().drops).toMatchObject({ binary: 1, overlong: 1, 'max-clients': 1 });
    // Then leave it quiet: the idle timeout closes it.
    await good.until(() => good.closed, 'idle client closed', 5_000);
    expect(f.stats().drops.idle).toBe(1);
  });

  it('a big snapshot reaches a new client in pieces, with changes made meanwhile after it', async () => {
    const f = await feeder({ maxClientBuffer: 16 * 1024, maxVariables: 5000 });
    for (let i = 0; i < 3000; i++) f.update({ key: `key${i}`, value: `${'v'.repeat(50)}${i}` });
    const c = new LineClient(f.port);
    cleanups.push(() => c.close());
    await waitFor(() => c.lines.length > 0, 'first piece');
    f.update({ key: 'key5', value: 'changed-during-snapshot' });
    await c.until(
      () => c.table().get('key5') === 'changed-during-snapshot' && c.table().size === 3000,
      'all of it',
    );
    expect(c.closed).toBe(false);
    expect(f.stats().catchingUp).toBe(0);
  });

  it('follows an in-process bus from the beginning (compacted topic = snapshot), tombstones remove', async () => {
    const bus = new MemoryBus();
    cleanups.push(() => bus.close());
    const topic = unique('ka');
    const codec = codecFor('AnalyticsVariable');
    await bus.publish(topic, [
      { key: 'h1/k1', value: codec.encode(variable('h1', 'k1', 'v1')) },
      { key: 'h1/k2', value: codec.encode(variable('h1', 'k2', 'v2')) },
      { key: 'h1/bad', value: Buffer.from('not avro') },
    ]);
    const f = await feeder({ bus, topic });
    await f.ready;
    await waitFor(() => f.stats().variables === 2, 'replayed topic');
    expect(f.stats().undecodable).toBe(1);
    const c = new LineClient(f.port);
    cleanups.push(() => c.close());
    await c.until(() => c.lines.length === 2, 'snapshot from the bus');
    await bus.publish(topic, [
      { key: 'h1/k1', value: codec.encode(variable('h1', 'k1', 'v1-new')) },
      { key: 'h1/k2', value: null },
    ]);
    await c.until(() => c.lines.includes('k1=v1-new'), 'update from the bus');
    await waitFor(() => f.stats().variables === 1, 'tombstone applied');
    expect(f.table.get('k2', 'h1')).toBeUndefined();
  });

  it('follows Kafka (real broker, unique topic)', async () => {
    const { KafkaBus } = await import('../../bus/index.ts');
    const bus = new KafkaBus({ brokers: BROKERS, clientId: 'test-feeder' });
    cleanups.push(() => bus.close());
    const topic = unique('virgo.kernel-analytics-test');
    const codec = codecFor('AnalyticsVariable');
    await bus.ensureTopics([{ topic, partitions: 2, configs: { 'cleanup.policy': 'compact' } }]);
    await bus.publish(topic, [
      { key: 'hk/a', value: codec.encode(variable('hk', 'a', '1')) },
      { key: 'hk/b', value: codec.encode(variable('hk', 'b', '2')) },
    ]);
    const f = await feeder({ bus, topic });
    await f.ready;
    const c = new LineClient(f.port);
    cleanups.push(() => c.close());
    await c.until(() => c.table().size === 2, 'snapshot from Kafka', 30_000);
    await bus.publish(topic, [{ key: 'hk/a', value: codec.encode(variable('hk', 'a', '3')) }]);
    await c.until(() => c.table().get('a') === '3', 'update from Kafka', 30_000);
    expect(f.table.get('a', 'hk')).toBe('3');
  });
});
