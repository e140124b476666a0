// The UFW miner is exact over its sliding window: checked against brute force on generated
// traffic, and against the known answers of the 20 real UFW lines.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UfwLearner } from '../../learners/ufw.ts';
import { Rng, SlidingCounter } from '../../learners/window.ts';
import type { KernelEvent } from '../../schemas/index.ts';
import { ev, parseLines, ufwEvent, ufwSampleLines } from '../helpers/events.ts';

describe('SlidingCounter', () => {
  it('property: counts equal brute force over the window of whole buckets', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 5_000 }), fc.constantFrom('a', 'b', 'c', 'd')), {
          maxLength: 300,
        }),
        fc.integer({ min: 1, max: 8 }),
        (items, buckets) => {
          const c = new SlidingCounter(100, buckets);
          const kept: [number, string][] = [];
          for (const [ts, k] of items) if (c.add(ts, k)) kept.push([ts, k]);
          if (c.head === null) return;
          const oldest = c.head - buckets + 1;
          const want = new Map<string, number>();
          for (const [ts, k] of kept) if (Math.floor(ts / 100) >= oldest) want.set(k, (want.get(k) ?? 0) + 1);
          expect(new Map([...c.counts].sort())).toEqual(new Map([...want].sort()));
          expect(c.total).toBe([...want.values()].reduce((a, b) => a + b, 0));
          expect(kept.length + c.late).toBe(items.length);
          const j = SlidingCounter.fromJSON(JSON.parse(JSON.stringify(c.toJSON())));
          expect(j.counts).toEqual(c.counts);
          expect(j.top()).toEqual(c.top());
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('ufw learner', () => {
  it('finds the known top source, top port and rate on generated traffic with a planted attacker', async () => {
    const rng = new Rng(42);
    const l = new UfwLearner({ windowSec: 300, bucketSec: 10 });
    const t0 = Date.UTC(2024, 0, 1);
    const events: KernelEvent[] = [];
    // background: 1000 blocks from 200 random sources over 10 minutes, ports 1..1000
    for (let i = 0; i < 1000; i++) {
      events.push(ufwEvent('fw1', t0 + rng.int(600_000), `198.51.100.${rng.int(200)}`, 1 + rng.int(1000)));
    }
    // the attacker: 60 blocks to port 22 in the last five minutes
    for (let i = 0; i < 60; i++)
      events.push(ufwEvent('fw1', t0 + 300_000 + rng.int(299_000), '203.0.113.7', 22));
    // allowed packets do not count; neither does another host
    for (let i = 0; i < 100; i++) events.push(ufwEvent('fw1', t0 + 590_000, '203.0.113.99', 443, 'ALLOW'));
    for (let i = 0; i < 500; i++) events.push(ufwEvent('fw2', t0 + 590_000, '192.0.2.1', 80));
    events.sort((a, b) => a.ts - b.ts);
    let last: Awaited<ReturnType<UfwLearner['onEvents']>> = [];
    for (let i = 0; i < events.length; i += 97) last = await l.onEvents(events.slice(i, i + 97));
    const a = l.answer('fw1');
    expect(a.topSrc).toEqual({ ip: '203.0.113.7', count: 60 });
    expect(a.topPort?.port).toBe(22);
    // brute force over the window: the head bucket and the 29 before it
    const head = Math.floor(Math.max(...events.filter((e) => e.host === 'fw1').map((e) => e.ts)) / 10_000);
    const inWindow = events.filter(
      (e) => e.host === 'fw1' && e.fields.action === 'BLOCK' && Math.floor(e.ts / 10_000) > head - 30,
    );
    expect(a.blocks).toBe(inWindow.length);
    expect(a.ratePerMin).toBeCloseTo(inWindow.length / 5, 9);
    expect(l.answer('fw2').topSrc).toEqual({ ip: '192.0.2.1', count: 500 });
    expect(last.length).toBeGreaterThan(0);
  });

  it('property: top source equals brute force (ties to the smallest address)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 0, max: 5 })), {
          minLength: 1,
          maxLength: 200,
        }),
        async (items) => {
          const l = new UfwLearner({ windowSec: 60, bucketSec: 10 });
          const events = items
            .map(([ts, s]) => ufwEvent('h', ts, `10.0.0.${s}`, 1000 + s))
            .sort((a, b) => a.ts - b.ts);
          await l.onEvents(events);
          const head = Math.floor(events[events.length - 1]!.ts / 10_000);
          const counts = new Map<string, number>();
          for (const e of events) {
            if (Math.floor(e.ts / 10_000) > head - 6)
              counts.set(e.fields.SRC!, (counts.get(e.fields.SRC!) ?? 0) + 1);
          }
          const best = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]!;
          expect(l.answer('h').topSrc).toEqual({ ip: best[0], count: best[1] });
        },
      ),
      { numRuns: 100 },
    );
  });

  it('reads the 20 real UFW lines (through ingest) to the original Spark job SRC= answers', async () => {
    const l = new UfwLearner();
    const proposals = await l.onEvents(parseLines(ufwSampleLines()));
    const top = (host: string, key: string) =>
      proposals.filter((p) => p.host === host && p.key === key).at(-1)?.value;
    expect(top('ip-172-30-0-64', 'ufw.top_src_ip')).toBe('46.188.26.149');
    expect(top('ip-172-30-0-64', 'ufw.top_dst_port')).toBe(23);
    expect(top('linode', 'ufw.top_src_ip')).toBe('91.230.47.38');
    expect(top('ubuntu-xenial', 'ufw.top_src_ip')).toBe('10.0.2.2');
    expect(top('myhost', 'ufw.top_dst_port')).toBe(123);
    expect(l.answer('ip-172-30-0-64')).toMatchObject({
      blocks: 8,
      topSrc: { ip: '46.188.26.149', count: 4 },
    });
  });

  it('falls back to the message when the parser gave no typed fields, and ignores other lines', async () => {
    const l = new UfwLearner();
    await l.onEvents([
      ev('h', 1000, '[UFW BLOCK] IN=eth0 OUT= SRC=192.0.2.9 DST=10.0.0.1 PROTO=UDP SPT=1 DPT=53'),
      ev('h', 2000, 'eth0: link up'),
    ]);
    expect(l.answer('h')).toMatchObject({
      blocks: 1,
      topSrc: { ip: '192.0.2.9', count: 1 },
      topPort: { port: 53, count: 1 },
    });
  });
});
