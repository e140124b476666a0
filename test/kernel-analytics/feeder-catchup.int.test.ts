// A feeder (re)started on a topic that still holds older rounds of its variables (compaction has
// not run yet) serves its clients only once it has read the topic to its end. On the real broker.
// A regression the reliability suite found (test/reliability).
import { describe, expect, it } from 'vitest';
import { CONTENT_TYPES, HEADERS, KafkaBus, namespaced, TOPICS, topicSpecs } from '../../bus/index.ts';
import { startFeeder } from '../../kernel-analytics/feeder.ts';
import { codecFor } from '../../schemas/index.ts';
import { cleanupAfterEach } from '../helpers/cleanup.ts';
import { LineConn } from '../helpers/line-client.ts';
import { freePort } from '../helpers/ports.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';

describe('feeder catch-up', () => {
  const cleanup = cleanupAfterEach();

  it('a (re)started feeder serves nothing older than its topic: clients wait until it has caught up', async () => {
    // The topic holds several rounds of every variable (compaction has not run yet): a feeder that
    // served while still reading it would hand its clients old values as current.
    const ns = unique('rel-feeder-catchup');
    const bus = namespaced(new KafkaBus({ brokers: BROKERS }), ns);
    cleanup.push(() => bus.close());
    await bus.ensureTopics(topicSpecs(2).filter((t) => t.topic === TOPICS.kernelAnalytics));
    const codec = codecFor('AnalyticsVariable');
    const keys = Array.from({ length: 1500 }, (_, i) => `rel.catchup.k${i}`);
    const rounds = 4;
    for (let r = 0; r < rounds; r++) {
      await bus.publish(
        TOPICS.kernelAnalytics,
        keys.map((key) => ({
          key: `h/${key}`,
          value: codec.encode({
            host: 'h',
            key,
            value: `r${r}`,
            why: '',
            learner: 'test',
            model: 'test',
            confidence: 1,
            ts: Date.now(),
            type: 'string',
            unit: null,
          }),
          headers: { [HEADERS.contentType]: CONTENT_TYPES.avro },
        })),
      );
    }
    // One client gets in the moment the port opens (a consumer reconnecting in a loop does),
    // while the feeder is still subscribing; another connects once startFeeder resolved.
    const port = await freePort();
    const early = (async () => {
      for (;;) {
        try {
          return await LineConn.open(port);
        } catch {
          await new Promise((r) => setImmediate(r));
        }
      }
    })();
    const feeder = await startFeeder({ bus, listen: { host: '127.0.0.1', port }, snapshotDelayMs: 0 });
    cleanup.push(() => feeder.close());
    const first = await early;
    const late = await LineConn.open(feeder.port);
    for (const c of [first, late]) {
      cleanup.push(() => c.destroy());
      c.write('KERNEL_ANALYTICS_STREAMING_START\n');
    }
    for (const c of [first, late]) {
      const latest = new Map<string, string>();
      const stale: string[] = [];
      await waitFor(
        async () => {
          for (;;) {
            const l = c.lines.shift();
            if (l === undefined) break;
            const [k, v] = l.split('=') as [string, string];
            if (v !== `r${rounds - 1}`) stale.push(l);
            latest.set(k, v);
          }
          // no HOST line: the every-host view, host-qualified
          return keys.every((k) => latest.get(`h/${k}`) === `r${rounds - 1}`);
        },
        'every variable at its latest value',
        30_000,
      );
      expect(stale.slice(0, 3), c === first ? 'the early client' : 'the late client').toEqual([]);
    }
  }, 60_000);
});
