// The pipeline clock: what the emission gate's dwell and hysteresis are measured on, per host.
// Windows never use it (they run on event time, in the learners); the gate does, because "hold a
// change for 30 s" must mean 30 s of the data when a three-day log is replayed in a second, and
// 30 s of the wall clock when the data arrives live.
//
// Sources, per host:
// - event time: the host's watermark, the newest event time the learners received for it
//   (the consumer stage hands events over in event-time order, see ingest/event-order.ts);
// - processing time: the wall clock, as virtual time under --tdf N (one wall second = N seconds,
//   counted from the clock's start, as the time-dilation seed and `virgo replay --tdf` do).
// Modes: `processing` always wall; `event` always the watermark (wall for a host with no event
// time yet); `auto` (default) event time while the input is a replay (a bounded file, a backlog on
// the topic) AND the host's watermark lags processing time by more than `lagThresholdMs`,
// processing time otherwise (live, or caught up).
//
// Each host's reading is monotonic: it advances by the increments of the source in force, never
// moves back at a mode switch, and jumps forward to processing time when a host goes from event
// to processing time (it caught up: what dwell held in the replay has waited long enough).
// `stamp(host)` is the `ts` of variables: the watermark under event time, processing time (virtual
// under --tdf) otherwise.

export type ClockMode = 'auto' | 'event' | 'processing';
export const CLOCK_MODES: readonly ClockMode[] = ['auto', 'event', 'processing'];

export interface PipelineClockOptions {
  /** default auto */
  mode?: ClockMode;
  /** time-dilation factor of processing time (default 1: the wall clock) */
  tdf?: number;
  /** auto: event time while a host's watermark lags processing time by more than this (default 60 s) */
  lagThresholdMs?: number;
  /** the wall clock (tests pass a fake one) */
  wall?: () => number;
  /** auto: whether the input is a replay now (a bounded input not yet ended, a backlog) */
  replaying?: () => boolean;
}

interface HostClock {
  /** the monotonic reading handed out last */
  reading: number;
  mode: 'event' | 'processing';
  /** the source's value at the last reading; NaN after a restore: the next reading re-bases */
  src: number;
}

export interface HostClockJson {
  reading: number;
  mode: 'event' | 'processing';
  watermark: number | null;
}

export interface PipelineClockJson {
  hosts: [string, HostClockJson][];
}

export class ClockOptionError extends Error {
  override readonly name = 'ClockOptionError';
}

export class PipelineClock {
  readonly mode: ClockMode;
  readonly tdf: number;
  readonly lagThresholdMs: number;
  private readonly wall: () => number;
  private replaying: () => boolean;
  private readonly t0: number;
  private readonly watermarks = new Map<string, number>();
  private readonly hosts = new Map<string, HostClock>();

  constructor(opts: PipelineClockOptions = {}) {
    this.mode = opts.mode ?? 'auto';
    if (!CLOCK_MODES.includes(this.mode)) {
      throw new ClockOptionError(`clock must be one of ${CLOCK_MODES.join('|')}, got ${String(opts.mode)}`);
    }
    this.tdf = opts.tdf ?? 1;
    if (!(this.tdf > 0 && Number.isFinite(this.tdf))) {
      throw new ClockOptionError(`--tdf must be a positive number (a time-dilation factor), got ${opts.tdf}`);
    }
    this.lagThresholdMs = opts.lagThresholdMs ?? 60_000;
    this.wall = opts.wall ?? Date.now;
    this.replaying = opts.replaying ?? (() => false);
    this.t0 = this.wall();
  }

  /** Says where "is the input a replay now" comes from (the learn stage wires its consumer). */
  setReplaying(fn: () => boolean): void {
    this.replaying = fn;
  }

  /** Processing time: the wall clock, dilated by tdf from the clock's start. */
  processing(): number {
    const w = this.wall();
    return this.tdf === 1 ? w : Math.round(this.t0 + (w - this.t0) * this.tdf);
  }

  /** A record of `host` at event time `ts` reached the learners. */
  observe(host: string, ts: number): void {
    if (!Number.isFinite(ts)) return;
    const w = this.watermarks.get(host);
    if (w === undefined || ts > w) this.watermarks.set(host, ts);
  }

  /** The host's event-time watermark (newest event time seen), if any. */
  watermark(host: string): number | undefined {
    return this.watermarks.get(host);
  }

  /** Which source the host's clock follows now. */
  modeOf(host: string): 'event' | 'processing' {
    if (this.mode === 'processing') return 'processing';
    const w = this.watermarks.get(host);
    if (w === undefined) return 'processing';
    if (this.mode === 'event') return 'event';
    return this.replaying() && this.processing() - w > this.lagThresholdMs ? 'event' : 'processing';
  }

  /** The host's dwell clock: monotonic, ms. */
  now(host: string): number {
    const mode = this.modeOf(host);
    const src = mode === 'event' ? this.watermarks.get(host)! : this.processing();
    const h = this.hosts.get(host);
    if (!h) {
      this.hosts.set(host, { reading: src, mode, src });
      return src;
    }
    if (mode !== h.mode || Number.isNaN(h.src)) {
      // Caught up (or restarted live): processing time from here, never behind the last reading.
      if (mode === 'processing') h.reading = Math.max(h.reading, src);
      h.mode = mode;
      h.src = src;
      return h.reading;
    }
    if (src > h.src) {
      h.reading += src - h.src;
      h.src = src;
    }
    return h.reading;
  }

  /** The `ts` of a variable emitted for `host` now: event time while on it, else processing time. */
  stamp(host: string): number {
    return this.modeOf(host) === 'event' ? this.watermarks.get(host)! : this.processing();
  }

  /** Hosts per source, for stats. */
  counts(): { event: number; processing: number } {
    let event = 0;
    let processing = 0;
    for (const h of new Set([...this.hosts.keys(), ...this.watermarks.keys()])) {
      if (this.modeOf(h) === 'event') event++;
      else processing++;
    }
    return { event, processing };
  }

  toJSON(): PipelineClockJson {
    const names = new Set([...this.hosts.keys(), ...this.watermarks.keys()]);
    return {
      hosts: [...names].map((n) => {
        const h = this.hosts.get(n);
        const w = this.watermarks.get(n);
        return [
          n,
          {
            reading: h?.reading ?? w ?? 0,
            mode: h?.mode ?? 'processing',
            watermark: w ?? null,
          },
        ];
      }),
    };
  }

  /** hosts with a reading or a watermark */
  hostNames(): Set<string> {
    return new Set([...this.hosts.keys(), ...this.watermarks.keys()]);
  }

  /** One host's reading, source and watermark: what follows the host to another instance. */
  hostState(host: string): HostClockJson | undefined {
    const h = this.hosts.get(host);
    const w = this.watermarks.get(host);
    if (!h && w === undefined) return undefined;
    return { reading: h?.reading ?? w ?? 0, mode: h?.mode ?? 'processing', watermark: w ?? null };
  }

  /** Puts a host's clock back; its source re-bases at the next reading (another process). */
  restoreHost(host: string, h: HostClockJson): void {
    if (h.watermark !== null) this.watermarks.set(host, h.watermark);
    else this.watermarks.delete(host);
    this.hosts.set(host, { reading: h.reading, mode: h.mode, src: Number.NaN });
  }

  dropHost(host: string): void {
    this.hosts.delete(host);
    this.watermarks.delete(host);
  }

  restore(j: PipelineClockJson): void {
    this.hosts.clear();
    this.watermarks.clear();
    for (const [n, h] of j.hosts) {
      if (h.watermark !== null) this.watermarks.set(n, h.watermark);
      // The source's last value belongs to the previous process (its tdf epoch): re-base.
      this.hosts.set(n, { reading: h.reading, mode: h.mode, src: Number.NaN });
    }
  }
}
