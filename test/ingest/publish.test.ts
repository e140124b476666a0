// publish-logs on the in-process bus: raw lines keyed by host, the linger that sends a partial
// batch of a slow source, --follow across rotation, truncation and a file that does not exist yet,
// and the checkpoint a restarted publisher resumes from. The poll fallback is set to a minute, so
// the tests only pass if change events drive the follower.
import {
  appendFileSync,
  copyFileSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Bus,
  type BusMessage,
  MemoryBus,
  type OutgoingMessage,
  type PublishOptions,
  type PublishResult,
} from '../../bus/index.ts';
import {
  type Checkpoint,
  checkpointPath,
  type FollowEvent,
  LineSplitter,
  type PublishLogsOptions,
  type PublishProgress,
  publishLogs,
} from '../../ingest/index.ts';
import { waitFor } from '../helpers/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'virgo-publish-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function collect(bus: MemoryBus, topic: string): Promise<BusMessage[]> {
  const got: BusMessage[] = [];
  await bus.ensureTopics([{ topic, partitions: 1 }]);
  await bus.subscribe({
    topics: [topic],
    groupId: 'reader',
    fromBeginning: true,
    onBatch: async (b) => void got.push(...b),
  });
  return got;
}

const values = (ms: BusMessage[]) => ms.map((m) => m.value!.toString());

describe('LineSplitter', () => {
  it('joins lines split across chunks and strips CR', () => {
    const s = new LineSplitter();
    expect(s.push(Buffer.from('a\r\nb')).map(String)).toEqual(['a']);
    expect(s.push(Buffer.from('c\nd')).map(String)).toEqual(['bc']);
    expect(s.pending).toBe(1);
    expect(s.flush().map(String)).toEqual(['d']);
    expect(s.flush()).toEqual([]);
  });

  it('gives each line the offset just past its LF', () => {
    const s = new LineSplitter();
    const ends: number[] = [];
    s.push(Buffer.from('ab\r\ncd'), ends, 100);
    s.push(Buffer.from('e\nf'), ends, 106);
    s.flush(ends, 108);
    expect(ends).toEqual([104, 108, 108]);
  });
});

/** The in-process bus, recording each publish call: which lines went out together, and when. */
class RecordingBus implements Bus {
  readonly kind = 'memory' as const;
  readonly sends: { at: number; values: string[] }[] = [];
  constructor(private readonly inner = new MemoryBus()) {}
  ensureTopics = (specs: Parameters<Bus['ensureTopics']>[0]) => this.inner.ensureTopics(specs);
  subscribe = (o: Parameters<Bus['subscribe']>[0]) => this.inner.subscribe(o);
  topicOffsets = (t: string) => this.inner.topicOffsets(t);
  close = () => this.inner.close();
  async publish(topic: string, messages: OutgoingMessage[], _opts?: PublishOptions): Promise<PublishResult> {
    const r = await this.inner.publish(topic, messages);
    this.sends.push({ at: Date.now(), values: messages.map((m) => String(m.value)) });
    return r;
  }
}

describe('publishLogs: linger (a slow source flows at once)', () => {
  it('sends a partial batch lingerMs after its first line while the source stays open', async () => {
    const bus = new RecordingBus();
    const stdin = new PassThrough();
    const run = publishLogs({ bus, source: '-', stdin, topic: 'logs', lingerMs: 150, host: 'h' });
    for (let round = 1; round <= 3; round++) {
      const t0 = Date.now();
      stdin.write(`a${round}\nb${round}\nc${round}\n`);
      await waitFor(() => bus.sends.length === round, `round ${round} published`);
      const send = bus.sends[round - 1]!;
      // one batch for the three lines, sent by the linger (not by a full batch, not by the end)
      expect(send.values).toEqual([`a${round}`, `b${round}`, `c${round}`]);
      expect(send.at - t0).toBeGreaterThanOrEqual(140);
      expect(send.at - t0).toBeLessThan(1_000);
    }
    stdin.end();
    const r = await run;
    expect(r.lines).toBe(9);
    expect(r.firstAckMs).toBeDefined();
    await bus.close();
  });

  it('lingerMs 0 sends each chunk at once; batchBytes and batchSize still bound a batch', async () => {
    const bus = new RecordingBus();
    const stdin = new PassThrough();
    const run = publishLogs({
      bus,
      source: '-',
      stdin,
      topic: 'logs',
      lingerMs: 0,
      batchBytes: 250,
      batchSize: 3,
      host: 'h',
    });
    stdin.write('one\n');
    await waitFor(() => bus.sends.length === 1, 'the first line sent without waiting');
    const hundred = (c: string) => c.repeat(100);
    stdin.write(`${['x', 'y', 'z', 'w'].map(hundred).join('\n')}\n`);
    await waitFor(() => bus.sends.length === 3, 'the long lines, two per batch by bytes');
    stdin.write('1\n2\n3\n4\n');
    stdin.end();
    await run;
    const sizes = bus.sends.map((s) => s.values.length);
    expect(sizes).toEqual([1, 2, 2, 3, 1]);
    await bus.close();
  });

  it('reports progress of the last lines within progressEveryMs, not only at the next batch', async () => {
    const bus = new MemoryBus();
    const stdin = new PassThrough();
    const seen: PublishProgress[] = [];
    const run = publishLogs({
      bus,
      source: '-',
      stdin,
      topic: 'logs',
      lingerMs: 10,
      progressEveryMs: 300,
      onProgress: (p) => seen.push(p),
      host: 'h',
    });
    stdin.write('a\n');
    await waitFor(() => seen.some((p) => p.lines === 1), 'progress after the first line');
    stdin.write('b\n');
    // throttled: reported by the trailing timer, with no further line to trigger it
    await waitFor(() => seen.some((p) => p.lines === 2), 'progress of the second line');
    stdin.end();
    await run;
    expect(seen.at(-1)).toMatchObject({ lines: 2, done: true });
    await bus.close();
  });

  it('counts what the consumer will dead-letter, by the same rule, and skips empty lines', async () => {
    const bus = new MemoryBus();
    const got = await collect(bus, 'logs');
    const stdin = Readable.from([
      Buffer.concat([
        Buffer.from('good line\n\n'),
        Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x0a]),
        Buffer.from('   \n\x01\x02\x03\x04\n'),
      ]),
    ]);
    const r = await publishLogs({ bus, source: '-', stdin, topic: 'logs', host: 'h' });
    expect(r).toMatchObject({
      lines: 4,
      deadLettered: 3,
      byReason: { 'invalid-utf8': 1, empty: 1, binary: 1 },
      skippedEmpty: 1,
    });
    await waitFor(() => got.length === 4, 'every non-empty line published raw');
    await bus.close();
  });
});

describe('publishLogs', () => {
  it('publishes raw lines from a stream, keyed by the host each line names, else this host', async () => {
    const bus = new MemoryBus();
    const got = await collect(bus, 'logs');
    const progress: PublishProgress[] = [];
    const input = [
      'Jun 14 15:16:01 combo sshd[1]: first',
      '',
      '[ 12.5] e1000e: eth0 NIC Link is Down',
      '<13>1 2024-01-02T03:04:05Z edge-5 app - - - third\r',
      'caf\xe9 latin-1 bytes stay as they are',
    ];
    const stdin = Readable.from([Buffer.from(input.join('\n'), 'latin1')]);
    const r = await publishLogs({
      bus,
      source: '-',
      stdin,
      topic: 'logs',
      batchSize: 2,
      onProgress: (p) => progress.push(p),
    });
    expect(r.lines).toBe(4);
    await waitFor(() => got.length === 4, 'four messages');
    expect(got.map((m) => m.key!.toString())).toEqual(['combo', hostname(), 'edge-5', hostname()]);
    expect(got.every((m) => m.headers['content-type'] === 'text/plain')).toBe(true);
    expect(got[2]!.value!.toString()).toBe('<13>1 2024-01-02T03:04:05Z edge-5 app - - - third');
    expect(got[3]!.value).toEqual(Buffer.from(input[4]!, 'latin1'));
    expect(progress.at(-1)).toMatchObject({ lines: 4, done: true });
    await bus.close();
  });

  it('--host keys every line', async () => {
    const bus = new MemoryBus();
    const got = await collect(bus, 'logs');
    const file = join(dir, 'plain.log');
    writeFileSync(file, 'Jun 14 15:16:01 combo sshd[1]: a\nb\n');
    await publishLogs({ bus, source: file, topic: 'logs', host: 'edge-9', compression: 'none' });
    await waitFor(() => got.length === 2, 'two messages');
    expect(got.map((m) => m.key!.toString())).toEqual(['edge-9', 'edge-9']);
    await bus.close();
  });

  it('follows a file like tail -F: creation, appends, rotation, truncation, partial lines', async () => {
    const bus = new MemoryBus();
    const got = await collect(bus, 'logs');
    const file = join(dir, 'kern.log');
    const ac = new AbortController();
    const events: string[] = [];
    const run = publishLogs({
      bus,
      source: file,
      follow: true,
      topic: 'logs',
      host: 'h',
      signal: ac.signal,
      pollMs: 60_000,
      onFollow: (what) => events.push(what),
    });
    // the file does not exist yet
    await waitFor(() => events.includes('waiting'), 'the follower waiting for the file');
    writeFileSync(file, 'one\ntwo\n');
    await waitFor(() => got.length === 2, 'lines of the new file');
    appendFileSync(file, 'three\n');
    await waitFor(() => got.length === 3, 'an appended line');
    // a partial line waits for its end
    appendFileSync(file, 'four ');
    appendFileSync(file, 'continued\n');
    await waitFor(() => got.length === 4, 'the completed line');
    // rotation: the old file gets one more line after the rename, then a new file appears
    renameSync(file, `${file}.1`);
    appendFileSync(`${file}.1`, 'five (old file)\n');
    writeFileSync(file, `six (new file) ${'x'.repeat(200)}\n`);
    await waitFor(() => got.length === 6, 'lines of both files');
    // truncation (copytruncate): read again from the start
    truncateSync(file, 0);
    appendFileSync(file, 'seven\n');
    await waitFor(() => got.length === 7, 'the line after truncation');
    expect(events).toEqual(expect.arrayContaining(['waiting', 'opened', 'rotated', 'truncated']));
    ac.abort();
    const r = await run;
    expect(r.lines).toBe(7);
    expect(values(got)).toEqual([
      'one',
      'two',
      'three',
      'four continued',
      'five (old file)',
      `six (new file) ${'x'.repeat(200)}`,
      'seven',
    ]);
    await bus.close();
  });

  it('a broken bus ends the run with its error', async () => {
    const bus = new MemoryBus();
    await bus.close();
    const file = join(dir, 'x.log');
    writeFileSync(file, 'a\n');
    await expect(publishLogs({ bus, source: file, topic: 'logs', ensureTopic: false })).rejects.toThrow(
      /closed/,
    );
  });
});

describe('publishLogs --follow: checkpoints and rotation', () => {
  const lines = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix} ${i + 1}`);
  const text = (ls: string[]) => `${ls.join('\n')}\n`;

  /** One publisher run on `file` (checkpointed under `state`), stopped by stop(). */
  function follower(bus: MemoryBus, file: string, state: string, extra: Partial<PublishLogsOptions> = {}) {
    const ac = new AbortController();
    const events: { what: FollowEvent; path: string }[] = [];
    const checkpoint = checkpointPath(state, file, 'logs');
    const run = publishLogs({
      bus,
      source: file,
      follow: true,
      topic: 'logs',
      host: 'h',
      signal: ac.signal,
      pollMs: 60_000,
      checkpoint,
      onFollow: (what, path) => events.push({ what, path }),
      ...extra,
    });
    const saved = (): Checkpoint | undefined => {
      try {
        return JSON.parse(readFileSync(checkpoint, 'utf8')) as Checkpoint;
      } catch {
        return undefined;
      }
    };
    return {
      run,
      events,
      saved,
      checkpoint,
      stop: async () => {
        ac.abort();
        return run;
      },
    };
  }

  /** A followed file with `first` in it, published and checkpointed by a running follower. */
  async function followed(name: string, first: string[]) {
    const bus = new MemoryBus();
    const got = await collect(bus, 'logs');
    const d = mkdtempSync(join(dir, `${name}-`));
    const file = join(d, 'kern.log');
    writeFileSync(file, text(first));
    const a = follower(bus, file, d);
    await waitFor(() => a.saved()?.position.offset === statSync(file).size, 'the first lines checkpointed');
    return { bus, got, d, file, a };
  }

  it('a restart resumes after the last acknowledged line, in the format documented', async () => {
    const { bus, got, d, file, a } = await followed('cp', lines('first', 5));
    const cp = a.saved()!;
    const st = statSync(file);
    expect(cp).toMatchObject({
      version: 1,
      source: file,
      topic: 'logs',
      position: { path: file, dev: st.dev, ino: st.ino, offset: st.size, fingerprintBytes: st.size },
    });
    expect(cp.position.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(a.checkpoint).toBe(join(d, 'publish-logs', `kern.log-${a.checkpoint.slice(-17, -5)}.json`));
    await a.stop();
    // written while no publisher runs, the last line still unterminated
    appendFileSync(file, `${text(lines('second', 2))}half`);
    const b = follower(bus, file, d);
    await waitFor(() => got.length === 7, 'the two new lines');
    expect(b.events.map((e) => e.what)).toContain('resumed');
    // the unterminated line is not sent at stop: the checkpoint stays before it
    await b.stop();
    appendFileSync(file, ' line\n');
    const c = follower(bus, file, d);
    await waitFor(() => got.length === 8, 'the completed line');
    await c.stop();
    expect(values(got)).toEqual([...lines('first', 5), ...lines('second', 2), 'half line']);
    await bus.close();
  });

  it('rotated by rename + create while stopped: finishes the old file, then reads the new one', async () => {
    const { bus, got, d, file, a } = await followed('mv', lines('old', 3));
    await a.stop();
    appendFileSync(file, text(lines('old late', 2)));
    renameSync(file, `${file}.1`);
    writeFileSync(file, text(lines('new', 4)));
    const b = follower(bus, file, d);
    await waitFor(() => got.length === 9, 'every line');
    expect(b.events).toContainEqual({ what: 'resumed', path: `${file}.1` });
    await b.stop();
    expect(values(got)).toEqual([...lines('old', 3), ...lines('old late', 2), ...lines('new', 4)]);
    await bus.close();
  });

  it('copytruncate while stopped, refilled past the old position: the copy, then the refill from 0', async () => {
    const { bus, got, d, file, a } = await followed('ct', lines('before', 3));
    await a.stop();
    appendFileSync(file, text(lines('before late', 2)));
    copyFileSync(file, `${file}.1`);
    truncateSync(file, 0);
    writeFileSync(file, text(lines('after the truncation, longer than before', 6)));
    const b = follower(bus, file, d);
    await waitFor(() => got.length === 11, 'every line');
    await b.stop();
    expect(values(got)).toEqual([
      ...lines('before', 3),
      ...lines('before late', 2),
      ...lines('after the truncation, longer than before', 6),
    ]);
    await bus.close();
  });

  it('live copytruncate refilled past the old position before the follower looks: nothing lost', async () => {
    const { bus, got, file, a } = await followed('live-ct', lines('one', 4));
    // One synchronous block, as logrotate's copytruncate can outpace a follower: new lines, the
    // copy, the truncation and a refill longer than the old file, all before the follower runs.
    appendFileSync(file, text(lines('unread', 2)));
    copyFileSync(file, `${file}.1`);
    truncateSync(file, 0);
    appendFileSync(file, text(lines('refill, longer than what was there', 8)));
    await waitFor(() => got.length === 14, 'the unread lines (from the copy) and the whole refill');
    expect(a.events.map((e) => e.what)).toContain('truncated');
    // and without a copy beside it (compressed at once): the refill is still read from its start
    appendFileSync(file, text(lines('more', 1)));
    await waitFor(() => got.length === 15, 'one more line');
    rmSync(`${file}.1`);
    truncateSync(file, 0);
    appendFileSync(file, text(lines('second refill, much longer than anything before it was', 12)));
    await waitFor(() => got.length === 27, 'the second refill');
    await a.stop();
    expect(values(got)).toEqual([
      ...lines('one', 4),
      ...lines('unread', 2),
      ...lines('refill, longer than what was there', 8),
      ...lines('more', 1),
      ...lines('second refill, much longer than anything before it was', 12),
    ]);
    await bus.close();
  });

  it('live rename + create with lines on both sides: the old file to its end, the new from 0', async () => {
    const { bus, got, file, a } = await followed('live-mv', lines('one', 3));
    appendFileSync(file, text(lines('unread', 2)));
    renameSync(file, `${file}.1`);
    appendFileSync(`${file}.1`, text(lines('late write to the old file', 1)));
    writeFileSync(file, text(lines('new file, longer than the old one', 9)));
    await waitFor(() => got.length === 15, 'every line');
    await waitFor(() => a.saved()?.position.path === file, 'the checkpoint on the new file');
    expect(a.saved()!.position.ino).toBe(statSync(file).ino);
    await a.stop();
    expect(values(got)).toEqual([
      ...lines('one', 3),
      ...lines('unread', 2),
      ...lines('late write to the old file', 1),
      ...lines('new file, longer than the old one', 9),
    ]);
    await bus.close();
  });

  it('an unreadable checkpoint is reported and ignored: the file is sent again, not skipped', async () => {
    const bus = new MemoryBus();
    const got = await collect(bus, 'logs');
    const d = mkdtempSync(join(dir, 'bad-cp-'));
    const file = join(d, 'kern.log');
    writeFileSync(file, text(lines('line', 3)));
    const cp = checkpointPath(d, file, 'logs');
    const a = follower(bus, file, d);
    await waitFor(() => got.length === 3, 'the lines');
    await a.stop();
    writeFileSync(cp, '{"version": 1, "posit');
    const b = follower(bus, file, d);
    await waitFor(() => got.length === 6, 'the file again');
    await b.stop();
    await bus.close();
  });
});
