import { afterEach, describe, expect, it } from 'vitest';
import { RingConsumer, startFeeder } from '../../kernel-analytics/index.ts';
import { parseBool, parseNumber } from '../../schemas/variable.ts';
import { Nc } from '../helpers/nc.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/services.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function consumer(port: number, extra: ConstructorParameters<typeof RingConsumer>[0] = {}): RingConsumer {
  const c = new RingConsumer({ port, backoff: { initialMs: 20, maxMs: 200 }, ...extra });
  cleanups.push(() => c.close());
  return c;
}

describe('RingConsumer against `nc -l` typed by hand', () => {
  it('sends the start line, reads typed lines into ring and table, no stale bytes', async () => {
    const port = await freePort();
    const nc = new Nc(['-l', '127.0.0.1', String(port)]);
    cleanups.push(() => nc.kill());
    // nc may not listen yet: the consumer's backoff covers that, as it would for a real operator.
    const c = consumer(port);
    await waitFor(() => nc.out.includes('KERNEL_ANALYTICS_STREAMING_START\n'), 'start line at nc');
    // The original session: k1=v1 … k20=v20, one typed line at a time.
    for (let i = 1; i <= 20; i++) nc.type(`k${i}=v${i}\n`);
    await waitFor(() => c.table.size === 20, 'twenty pairs');
    expect(c.ring.toArray().map((e) => `${e.key}=${e.value}`)).toEqual(
      Array.from({ length: 20 }, (_, i) => `k${i + 1}=v${i + 1}`),
    );
    expect(c.table.get('k10')).toBe('v10');
    expect(c.stats()).toMatchObject({ connected: true, connects: 1, pairs: 20 });
  });

  it('bad input is counted per line and rejected; good lines around it land; half line at disconnect', async () => {
    const port = await freePort();
    const nc = new Nc(['-l', '127.0.0.1', String(port)]);
    cleanups.push(() => nc.kill());
    const c = consumer(port);
    await waitFor(() => nc.out.includes('KERNEL_ANALYTICS_STREAMING_START'), 'start line at nc');
    nc.type('good1=1\n');
    nc.type(Buffer.from([0x00, 0x01, 0xff, 0xfe, 0x0a])); // binary
    nc.type(`big=${'x'.repeat(4000)}\n`); // overlong
    nc.type('no equals sign\n'); // missing '='
    nc.type('bad key=1\n'); // invalid key
    nc.type('good2=2\n');
    nc.type('half=a-line-without-newl'); // cut by the disconnect
    await waitFor(() => c.table.get('good2') === '2', 'good2');
    const closed = new Promise((r) => c.once('disconnect', r));
    nc.proc.stdin.end();
    nc.kill();
    await closed;
    const s = c.stats();
    expect(s.rejects).toEqual({
      binary: 1,
      overlong: 1,
      'missing-equals': 1,
      'invalid-host': 0,
      'invalid-key': 1,
      'invalid-value': 0,
      partial: 1,
    });
    expect(c.table.snapshot()).toEqual({ good1: '1', good2: '2' });
    expect(c.table.get('half')).toBeUndefined();
  });

  it('wraps its ring: the oldest pairs are overwritten, order kept', async () => {
    const port = await freePort();
    const nc = new Nc(['-l', '127.0.0.1', String(port)]);
    cleanups.push(() => nc.kill());
    const c = consumer(port, { ringSize: 8 });
    await waitFor(() => nc.out.includes('KERNEL_ANALYTICS_STREAMING_START'), 'start line');
    nc.type(Array.from({ length: 30 }, (_, i) => `key${i % 5}=${i}\n`).join(''));
    await waitFor(() => c.ring.written === 30, '30 pairs');
    expect(c.ring.toArray().map((e) => [e.seq, e.key, e.value])).toEqual(
      Array.from({ length: 8 }, (_, j) => [22 + j, `key${(22 + j) % 5}`, String(22 + j)]),
    );
    // the table keeps the latest per key, regardless of the ring
    expect(c.table.snapshot()).toEqual({ key0: '25', key1: '26', key2: '27', key3: '28', key4: '29' });
  });
});

describe('RingConsumer against our feeder', () => {
  it('snapshot + updates into the table; reconnects with backoff after the feeder restarts', async () => {
    const f1 = await startFeeder({ listen: { port: 0 } });
    const port = f1.port;
    f1.update({ key: 'match', value: 'True' });
    const c = consumer(port);
    await waitFor(() => parseBool(c.table.get('match')) === true, 'snapshot');
    const disconnected = new Promise<{ retryInMs: number | undefined }>((r) => c.once('disconnect', r));
    await f1.close();
    const d = await disconnected;
    expect(d.retryInMs).toBeGreaterThan(0);
    // Attempts fail while nothing listens; then a new feeder on the same port.
    await waitFor(() => c.stats().disconnects >= 3, 'failed attempts while down');
    const f2 = await startFeeder({ listen: { port } });
    cleanups.push(() => f2.close());
    f2.update({ key: 'match', value: 'False' });
    f2.update({ key: 'MaxNetworkBandwidth', value: '255' });
    await waitFor(() => parseNumber(c.table.get('MaxNetworkBandwidth')) === 255, 'data after reconnect');
    expect(parseBool(c.table.get('match'))).toBe(false);
    expect(c.stats().connects).toBe(2);
    f2.update({ key: 'MaxNetworkBandwidth', value: '100' });
    await waitFor(() => parseNumber(c.table.get('MaxNetworkBandwidth')) === 100, 'live update');
  });

  it('HOST selection records the host; table bound refuses extra keys without stopping', async () => {
    const f = await startFeeder({ listen: { port: 0 } });
    cleanups.push(() => f.close());
    for (let i = 0; i < 10; i++) f.update({ host: 'edge1', key: `v${i}`, value: String(i) });
    f.update({ host: 'edge2', key: 'other', value: 'x' });
    const c = consumer(f.port, { selectHost: 'edge1', maxVariables: 5 });
    await waitFor(() => c.stats().table.refused === 5, 'five refused');
    expect(c.table.size).toBe(5);
    expect(c.table.hosts()).toEqual(['edge1']);
    expect(c.table.get('other')).toBeUndefined();
    f.update({ host: 'edge1', key: 'v0', value: 'updated' });
    await waitFor(() => c.table.get('v0', 'edge1') === 'updated', 'existing key still updates');
  });

  it('no host selected: host/key=value lines land under their hosts, so two hosts with the same key stay apart', async () => {
    const f = await startFeeder({ listen: { port: 0 } });
    cleanups.push(() => f.close());
    f.update({ host: 'edge-1', key: 'MaxNetworkBandwidth', value: '100' });
    f.update({ host: 'edge-2', key: 'MaxNetworkBandwidth', value: '900' });
    f.update({ host: 'edge-2', key: 'a/b', value: 'slash in the key' });
    const c = consumer(f.port);
    await waitFor(() => c.table.size === 3, 'snapshot of both hosts');
    expect(c.table.get('MaxNetworkBandwidth', 'edge-1')).toBe('100');
    expect(c.table.get('MaxNetworkBandwidth', 'edge-2')).toBe('900');
    expect(c.table.get('a/b', 'edge-2')).toBe('slash in the key');
    expect(c.table.hosts().sort()).toEqual(['edge-1', 'edge-2']);
    f.update({ host: 'edge-1', key: 'MaxNetworkBandwidth', value: '120' });
    await waitFor(() => c.table.get('MaxNetworkBandwidth', 'edge-1') === '120', 'live change of one host');
    expect(c.table.get('MaxNetworkBandwidth', 'edge-2')).toBe('900');
    expect(c.ring.toArray().map((e) => `${e.host}/${e.key}=${e.value}`)).toContain(
      'edge-1/MaxNetworkBandwidth=120',
    );
    expect(Object.values(c.stats().rejects).every((n) => n === 0)).toBe(true);
  });

  it("a device's consumer connects before its host has variables: the notice is counted, not a reject, and the values follow", async () => {
    const f = await startFeeder({ listen: { port: 0 } });
    cleanups.push(() => f.close());
    f.update({ host: 'edge-1', key: 'load', value: '1' });
    const c = consumer(f.port, { selectHost: 'pxrc-1' });
    const notice = new Promise<string>((r) => c.once('notice', r));
    expect(await notice).toMatch(/^# HOST pxrc-1: no variables of this host yet/);
    f.update({ host: 'pxrc-1', key: 'pxrc.throttle', value: '0.4' });
    await waitFor(() => c.table.get('pxrc.throttle', 'pxrc-1') === '0.4', 'the device host appears');
    expect(c.table.hosts()).toEqual(['pxrc-1']);
    expect(c.stats().notices).toBe(1);
    expect(Object.values(c.stats().rejects).every((n) => n === 0)).toBe(true);
  });
});

describe('RingConsumer without a host selection, against `nc -l` typed by hand', () => {
  it('a typed host/key=value line names its host; a bare one is the defaultHost (this machine unless told)', async () => {
    const port = await freePort();
    const nc = new Nc(['-l', '127.0.0.1', String(port)]);
    cleanups.push(() => nc.kill());
    const c = consumer(port, { defaultHost: 'typed' });
    await waitFor(() => nc.out.includes('KERNEL_ANALYTICS_STREAMING_START\n'), 'start line at nc');
    expect(nc.out).not.toContain('HOST');
    nc.type('edge-9/k=v9\nk=bare\n# a comment line\n');
    await waitFor(() => c.table.size === 2, 'two pairs');
    expect(c.table.get('k', 'edge-9')).toBe('v9');
    expect(c.table.get('k', 'typed')).toBe('bare');
    expect(c.stats()).toMatchObject({ pairs: 2, notices: 1 });
  });
});
