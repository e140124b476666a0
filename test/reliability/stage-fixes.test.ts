// Regression tests for the stage bugs this suite found (each fixed in its stage, committed apart).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CONTENT_TYPES, HEADERS, KafkaBus, namespaced, TOPICS, topicSpecs } from '../../bus/index.ts';
import { startPipeline } from '../../cli/pipeline.ts';
import { startFeeder } from '../../kernel-analytics/feeder.ts';
import { codecFor } from '../../schemas/index.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';
import { LineConn } from './lib/line-client.ts';

const EMBEDDED = {
  feederPort: 0,
  queuePort: 0,
  zmq: false as const,
  metrics: false as const,
  drivers: [],
  devices: [],
  learners: ['ufw'],
};

describe('stage fixes found by the reliability suite', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it("startPipeline({input: 'none'}) runs without a log source (others publish) and stays healthy", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'virgo-rel-fix-'));
    cleanup.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const p = await startPipeline({ input: 'none', stateDir, ...EMBEDDED });
    cleanup.push(() => p.close());
    expect(p.source).toBe('none');
    // it used to open a file called "none" and report the source as failed
    await new Promise((r) => setImmediate(r));
    expect(p.health()).toMatchObject({ ok: true, source: 'none' });
  });

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
    const feeder = await startFeeder({ bus, listen: { host: '127.0.0.1', port: 0 }, snapshotDelayMs: 0 });
    cleanup.push(() => feeder.close());
    const c = await LineConn.open(feeder.port);
    cleanup.push(() => c.destroy());
    c.write('KERNEL_ANALYTICS_STREAMING_START\n');
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
        return keys.every((k) => latest.get(k) === `r${rounds - 1}`);
      },
      'every variable at its latest value',
      30_000,
    );
    expect(stale.slice(0, 3)).toEqual([]);
  }, 60_000);
});
