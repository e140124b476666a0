// Hostile input on every TCP port: 10,000 fuzzed lines per service, pipelined over a handful of
// connections (not 10,000 connections), plus binary and overlong lines that must close only
// their own connection. Every request gets exactly one answer, every reject is counted by the
// service with its reason, nothing accepted is lost, and a good request is served afterwards.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { CloudFs, CpuPooling, EventNet, MemoryPooling } from '../../actuators/drivers/index.ts';
import { RingConsumer } from '../../kernel-analytics/consumer.ts';
import { startFeeder } from '../../kernel-analytics/feeder.ts';
import { KvLineParser } from '../../kernel-analytics/kv-parser.ts';
import { VariableTable } from '../../kernel-analytics/table.ts';
import { startQueueService } from '../../queue-bridge/index.ts';
import type { LineServer, RejectReason } from '../../runtime/line-server.ts';
import { LineConn } from '../helpers/line-client.ts';
import { waitFor } from '../helpers/services.ts';
import { callLines, hostileBytes, hostileText, SEED, sample, Tally, validKey } from './lib/arb.ts';
import { storedRequests } from './lib/queue-log.ts';
import { Report } from './lib/summary.ts';

const N = Number(process.env.VIRGO_FUZZ_CASES ?? 10_000);
const CONNS = 4;
const BAD_EACH = 20;
const report = new Report(import.meta.url);
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `virgo-rel-${prefix}-`));
  dirs.push(d);
  return d;
}

/** What a LineServer accepts as one text line: no newline, no NUL, valid UTF-8 (once encoded). */
function textLines(arb: fc.Arbitrary<string>, n: number, salt: number): string[] {
  return sample(arb, n, SEED + salt).map((s) => s.replace(/[\n\0]/g, ' '));
}

/** Sends the lines pipelined over `conns` connections, `batch` at a time; the replies, in order. */
async function blast(
  port: number,
  lines: string[],
  conns = CONNS,
  batch = 200,
): Promise<(string | undefined)[]> {
  const out: (string | undefined)[] = new Array(lines.length);
  const per = Math.ceil(lines.length / conns);
  await Promise.all(
    Array.from({ length: conns }, async (_, c) => {
      const conn = await LineConn.open(port);
      for (let i = c * per; i < Math.min(lines.length, (c + 1) * per); i += batch) {
        const chunk = lines.slice(i, Math.min(i + batch, (c + 1) * per, lines.length));
        const r = await conn.batch(chunk);
        r.forEach((x, j) => {
          out[i + j] = x;
        });
      }
      conn.close();
    }),
  );
  return out;
}

/** One connection per bad line (binary or overlong): each must be closed, the server must count it. */
async function badClients(
  port: number,
  maxLine: number,
): Promise<{ closed: number; sent: Record<RejectReason, number> }> {
  const bins = sample(hostileBytes(60), BAD_EACH, SEED + 7).map((b) =>
    // one line: a newline inside would make a text line of its first part
    Buffer.concat([Buffer.from('x'), b.filter((x) => x !== 0x0a), Buffer.from([0x00, 0xff, 0x0a])]),
  );
  const longs = sample(fc.integer({ min: maxLine + 2, max: maxLine * 3 }), BAD_EACH, SEED + 8).map((n) =>
    Buffer.from(`${'y'.repeat(n)}\n`),
  );
  let closed = 0;
  await Promise.all(
    [...bins, ...longs].map(async (b) => {
      const c = await LineConn.open(port);
      c.write(b);
      await c.closed;
      closed++;
    }),
  );
  return { closed, sent: { binary: bins.length, overlong: longs.length } as Record<RejectReason, number> };
}

function rejectsOf(s: LineServer): Record<string, number> {
  return Object.fromEntries(s.rejects);
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

interface DriverCase {
  name: string;
  server: LineServer;
  stats: { ok: number; errors: Map<string, number> };
  lines: fc.Arbitrary<string>;
  good: [string, RegExp];
  maxLine: number;
  /** waits until the service can take the good request (its limits recover by themselves) */
  settle?: () => Promise<unknown>;
}

describe('hostile input: every port (10k fuzzed lines each, over a few connections)', () => {
  it('pooling drivers (cpupooling, eventnet, memorypooling, cloudfs): one reply per request, every error counted by code', async () => {
    const variables = new VariableTable({ name: 'fuzz-drivers' });
    const root = tempDir('cloudfs');
    const outside = join(tempDir('outside'), 'x');
    mkdirSync(outside);
    const cpu = new CpuPooling({ variables, port: 0 });
    const ev = new EventNet({ dir: tempDir('eventnet'), port: 0 });
    const mem = new MemoryPooling({ variables, port: 0 });
    const fs = new CloudFs({ variables, root, port: 0, fdIdleMs: 1_000 });
    await Promise.all([cpu.start(), ev.start(), mem.start(), fs.start()]);
    const cases: DriverCase[] = [
      {
        name: 'cpupooling',
        server: cpu.server,
        stats: cpu.stats,
        lines: callLines(
          ['virgo_clone', 'virgo_clone_local', 'fib', 'sum', 'echo', 'loadavg'],
          ['sleep_ms_', '__proto__', 'constructor', 'require', '/bin/sh', 'eval'],
        ),
        good: ['virgo_clone(fib,30)', /^node=\S+ rule=\S+ result=832040$/],
        maxLine: 8192,
      },
      {
        name: 'eventnet',
        server: ev.server,
        stats: ev.stats,
        lines: fc.oneof(
          callLines(['eventnet_edgemsg']),
          fc
            .tuple(
              fc.constantFrom('eventnet_edgemsg', 'eventnet_vertexmsg', 'eventnet_vertextmsg'),
              fc.array(hostileText(20), { maxLength: 5 }),
            )
            .map(([h, a]) => [h, ...a].join('#')),
        ),
        good: ['eventnet_edgemsg#a#b#', /^ok/],
        maxLine: 8192,
      },
      {
        name: 'memorypooling',
        server: mem.server,
        stats: mem.stats,
        lines: callLines(['virgo_cloud_malloc', 'virgo_cloud_set', 'virgo_cloud_get', 'virgo_cloud_free']),
        good: ['virgo_cloud_malloc(16)', /^\d+$/],
        maxLine: 8192,
      },
      {
        name: 'cloudfs',
        server: fs.server,
        stats: fs.stats,
        lines: fc.oneof(
          callLines(['virgo_cloud_open', 'virgo_cloud_read', 'virgo_cloud_write', 'virgo_cloud_close']),
          fc
            .constantFrom('../x', '/etc/passwd', 'a/../../x', '..', '.', '', '\\..\\x', `${'a/'.repeat(10)}f`)
            .map((p) => `virgo_cloud_open(${p})`),
        ),
        good: ['virgo_cloud_open(good.txt)', /^\d+$/],
        maxLine: 65_536 + 256,
        // the fuzz may hold every descriptor: idle ones are closed after fdIdleMs
        settle: () => waitFor(() => fs.openFiles < 256, 'cloudfs to close idle descriptors', 10_000),
      },
    ];
    try {
      for (const [i, c] of cases.entries()) {
        const t0 = performance.now();
        const lines = textLines(c.lines, N, i).map((l) =>
          l.trim() === '' || l.trim().toLowerCase() === 'help' ? 'x' : l,
        );
        const okBefore = c.stats.ok;
        const errBefore = Object.fromEntries(c.stats.errors);
        const replies = await blast(c.server.port, lines);
        const answered = replies.filter((r) => r !== undefined).length;
        const okCount = c.stats.ok - okBefore;
        const errors = diff(Object.fromEntries(c.stats.errors), errBefore);
        const errorLines = replies.filter((r) => r?.startsWith('error: ')).length;
        const rejBefore = rejectsOf(c.server);
        const bad = await badClients(c.server.port, c.maxLine);
        const rej = diff(rejectsOf(c.server), rejBefore);
        await c.settle?.();
        const good = await LineConn.open(c.server.port);
        const answer = await good.request(c.good[0]);
        good.close();
        report.fuzz({
          surface: `port: ${c.name} driver`,
          via: 'port',
          cases: N + bad.closed,
          crashes: errors.internal ?? 0,
          accepted: okCount,
          rejects: { ...errors, ...rej },
          servesAfter: c.good[1].test(answer ?? ''),
          ms: Math.round(performance.now() - t0),
        });
        expect(answered, `${c.name}: one reply per request`).toBe(N);
        expect(errors.internal ?? 0, `${c.name}: internal errors`).toBe(0);
        expect(okCount + Object.values(errors).reduce((a, b) => a + b, 0)).toBe(N);
        expect(errorLines).toBe(Object.values(errors).reduce((a, b) => a + b, 0));
        expect(bad.closed).toBe(2 * BAD_EACH);
        expect(rej).toEqual(bad.sent);
        expect(answer).toMatch(c.good[1]);
      }
      // nothing was created outside the cloudfs root
      expect(readdirSync(outside)).toEqual([]);
    } finally {
      await Promise.all([cpu.close(), ev.close(), mem.close(), fs.close()]);
    }
  }, 180_000);

  it('VIRGO queue :60000 and submit(): every request answered, every acknowledged payload persisted byte for byte', async () => {
    const dir = tempDir('queue');
    const q = await startQueueService({ dir, listen: { host: '127.0.0.1', port: 0 }, zmq: false });
    const t0 = performance.now();
    const lines = textLines(hostileText(200), N, 11);
    const replies = await blast(q.port, lines, 10, 100);
    const outcome = new Tally();
    const acked: string[] = [];
    replies.forEach((r, i) => {
      if (r?.startsWith('REPLY#')) {
        outcome.add('replied');
        // the server drops one trailing CR (telnet); lone surrogates travelled as U+FFFD
        acked.push(Buffer.from(lines[i]!.replace(/\r$/, ''), 'utf8').toString('utf8'));
      } else outcome.add(r === undefined ? 'unanswered' : (r.split(' ')[0] ?? 'other'));
    });
    // in-process submits (device replies) with the same hostile payloads
    const subs = sample(fc.oneof(hostileText(200, true), fc.constant('')), N, SEED + 12);
    const submitted = new Tally();
    for (let i = 0; i < subs.length; i += 200) {
      await Promise.all(
        subs.slice(i, i + 200).map(async (s) => {
          try {
            await q.submit(s, '127.0.0.9');
            submitted.add('ok');
            // submit() drops one trailing LF, then one trailing CR
            acked.push(Buffer.from(s.replace(/\n$/, '').replace(/\r$/, ''), 'utf8').toString('utf8'));
          } catch (err) {
            if (!(err instanceof TypeError)) throw err;
            submitted.add(err.message.replace(/^.*: /, '').replace(/\d+/g, 'N'));
          }
        }),
      );
    }
    const bad = await badClients(q.port, 4096);
    const good = await LineConn.open(q.port);
    const answer = await good.request('a good request after the fuzzing');
    good.close();
    const stats = q.stats();
    await q.close();
    const stored = await storedRequests(dir);
    const lostPayloads = acked.filter((p) => {
      const n = stored.get(p) ?? 0;
      if (n > 0) stored.set(p, n - 1);
      return n === 0;
    });
    const lost = lostPayloads.length;
    if (lost > 0)
      console.log(
        JSON.stringify({
          lost: lostPayloads.slice(0, 5),
          left: [...stored].filter(([, n]) => n > 0).slice(0, 5),
        }),
      );
    report.fuzz({
      surface: 'port: VIRGO queue :60000 and submit()',
      via: 'port',
      cases: 2 * N + bad.closed,
      crashes: stats.kingcobra.handlerErrors + stats.kingcobra.notQueued,
      accepted: acked.length,
      rejects: { ...outcome.without('replied'), ...submitted.without('ok'), lost },
      servesAfter: /^REPLY#/.test(answer ?? ''),
      ms: Math.round(performance.now() - t0),
    });
    expect(outcome.counts.unanswered ?? 0).toBe(0);
    // the only refusal a text line can get here is an empty request
    expect(Object.keys(outcome.without('replied'))).toEqual(outcome.counts.ERROR ? ['ERROR'] : []);
    expect(lost).toBe(0);
    expect(bad.closed).toBe(2 * BAD_EACH);
    expect(answer).toMatch(/^REPLY#/);
  }, 180_000);

  it('feeder :64000 client lines: ignored and counted, never answered; binary and overlong lines drop only their client', async () => {
    const feeder = await startFeeder({ listen: { host: '127.0.0.1', port: 0 }, snapshotDelayMs: 0 });
    for (let i = 0; i < 50; i++) feeder.update({ key: `fuzz.k${i}`, value: `v${i}`, host: `h${i % 3}` });
    const t0 = performance.now();
    const lines = textLines(
      fc.oneof(
        { weight: 8, arbitrary: hostileText(200) },
        {
          weight: 1,
          arbitrary: fc
            .tuple(fc.constantFrom('HOST', 'host', 'HOST ', 'HOST\t'), hostileText(20))
            .map(([h, x]) => h + x),
        },
        {
          weight: 1,
          arbitrary: fc.constantFrom('KERNEL_ANALYTICS_STREAMING_START', '', 'HOST *', 'HOST h1'),
        },
      ),
      N,
      21,
    );
    // what the feeder must ignore: not blank, not the start line, not HOST [name]
    const ignorable = lines.filter((l) => {
      const t = l.replace(/\r$/, '').trim();
      return t !== '' && t !== 'KERNEL_ANALYTICS_STREAMING_START' && !/^HOST(?:\s+(\S+))?$/i.test(t);
    }).length;
    const before = feeder.stats().ignoredLines;
    const conns = await Promise.all(Array.from({ length: CONNS }, () => LineConn.open(feeder.port)));
    const per = Math.ceil(lines.length / CONNS);
    for (const [i, c] of conns.entries()) c.write(`${lines.slice(i * per, (i + 1) * per).join('\n')}\n`);
    await waitFor(
      () => feeder.stats().ignoredLines - before >= ignorable,
      'the feeder to read every line',
      30_000,
    );
    const dropsBefore = { ...feeder.stats().drops };
    const bad = await badClients(feeder.port, 1024);
    // every fuzzing client is still connected and still served: a change reaches all of them
    // (once back on every host: the fuzz may have selected another)
    for (const c of conns) c.write('HOST *\n');
    await waitFor(() => feeder.stats().catchingUp === 0, 'the snapshots');
    feeder.update({ host: 'h0', key: 'fuzz.after', value: 'yes' });
    await waitFor(
      () => conns.every((c) => c.lines.includes('h0/fuzz.after=yes') || c.isClosed),
      'the change on every connection',
    );
    const s = feeder.stats();
    const stillOpen = conns.filter((c) => !c.isClosed).length;
    // k=v lines only, and '#' notices (no '=') for a HOST selection with nothing to send: the feeder
    // never answered a client line with anything else
    const notKv = conns
      .flatMap((c) => c.lines)
      .filter((l) => !/^[A-Za-z0-9_.:/-]+=/.test(l) && !/^# HOST[^=]*$/.test(l));
    for (const c of conns) c.destroy();
    await feeder.close();
    const drops = diff(s.drops, dropsBefore);
    report.fuzz({
      surface: 'port: feeder :64000 (client lines)',
      via: 'port',
      cases: N + bad.closed,
      crashes: 0,
      accepted: N - ignorable,
      rejects: { ignored: s.ignoredLines - before, ...drops },
      servesAfter: stillOpen === CONNS,
      ms: Math.round(performance.now() - t0),
    });
    expect(s.ignoredLines - before).toBe(ignorable);
    expect(stillOpen).toBe(CONNS);
    expect(notKv).toEqual([]);
    expect(drops).toEqual(bad.sent);
  }, 120_000);

  it('ring-buffer consumer fed by a raw socket: every line is a pair or a reject counted by reason, and it goes on', async () => {
    const chunks = sample(
      fc.oneof(
        {
          weight: 4,
          arbitrary: fc.tuple(validKey(1, 16), hostileText(60)).map(([k, v]) => Buffer.from(`${k}=${v}\n`)),
        },
        {
          weight: 4,
          arbitrary: hostileBytes(80).map((b) =>
            Buffer.concat([b.filter((x) => x !== 0x0a) as Buffer, Buffer.from('\n')]),
          ),
        },
        {
          weight: 1,
          arbitrary: fc.integer({ min: 1200, max: 5000 }).map((n) => Buffer.from(`k=${'v'.repeat(n)}\n`)),
        },
      ),
      N,
      SEED + 31,
    );
    const stream = Buffer.concat(chunks);
    // the oracle: the same bytes through a parser of our own, reading as a consumer that selects
    // no host does (the every-host view: host/key=value split at the first '/')
    const want = new Tally();
    const oracle = new KvLineParser(
      () => want.add('pair'),
      (r) => want.add(r),
      { qualified: true },
    );
    oracle.push(stream);
    let peer: Socket | undefined;
    const server = createServer((s) => {
      peer = s;
      // odd-sized writes: lines cut anywhere, as TCP may deliver them
      let at = 0;
      const pump = () => {
        while (at < stream.length) {
          const n = 1 + ((at * 7919) % 4096);
          const more = s.write(stream.subarray(at, at + n));
          at += n;
          if (!more) {
            s.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const t0 = performance.now();
    const consumer = new RingConsumer({ port, name: 'fuzz-consumer', maxVariables: N * 2, reconnect: false });
    const expectedPairs = want.counts.pair ?? 0;
    const rejected = () => Object.values(consumer.stats().rejects).reduce((a, b) => a + b, 0);
    await waitFor(
      () => consumer.stats().pairs + rejected() >= want.total,
      'the consumer to read the fuzzed stream',
      30_000,
    ).catch((err) => {
      console.log(JSON.stringify({ want: want.counts, got: consumer.stats() }));
      throw err;
    });
    peer!.write('good.after=1\n');
    await waitFor(() => consumer.table.get('good.after') === '1', 'a good line after the fuzzing');
    const s = consumer.stats();
    await consumer.close();
    peer?.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    const rejects = Object.fromEntries(Object.entries(s.rejects).filter(([, n]) => n > 0));
    report.fuzz({
      surface: 'port: ring-buffer consumer fed by a raw socket server',
      via: 'port',
      cases: N,
      crashes: 0,
      accepted: s.pairs - 1,
      rejects,
      servesAfter: s.connected || s.connects === 1,
      ms: Math.round(performance.now() - t0),
    });
    expect(s.pairs - 1).toBe(expectedPairs);
    expect(rejects).toEqual(want.without('pair'));
    expect(s.connects).toBe(1);
  }, 60_000);
});
