// How fast a kernel setting may move: at least `minIntervalMs` between two changes, and at most
// `maxStep` per change (a larger wish is approached in steps, one per interval). Runs on
// processing time: a monotonic clock (performance.now), so a wall-clock jump (NTP, an operator's
// date -s) neither releases a burst of changes nor freezes the actuator.

export class RateLimiter {
  private lastChangeAt: number | undefined;

  constructor(
    readonly minIntervalMs: number,
    /** undefined: no step limit (bans: they have no magnitude) */
    readonly maxStep: number | undefined,
  ) {}

  /** Milliseconds until the next change is allowed; 0 when it is allowed now. */
  waitMs(now: number): number {
    if (this.lastChangeAt === undefined) return 0;
    return Math.max(0, this.lastChangeAt + this.minIntervalMs - now);
  }

  /** `current` moved toward `desired` by at most maxStep. */
  step(current: number, desired: number): number {
    if (this.maxStep === undefined) return desired;
    const d = desired - current;
    if (Math.abs(d) <= this.maxStep) return desired;
    return current + Math.sign(d) * this.maxStep;
  }

  record(now: number): void {
    this.lastChangeAt = now;
  }
}
