import { topicSpecs } from '../../bus/index.ts';
import { CONNECTION_OPTIONS, UsageError } from '../../runtime/config.ts';
import { busFromOptions, defineCommand } from '../command.ts';

export default defineCommand({
  name: 'topics',
  summary: "create the project's Kafka topics (partitions, compaction) or show their offsets",
  usage: 'virgo topics create|offsets [--brokers HOST:PORT] [--partitions N]',
  options: {
    ...CONNECTION_OPTIONS,
    partitions: { type: 'number', default: 4, description: 'partitions of the per-host topics' },
  },
  async run({ opts, args, io }) {
    const action = args[0] ?? 'offsets';
    if (!opts.brokers) throw new UsageError('topics needs Kafka: give --brokers or VIRGO_BROKERS');
    const bus = busFromOptions(opts, 'virgo-topics');
    try {
      const specs = topicSpecs(opts.partitions ?? 4);
      if (action === 'create') {
        await bus.ensureTopics(specs);
        for (const s of specs) io.stdout.write(`${s.topic}\tpartitions=${s.partitions ?? 1}\n`);
      } else if (action === 'offsets') {
        for (const s of specs) {
          const offs = await bus.topicOffsets(s.topic).catch(() => []);
          for (const o of offs) io.stdout.write(`${s.topic}\t${o.partition}\tlow=${o.low}\thigh=${o.high}\n`);
        }
      } else {
        throw new UsageError(`unknown action "${action}"; use create or offsets`);
      }
      return 0;
    } finally {
      await bus.close();
    }
  },
});
