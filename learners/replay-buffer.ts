import type { Rng } from './window.ts';

/**
 * A bounded reservoir of past training examples, so one busy source cannot make a learner forget
 * the others. The learner owns the seeded `Rng` (it is saved with the learner's state); the call
 * order here is part of the learner's determinism, so saved/loaded learners replay identically.
 */
export class ReplayBuffer<T> {
  constructor(
    readonly capacity: number,
    private items: T[] = [],
  ) {}

  get size(): number {
    return this.items.length;
  }

  /** `fresh` followed by up to `batchSize - fresh.length` examples drawn (with replacement) from the buffer. */
  mix(fresh: readonly T[], batchSize: number, rng: Rng): T[] {
    const batch = [...fresh];
    const n = Math.min(this.items.length, Math.max(0, batchSize - fresh.length));
    for (let i = 0; i < n; i++) batch.push(this.items[rng.int(this.items.length)]!);
    return batch;
  }

  /** Keeps each item: appended while below capacity, else it replaces a random slot. */
  add(items: readonly T[], rng: Rng): void {
    for (const item of items) {
      if (this.items.length < this.capacity) this.items.push(item);
      else this.items[rng.int(this.capacity)] = item;
    }
  }

  /** The items as saved in a learner's state JSON (a plain array, the layout older snapshots have). */
  toJSON(): T[] {
    return this.items;
  }

  static fromJSON<T>(capacity: number, items: T[]): ReplayBuffer<T> {
    return new ReplayBuffer(capacity, items);
  }
}
