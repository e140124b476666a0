// A Bus whose topics and consumer groups carry a prefix: several pipelines (tests, tenants, a
// staging copy) share one Kafka cluster without seeing each other's messages or offsets.
import type {
  Bus,
  BusMessage,
  OutgoingMessage,
  PublishOptions,
  SubscribeOptions,
  TopicSpec,
} from './types.ts';

export function namespaced(bus: Bus, prefix: string): Bus {
  if (!prefix) return bus;
  const p = prefix.endsWith('.') ? prefix : `${prefix}.`;
  const out = (t: string) => `${p}${t}`;
  const back = (m: BusMessage): BusMessage => ({
    ...m,
    topic: m.topic.startsWith(p) ? m.topic.slice(p.length) : m.topic,
  });
  return {
    kind: bus.kind,
    ensureTopics: (specs: TopicSpec[]) => bus.ensureTopics(specs.map((s) => ({ ...s, topic: out(s.topic) }))),
    publish: async (topic: string, messages: OutgoingMessage[], opts?: PublishOptions) => {
      const r = await bus.publish(out(topic), messages, opts);
      return { ...r, topic };
    },
    subscribe: (opts: SubscribeOptions) =>
      bus.subscribe({
        ...opts,
        topics: opts.topics.map(out),
        groupId: out(opts.groupId),
        ...(opts.onAssign
          ? {
              onAssign: (a) =>
                opts.onAssign!(
                  a.map((x) => ({ ...x, topic: x.topic.startsWith(p) ? x.topic.slice(p.length) : x.topic })),
                ),
            }
          : {}),
        ...(opts.commitOffset
          ? {
              commitOffset: (t: string, partition: number, next: string) =>
                opts.commitOffset!(t.startsWith(p) ? t.slice(p.length) : t, partition, next),
            }
          : {}),
        ...(opts.onProgress
          ? {
              onProgress: (t: string, partition: number, next: string) =>
                opts.onProgress!(t.startsWith(p) ? t.slice(p.length) : t, partition, next),
            }
          : {}),
        onBatch: (batch, ctx) =>
          opts.onBatch(batch.map(back), {
            ...ctx,
            topic: back(batch[0] ?? ({ topic: ctx.topic } as BusMessage)).topic,
          }),
      }),
    topicOffsets: (topic: string) => bus.topicOffsets(out(topic)),
    close: () => bus.close(),
  };
}
