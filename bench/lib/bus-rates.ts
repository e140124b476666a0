// Produce and consume rates of a Bus, shared by bench/bus.ts and its child process.
import { randomUUID } from 'node:crypto';
import type { Bus } from '../../bus/index.ts';

export function payload(i: number, bytes: number): string {
  const head = `msg ${i} `;
  return head + 'x'.repeat(Math.max(0, bytes - head.length));
}

export interface Rates {
  produceRate: number;
  /** from subscribe() to the last message, joining the group included */
  consumeRate: number;
  /** from the first batch handed over to the last (the group joined) */
  consumeSteadyRate: number;
  /** subscribe() to the first batch: joining a new group, fetching its offsets */
  firstBatchMs: number;
  /** this process's CPU seconds per million messages, produce and consume */
  produceCpuPerM: number;
  consumeCpuPerM: number;
}

const cpu = (since: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1e6;
};

/**
 * `count` messages of `valueBytes` published by `inFlight` concurrent callers in calls of
 * `batch` (acks all, the Bus default), then read back by a new consumer group from the
 * beginning (the time includes joining the group). Closes the bus.
 */
export async function busRates(
  bus: Bus,
  count: number,
  o: { valueBytes: number; batch: number; inFlight: number; partitions?: number },
): Promise<Rates> {
  const topic = `bench-bus-${randomUUID().slice(0, 8)}`;
  await bus.ensureTopics([{ topic, partitions: o.partitions ?? 1 }]);
  await bus.publish(topic, [{ value: 'warm-up' }]);
  let c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const start = next;
      next = Math.min(count, next + o.batch);
      const msgs = [];
      for (let i = start; i < next; i++) msgs.push({ value: payload(i, o.valueBytes) });
      await bus.publish(topic, msgs);
    }
  };
  await Promise.all(Array.from({ length: o.inFlight }, worker));
  const produceS = Number(process.hrtime.bigint() - t0) / 1e9;
  const produceCpu = cpu(c0);

  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  c0 = process.cpuUsage();
  const t1 = process.hrtime.bigint();
  let first: bigint | undefined;
  let firstCount = 0;
  const sub = await bus.subscribe({
    topics: [topic],
    groupId: `bench-${randomUUID().slice(0, 8)}`,
    fromBeginning: true,
    onBatch: async (b) => {
      if (first === undefined) {
        first = process.hrtime.bigint();
        firstCount = b.length;
      }
      seen += b.length;
      if (seen >= count + 1) done();
    },
  });
  await finished;
  const t2 = process.hrtime.bigint();
  const consumeS = Number(t2 - t1) / 1e9;
  const consumeCpu = cpu(c0);
  await sub.close();
  await bus.close();
  return {
    produceRate: count / produceS,
    consumeRate: count / consumeS,
    consumeSteadyRate: (count + 1 - firstCount) / (Number(t2 - first!) / 1e9),
    firstBatchMs: Math.round(Number(first! - t1) / 1e6),
    produceCpuPerM: +((produceCpu * 1e6) / count).toFixed(2),
    consumeCpuPerM: +((consumeCpu * 1e6) / count).toFixed(2),
  };
}
