// A Bus whose topics and consumer groups carry a prefix: several pipelines (tests, tenants, a
// staging copy) share one Kafka cluster without seeing each other's messages or offsets.
import type {
  Bus,
  BusMessage,
  OutgoingMessage,
  PublishOptions,
  SubscribeOptions,
  Subscription,
  TopicSpec,
  TransactionalOptions,
  TransactionalPublisher,
} from './types.ts';

export function namespaced(bus: Bus, prefix: string): Bus {
  if (!prefix) return bus;
  const p = prefix.endsWith('.') ? prefix : `${prefix}.`;
  const out = (t: string) => `${p}${t}`;
  const inner = (t: string) => (t.startsWith(p) ? t.slice(p.length) : t);
  const back = (m: BusMessage): BusMessage => ({ ...m, topic: inner(m.topic) });
  return {
    kind: bus.kind,
    ensureTopics: (specs: TopicSpec[]) => bus.ensureTopics(specs.map((s) => ({ ...s, topic: out(s.topic) }))),
    publish: async (topic: string, messages: OutgoingMessage[], opts?: PublishOptions) => {
      const r = await bus.publish(out(topic), messages, opts);
      return { ...r, topic };
    },
    subscribe: async (opts: SubscribeOptions) => {
      const sub = await bus.subscribe({
        ...opts,
        topics: opts.topics.map(out),
        groupId: out(opts.groupId),
        ...(opts.onAssign
          ? { onAssign: (a) => opts.onAssign!(a.map((x) => ({ ...x, topic: inner(x.topic) }))) }
          : {}),
        ...(opts.commitOffset
          ? {
              commitOffset: (t: string, partition: number, next: string) =>
                opts.commitOffset!(inner(t), partition, next),
            }
          : {}),
        ...(opts.onProgress
          ? {
              onProgress: (t: string, partition: number, next: string) =>
                opts.onProgress!(inner(t), partition, next),
            }
          : {}),
        ...(opts.startAt
          ? { startAt: (t: string, partition: number) => opts.startAt!(inner(t), partition) }
          : {}),
        onBatch: (batch, ctx) =>
          opts.onBatch(batch.map(back), {
            ...ctx,
            topic: back(batch[0] ?? ({ topic: ctx.topic } as BusMessage)).topic,
          }),
      });
      const wrapped: Subscription = {
        ready: sub.ready,
        commit: () => sub.commit(),
        close: (o) => sub.close(o),
      };
      const positions = sub.positions?.bind(sub);
      if (positions) wrapped.positions = () => positions().map((o) => ({ ...o, topic: inner(o.topic) }));
      const membership = sub.membership?.bind(sub);
      if (membership) wrapped.membership = membership;
      return wrapped;
    },
    topicOffsets: (topic: string) => bus.topicOffsets(out(topic)),
    ...(bus.transactional
      ? {
          transactional: async (o: TransactionalOptions): Promise<TransactionalPublisher> => {
            const t = await bus.transactional!({ ...o, transactionalId: out(o.transactionalId) });
            return {
              run: async (fill) => {
                const r = await t.run((tx) =>
                  fill({
                    publish: (topic, messages) => tx.publish(out(topic), messages),
                    commitOffsets: (groupId, offsets) =>
                      tx.commitOffsets(
                        out(groupId),
                        offsets.map((x) => ({ ...x, topic: out(x.topic) })),
                      ),
                  }),
                );
                return { written: r.written.map((w) => ({ ...w, topic: inner(w.topic) })) };
              },
              committedOffsets: async (groupId, topic) =>
                (await t.committedOffsets(out(groupId), out(topic))).map((x) => ({ ...x, topic })),
              close: () => t.close(),
            };
          },
        }
      : {}),
    close: () => bus.close(),
  };
}
