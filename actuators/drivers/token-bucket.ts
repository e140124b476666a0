// A byte-rate limiter whose rate may change at any moment (it follows an analytics variable).
// Tokens refill at `rate` per second up to one second's worth (the burst); a request larger than
// what is there borrows: the balance goes negative and the caller waits until it would be back
// at zero, so concurrent writers queue in arrival order instead of starving each other. A wait
// longer than `maxWaitMs` is refused outright (nothing borrowed) so a client is told, not hung.

export interface Reservation {
  /** ms to wait before doing the work (0: go now) */
  waitMs: number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  private currentRate: number;

  constructor(
    rate: number,
    private readonly maxWaitMs = 5_000,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.currentRate = sanitise(rate);
    this.tokens = this.capacity;
    this.last = this.now();
  }

  /** bytes per second; 0 or less: unlimited */
  get rate(): number {
    return this.currentRate;
  }

  private get capacity(): number {
    return this.currentRate;
  }

  setRate(rate: number): void {
    const r = sanitise(rate);
    if (r === this.currentRate) return;
    this.refill();
    const wasUnlimited = this.currentRate <= 0;
    this.currentRate = r;
    // from unlimited to a limit: start with a full second's burst; between limits keep the
    // balance (a debt stays a debt), capped at the new burst
    if (r <= 0) this.tokens = 0;
    else this.tokens = wasUnlimited ? r : Math.min(this.tokens, r);
  }

  private refill(): void {
    const t = this.now();
    if (this.currentRate > 0) {
      this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.currentRate);
    }
    this.last = t;
  }

  /** Takes `n` tokens; the wait before the caller may proceed, or undefined when too long. */
  reserve(n: number): Reservation | undefined {
    if (this.currentRate <= 0 || n <= 0) return { waitMs: 0 };
    this.refill();
    const after = this.tokens - n;
    const waitMs = after >= 0 ? 0 : (-after / this.currentRate) * 1000;
    if (waitMs > this.maxWaitMs) return undefined;
    this.tokens = after;
    return { waitMs };
  }

  /** the wait `n` bytes would need now, without taking anything (for error messages) */
  wouldWaitMs(n: number): number {
    if (this.currentRate <= 0) return 0;
    this.refill();
    const after = this.tokens - n;
    return after >= 0 ? 0 : (-after / this.currentRate) * 1000;
  }
}

function sanitise(rate: number): number {
  return Number.isFinite(rate) && rate > 0 ? rate : 0;
}
