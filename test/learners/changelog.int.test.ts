// The learner-state changelog store on the real broker (learners/changelog.ts, docs/design.md
// §7.6): a host's parts read back as written, a part over CHUNK_BYTES in chunks and a shrunk one's
// spare chunks tombstoned; the local copy (changelog.bin) restores what the topic has nothing
// newer of, the topic is read only past the offsets the copy covers, and a damaged copy costs a
// read from the start, nothing else.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KafkaBus } from '../../bus/index.ts';
import { CHUNK_BYTES, ChangelogStore, encodeHostParts, stateTopicSpec } from '../../learners/changelog.ts';
import { closeAfterEach } from '../helpers/cleanup.ts';
import { BROKERS, unique } from '../helpers/services.ts';

const track = closeAfterEach();

async function write(
  bus: KafkaBus,
  topic: string,
  host: string,
  partition: number,
  parts: Record<string, string | null>,
  before = new Map<string, number>(),
) {
  const e = encodeHostParts(host, partition, new Map(Object.entries(parts)), before);
  await bus.publish(topic, e.messages);
  return e.chunks;
}

async function store(bus: KafkaBus, topic: string, cachePath?: string): Promise<ChangelogStore> {
  const s = new ChangelogStore({ bus, topic, timeoutMs: 30_000, ...(cachePath ? { cachePath } : {}) });
  await s.start();
  return track(s);
}

describe('learner-state changelog store (real broker)', () => {
  it('restores from the local copy what the topic has nothing newer of, and reads only past it', async () => {
    const bus = track(new KafkaBus({ brokers: BROKERS }));
    const topic = unique('learner-state');
    await bus.ensureTopics([stateTopicSpec(topic, 2)]);
    await write(bus, topic, 'h1', 0, { ufw: '{"n":1}', gate: '[]' });
    await write(bus, topic, 'h2', 1, { ufw: '{"n":2}' });
    const cache = join(mkdtempSync(join(tmpdir(), 'virgo-changelog-')), 'changelog.bin');

    const first = await store(bus, topic, cache);
    expect(await first.readTo([0, 1])).toBe(true);
    expect(first.hostsIn(0)).toEqual(['h1']);
    const h1 = first.assemble('h1')!;
    expect(h1.parts.get('ufw')).toEqual({ n: 1 });
    expect(h1.fromCache).toBe(false);
    expect(first.counts).toEqual({ read: 3, cached: 0 });
    first.saveCache();
    await first.close();

    // h2 moves on while no instance runs
    await write(bus, topic, 'h2', 1, { ufw: '{"n":3}' });
    const second = await store(bus, topic, cache);
    expect(await second.readTo([0, 1])).toBe(true);
    // the copy covered the three records before; only the newer one came from the topic
    expect(second.counts).toEqual({ read: 1, cached: 3 });
    const again = second.assemble('h1')!;
    expect(again.fromCache).toBe(true);
    expect(again.parts.get('ufw')).toEqual({ n: 1 });
    const h2 = second.assemble('h2')!;
    expect(h2.fromCache).toBe(false);
    expect(h2.parts.get('ufw')).toEqual({ n: 3 });
    await second.close();

    // a damaged copy: the topic from its start, the same state
    writeFileSync(cache, Buffer.from('not a copy'));
    const third = await store(bus, topic, cache);
    expect(await third.readTo([0, 1])).toBe(true);
    expect(third.counts).toEqual({ read: 4, cached: 0 });
    expect(third.assemble('h2')!.parts.get('ufw')).toEqual({ n: 3 });
  }, 120_000);

  it('a part over the chunk size goes in chunks; shrunk, its spare chunks are tombstoned', async () => {
    const bus = track(new KafkaBus({ brokers: BROKERS }));
    const topic = unique('learner-state-chunks');
    await bus.ensureTopics([stateTopicSpec(topic, 1)]);
    // base64 of random bytes gzips to no less than the random bytes: about 1.5 chunks
    const big = JSON.stringify({ blob: randomBytes(CHUNK_BYTES * 1.5).toString('base64') });
    const chunks = await write(bus, topic, 'h', 0, { model: big });
    expect(chunks.get('model')).toBe(2);
    const s = await store(bus, topic);
    expect(s.assemble('h')!.text.get('model')).toBe(big);
    await write(bus, topic, 'h', 0, { model: '{"small":true}' }, chunks);
    expect(await s.readTo([0])).toBe(true);
    const r = s.assemble('h')!;
    expect(r.parts.get('model')).toEqual({ small: true });
    expect(r.chunks.get('model')).toBe(1);
    // a part gone: its records tombstoned, the host gone from the copy
    await write(bus, topic, 'h', 0, { model: null }, r.chunks);
    expect(await s.readTo([0])).toBe(true);
    expect(s.assemble('h')).toBeUndefined();
    expect(s.hosts()).toEqual([]);
  }, 120_000);
});
