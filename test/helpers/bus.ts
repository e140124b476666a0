// Reading a topic back through a Bus in a test: a subscription of a group of its own from the
// beginning, collecting what arrives in delivery order.
import type { Bus, BusMessage, Subscription } from '../../bus/index.ts';
import { unique } from './services.ts';

/**
 * Every message of `topic` as it arrives (`got`, each as `as` makes it), from the beginning, in
 * group `groupId` (default: a new one).
 */
export async function collect<T = BusMessage>(
  bus: Bus,
  topic: string,
  groupId = unique('g'),
  as: (m: BusMessage) => T = (m) => m as T,
): Promise<Subscription & { got: T[] }> {
  const got: T[] = [];
  const sub = await bus.subscribe({
    topics: [topic],
    groupId,
    fromBeginning: true,
    onBatch: async (b) => void got.push(...b.map(as)),
  });
  return Object.assign(sub, { got });
}

/** The same, keeping each message's value as text. */
export function collectValues(
  bus: Bus,
  topic: string,
  groupId?: string,
): Promise<Subscription & { got: string[] }> {
  return collect(bus, topic, groupId, (m) => m.value!.toString());
}
