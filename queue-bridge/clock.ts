// Request timestamps: wall-clock seconds and nanoseconds, strictly increasing within a process
// (two requests never share a timestamp), as in the original's `<ip>:<sec>:<nsec>`.

export interface Timestamp {
  sec: number;
  nsec: number;
}

export type Clock = () => Timestamp;

export function createClock(): Clock {
  // Anchor the monotonic clock to the wall clock; re-anchor when they drift apart (NTP steps).
  let anchorWall = BigInt(Date.now()) * 1_000_000n;
  let anchorMono = process.hrtime.bigint();
  let last = 0n;
  return () => {
    const mono = process.hrtime.bigint();
    let ns = anchorWall + (mono - anchorMono);
    const wall = BigInt(Date.now()) * 1_000_000n;
    if (ns - wall > 10_000_000n || wall - ns > 10_000_000n) {
      anchorWall = wall;
      anchorMono = mono;
      ns = wall;
    }
    if (ns <= last) ns = last + 1n;
    last = ns;
    return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
  };
}

/** `<client address>:<sec>:<nsec>`, the original's request timestamp. */
export function formatTs(clientAddr: string, t: Timestamp): string {
  return `${clientAddr}:${t.sec}:${t.nsec}`;
}

/**
 * Request ids unique across restarts of one queue: the process start in base 36 (milliseconds),
 * then a counter, e.g. `m3x9k2a1-17`. The log has one writer at a time and a restart takes far
 * longer than a millisecond, so two runs never share a prefix.
 */
let lastStart = 0;

export function createIdSource(): () => string {
  // In one process, two sources (a service closed and reopened at once) still differ.
  lastStart = Math.max(Date.now(), lastStart + 1);
  const prefix = lastStart.toString(36);
  let n = 0;
  return () => `${prefix}-${++n}`;
}
