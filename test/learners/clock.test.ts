// The pipeline clock the gate's dwell runs on: event time while replaying (a multi-day log read
// in milliseconds changes its variables as the days go by, not once), processing time live,
// --tdf virtual time, and monotonic per host whatever the mode switches.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PipelineClock } from '../../learners/clock.ts';
import { EmissionGate } from '../../learners/gate.ts';
import { declarationsOf } from '../../learners/registry.ts';
import type { Proposal, VariableDecl } from '../../learners/types.ts';

const IP: VariableDecl = {
  key: 'ip',
  type: 'ip',
  unit: null,
  description: 'ip',
  definition: { kind: 'latest' },
  dwellMs: 30_000,
};
const RATE: VariableDecl = {
  key: 'rate',
  type: 'float',
  unit: null,
  description: 'rate',
  definition: { kind: 'latest' },
  min: 0,
  max: 100,
  hysteresis: 0.5,
  dwellMs: 10_000,
};

function gate(): EmissionGate {
  return new EmissionGate(declarationsOf([{ name: 't', variables: [IP, RATE] }]), () => undefined);
}

const p = (key: string, value: Proposal['value'], host = 'h'): Proposal => ({
  host,
  key,
  value,
  why: 'w',
  confidence: 1,
  model: 'm',
});

class Wall {
  t = Date.UTC(2026, 0, 10);
  now = () => this.t;
}

const DAY = 86_400_000;

/** Three days of event time replayed in a few wall milliseconds: the top source changes hourly. */
function replay(clock: PipelineClock, wall: Wall, g: EmissionGate): string[] {
  const out: string[] = [];
  const start = wall.t - 10 * DAY;
  for (let t = start; t < start + 3 * DAY; t += 60_000) {
    clock.observe('h', t);
    wall.t += 0.01; // the whole replay takes ~40 ms of wall time
    const ip = `10.0.0.${Math.floor((t - start) / 3_600_000) % 7}`;
    const r = g.propose('t', p('ip', ip), clock);
    if (r.variable) out.push(r.variable.value);
    for (const v of g.release(clock)) out.push(v.value);
  }
  return out;
}

describe('pipeline clock', () => {
  it('event time on replay: a three-day log read in milliseconds changes its variable hour by hour', () => {
    const wall = new Wall();
    const clock = new PipelineClock({ mode: 'auto', wall: wall.now, replaying: () => true });
    const emitted = replay(clock, wall, gate());
    // one change per hour of event time (72 hours), never held back by the wall clock
    expect(emitted.length).toBe(72);
    expect(clock.modeOf('h')).toBe('event');
  });

  it('processing time live: the same stream on the wall clock emits its first value and holds the rest', () => {
    const wall = new Wall();
    const clock = new PipelineClock({ mode: 'processing', wall: wall.now });
    const g = gate();
    const emitted = replay(clock, wall, g);
    expect(emitted).toEqual(['10.0.0.0']);
    // live, the dwell is wall time: 30 s later the newest held value (hour 71) goes out
    wall.t += 30_000;
    expect(g.release(clock).map((v) => v.value)).toEqual([`10.0.0.${71 % 7}`]);
  });

  it('auto: event time while a replay lags behind, processing time once caught up (a jump forward)', () => {
    const wall = new Wall();
    let replaying = true;
    const clock = new PipelineClock({ wall: wall.now, replaying: () => replaying, lagThresholdMs: 60_000 });
    const old = wall.t - 2 * DAY;
    clock.observe('h', old);
    expect(clock.modeOf('h')).toBe('event');
    expect(clock.now('h')).toBe(old);
    expect(clock.stamp('h')).toBe(old);
    clock.observe('h', old + 5_000);
    expect(clock.now('h')).toBe(old + 5_000);
    replaying = false; // the topic was read to its end
    expect(clock.modeOf('h')).toBe('processing');
    expect(clock.now('h')).toBe(wall.t);
    expect(clock.stamp('h')).toBe(wall.t);
    // a host whose lines are fresh runs on processing time even during a replay
    replaying = true;
    clock.observe('fresh', wall.t - 1_000);
    expect(clock.modeOf('fresh')).toBe('processing');
    // a host with no event time yet (nothing seen) runs on processing time
    expect(clock.modeOf('nobody')).toBe('processing');
  });

  it('a held value whose replay is over goes out: hysteresis too (the replay ends with the exact answer)', () => {
    const wall = new Wall();
    let replaying = true;
    const clock = new PipelineClock({ wall: wall.now, replaying: () => replaying });
    const g = gate();
    const old = wall.t - DAY;
    clock.observe('h', old);
    expect(g.propose('t', p('rate', 4), clock).verdict).toBe('emit');
    clock.observe('h', old + 60_000);
    // a change smaller than the hysteresis is held (live it would stay held)
    expect(g.propose('t', p('rate', 4.2), clock).verdict).toBe('hysteresis');
    expect(g.release(clock)).toEqual([]);
    replaying = false;
    const out = g.release(clock);
    expect(out.map((v) => v.value)).toEqual(['4.2']);
    expect(out[0]!.why).toMatch(/held .* by the 0\.5 hysteresis until the replay caught up/);
    expect(out[0]!.ts).toBe(wall.t);
  });

  it('the end of a bounded input releases every held value (a final watermark)', () => {
    const wall = new Wall();
    const clock = new PipelineClock({ mode: 'event', wall: wall.now });
    const g = gate();
    clock.observe('h', 1_000_000);
    g.propose('t', p('ip', '10.0.0.1'), clock);
    clock.observe('h', 1_005_000);
    expect(g.propose('t', p('ip', '10.0.0.2'), clock).verdict).toBe('dwell');
    expect(g.propose('t', p('rate', 7), clock).verdict).toBe('emit');
    clock.observe('h', 1_006_000);
    expect(g.propose('t', p('rate', 7.3), clock).verdict).toBe('hysteresis');
    expect(g.release(clock)).toEqual([]);
    const out = g.release(clock, true);
    expect(out.map((v) => `${v.key}=${v.value}`).sort()).toEqual(['ip=10.0.0.2', 'rate=7.3']);
    expect(out.every((v) => v.why.includes('until the end of the input'))).toBe(true);
    // event time: the variables carry the watermark
    expect(out.every((v) => v.ts === 1_006_000)).toBe(true);
    expect(g.held).toBe(0);
  });

  it('--tdf N: one wall second is N seconds of processing time, so a dwell passes N times sooner', () => {
    const wall = new Wall();
    const clock = new PipelineClock({ mode: 'processing', tdf: 10, wall: wall.now });
    const t0 = clock.processing();
    wall.t += 1_000;
    expect(clock.processing() - t0).toBe(10_000);
    const g = gate();
    g.propose('t', p('ip', '10.0.0.1'), clock);
    expect(g.propose('t', p('ip', '10.0.0.2'), clock).verdict).toBe('dwell');
    wall.t += 2_900;
    expect(g.release(clock)).toEqual([]);
    wall.t += 100; // 3 s of wall time = 30 s of virtual time
    expect(g.release(clock).map((v) => v.value)).toEqual(['10.0.0.2']);
    expect(() => new PipelineClock({ tdf: 0 })).toThrow(/positive/);
  });

  it('property: each host reading is monotonic whatever the mode switches, watermarks and restarts', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ k: fc.constant('wall' as const), d: fc.integer({ min: -5_000, max: 120_000 }) }),
            fc.record({ k: fc.constant('event' as const), d: fc.integer({ min: -3 * DAY, max: DAY }) }),
            fc.record({ k: fc.constant('replay' as const), on: fc.boolean() }),
            fc.record({ k: fc.constant('restart' as const) }),
          ),
          { maxLength: 60 },
        ),
        fc.constantFrom('auto', 'event', 'processing'),
        (steps, mode) => {
          const wall = new Wall();
          let replaying = false;
          const make = () =>
            new PipelineClock({
              mode: mode as 'auto' | 'event' | 'processing',
              tdf: 3,
              wall: wall.now,
              replaying: () => replaying,
            });
          let clock = make();
          let ev = wall.t - DAY;
          let last = Number.NEGATIVE_INFINITY;
          for (const s of steps) {
            if (s.k === 'wall') wall.t += s.d;
            else if (s.k === 'event') {
              ev += s.d;
              clock.observe('h', ev);
            } else if (s.k === 'replay') replaying = s.on;
            else {
              const saved = JSON.parse(JSON.stringify(clock.toJSON()));
              clock = make();
              clock.restore(saved);
            }
            const r = clock.now('h');
            if (r < last) return false;
            last = r;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });
});
