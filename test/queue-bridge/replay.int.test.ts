// Replay of the segment log into the bus: in order, keyed by id, resumable, idempotent for a
// consumer that dedupes by key, in virtual time with --tdf; into the real broker, read by kcat.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { type Bus, type BusMessage, CONTENT_TYPES, HEADERS, KafkaBus, MemoryBus } from '../../bus/index.ts';
import {
  importLegacy,
  openSegmentLog,
  type ReplayClock,
  ReplayError,
  replay,
  type SegmentLog,
} from '../../queue-bridge/index.ts';
import { codecFor, type KingCobraMessage } from '../../schemas/index.ts';
import { collect } from '../helpers/bus.ts';
import { LEGACY_QUEUE as LEGACY } from '../helpers/fixtures.ts';
import { kcatConsume, kcatValues } from '../helpers/kcat.ts';
import { BROKERS, unique, virgo, waitFor } from '../helpers/services.ts';
import { cleanupDirs, msg, tempDir } from './lib/queue.ts';

afterAll(cleanupDirs);

const codec = codecFor('KingCobraMessage');

async function logWith(records: KingCobraMessage[], dir = tempDir()): Promise<SegmentLog> {
  const log = await openSegmentLog(dir, { maxSegmentBytes: 400 });
  for (const r of records) await log.append(r);
  return log;
}

/** Every message of a MemoryBus topic, from the beginning. */
async function drain(bus: Bus, topic: string, expected: number): Promise<BusMessage[]> {
  const sub = await collect(bus, topic);
  const got = sub.got;
  await waitFor(() => got.length >= expected, `${expected} messages on ${topic}`);
  await sub.close();
  return got;
}

const keys = (ms: BusMessage[]) => ms.map((m) => m.key!.toString());

describe('replay into the bus', () => {
  it('publishes every record in order, keyed by id, Avro single-object with the schema headers', async () => {
    const records = Array.from({ length: 12 }, (_, i) =>
      i % 2 ? msg(i, { kind: 'REPLY', inReplyTo: `t-${i - 1}` }) : msg(i),
    );
    const log = await logWith(records);
    const bus = new MemoryBus();
    const progress: number[] = [];
    const r = await replay({
      log,
      bus,
      topic: 'kc',
      batchSize: 5,
      onProgress: (p) => progress.push(p.published),
    });
    expect(r).toMatchObject({ published: 12, skipped: 0, startOffset: 0, nextOffset: 12 });
    expect(progress).toEqual([5, 10, 12]);
    const got = await drain(bus, 'kc', 12);
    expect(keys(got)).toEqual(records.map((m) => m.id));
    expect(got.map((m) => codec.decode(m.value!))).toEqual(records);
    expect(got[0]!.headers).toEqual({
      [HEADERS.contentType]: CONTENT_TYPES.avro,
      [HEADERS.schema]: codec.fingerprintHex,
    });
    const onlyRequests = await replay({ log, bus, topic: 'kc-req', kinds: ['REQUEST'], checkpoint: false });
    expect(onlyRequests).toMatchObject({ published: 6, skipped: 6 });
    await log.close();
    await bus.close();
  });

  it('resumes from its checkpoint: a second replay adds nothing, new records follow in order', async () => {
    const log = await logWith([0, 1, 2, 3, 4].map((i) => msg(i)));
    const bus = new MemoryBus();
    expect((await replay({ log, bus, topic: 'kc' })).published).toBe(5);
    expect(await replay({ log, bus, topic: 'kc' })).toMatchObject({ published: 0, skipped: 5 });
    for (const i of [5, 6]) await log.append(msg(i));
    expect(await replay({ log, bus, topic: 'kc' })).toMatchObject({ published: 2, startOffset: 5 });
    // another topic (or cluster) has its own checkpoint
    expect((await replay({ log, bus, topic: 'kc-other' })).published).toBe(7);
    expect(keys(await drain(bus, 'kc', 7))).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `t-${i}`));
    await log.close();
    await bus.close();
  });

  it('interrupted and resumed, or re-sent after a crash before the checkpoint: a consumer deduping by key sees each record once', async () => {
    const records = Array.from({ length: 20 }, (_, i) => msg(i));
    const log = await logWith(records);
    const bus = new MemoryBus();
    // interrupted after the second batch
    const ac = new AbortController();
    const first = await replay({
      log,
      bus,
      topic: 'kc',
      batchSize: 3,
      signal: ac.signal,
      onProgress: (p) => p.published >= 6 && ac.abort(),
    });
    expect(first.published).toBeLessThan(20);
    // the broker takes a batch, then the process dies before the checkpoint
    let publishes = 0;
    const crashing: Bus = Object.assign(Object.create(bus) as Bus, {
      publish: async (topic: string, messages: Parameters<Bus['publish']>[1]) => {
        const res = await bus.publish(topic, messages);
        if (++publishes === 2) throw new Error('killed after publishing, before the checkpoint');
        return res;
      },
    });
    await expect(replay({ log, bus: crashing, topic: 'kc', batchSize: 3 })).rejects.toThrow(/killed/);
    const last = await replay({ log, bus, topic: 'kc', batchSize: 3 });
    expect(last.nextOffset).toBe(20);
    const got = keys(await drain(bus, 'kc', 20));
    // the re-sent batch is there twice, with the same keys
    expect(got.length).toBe(23);
    const deduped = got.filter((k, i) => got.indexOf(k) === i);
    expect(deduped).toEqual(records.map((r) => r.id));
    // an explicit --from-offset re-sends with the same keys too
    await replay({ log, bus, topic: 'kc', fromOffset: 15 });
    const again = keys(await drain(bus, 'kc', 28));
    expect(new Set(again)).toEqual(new Set(records.map((r) => r.id)));
    await log.close();
    await bus.close();
  });

  it('refuses a checkpoint that does not match the log (a replaced queue directory)', async () => {
    const dir = tempDir();
    const log = await logWith([msg(0), msg(1)], dir);
    const bus = new MemoryBus();
    await replay({ log, bus, topic: 'kc' });
    await log.close();
    // another log in its place (a deleted segment alone would be noticed through MANIFEST.json,
    // and its offsets never reused: the replay would go on with the new records)
    for (const f of ['00000000000000000000.kclog', 'MANIFEST.json']) rmSync(`${dir}/${f}`);
    const other = await logWith([msg(7), msg(8), msg(9)], dir);
    await expect(replay({ log: other, bus, topic: 'kc' })).rejects.toThrow(ReplayError);
    await expect(replay({ log: other, bus, topic: 'kc' })).rejects.toThrow(
      /checkpoint .* says offset 1 is t-1, but the log has t-8 .*--from-offset/,
    );
    expect((await replay({ log: other, bus, topic: 'kc', fromOffset: 0 })).published).toBe(3);
    const cp = readdirSync(dir).find((n) => n.startsWith('replay-kc-'))!;
    writeFileSync(`${dir}/${cp}`, '{"nextOffset": 2, trunc');
    await expect(replay({ log: other, bus, topic: 'kc' })).rejects.toThrow(
      /checkpoint .* is unreadable .*delete it/,
    );
    await other.close();
    await bus.close();
  });

  it('--tdf replays the recorded gaps divided by the factor, from the first record (virtual time)', async () => {
    const at = (s: number, i: number) => msg(i, { ts_sec: 1_492_426_582 + s, ts_nsec: 0 });
    const log = await logWith([at(0, 0), at(10, 1), at(10, 2), at(40, 3)]);
    const bus = new MemoryBus();
    let now = 0;
    const sleeps: number[] = [];
    const publishedAt: number[] = [];
    const clock: ReplayClock = {
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
    };
    const r = await replay({
      log,
      bus,
      topic: 'kc',
      tdf: 10,
      clock,
      checkpoint: false,
      onProgress: (p) => publishedAt.push(now, p.published, p.virtualTime!.getTime()),
    });
    expect(r.published).toBe(4);
    expect(sleeps).toEqual([1000, 3000]);
    // published: r0 at 0 ms, r1+r2 at 1000 ms (virtual +10 s), r3 at 4000 ms (virtual +40 s)
    expect(publishedAt).toEqual([
      0, 1, 1_492_426_582_000, 1000, 3, 1_492_426_592_000, 4000, 4, 1_492_426_622_000,
    ]);
    await expect(replay({ log, bus, tdf: 0 })).rejects.toThrow(/positive number/);
    await log.close();
    await bus.close();
  });

  it('--since starts at the first record at or after the time', async () => {
    const log = await logWith([0, 1, 2, 3, 4].map((i) => msg(i)));
    const bus = new MemoryBus();
    const r = await replay({ log, bus, topic: 'kc', since: new Date((1_700_000_000 + 3) * 1000) });
    expect(r).toMatchObject({ published: 2, skipped: 3, startOffset: 3, nextOffset: 5 });
    expect(keys(await drain(bus, 'kc', 2))).toEqual(['t-3', 't-4']);
    await log.close();
    await bus.close();
  });

  it('into the real broker: kcat -C reads the records back in order, with headers and decodable values', async () => {
    const dir = tempDir();
    const records = [
      ...(await importLegacy(LEGACY)),
      msg(100),
      msg(101, { kind: 'REPLY', inReplyTo: 't-100' }),
    ];
    const log = await logWith(records, dir);
    await log.close();
    const topic = unique('kc-replay');
    const bus = new KafkaBus({ brokers: BROKERS });
    const r = await replay({ log: dir, bus, topic });
    expect(r.published).toBe(37);
    await bus.close();
    const listed = await kcatConsume(topic, '%p %o %k|%h\n');
    expect(listed.code).toBe(0);
    const lines = listed.stdout.trim().split('\n');
    expect(lines.map((l) => l.split('|')[0])).toEqual(records.map((m, i) => `0 ${i} ${m.id}`));
    expect(new Set(lines.map((l) => l.split('|')[1]))).toEqual(
      new Set([`content-type=avro/binary,virgo-schema=${codec.fingerprintHex}`]),
    );
    const raw = await kcatValues(topic, { offset: '34', count: 1 });
    expect(codec.decode(raw)).toEqual(records[34]);

    // the CLI: a second run finds the checkpoint and publishes nothing
    const again = await virgo(['replay', '--queue', dir, '--brokers', BROKERS.join(','), '--topic', topic]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^replayed 37 records to .* \(offsets 0-36, 0 skipped\)/);
    const third = await virgo(['replay', '--queue', dir, '--brokers', BROKERS.join(','), '--topic', topic]);
    expect(third.stdout).toMatch(/^replayed 0 records .*nothing new, 37 skipped/);
    const count = await kcatConsume(topic, '%k\n');
    // the library run and the CLI run have separate checkpoints (different targets): two copies,
    // same keys in the same order
    expect(count.stdout.trim().split('\n')).toEqual([...records, ...records].map((m) => m.id));
    const usage = await virgo(['replay', '--queue', dir]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/--brokers/);
  });
});
