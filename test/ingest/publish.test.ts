// publish-logs on the in-process bus: raw lines keyed by host, and --follow across rotation,
// truncation and a file that does not exist yet. The poll fallback is set to a minute, so the test
// only passes if change events drive the follower.
import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { type BusMessage, MemoryBus } from '../../bus/index.ts';
import { LineSplitter, type PublishProgress, publishLogs } from '../../ingest/index.ts';
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
