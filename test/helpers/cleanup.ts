// What a test opened, closed after it: one list per file (or describe block) that asks, run after
// each test newest first, so a failed assertion never leaves a socket, bus or server behind.
import { afterEach } from 'vitest';

export type Cleanup = () => unknown;

/** A list of cleanups run after each test of the scope this is called in, newest first. */
export function cleanupAfterEach(): Cleanup[] {
  const list: Cleanup[] = [];
  afterEach(async () => {
    for (const c of list.splice(0).reverse()) await c();
  });
  return list;
}

/** `track(x)` returns `x` and closes it after the test, newest first (buses, subscriptions, servers). */
export function closeAfterEach(): <T extends { close(): unknown }>(x: T) => T {
  const list = cleanupAfterEach();
  return (x) => {
    list.push(() => x.close());
    return x;
  };
}
