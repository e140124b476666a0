// The VIRGO queue service end to end: telnet-style clients (a Node socket and the real nc),
// ZeroMQ DEALER and REQ clients, in-process submit, backpressure, bad input, recovery.
import { afterAll, describe, expect, it } from 'vitest';
import type { Dealer } from 'zeromq';
import {
  type Handler,
  type LogRecord,
  openSegmentLog,
  QueueBusyError,
  type QueueService,
  startQueueService,
} from '../../queue-bridge/index.ts';
import { LineClient } from '../helpers/line-client.ts';
import { run, waitFor } from '../helpers/services.ts';
import { cleanupDirs, msg, tempDir } from './lib/queue.ts';

afterAll(cleanupDirs);

const LOCAL = { host: '127.0.0.1', port: 0 };
const REPLY = /^REPLY#([\w-]+)#127\.0\.0\.1:(\d+):(\d+) (.*)$/;
const echo: Handler = async (req) => `echo:${req.payload}`;

async function records(dir: string): Promise<LogRecord[]> {
  const log = await openSegmentLog(dir, { readOnly: true });
  const out: LogRecord[] = [];
  for await (const r of log.read()) out.push(r);
  await log.close();
  return out;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function dealer(endpoint: string): Promise<Dealer> {
  const zmq = await import('zeromq');
  const d = new zmq.Dealer({ linger: 0 });
  d.connect(endpoint);
  return d;
}

describe('VIRGO queue service', () => {
  it('a telnet-style client gets REPLY#<id>#<ip>:<sec>:<nsec> lines in order; requests and replies are persisted', async () => {
    const dir = tempDir();
    const svc = await startQueueService({ dir, listen: LOCAL });
    const c = new LineClient(svc.port);
    await c.connected();
    c.write('first request\nsecond one\r\nthird\n');
    await c.until(() => c.lines.length === 3, 'three replies');
    const parsed = c.lines.map((l) => REPLY.exec(l));
    expect(parsed.every((m) => m !== null)).toBe(true);
    expect(parsed[0]![4]).toBe(':--- from kingcobra_servicerequest_kernelspace() to client');
    c.end();
    await svc.close();
    const recs = await records(dir);
    const reqs = recs.filter((r) => r.message.kind === 'REQUEST');
    const reps = recs.filter((r) => r.message.kind === 'REPLY');
    expect(reqs.map((r) => r.message.payload)).toEqual(['first request', 'second one', 'third']);
    expect(reqs.map((r) => r.message.id)).toEqual(parsed.map((m) => m![1]));
    // the reply's timestamp is its request's
    expect(reqs.map((r) => `${r.message.ts_sec}:${r.message.ts_nsec}`)).toEqual(
      parsed.map((m) => `${m![2]}:${m![3]}`),
    );
    expect(reps.map((r) => r.message.inReplyTo)).toEqual(reqs.map((r) => r.message.id));
    expect(reqs.every((r) => r.message.clientAddr === '127.0.0.1')).toBe(true);
  });

  it('the real nc gets its replies, even when it half-closes right after sending (nc -N)', async () => {
    const dir = tempDir();
    const svc = await startQueueService({ dir, listen: LOCAL, handler: echo });
    const r = await run('nc', ['-N', '127.0.0.1', String(svc.port)], 'alpha\nbeta gamma\n');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.map((l) => REPLY.exec(l)?.[4])).toEqual(['echo:alpha', 'echo:beta gamma']);
    await svc.close();
  });

  it('ZeroMQ DEALER clients are served concurrently, each in its own order; REQ clients work too', async () => {
    const dir = tempDir();
    let running = 0;
    let maxRunning = 0;
    const svc = await startQueueService({
      dir,
      listen: false,
      zmq: 'tcp://127.0.0.1:0',
      workers: 3,
      handler: async (req) => {
        maxRunning = Math.max(maxRunning, ++running);
        await new Promise((r) => setImmediate(r));
        running--;
        return `echo:${req.payload}`;
      },
    });
    expect(svc.port).toBe(0);
    expect(svc.zmqEndpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    const dealers = await Promise.all([1, 2, 3].map(() => dealer(svc.zmqEndpoint!)));
    const N = 40;
    const got = await Promise.all(
      dealers.map(async (d, k) => {
        for (let i = 0; i < N; i++) await d.send(`d${k}-${i}`);
        const replies: string[] = [];
        for (let i = 0; i < N; i++) replies.push((await d.receive())[0]!.toString());
        return replies;
      }),
    );
    got.forEach((replies, k) => {
      expect(replies.map((l) => /^REPLY#[\w-]+#zmq:\S+:\d+:\d+ (.*)$/.exec(l)?.[1])).toEqual(
        Array.from({ length: N }, (_, i) => `echo:d${k}-${i}`),
      );
    });
    // several peers were in the handler at once, never more than the workers
    expect(maxRunning).toBeGreaterThan(1);
    expect(maxRunning).toBeLessThanOrEqual(3);
    const zmq = await import('zeromq');
    const req = new zmq.Request({ linger: 0 });
    req.connect(svc.zmqEndpoint!);
    await req.send('from a REQ socket');
    expect((await req.receive())[0]!.toString()).toMatch(/ echo:from a REQ socket$/);
    // bad ZeroMQ input: an error reply, nothing persisted, the peer is still served
    const d = dealers[0]!;
    await d.send(Buffer.from([0x66, 0x00, 0xff]));
    expect((await d.receive())[0]!.toString()).toBe(
      'ERROR bad request: binary data (NUL or invalid UTF-8) is not a request',
    );
    await d.send(['two', 'frames']);
    expect((await d.receive())[0]!.toString()).toMatch(/^ERROR bad request: 2 frames/);
    await d.send('x'.repeat(5000));
    expect((await d.receive())[0]!.toString()).toMatch(/^ERROR bad request: request longer than 4096 bytes/);
    await d.send('still here');
    expect((await d.receive())[0]!.toString()).toMatch(/ echo:still here$/);
    for (const x of [...dealers, req]) x.close();
    await svc.close();
    const recs = await records(dir);
    expect(recs.filter((r) => r.message.kind === 'REQUEST')).toHaveLength(3 * N + 2);
  });

  it('FIFO per client with bounded workers; a full queue answers BUSY at once', async () => {
    const dir = tempDir();
    const gate = deferred();
    const order: string[] = [];
    const svc = await startQueueService({
      dir,
      listen: LOCAL,
      zmq: 'tcp://127.0.0.1:0',
      workers: 1,
      maxQueue: 3,
      handler: async (req) => {
        order.push(req.payload);
        await gate.promise;
        return 'done';
      },
    });
    const first = svc.submit('dev-1', 'drone-1');
    const second = svc.submit('dev-2', 'drone-1');
    const third = svc.submit('dev-3', 'webcam-1');
    await waitFor(() => order.length === 1, 'the first request in the handler');
    // the queue is full (3 in flight): every front says BUSY, nothing hangs
    await expect(svc.submit('dev-4', 'drone-1')).rejects.toThrow(QueueBusyError);
    await expect(svc.submit('dev-4', 'drone-1')).rejects.toThrow(
      /^BUSY 3 requests in flight \(limit 3\); try again later$/,
    );
    const c = new LineClient(svc.port);
    c.send('tcp request');
    await c.until(() => c.lines.length === 1, 'busy line');
    expect(c.lines[0]).toBe('BUSY 3 requests in flight (limit 3); try again later');
    const d = await dealer(svc.zmqEndpoint!);
    await d.send('zmq request');
    expect((await d.receive())[0]!.toString()).toMatch(/^BUSY /);
    expect(svc.stats().kingcobra).toMatchObject({ inflight: 3, busy: 4 });
    gate.resolve();
    const done = await Promise.all([first, second, third]);
    expect(done.map((r) => r.reply)).toEqual(['done', 'done', 'done']);
    expect(done[0]!.line).toMatch(/^REPLY#[\w-]+#drone-1:\d+:\d+ done$/);
    // one worker, FIFO per client: drone-1's second request waits for its first, and webcam-1's
    // request is not held up behind it
    expect(order).toEqual(['dev-1', 'dev-3', 'dev-2']);
    c.send('after the rush');
    await c.until(() => c.lines.length === 2, 'reply after busy');
    expect(c.lines[1]).toMatch(/^REPLY#/);
    c.end();
    d.close();
    await svc.close();
    const payloads = (await records(dir))
      .filter((r) => r.message.kind === 'REQUEST')
      .map((r) => r.message.payload);
    expect(payloads).toEqual(['dev-1', 'dev-2', 'dev-3', 'after the rush']);
  });

  it('bad lines close that client only; the server and other clients go on; nothing of theirs is stored', async () => {
    const dir = tempDir();
    const svc = await startQueueService({ dir, listen: LOCAL, maxLineBytes: 100, handler: echo });
    const good = new LineClient(svc.port);
    good.send('before');
    await good.until(() => good.lines.length === 1, 'first reply');
    const long = new LineClient(svc.port);
    long.send('y'.repeat(500));
    await long.until(() => long.closed, 'overlong client closed');
    expect(long.lines).toEqual(['error: line longer than 100 bytes']);
    const binary = new LineClient(svc.port);
    binary.write(Buffer.from([0x68, 0x69, 0x00, 0xfe, 0x0a]));
    await binary.until(() => binary.closed, 'binary client closed');
    expect(binary.lines).toEqual(['error: binary data (NUL or invalid UTF-8) is not a text line']);
    const half = new LineClient(svc.port);
    half.write('a half line with no newline');
    half.end();
    await half.until(() => half.closed, 'half-line client closed');
    expect(half.lines).toEqual([]);
    good.send('');
    good.send('after');
    await good.until(() => good.lines.length === 3, 'more replies');
    expect(good.lines[1]).toBe('ERROR empty request; send one payload per line');
    expect(REPLY.exec(good.lines[2]!)?.[4]).toBe('echo:after');
    await expect(svc.submit('two\nlines', 'drone-1')).rejects.toThrow(/one line/);
    good.end();
    await svc.close();
    const payloads = (await records(dir))
      .filter((r) => r.message.kind === 'REQUEST')
      .map((r) => r.message.payload);
    expect(payloads).toEqual(['before', 'after']);
  });

  it('handler errors and timeouts become error replies, persisted like any reply', async () => {
    const dir = tempDir();
    const svc: QueueService = await startQueueService({
      dir,
      listen: false,
      handlerTimeoutMs: 50,
      handler: async (req) => {
        if (req.payload === 'boom') throw new Error('boom\nwith a second line');
        if (req.payload === 'slow') return new Promise<string>(() => {});
        return 'fine';
      },
    });
    const [a, b, c] = await Promise.all([
      svc.submit('boom', 'c1'),
      svc.submit('slow', 'c2'),
      svc.submit('ok', 'c3'),
    ]);
    expect(a.reply).toBe('error: boom with a second line');
    expect(b.reply).toBe('error: handler timed out after 50 ms');
    expect(c.reply).toBe('fine');
    expect(svc.stats().kingcobra.handlerErrors).toBe(2);
    await svc.close();
    const replies = (await records(dir))
      .filter((r) => r.message.kind === 'REPLY')
      .map((r) => r.message.payload);
    expect(replies.sort()).toEqual([
      'error: boom with a second line',
      'error: handler timed out after 50 ms',
      'fine',
    ]);
  });

  it('after a crash, durable requests without a reply are handled again; imported history is not', async () => {
    const dir = tempDir();
    const log = await openSegmentLog(dir);
    await log.append(msg(1, { id: 'old-1', payload: 'answered' }));
    await log.append(msg(2, { id: 'old-2', kind: 'REPLY', payload: 'ok', inReplyTo: 'old-1' }));
    await log.append(msg(3, { id: 'old-3', payload: 'crashed before its reply' }));
    await log.append(msg(4, { id: 'legacy-1-2.3-0', payload: 'kingcobra_kernelspace_init' }));
    await log.close();
    const seen: string[] = [];
    const svc = await startQueueService({
      dir,
      listen: false,
      handler: async (req) => {
        seen.push(req.id);
        return 'recovered';
      },
    });
    await waitFor(() => svc.stats().kingcobra.inflight === 0 && seen.length === 1, 'the orphan handled');
    expect(seen).toEqual(['old-3']);
    expect(svc.stats().kingcobra.recovered).toBe(1);
    await svc.close();
    const last = (await records(dir)).at(-1)!.message;
    expect(last).toMatchObject({ kind: 'REPLY', inReplyTo: 'old-3', payload: 'recovered' });
  });

  it('close() lets requests in flight finish and their replies go out', async () => {
    const dir = tempDir();
    const gate = deferred();
    const svc = await startQueueService({
      dir,
      listen: LOCAL,
      handler: async () => {
        await gate.promise;
        return 'late but delivered';
      },
    });
    const c = new LineClient(svc.port);
    c.send('in flight at shutdown');
    await waitFor(() => svc.stats().kingcobra.inflight === 1, 'request in flight');
    const closing = svc.close();
    await expect(svc.submit('too late', 'x')).rejects.toThrow(/shutting down/);
    gate.resolve();
    await closing;
    await c.until(() => c.closed, 'connection closed');
    expect(REPLY.exec(c.lines[0]!)?.[4]).toBe('late but delivered');
  });
});
