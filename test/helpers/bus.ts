// Reading a topic back through a Bus in a test: a subscription of a group of its own from the
// beginning, collecting what arrives in delivery order.
import type { Bus, BusMessage, Subscription } from '../../bus/index.ts';
import { unique } from './services.ts';

/** Every message of `topic` as it arrives (`got`), from the beginning, in group `groupId` (default: a new one). */
export async function collect(
  bus: Bus,
  topic: string,
  groupId = unique('g'),
): Promise<Subscription & { got: BusMessage[] }> {
  const got: BusMessage[] = [];
  const sub = await bus.subscribe({
    topics: [topic],
    groupId,
    fromBeginning: true,
    onBatch: async (b) => void got.push(...b),
  });
  return Object.assign(sub, { got });
}

/** The same, keeping each message's value as text (`values`). */
export async function collectValues(
  bus: Bus,
  topic: string,
  groupId = unique('g'),
): Promise<Subscription & { values: string[] }> {
  const values: string[] = [];
  const sub = await bus.subscribe({
    topics: [topic],
    groupId,
    fromBeginning: true,
    onBatch: async (b) => void values.push(...b.map((m) => m.value!.toString())),
  });
  return Object.assign(sub, { values });
}
