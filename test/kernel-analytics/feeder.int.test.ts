import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBus } from '../../bus/index.ts';
import { type Feeder, startFeeder } from '../../kernel-analytics/index.ts';
import { registry } from '../../runtime/metrics.ts';
import { type AnalyticsVariable, codecFor } from '../../schemas/index.ts';
import { LineClient } from '../helpers/line-client.ts';
import { Nc } from '../helpers/nc.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

// Variables fed without a host belong to the feeder's defaultHost ('local' here, this machine's
// name by default); a client that selects no host sees them host-qualified: local/key=value.
async function feeder(opts: Parameters<typeof startFeeder>[0] = {}): Promise<Feeder> {
  const f = await startFeeder({ listen: { port: 0 }, defaultHost: 'local', ...opts });
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
  it('a real `nc 127.0.0.1 <port>` gets the snapshot, then live updates, host-qualified; the start line is ignored', async () => {
    const f = await feeder();
    f.update({ key: 'k1', value: 'v1' });
    f.update({ key: 'match', value: 'True' });
    const nc = new Nc(['127.0.0.1', String(f.port)]);
    cleanups.push(() => nc.kill());
    nc.type('KERNEL_ANALYTICS_STREAMING_START\n');
    await waitFor(() => nc.lines().length >= 2, 'snapshot at nc');
    expect(nc.lines().sort()).toEqual(['local/k1=v1', 'local/match=True']);
    f.update({ key: 'k2', value: 'v2' });
    f.update({ key: 'k1', value: 'v1b' });
    f.update({ key: 'k1', value: 'v1b' }); // unchanged: not sent again
    await waitFor(() => nc.lines().length >= 4, 'live updates at nc');
    await waitFor(() => f.stats().linesSent >= 2, 'stats');
    expect(nc.lines().slice(2)).toEqual(['local/k2=v2', 'local/k1=v1b']);
    expect(f.stats()).toMatchObject({ clients: 1, variables: 3, updates: { changed: 4, unchanged: 1 } });
  });

  it('Prometheus counters follow the updates without more traffic (reported at most every 100 ms, the last report not lost)', async () => {
    const name = unique('feeder-metrics');
    const f = await feeder({ name, snapshotDelayMs: 0 });
    f.update({ key: 'k', value: 'start' });
    const value = async (metric: string, labels: Record<string, string>) => {
      const m = (await registry.getSingleMetric(metric)?.get())?.values ?? [];
      return m.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0;
    };
    const c = new LineClient(f.port);
    cleanups.push(() => c.close());
    await c.until(() => c.lines.length === 1, 'snapshot');
    // Three separate bursts within a few ms: at most one report goes at once, the rest trail.
    for (let i = 0; i < 3; i++) {
      f.update({ key: 'k', value: String(i) });
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(
      async () => (await value('virgo_feeder_updates_total', { feeder: name, outcome: 'changed' })) === 4,
      'the last change counted',
    );
    await c.until(() => c.lines.length === 4, 'lines');
    await waitFor(
      async () => (await value('virgo_feeder_lines_sent_total', { feeder: name })) === 3,
      'lines sent',
    );
    expect(await value('virgo_feeder_variables', { feeder: name })).toBe(1);
  });

  it('refuses invalid variables, counted, and keeps serving', async () => {
    const f = await feeder();
    expect(f.update({ key: 'bad key', value: 'x' })).toBe('invalid');
    expect(f.update({ key: 'k', value: 'two\nlines' })).toBe('invalid');
    expect(f.update({ host: 'a/b', key: 'k', value: 'x' })).toBe('invalid'); // '/' would split host from key
    expect(f.update({ key: 'k', value: 'ok' })).toBe('added');
    const c = new LineClient(f.port);
    cleanups.push(() => c.close());
    await c.until(() => c.lines.length === 1, 'snapshot');
    expect(c.lines).toEqual(['local/k=ok']);
    expect(f.stats().updates.invalid).toBe(3);
  });

  it('no HOST: every host, host-qualified, so two hosts with the same key are both seen; HOST <name>: bare lines of that host; HOST *: back to every host', async () => {
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
    await all.until(() => all.table().size === 3, 'all-host snapshot');
    expect(Object.fromEntries(all.table())).toEqual({ 'a/load': '1', 'b/load': '2', 'b/only_b': 'x' });
    onlyA.send('KERNEL_ANALYTICS_STREAMING_START');
    onlyA.send('HOST a');
    await onlyA.until(() => onlyA.lines.includes('load=1'), 'host a snapshot');
    f.update({ host: 'b', key: 'load', value: '3' });
    f.update({ host: 'a', key: 'load', value: '4' });
    await onlyA.until(() => onlyA.lines.includes('load=4'), 'host a update');
    await all.until(() => all.lines.includes('a/load=4'), 'all update');
    // Only a's values reach the HOST a client (it may have got the every-host snapshot first, if
    // its HOST line came after the grace time: those lines are host-qualified, never bare).
    expect(onlyA.lines.filter((l) => !l.includes('/'))).toEqual(['load=1', 'load=4']);
    expect(all.lines.slice(3)).toEqual(['b/load=3', 'a/load=4']);
    const before = onlyA.lines.length;
    onlyA.send('HOST *');
    await onlyA.until(() => onlyA.lines.length === before + 3, 'widened snapshot');
    expect(onlyA.lines.slice(before).sort()).toEqual(['a/load=4', 'b/load=3', 'b/only_b=x']);

    // A feeder that serves one host gives its clients that host's bare lines, HOST or not.
    const fb = await feeder({ hostFilter: 'b' });
    fb.update({ host: 'a', key: 'k', value: 'from-a' });
    fb.update({ host: 'b', key: 'k', value: 'from-b' });
    const c = new LineClient(fb.port);
    cleanups.push(() => c.close());
    await c.until(() => c.lines.length === 1, 'filtered snapshot');
    expect(c.lines).toEqual(['k=from-b']);
    expect(fb.stats().updates.filtered).toBe(1);
    c.send('HOST a');
    await c.until(() => c.lines.length === 2, 'notice for a host this feeder does not serve');
    expect(c.lines[1]).toBe('# HOST a: this feeder serves only host b; nothing is sent for a');
  });

  it("HOST nosuch: a notice line a k=v parser skips; the selection stays and the host's variables follow once it appears", async () => {
    const f = await feeder();
    f.update({ host: 'edge-1', key: 'load', value: '1' });
    const c = new LineClient(f.port);
    cleanups.push(() => c.close());
    c.send('HOST pxrc-9');
    await c.until(() => c.lines.length === 1, 'notice');
    expect(c.lines[0]).toBe(
      '# HOST pxrc-9: no variables of this host yet; the selection stays and its variables follow when they appear (hosts now: edge-1)',
    );
    expect(c.lines[0]).not.toContain('=');
    f.update({ host: 'edge-1', key: 'load', value: '2' }); // not its host: nothing
    f.update({ host: 'pxrc-9', key: 'pxrc.throttle', value: '0.5' }); // the device starts later
    await c.until(() => c.lines.length === 2, "the selected host's first variable");
    expect(c.lines[1]).toBe('pxrc.throttle=0.5');
    expect(f.stats().notices).toBe(1);
    // Not a host name at all: said so, and nothing of any host is sent for it.
    const bad = new LineClient(f.port);
    cleanups.push(() => bad.close());
    bad.send('HOST a/b=c');
    await bad.until(() => bad.lines.length === 1, 'notice for an invalid name');
    expect(bad.lines[0]).toMatch(/^# HOST: not a host name/);
    expect(bad.lines[0]).not.toContain('=');
    f.update({ host: 'edge-1', key: 'load', value: '3' });
    bad.send('HOST edge-1');
    await bad.until(() => bad.lines.includes('load=3'), 'a valid HOST line after it');
    expect(bad.lines).toHaveLength(2);
  });

  it('clients joining while updates stream see every change after their snapshot exactly once', async () => {
    const f = await feeder();
    const N = 600;
    const clients: LineClient[] = [];
    // Three updates per loop turn, each turn's one write; a client joins every 40 turns, so its
    // snapshot is taken between two writes while the stream goes on.
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
      await c.until(() => c.lines.at(-1) === `local/n=${N}`, 'last value');
      const seen = c.lines.map((l) => Number(l.slice('local/n='.length)));
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
    await good.until(() => good.lines.includes('local/k=v2'), 'good client still served');
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
      () => c.table().get('local/key5') === 'changed-during-snapshot' && c.table().size === 3000,
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
    await c.until(() => c.lines.includes('h1/k1=v1-new'), 'update from the bus');
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
    await c.until(() => c.table().get('hk/a') === '3', 'update from Kafka', 30_000);
    expect(f.table.get('a', 'hk')).toBe('3');
  });

  it('half-closed real nc clients (nc -q1 </dev/null, nc -N </dev/null) get the full snapshot every time, then the connection ends', async () => {
    const f = await feeder();
    // Two hosts with the same keys, so the every-host view must show both, qualified.
    const want: string[] = [];
    for (const host of ['edge-1', 'edge-2']) {
      for (let i = 0; i < 40; i++) {
        f.update({ host, key: `k${i}`, value: `${host}-${i}` });
        want.push(`${host}/k${i}=${host}-${i}`);
      }
    }
    want.sort();
    const dump = async (args: string[], run: number) => {
      // stdin 'ignore' is /dev/null: nc reads EOF at once and half-closes.
      const nc = spawn('nc', [...args, '127.0.0.1', String(f.port)], { stdio: ['ignore', 'pipe', 'pipe'] });
      cleanups.push(() => nc.kill('SIGKILL'));
      let out = '';
      nc.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
      });
      const [code] = (await once(nc, 'close')) as [number | null];
      const got = out.split('\n').filter((l) => l !== '');
      expect(got.sort(), `nc ${args.join(' ')} run ${run}`).toEqual(want);
      expect(code).toBe(0);
    };
    // 20 runs of each form, five at a time (nc -q1 lingers its full second after EOF by itself).
    for (const args of [['-q1'], ['-N']]) {
      for (let run = 0; run < 20; run += 5) {
        await Promise.all(Array.from({ length: 5 }, (_, i) => dump(args, run + i)));
      }
    }
    // `printf 'HOST edge-2\n' | nc -N`: one host's bare lines, then the end (a one-shot dump).
    const sel = spawn('sh', ['-c', `printf 'HOST edge-2\\n' | nc -N 127.0.0.1 ${f.port}`]);
    let out = '';
    sel.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    await once(sel, 'close');
    expect(
      out
        .split('\n')
        .filter((l) => l !== '')
        .sort(),
    ).toEqual(Array.from({ length: 40 }, (_, i) => `k${i}=edge-2-${i}`).sort());
    // And a host with nothing yet: just the notice, then the end.
    const none = spawn('sh', ['-c', `printf 'HOST nosuch\\n' | nc -N 127.0.0.1 ${f.port}`]);
    let noneOut = '';
    none.stdout.setEncoding('utf8').on('data', (d: string) => {
      noneOut += d;
    });
    await once(none, 'close');
    expect(noneOut).toMatch(/^# HOST nosuch: no variables of this host yet;[^=\n]*\n$/);
    await waitFor(() => f.stats().clients === 0, 'every dump connection ended');
  });
});
