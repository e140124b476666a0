import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfDirSink,
  ConfFile,
  ConfFileSink,
  ConfValueError,
  exportTable,
  formatConf,
  parseConf,
  RedisExporter,
  VariableTable,
} from '../../kernel-analytics/index.ts';
import { freePort } from '../helpers/ports.ts';
import { startPrivateRedis } from '../helpers/private-redis.ts';
import { REDIS_URL, run, unique, waitFor } from '../helpers/services.ts';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'virgo-conf-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const redisCli = (...args: string[]) => run('redis-cli', ['-u', REDIS_URL, ...args]);

/** A fresh key prefix on the shared Redis, its keys deleted after the test. */
function redisPrefix(): string {
  const prefix = unique('virgo-test:analytics');
  cleanups.push(async () => {
    await run('sh', [
      '-c',
      `redis-cli -u ${REDIS_URL} --scan --pattern '${prefix}:*' | xargs -r redis-cli -u ${REDIS_URL} del`,
    ]);
  });
  return prefix;
}

describe('conf file format (docs/design.md §5.6)', () => {
  const ORIGINAL =
    'match=True,kernel_analytics1=v1,kernel_analytics2=v2,kernel_analytics3=v3,MaxNetworkBandwidth=255\n';

  it('reads the original sample', () => {
    const c = parseConf(ORIGINAL);
    expect(c.problems).toEqual([]);
    expect(Object.fromEntries(c.values)).toEqual({
      match: 'True',
      kernel_analytics1: 'v1',
      kernel_analytics2: 'v2',
      kernel_analytics3: 'v3',
      MaxNetworkBandwidth: '255',
    });
  });

  it('appends (",key=value", possibly after a newline) override; newlines are not separators; bad tokens reported', () => {
    const c = parseConf('a=1,b=2\n,a=3\r\n,c=x=y,novalue,bad key=1,s={1, 2},d=line\nbreak,');
    expect(Object.fromEntries(c.values)).toEqual({ a: '3', b: '2', c: 'x=y', s: '{1' });
    expect(c.problems.map((p) => [p.token, p.reason])).toEqual([
      ['novalue', 'missing-equals'],
      ['bad key=1', 'invalid-key'],
      [' 2}', 'missing-equals'],
      ['d=line\nbreak', 'invalid-value'],
    ]);
    expect(c.problems[2]!.message).toMatch(/contained a comma/);
  });

  it('writing a value with a comma is refused with a clear error; the file is untouched', async () => {
    const file = new ConfFile(join(tmp(), 'virgo_kernel_analytics.conf'), { fsync: false });
    await file.write({ match: 'True' });
    const err = await file.set('s', "{'a', 'b'}").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfValueError);
    expect((err as Error).message).toMatch(/value of s contains ','.*separates pairs/);
    expect(() => formatConf({ k: 'a,b' })).toThrow(ConfValueError);
    expect(readFileSync(file.path, 'utf8')).toBe('match=True\n');
  });

  it('round trip: original sample in, set/append/unset, atomic replace, same content back', async () => {
    const dir = tmp();
    const path = join(dir, 'virgo_kernel_analytics.conf');
    writeFileSync(path, ORIGINAL, { mode: 0o640 });
    const file = new ConfFile(path);
    const before = statSync(path);
    expect(await file.list()).toMatchObject({ match: 'True', MaxNetworkBandwidth: '255' });
    await file.set({ match: 'False', newkey: 'n/a' });
    const after = statSync(path);
    expect(after.ino).not.toBe(before.ino); // replaced by rename, not rewritten in place
    expect(after.mode & 0o777).toBe(0o640); // keeps the file's mode
    expect(readFileSync(path, 'utf8')).toBe(
      'match=False,kernel_analytics1=v1,kernel_analytics2=v2,kernel_analytics3=v3,MaxNetworkBandwidth=255,newkey=n/a\n',
    );
    await file.append('MaxNetworkBandwidth', '100');
    expect(readFileSync(path, 'utf8').endsWith('\n,MaxNetworkBandwidth=100')).toBe(true);
    expect(await file.get('MaxNetworkBandwidth')).toBe('100');
    expect(await file.unset('kernel_analytics2', 'absent')).toEqual(['kernel_analytics2']);
    await file.compact();
    expect(parseConf(readFileSync(path, 'utf8')).values).toEqual(
      new Map([
        ['match', 'False'],
        ['kernel_analytics1', 'v1'],
        ['kernel_analytics3', 'v3'],
        ['MaxNetworkBandwidth', '100'],
        ['newkey', 'n/a'],
      ]),
    );
    expect(readdirSync(dir)).toEqual(['virgo_kernel_analytics.conf']); // no temp files left
    // appending to an empty/new file does not start with a comma
    const fresh = new ConfFile(join(dir, 'new.conf'), { fsync: false });
    await fresh.append('k', 'v');
    expect(readFileSync(fresh.path, 'utf8')).toBe('k=v');
  });

  it('concurrent writers in one process do not lose each other', async () => {
    const file = new ConfFile(join(tmp(), 'c.conf'), { fsync: false });
    await Promise.all(Array.from({ length: 20 }, (_, i) => file.set(`k${i}`, String(i))));
    expect(Object.keys(await file.list())).toHaveLength(20);
  });

  it('ConfFileSink keeps the file in step with one host of a table, refusing comma values, keeping pairs set by people', async () => {
    const path = join(tmp(), 'sink.conf');
    writeFileSync(path, 'operator_pin=1');
    const table = new VariableTable();
    const h = { host: 'edge1' };
    table.set('match', 'True', h);
    const sink = new ConfFileSink(new ConfFile(path, { fsync: false }), { host: 'edge1', delayMs: 5 });
    const exp = exportTable(table, [sink]);
    cleanups.push(() => exp.close());
    table.set('bw', '255', h);
    table.set('set_repr', '{1, 2}', h);
    // another host's value under the same key is not this file's: one file, one host
    table.set('bw', '10', { host: 'edge2' });
    table.set('match', 'False', { host: 'edge2' });
    await exp.flush();
    expect(parseConf(readFileSync(path, 'utf8')).values).toEqual(
      new Map([
        ['operator_pin', '1'],
        ['match', 'True'],
        ['bw', '255'],
      ]),
    );
    expect(sink.stats()).toMatchObject({ rejected: 1, written: 2, errors: 0 });
    table.delete('bw', 'edge2');
    table.delete('bw', 'edge1');
    table.set('match', 'False', h);
    await waitFor(async () => (await new ConfFile(path).get('match')) === 'False', 'debounced write');
    expect(await new ConfFile(path).get('bw')).toBeUndefined();
  });

  it('ConfDirSink: one file per host, two hosts with the same key never merged, no file for a variable without a host', async () => {
    const dir = join(tmp(), 'conf');
    const table = new VariableTable();
    const sink = new ConfDirSink(dir, { delayMs: 5, fsync: false });
    const exp = exportTable(table, [sink]);
    cleanups.push(() => exp.close());
    table.set('MaxNetworkBandwidth', '100', { host: 'edge-1' });
    table.set('MaxNetworkBandwidth', '900', { host: 'edge-2' });
    table.set('match', 'True', { host: 'uvc-1' });
    table.set('MaxNetworkBandwidth', '5'); // no host: refused, not written into some default host's file
    await exp.flush();
    expect(readdirSync(dir).sort()).toEqual(['edge-1.conf', 'edge-2.conf', 'uvc-1.conf']);
    expect(readFileSync(join(dir, 'edge-1.conf'), 'utf8')).toBe('MaxNetworkBandwidth=100\n');
    expect(readFileSync(join(dir, 'edge-2.conf'), 'utf8')).toBe('MaxNetworkBandwidth=900\n');
    expect(readFileSync(join(dir, 'uvc-1.conf'), 'utf8')).toBe('match=True\n');
    expect(sink.stats()).toMatchObject({ rejected: 1, written: 3, errors: 0, pending: 0 });
    expect(sink.pathOf('edge-1')).toBe(join(dir, 'edge-1.conf'));
    table.set('MaxNetworkBandwidth', '120', { host: 'edge-1' });
    await exp.flush();
    expect(parseConf(readFileSync(join(dir, 'edge-1.conf'), 'utf8')).values.get('MaxNetworkBandwidth')).toBe(
      '120',
    );
    expect(readFileSync(join(dir, 'edge-2.conf'), 'utf8')).toBe('MaxNetworkBandwidth=900\n');
  });

  it('says what to do when the file cannot be written', async () => {
    const file = new ConfFile(join(tmp(), 'no', 'such', 'dir', 'x.conf'));
    await expect(file.set('k', 'v')).rejects.toThrow(
      /cannot write .*x\.conf: ENOENT \(the directory does not exist\)/,
    );
  });
});

describe('Redis export', () => {
  it('hash per host and change messages, seen by redis-cli', async () => {
    const prefix = redisPrefix();
    const ex = await RedisExporter.create({ url: REDIS_URL, prefix });
    // A real redis-cli subscriber for the change channel.
    const sub = spawn('redis-cli', ['-u', REDIS_URL, '--csv', 'PSUBSCRIBE', `${prefix}:changes:*`]);
    let subOut = '';
    sub.stdout.on('data', (d: Buffer) => {
      subOut += d.toString();
    });
    cleanups.push(() => sub.kill());
    await waitFor(() => subOut.includes('psubscribe'), 'redis-cli subscribed');

    const table = new VariableTable();
    table.set('match', 'True', { host: 'edge1' });
    const exp = exportTable(table, [ex]);
    cleanups.push(() => exp.close());
    table.set('MaxNetworkBandwidth', '255', { host: 'edge1' });
    table.set('load', '0.5', { host: 'thishost' });
    table.set('match', 'False', { host: 'edge1' });
    await exp.flush();

    const h = await redisCli('HGETALL', `${prefix}:edge1`);
    const fields = h.stdout.trim().split('\n');
    const hash = Object.fromEntries(
      Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]]),
    );
    expect(hash).toEqual({ match: 'False', MaxNetworkBandwidth: '255' });
    expect((await redisCli('HGET', `${prefix}:thishost`, 'load')).stdout.trim()).toBe('0.5');
    await waitFor(() => subOut.includes('match=False'), 'change message at redis-cli');
    expect(subOut).toContain(`${prefix}:changes:edge1`);
    expect(subOut).toContain(`${prefix}:changes:thishost`);
    // A burst bigger than one command's worth of fields is split, not sent as one giant HSET.
    const bulk = new VariableTable({ maxVariables: 5000 });
    const bulkExp = exportTable(bulk, [ex], { snapshot: false });
    for (let i = 0; i < 3000; i++) bulk.set(`bulk${i}`, String(i), { host: 'bulkhost' });
    await bulkExp.flush();
    bulkExp.detach();
    expect((await redisCli('HLEN', `${prefix}:bulkhost`)).stdout.trim()).toBe('3000');
    table.delete('MaxNetworkBandwidth', 'edge1');
    await exp.flush();
    expect((await redisCli('HEXISTS', `${prefix}:edge1`, 'MaxNetworkBandwidth')).stdout.trim()).toBe('0');
    expect(ex.stats()).toMatchObject({ errors: 0, pending: 0 });
    expect(ex.stats().written).toBeGreaterThanOrEqual(3004);
  });

  it('never merges hosts: one hash per host; a variable without a host is refused, not written as this machine', async () => {
    const prefix = redisPrefix();
    const ex = await RedisExporter.create({ url: REDIS_URL, prefix });
    const table = new VariableTable();
    const exp = exportTable(table, [ex]);
    cleanups.push(() => exp.close());
    table.set('MaxNetworkBandwidth', '100', { host: 'edge-1' });
    table.set('MaxNetworkBandwidth', '900', { host: 'edge-2' });
    table.set('MaxNetworkBandwidth', '100', { host: hostname() });
    table.set('MaxNetworkBandwidth', '5'); // host '' (unknown): must not land in this machine's hash
    await exp.flush();
    const keys = (await redisCli('--scan', '--pattern', `${prefix}:*`)).stdout.trim().split('\n').sort();
    expect(keys).toEqual([`${prefix}:${hostname()}`, `${prefix}:edge-1`, `${prefix}:edge-2`].sort());
    for (const [h, v] of [
      ['edge-1', '100'],
      ['edge-2', '900'],
      [hostname(), '100'],
    ]) {
      expect((await redisCli('HGET', `${prefix}:${h}`, 'MaxNetworkBandwidth')).stdout.trim(), h).toBe(v);
    }
    expect(ex.stats()).toMatchObject({ written: 3, rejected: 1, errors: 0, pending: 0 });
    expect(ex.stats().lastError).toMatch(/no host/);
  });

  it('pipelines do not wait for each other: a stalled Redis holds at most maxInFlight, the rest coalesces, the last value lands last', async () => {
    // CLIENT PAUSE stalls every client's writes: a private server, not the shared Redis.
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.stop());
    const cli = (...args: string[]) => run('redis-cli', ['-p', String(redis.port), ...args]);
    const prefix = unique('virgo-test:analytics');
    const sub = spawn('redis-cli', ['-p', String(redis.port), '--csv', 'SUBSCRIBE', `${prefix}:changes:h`]);
    let subOut = '';
    sub.stdout.on('data', (d: Buffer) => {
      subOut += d.toString();
    });
    cleanups.push(() => sub.kill());
    await waitFor(() => subOut.includes('subscribe'), 'redis-cli subscribed');
    const ex = await RedisExporter.create({ url: redis.url, prefix, maxInFlight: 4 });
    const table = new VariableTable();
    const exp = exportTable(table, [ex]);
    cleanups.push(() => exp.close());

    // Writes stall until UNPAUSE (a deadline far away: a loaded machine may take its time).
    expect((await cli('CLIENT', 'PAUSE', '60000', 'WRITE')).stdout).toMatch(/OK/);
    // 100 bursts, each its own turn of the event loop: one pipeline each while fewer than 4 wait.
    for (let i = 0; i < 100; i++) {
      table.set('k', String(i), { host: 'h' });
      await new Promise((r) => setImmediate(r));
      expect(ex.stats().pending).toBeLessThanOrEqual(1); // coalesced per host/key, never queued
    }
    expect(ex.stats().written).toBe(0); // Redis is paused: nothing answered yet, the table never waited
    expect((await cli('CLIENT', 'UNPAUSE')).stdout).toMatch(/OK/);
    await exp.flush();
    expect((await cli('HGET', `${prefix}:h`, 'k')).stdout.trim()).toBe('99');
    // The first 4 went out at once, the other 96 coalesced into one write: 5 writes, in order.
    expect(ex.stats()).toMatchObject({ written: 5, errors: 0, pending: 0 });
    await waitFor(() => subOut.includes('k=99'), 'the last change published');
    const published = [...subOut.matchAll(/k=(\d+)/g)].map((m) => Number(m[1]));
    expect(published).toEqual([0, 1, 2, 3, 99]);
  });

  it('a round of commands reaches Redis as one write: one read on the server per round, every value there', async () => {
    // Redis counts the reads it makes (INFO stats, total_reads_processed): a private server, so
    // no other client's reads are counted.
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.stop());
    const prefix = unique('virgo-test:analytics');
    const ex = await RedisExporter.create({ url: redis.url, prefix });
    const table = new VariableTable();
    const exp = exportTable(table, [ex]);
    cleanups.push(() => exp.close());
    const reads = async () => Number(/total_reads_processed:(\d+)/.exec(await ex.redis.info('stats'))?.[1]);
    const before = await reads();
    const ROUNDS = 50;
    for (let i = 0; i < ROUNDS; i++) {
      // two hosts: HSET, PUBLISH, HSET, PUBLISH in one round
      table.set('load', String(i), { host: 'a' });
      table.set('load', String(-i), { host: 'b' });
      await exp.flush();
    }
    // the rounds, and the INFO of the second reading (the first one counted its own read); a few
    // more are the kernel's business (a segment split, a wakeup with nothing to read), not ours:
    // uncorked, each round is two reads or more
    const n = (await reads()) - before;
    expect(n).toBeGreaterThanOrEqual(ROUNDS + 1);
    expect(n).toBeLessThanOrEqual(ROUNDS + 5);
    expect(ex.stats()).toMatchObject({ written: 2 * ROUNDS, errors: 0, pending: 0 });
    expect(await ex.redis.hget(`${prefix}:a`, 'load')).toBe(String(ROUNDS - 1));
    expect(await ex.redis.hget(`${prefix}:b`, 'load')).toBe(String(1 - ROUNDS));
  });

  it('Redis goes away: errors counted, the table never waits, pending stays bounded, writes land when it is back', async () => {
    // A private redis-server we can stop and start (the shared one must stay up for others).
    const port = await freePort();
    const startRedis = () => {
      const p = spawn('redis-server', [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
      ]);
      p.stdout.resume();
      return p;
    };
    let server = startRedis();
    cleanups.push(() => server.kill('SIGKILL'));
    const url = `redis://127.0.0.1:${port}`;
    await waitFor(
      async () => (await run('redis-cli', ['-u', url, 'PING'])).stdout.includes('PONG'),
      'private redis',
    );
    const prefix = unique('virgo-test:analytics');
    const ex = await RedisExporter.create({ url, prefix });
    const table = new VariableTable();
    const exp = exportTable(table, [ex]);
    cleanups.push(() => exp.close());
    table.set('k', 'before', { host: 'h' });
    await exp.flush();
    expect(ex.stats().written).toBe(1);

    const down = new Promise((r) => server.once('close', r));
    server.kill('SIGKILL');
    await down;
    // returns at once: nothing waits on Redis
    for (let i = 0; i < 1000; i++) table.set(`k${i % 10}`, String(i), { host: 'h' });
    expect(table.get('k9', 'h')).toBe('999');
    await ex.flush();
    expect(ex.stats().errors).toBeGreaterThan(0);
    expect(ex.stats().pending).toBe(10); // coalesced per key: bounded by the table, not by the update rate

    server = startRedis();
    await waitFor(() => ex.stats().pending === 0, 'pending written after Redis came back', 30_000);
    const got = await run('redis-cli', ['-u', url, 'HGET', `${prefix}:h`, 'k9']);
    expect(got.stdout.trim()).toBe('999');
    // The server came back empty (no persistence): what was confirmed before the outage is
    // written again too, not only what was pending.
    expect((await run('redis-cli', ['-u', url, 'HGET', `${prefix}:h`, 'k'])).stdout.trim()).toBe('before');
    expect((await run('redis-cli', ['-u', url, 'HLEN', `${prefix}:h`])).stdout.trim()).toBe('11');
  });
});
