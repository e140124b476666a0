// The consumer stage on the in-process bus: events out, garbage to the dead-letter topic with its
// original bytes and reason, oversize lines cut and flagged, offsets committed after processing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type BusMessage, GROUPS, MemoryBus, TOPICS } from '../../bus/index.ts';
import {
  cutUtf8,
  decodeValue,
  type IngestBatchContext,
  ingestMetrics,
  orderMetrics,
  startIngestStage,
  TemplateMiner,
} from '../../ingest/index.ts';
import type { KernelEvent } from '../../schemas/index.ts';
import { codecFor } from '../../schemas/index.ts';
import { waitFor } from '../helpers/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'virgo-stage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('decodeValue', () => {
  it('tells empty, binary and invalid UTF-8 apart', () => {
    expect(decodeValue(null)).toMatchObject({ ok: false, reason: 'empty' });
    expect(decodeValue(Buffer.alloc(0))).toMatchObject({ ok: false, reason: 'empty' });
    expect(decodeValue(Buffer.from(' \t\r\n\r\n'))).toMatchObject({ ok: false, reason: 'empty' });
    expect(decodeValue(Buffer.from([0x41, 0x00, 0x42]))).toMatchObject({ ok: false, reason: 'binary' });
    expect(decodeValue(Buffer.from([0x01, 0x02, 0x03, 0x04, 0xff, 0xfe]))).toMatchObject({
      ok: false,
      reason: 'binary',
    });
    expect(decodeValue(Buffer.from('caf\xe9 au lait', 'latin1'))).toMatchObject({
      ok: false,
      reason: 'invalid-utf8',
    });
    expect(decodeValue(Buffer.from('\x01\x02\x03\x04\x05\x06\x07x'))).toMatchObject({
      ok: false,
      reason: 'binary',
    });
  });

  it('splits lines, drops blank lines, keeps colour escapes and UTF-8 (the parser trims CR)', () => {
    expect(decodeValue(Buffer.from('a\r\n\r\nb  \n\x1b[31mred\x1b[0m é\n'))).toEqual({
      ok: true,
      lines: ['a\r', 'b  ', '\x1b[31mred\x1b[0m é'],
      truncated: [],
    });
  });

  it('cuts oversize lines on a character boundary and says which', () => {
    const long = `${'é'.repeat(40)}x`; // 81 bytes
    const d = decodeValue(Buffer.from(`short\n${long}`), 50);
    expect(d).toMatchObject({ ok: true, truncated: [1] });
    if (!d.ok) throw new Error('unreachable');
    expect(d.lines[1]).toBe('é'.repeat(25));
    expect(cutUtf8('aé', 2)).toBe('a');
  });
});

interface Harness {
  bus: MemoryBus;
  topic: string;
  events: KernelEvent[];
  contexts: IngestBatchContext[];
  dlq: BusMessage[];
}

async function harness(): Promise<Harness> {
  const bus = new MemoryBus();
  const topic = TOPICS.kernelLogs;
  await bus.ensureTopics([
    { topic, partitions: 2 },
    { topic: TOPICS.kernelLogsDlq, partitions: 1 },
  ]);
  const h: Harness = { bus, topic, events: [], contexts: [], dlq: [] };
  await bus.subscribe({
    topics: [TOPICS.kernelLogsDlq],
    groupId: 'dlq-reader',
    fromBeginning: true,
    onBatch: async (b) => void h.dlq.push(...b),
  });
  return h;
}

describe('ingest stage (in-process bus)', () => {
  it('parses, mines and hands events per batch; dead-letters garbage with its bytes; never stops', async () => {
    const h = await harness();
    const deadBefore = (await ingestMetrics.deadLetters.get()).values.reduce((a, v) => a + v.value, 0);
    const stage = await startIngestStage({
      bus: h.bus,
      fromBeginning: true,
      onEvents: async (events, ctx) => {
        h.events.push(...events);
        h.contexts.push(ctx);
      },
    });
    await stage.ready;
    const binary = Buffer.from([0x00, 0x01, 0xff, 0x10, 0x00, 0x7f]);
    const badUtf8 = Buffer.from([0x6c, 0x69, 0x6e, 0x6b, 0x20, 0xc3, 0x28]);
    const huge = `Jun  1 00:00:00 edge-1 kernel: ${'A'.repeat(70_000)}`;
    await h.bus.publish(h.topic, [
      {
        key: 'edge-1',
        value: 'Jun  1 00:00:00 edge-1 kernel: [  12.5] e1000e: eth0 NIC Link is Up 1000 Mbps Full',
      },
      { key: 'edge-1', value: binary },
      { key: 'edge-2', value: '[ 13.0] usb 1-1: USB disconnect, device number 4\r\n' },
      { key: 'edge-2', value: badUtf8 },
      { key: 'edge-2', value: '' },
      { key: 'edge-1', value: huge },
      { key: 'edge-2', value: null },
      { key: 'edge-1', value: 'Jun  1 00:00:01 edge-1 kernel: [  13.5] e1000e: eth0 NIC Link is Down' },
    ]);
    await waitFor(() => h.events.length === 4 && h.dlq.length === 5, 'four events and five dead letters');

    const byHost = (host: string) => h.events.filter((e) => e.host === host);
    const [up, cut, down] = byHost('edge-1');
    expect(up).toMatchObject({
      family: 'link',
      fields: { iface: 'eth0', state: 'up' },
      mono: 12.5,
      program: 'kernel',
      flags: [],
      // driver names with digits are variables too
      template: '<*>: <*> NIC Link is Up <*> Mbps Full',
      params: ['e1000e', 'eth0', '1000'],
    });
    expect(cut!.flags).toEqual(['truncated']);
    expect(Buffer.byteLength(cut!.message)).toBeLessThanOrEqual(64 * 1024);
    expect(down).toMatchObject({ fields: { state: 'down' }, templateId: expect.any(String) });
    // the line has no host: the message key names it
    expect(byHost('edge-2')[0]).toMatchObject({
      family: 'usb',
      fields: { event: 'disconnect', devnum: '4' },
    });
    // events are valid Avro KernelEvents
    for (const e of h.events)
      expect(codecFor('KernelEvent').decode(codecFor('KernelEvent').encode(e))).toEqual(e);

    const reasons = h.dlq.map((m) => m.headers['virgo-error']!.split(':')[0]).sort();
    expect(reasons).toEqual(['binary', 'empty', 'empty', 'invalid-utf8', 'truncated']);
    const bin = h.dlq.find((m) => m.headers['virgo-error']!.startsWith('binary'))!;
    expect(bin.value).toEqual(binary);
    expect(bin.key?.toString()).toBe('edge-1');
    expect(bin.headers['virgo-source']).toMatch(new RegExp(`^${h.topic}/\\d/\\d+$`));
    expect(h.dlq.find((m) => m.headers['virgo-error']!.startsWith('invalid-utf8'))!.value).toEqual(badUtf8);
    expect(h.dlq.find((m) => m.headers['virgo-error']!.startsWith('truncated'))!.value!.toString()).toBe(
      huge,
    );

    const st = stage.stats();
    expect(st).toMatchObject({ messages: 8, lines: 4, events: 4, deadLettered: 4, truncated: 1 });
    expect(st.byReason).toEqual({ binary: 1, 'invalid-utf8': 1, empty: 2, truncated: 1 });
    expect(st.byFamily.link).toBe(2);
    const deadAfter = (await ingestMetrics.deadLetters.get()).values.reduce((a, v) => a + v.value, 0);
    expect(deadAfter - deadBefore).toBe(4);
    expect(h.contexts.every((c) => c.topic === h.topic && c.hosts.length > 0)).toBe(true);
    await stage.close();
    await h.bus.close();
  });

  it('counts the templates the miner evicts past its cap (virgo_ingest_templates_evicted_total)', async () => {
    const h = await harness();
    const miner = new TemplateMiner({ maxTemplates: 4 });
    const evictedTotal = async () => (await ingestMetrics.templatesEvicted.get()).values[0]?.value ?? 0;
    const before = await evictedTotal();
    const seen: string[] = [];
    const stage = await startIngestStage({
      bus: h.bus,
      miner,
      fromBeginning: true,
      onEvents: async (events) => void seen.push(...events.map((e) => e.message)),
    });
    // 1 to 12 words: a template each (a template never spans token counts), 12 > 4 held
    const lines = Array.from({ length: 12 }, (_, k) =>
      Array.from({ length: k + 1 }, (_, w) => `w${w}`).join(' '),
    );
    await h.bus.publish(
      h.topic,
      lines.map((l) => ({ key: 'h', value: `kernel: ${l}` })),
    );
    await waitFor(() => seen.length === lines.length, 'every line mined');
    const evicted = miner.stats().evicted;
    expect(evicted).toBeGreaterThanOrEqual(8);
    await waitFor(async () => (await evictedTotal()) - before === evicted, 'the counter caught up');
    // a stage over a miner that has evicted already counts only what it evicts itself
    await stage.close();
    const again = await startIngestStage({
      bus: h.bus,
      miner,
      fromBeginning: false,
      onEvents: async () => {},
    });
    await h.bus.publish(h.topic, [{ key: 'h', value: 'kernel: a b c d e f g h i j k l m' }]);
    await waitFor(() => miner.stats().evicted > evicted, 'one more eviction');
    await waitFor(
      async () => (await evictedTotal()) - before === miner.stats().evicted,
      'the counter rose by that one too',
    );
    await again.close();
    await h.bus.close();
  });

  it('commits after processing: a restarted stage in the same group goes on where it stopped', async () => {
    const h = await harness();
    const miner = new TemplateMiner();
    const seen: string[] = [];
    const start = () =>
      startIngestStage({
        bus: h.bus,
        miner,
        fromBeginning: true,
        onEvents: async (events) => void seen.push(...events.map((e) => e.message)),
      });
    let stage = await start();
    await h.bus.publish(h.topic, [{ key: 'h', value: 'kernel: one' }]);
    await waitFor(() => seen.length === 1, 'first event');
    await stage.close();
    await h.bus.publish(h.topic, [{ key: 'h', value: 'kernel: two' }]);
    stage = await start();
    await waitFor(() => seen.length === 2, 'second event');
    expect(seen).toEqual(['one', 'two']);
    await stage.close();
    await h.bus.close();
  });

  it('a failing consumer gets the same batch again (at-least-once), and the default group is virgo-learners', async () => {
    const h = await harness();
    let calls = 0;
    const got: string[] = [];
    const stage = await startIngestStage({
      bus: h.bus,
      fromBeginning: true,
      onEvents: async (events) => {
        calls++;
        if (calls === 1) throw new Error('learner not ready');
        got.push(...events.map((e) => e.message));
      },
    });
    await h.bus.publish(h.topic, [{ key: 'h', value: 'kernel: retry me' }]);
    await waitFor(() => got.length === 1, 'redelivered batch');
    expect(got).toEqual(['retry me']);
    expect(stage.stats().events).toBe(1);
    await stage.close();
    // the group's offset was committed under the default group id
    const seen: string[] = [];
    const again = await h.bus.subscribe({
      topics: [h.topic],
      groupId: GROUPS.learners,
      onBatch: async (b) => void seen.push(...b.map((m) => m.value!.toString())),
    });
    await h.bus.publish(h.topic, [{ key: 'h', value: 'after' }]);
    await waitFor(() => seen.length === 1, 'only the new message');
    expect(seen).toEqual(['after']);
    await again.close();
    await h.bus.close();
  });

  it('puts an unkeyed host spread over partitions back in event-time order, dropping a re-sent copy', async () => {
    const h = await harness();
    const got: KernelEvent[] = [];
    const stage = await startIngestStage({
      bus: h.bus,
      fromBeginning: true,
      onEvents: async (e) => void got.push(...e),
    });
    await stage.ready;
    const line = (i: number) =>
      `2024-06-01T00:${String(i).padStart(2, '0')}:00Z edge-9 kernel: [UFW BLOCK] SRC=203.0.113.${i} DPT=22 ID=${i}`;
    // partition 1 gets the first half, partition 0 the second: the consumer reads partition 0 first
    await h.bus.publish(h.topic, [
      ...Array.from({ length: 10 }, (_, i) => ({ value: line(i + 10), partition: 0 })),
      ...Array.from({ length: 10 }, (_, i) => ({ value: line(i), partition: 1 })),
    ]);
    await waitFor(() => got.length === 20, 'twenty events');
    expect(got.map((e) => e.ts)).toEqual([...got.map((e) => e.ts)].sort((a, b) => a - b));
    // the same lines again: the learners took them already
    await h.bus.publish(h.topic, [
      { value: line(3), partition: 0 },
      { value: line(15), partition: 1 },
    ]);
    await waitFor(() => stage.stats().duplicates === 2, 'two duplicates');
    expect(stage.stats()).toMatchObject({ events: 20, late: 0, lines: 22 });
    await stage.close();
    await h.bus.close();
  });

  it("dead-letters a late line with its message's exact key and bytes (ASCII, trailing LF, UTF-8)", async () => {
    const h = await harness();
    const stage = await startIngestStage({ bus: h.bus, fromBeginning: true, onEvents: async () => {} });
    await stage.ready;
    const at = (hh: string, rest: string) => `2024-06-01T${hh}:00:00Z edge-7 kernel: ${rest}`;
    await h.bus.publish(h.topic, [{ key: 'edge-7', value: at('02', 'eth0 NIC Link is Up'), partition: 0 }]);
    await waitFor(() => stage.stats().events === 1, 'the newest line');
    // an hour behind the host's watermark: late; the waiting lines must not keep the fetch's
    // bytes, so what is sent is a copy or the line's UTF-8, and either must be the original
    const late = [
      Buffer.from(at('01', 'usb 1-1: new device')),
      Buffer.from(`${at('01', 'usb 1-1: gone')}\n`),
      Buffer.from(at('01', 'fs: \u00e9t\u00e9 \u{1f600} mounted')),
    ];
    await h.bus.publish(
      h.topic,
      late.map((value) => ({ key: 'edge-7', value, partition: 0 })),
    );
    await waitFor(() => h.dlq.length === 3, 'three late lines dead-lettered');
    expect(stage.stats()).toMatchObject({ late: 3 });
    expect(h.dlq.map((m) => m.headers['virgo-error']!.split(':')[0])).toEqual(['late', 'late', 'late']);
    expect(h.dlq.map((m) => m.value)).toEqual(late);
    expect(h.dlq.map((m) => m.key?.toString())).toEqual(['edge-7', 'edge-7', 'edge-7']);
    await stage.close();
    await h.bus.close();
  });

  it('pauses a partition that reads ahead of the event-time watermark, and still delivers every line in order', async () => {
    const h = await harness();
    const pausesBefore = (await orderMetrics.paused.get()).values.reduce((a, v) => a + v.value, 0);
    const got: KernelEvent[] = [];
    let maxBuffered = 0;
    const stage = await startIngestStage({
      bus: h.bus,
      fromBeginning: true,
      maxBatch: 20,
      alignAt: 10,
      onEvents: async (e) => {
        got.push(...e);
        maxBuffered = Math.max(maxBuffered, stage.order.merger.stats().buffered);
      },
    });
    await stage.ready;
    const line = (p: number, s: number) =>
      `2024-06-01T01:${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}Z edge-${p} kernel: [UFW BLOCK] SRC=203.0.113.${p} DPT=22 ID=${s}`;
    // both partitions cover the same hour of event time; read 20 at a time, the one read first
    // runs ahead of the other and must wait for it instead of filling the buffer
    await h.bus.publish(h.topic, [
      ...Array.from({ length: 200 }, (_, s) => ({ value: line(0, s * 10), partition: 0 })),
      ...Array.from({ length: 200 }, (_, s) => ({ value: line(1, s * 10 + 5), partition: 1 })),
    ]);
    await waitFor(() => got.length === 400, 'four hundred events');
    expect(got.map((e) => e.ts)).toEqual([...got.map((e) => e.ts)].sort((a, b) => a - b));
    const pauses = (await orderMetrics.paused.get()).values.reduce((a, v) => a + v.value, 0) - pausesBefore;
    expect(pauses).toBeGreaterThan(0);
    // never more than what the bound allows plus the batch in hand of each partition
    expect(maxBuffered).toBeLessThanOrEqual(10 + 2 * 20);
    expect(stage.stats()).toMatchObject({ events: 400, late: 0 });
    await stage.close();
    await h.bus.close();
  });

  it('says when lines not keyed by their host are read by one of several consumers (the host is split)', async () => {
    const h = await harness();
    const before = (await orderMetrics.unkeyedSplit.get()).values.reduce((a, v) => a + v.value, 0);
    const got: KernelEvent[] = [];
    const a = await startIngestStage({
      bus: h.bus,
      fromBeginning: true,
      onEvents: async (e) => void got.push(...e),
    });
    const b = await startIngestStage({
      bus: h.bus,
      fromBeginning: true,
      onEvents: async (e) => void got.push(...e),
    });
    await h.bus.publish(
      h.topic,
      Array.from({ length: 4 }, (_, i) => ({ value: `2024-06-01T00:00:0${i}Z edge-9 kernel: line ${i}` })),
    );
    await waitFor(() => got.length === 4, 'four events');
    const after = (await orderMetrics.unkeyedSplit.get()).values.reduce((x, v) => x + v.value, 0);
    expect(after - before).toBe(4);
    await a.close();
    await b.close();
    await h.bus.close();
  });
});
