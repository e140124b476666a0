// The dashboard's variables come from the bus, as every reader of the analytics topic gets them:
// whatever any learner instance (or `virgo pin`, or another producer) published, with its `why`.
// The topic is compacted, so reading it from the start is the current snapshot, then each change.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { type Bus, type Subscription, TOPICS, topicSpecs } from '../../bus/index.ts';
import { createLogger } from '../../runtime/log.ts';
import { counter } from '../../runtime/metrics.ts';
import { AvroDecodeError, codecFor } from '../../schemas/index.ts';
import type { DashboardModel } from './model.ts';

const log = createLogger('dashboard');
const undecodable = counter(
  'virgo_dashboard_undecodable_total',
  'analytics-topic messages the dashboard skipped: not an AnalyticsVariable',
);

/** Follows the analytics topic into `model`; close() leaves the (throw-away) consumer group. */
export async function followAnalytics(
  bus: Bus,
  model: DashboardModel,
  opts: { topic?: string; now?: () => number } = {},
): Promise<Subscription> {
  const topic = opts.topic ?? TOPICS.kernelAnalytics;
  const now = opts.now ?? Date.now;
  const spec = topicSpecs().find((s) => s.topic === TOPICS.kernelAnalytics)!;
  await bus.ensureTopics([{ ...spec, topic }]);
  const codec = codecFor('AnalyticsVariable');
  let skipped = 0;
  return bus.subscribe({
    topics: [topic],
    // every dashboard needs every partition: a group of its own
    groupId: `virgo-dashboard-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`,
    fromBeginning: true,
    onBatch: async (batch) => {
      const t = now();
      for (const m of batch) {
        if (m.value === null) {
          const k = m.key?.toString('utf8') ?? '';
          const slash = k.indexOf('/');
          if (slash > 0) model.remove(k.slice(0, slash), k.slice(slash + 1));
          continue;
        }
        try {
          model.update(
            codec.decode(m.value, { topic: m.topic, partition: m.partition, offset: m.offset }),
            t,
          );
        } catch (err) {
          if (!(err instanceof AvroDecodeError)) throw err;
          undecodable.inc();
          // the first, then every thousandth: a foreign producer must not flood the log
          if (skipped++ % 1000 === 0)
            log.warn('skipping a message that is not an AnalyticsVariable', { topic, skipped, err });
        }
      }
    },
  });
}
