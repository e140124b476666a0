// The time options of the commands that run learners (virgo learn, virgo up): which clock the
// emission gate's dwell runs on, virtual time, and how late a line may be (README "Time").
import { CLOCK_MODES, type ClockMode } from '../learners/clock.ts';
import type { OptionDefs } from '../runtime/config.ts';
import { UsageError } from '../runtime/config.ts';

export const TIME_OPTIONS = {
  clock: {
    type: 'string',
    env: 'VIRGO_CLOCK',
    default: 'auto',
    arg: 'auto|event|processing',
    description: "the gate's clock: event time replaying, processing time live (auto); or always one of them",
  },
  tdf: {
    type: 'number',
    arg: 'N',
    description: 'virtual time: one wall second is N seconds of processing time (dwell N times shorter)',
  },
  'allowed-lateness': {
    type: 'number',
    default: 300,
    arg: 'SEC',
    description: "how far behind its host's newest line a line is still taken (older: dead-lettered as late)",
  },
} as const satisfies OptionDefs;

export interface TimeSettings {
  clock: { mode: ClockMode; tdf?: number };
  order: { allowedLatenessMs: number };
}

export function timeFromOptions(o: {
  clock?: string | undefined;
  tdf?: number | undefined;
  'allowed-lateness'?: number | undefined;
}): TimeSettings {
  const mode = (o.clock ?? 'auto') as ClockMode;
  if (!CLOCK_MODES.includes(mode)) {
    throw new UsageError(`--clock must be one of ${CLOCK_MODES.join('|')}, got ${o.clock}`);
  }
  if (o.tdf !== undefined && !(o.tdf > 0 && Number.isFinite(o.tdf))) {
    throw new UsageError(`--tdf must be a positive number (a time-dilation factor), got ${o.tdf}`);
  }
  const lateness = o['allowed-lateness'] ?? 300;
  if (!(lateness >= 0 && Number.isFinite(lateness))) {
    throw new UsageError(`--allowed-lateness must be >= 0 seconds, got ${lateness}`);
  }
  return {
    clock: { mode, ...(o.tdf !== undefined ? { tdf: o.tdf } : {}) },
    order: { allowedLatenessMs: lateness * 1000 },
  };
}
