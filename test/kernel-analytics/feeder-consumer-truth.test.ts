// Truth between the feeder and the ring consumer over a real socket: whatever the interleaving of
// a client's snapshot with changes (bursts in one tick, values flipping back and forth, hosts whose
// names are prefixes of one another, a small client buffer that cuts the snapshot into pieces), the
// consumer's table ends equal to the feeder's. No mocks: startFeeder on a free port, RingConsumer.
// Waiting is on the consumer table's change events; the time limit only bounds a failure.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Feeder, RingConsumer, startFeeder } from '../../kernel-analytics/index.ts';

// edge-1 / edge-10 and h / h2: a line of one after a line of the other (what the bench's 16
// hosts edge-0..edge-15 do all the time) once made the consumer file edge-1's value under edge-10.
const HOSTS = ['edge-1', 'edge-10', 'edge', 'h', 'h2'] as const;
const KEYS = ['netbw.congestion_expected', 'k', 'k/1', 'MaxNetworkBandwidth'] as const;
const VALUES = ['true', 'false', '0', '1', 'x'.repeat(300)] as const;

type Op =
  | { t: 'burst'; updates: [number, number, number][] }
  | { t: 'tick' }
  | { t: 'connect' }
  | { t: 'reconnect' }
  /** no more changes until the consumer's table equals the feeder's (a value lost mid-run shows here) */
  | { t: 'settle' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc
      .array(fc.tuple(fc.nat(HOSTS.length - 1), fc.nat(KEYS.length - 1), fc.nat(VALUES.length - 1)), {
        minLength: 1,
        maxLength: 60,
      })
      .map((updates) => ({ t: 'burst' as const, updates })),
    weight: 5,
  },
  { arbitrary: fc.constant({ t: 'tick' as const }), weight: 3 },
  { arbitrary: fc.constant({ t: 'connect' as const }), weight: 3 },
  { arbitrary: fc.constant({ t: 'reconnect' as const }), weight: 1 },
  { arbitrary: fc.constant({ t: 'settle' as const }), weight: 2 },
);

/** The feeder's values the consumer's table lacks or holds otherwise, as `host/key feeder=… consumer=…`. */
function differences(f: Feeder, c: RingConsumer): string[] {
  const out: string[] = [];
  for (const e of f.table.entries()) {
    const got = c.table.get(e.key, e.host);
    if (got !== e.value)
      out.push(`${e.host}/${e.key} feeder=${e.value.slice(0, 8)} consumer=${got?.slice(0, 8)}`);
  }
  for (const e of c.table.entries()) {
    if (f.table.get(e.key, e.host) === undefined) out.push(`${e.host}/${e.key} only in the consumer`);
  }
  return out;
}

/** Resolves when the consumer's table equals the feeder's; rejects with what differs after `ms`. */
function tablesMatch(f: Feeder, c: RingConsumer, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (differences(f, c).length > 0) return;
      clearTimeout(timer);
      c.table.off('change', check);
      resolve();
    };
    const timer = setTimeout(() => {
      c.table.off('change', check);
      reject(new Error(`consumer table never matched the feeder's: ${differences(f, c).join('; ')}`));
    }, ms);
    c.table.on('change', check);
    check();
  });
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('feeder → ring consumer truth (every-host view)', () => {
  it('property: the consumer table ends equal to the feeder table, for any interleaving of snapshot and changes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 25 }),
        fc.constantFrom(1 << 20, 4096),
        async (ops, maxClientBuffer) => {
          const f = await startFeeder({ listen: { port: 0 }, snapshotDelayMs: 0, maxClientBuffer });
          let c: RingConsumer | undefined;
          const open = () =>
            new RingConsumer({ port: f.port, backoff: { initialMs: 1, maxMs: 5 }, name: 'truth-test' });
          try {
            for (const op of ops) {
              if (op.t === 'burst') {
                for (const [h, k, v] of op.updates)
                  f.update({ host: HOSTS[h]!, key: KEYS[k]!, value: VALUES[v]! });
              } else if (op.t === 'tick') await tick();
              else if (op.t === 'connect') c ??= open();
              else if (op.t === 'settle') {
                if (c) await tablesMatch(f, c, 5_000);
              } else if (c) {
                // a new connection into the same table: the snapshot must bring it up to date
                const old = c;
                c = new RingConsumer({
                  port: f.port,
                  table: old.table,
                  backoff: { initialMs: 1, maxMs: 5 },
                  name: 'truth-test',
                });
                await old.close();
              }
            }
            c ??= open();
            await tablesMatch(f, c, 5_000);
            expect(differences(f, c)).toEqual([]);
            // Every line the feeder wrote is a valid pair; only a connection cut mid-line (a
            // reconnect, a slow-reader drop) may leave a 'partial' one.
            const { partial: _cut, ...rejects } = c.stats().rejects;
            expect(Object.entries(rejects).filter(([, n]) => n > 0)).toEqual([]);
          } finally {
            await c?.close();
            await f.close();
          }
        },
      ),
      { numRuns: 150, endOnFailure: true },
    );
  }, 120_000);
});
