// The safety envelope: every proposal passes the emission gate, which clamps to the declared
// bounds, refuses to flap faster than the dwell time (hysteresis for numbers, urgent directions
// excepted) and drops what an operator pinned.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EmissionGate } from '../../learners/gate.ts';
import { declarationsOf } from '../../learners/registry.ts';
import type { Proposal, VariableDecl } from '../../learners/types.ts';
import { normalise, ValueError } from '../../learners/variables.ts';

const DECLS: VariableDecl[] = [
  {
    key: 'bw',
    type: 'int',
    unit: 'Mbps',
    description: 'bandwidth',
    min: 10,
    max: 1000,
    hysteresis: 25,
    definition: { kind: 'latest' },
    dwellMs: 30_000,
    urgent: 'down',
  },
  {
    key: 'risk',
    type: 'float',
    unit: null,
    description: 'risk',
    min: 0,
    max: 1,
    decimals: 2,
    definition: { kind: 'latest' },
    dwellMs: 0,
  },
  {
    key: 'flag',
    type: 'bool',
    unit: null,
    description: 'flag',
    definition: { kind: 'latest' },
    dwellMs: 10_000,
    urgent: 'true',
  },
  {
    key: 'match',
    type: 'bool',
    unit: null,
    description: 'match',
    boolStyle: 'python',
    definition: { kind: 'latest' },
    dwellMs: 0,
  },
  { key: 'ip', type: 'ip', unit: null, description: 'ip', definition: { kind: 'latest' }, dwellMs: 5_000 },
  {
    key: 'mode',
    type: 'enum',
    unit: null,
    description: 'mode',
    values: ['a', 'b'],
    definition: { kind: 'latest' },
    dwellMs: 0,
  },
  {
    key: 'name',
    type: 'string',
    unit: null,
    description: 'name',
    definition: { kind: 'latest' },
    dwellMs: 0,
  },
];

function setup(pins = new Map<string, string>()) {
  const gate = new EmissionGate(declarationsOf([{ name: 't', variables: DECLS }]), (h, k) => {
    const v = pins.get(`${h}/${k}`);
    return v === undefined ? undefined : { value: v };
  });
  const p = (key: string, value: Proposal['value'], host = 'h1'): Proposal => ({
    host,
    key,
    value,
    why: 'test evidence',
    confidence: 0.9,
    model: 'm@1',
  });
  return { gate, p, pins };
}

describe('emission gate', () => {
  it('clamps numbers into the declared bounds and says so in why', () => {
    const { gate, p } = setup();
    const r = gate.propose('t', p('bw', 5000), 0);
    expect(r.verdict).toBe('emit');
    expect(r.variable).toMatchObject({
      host: 'h1',
      key: 'bw',
      value: '1000',
      type: 'int',
      unit: 'Mbps',
      learner: 't',
      model: 'm@1',
    });
    expect(r.variable!.why).toContain('clamped from 5000 to [10, 1000]');
    expect(r.variable!.why).toContain('model=m@1');
    expect(gate.propose('t', p('risk', -3), 0).variable!.value).toBe('0');
    expect(gate.propose('t', p('risk', 0.456789), 1).variable!.value).toBe('0.46');
  });

  it('does not change a value again within the dwell time, then releases the last proposal', () => {
    const { gate, p } = setup();
    expect(gate.propose('t', p('bw', 500), 0).verdict).toBe('emit');
    // up is not the urgent direction: held
    expect(gate.propose('t', p('bw', 800), 1_000).verdict).toBe('dwell');
    expect(gate.propose('t', p('bw', 900), 2_000).verdict).toBe('dwell');
    expect(gate.release(29_999)).toEqual([]);
    const out = gate.release(30_000);
    expect(out.map((v) => v.value)).toEqual(['900']);
    expect(out[0]!.why).toMatch(/held 28\.0s by the 30s dwell/);
    expect(gate.release(40_000)).toEqual([]);
  });

  it('lets the urgent (safe) direction through at once', () => {
    const { gate, p } = setup();
    gate.propose('t', p('bw', 900), 0);
    expect(gate.propose('t', p('bw', 100), 1).verdict).toBe('emit');
    expect(gate.propose('t', p('bw', 500), 2).verdict).toBe('dwell');
    gate.propose('t', p('flag', false), 0);
    expect(gate.propose('t', p('flag', true), 1).verdict).toBe('emit');
    expect(gate.propose('t', p('flag', false), 2).verdict).toBe('dwell');
  });

  it('drops a held proposal that comes back to the emitted value (no flap after the dwell)', () => {
    const { gate, p } = setup();
    gate.propose('t', p('flag', true), 0);
    expect(gate.propose('t', p('flag', false), 1).verdict).toBe('dwell');
    expect(gate.propose('t', p('flag', true), 2).verdict).toBe('unchanged');
    expect(gate.release(60_000)).toEqual([]);
  });

  it('ignores changes smaller than the hysteresis, but not reaching a bound', () => {
    const { gate, p } = setup();
    gate.propose('t', p('bw', 500), 0);
    expect(gate.propose('t', p('bw', 520), 100_000).verdict).toBe('hysteresis');
    expect(gate.propose('t', p('bw', 526), 100_000).verdict).toBe('emit');
    gate.propose('t', p('bw', 990), 200_000);
    expect(gate.propose('t', p('bw', 1000), 300_000).verdict).toBe('emit');
  });

  it('emits nothing for a pinned variable, and keeps nothing to release later', () => {
    const { gate, p, pins } = setup();
    gate.propose('t', p('bw', 500), 0);
    gate.propose('t', p('bw', 800), 1);
    pins.set('h1/bw', '100');
    expect(gate.propose('t', p('bw', 700), 2).verdict).toBe('pinned');
    expect(gate.release(100_000)).toEqual([]);
    // other hosts are not pinned
    expect(gate.propose('t', p('bw', 700, 'h2'), 2).verdict).toBe('emit');
  });

  it('announces a pin once as learner operator and lets learners back right after the unpin', () => {
    const { gate, p, pins } = setup();
    gate.propose('t', p('bw', 500), 0);
    pins.set('h1/bw', '100');
    const v = gate.pin('h1', 'bw', '100', 'pinned by test', 10);
    expect(v).toMatchObject({
      learner: 'operator',
      model: 'operator',
      value: '100',
      type: 'int',
      unit: 'Mbps',
    });
    expect(gate.pin('h1', 'bw', '100', 'again', 11)).toBeUndefined();
    pins.delete('h1/bw');
    gate.unpin('h1', 'bw');
    // no dwell wait after an unpin
    expect(gate.propose('t', p('bw', 800), 12).verdict).toBe('emit');
  });

  it('rejects undeclared keys, bad hosts and values of the wrong type', () => {
    const { gate, p } = setup();
    expect(gate.propose('t', p('nope', 1), 0)).toMatchObject({ verdict: 'invalid' });
    expect(gate.propose('other', p('bw', 1), 0)).toMatchObject({ verdict: 'invalid' });
    expect(gate.propose('t', p('bw', 1, 'bad host'), 0).error).toMatch(/host/);
    expect(gate.propose('t', p('bw', Number.NaN), 0).error).toMatch(/int/);
    expect(gate.propose('t', p('ip', 'not-an-ip'), 0).error).toMatch(/IP/);
    expect(gate.propose('t', p('mode', 'c'), 0).error).toMatch(/one of a\|b/);
    expect(gate.propose('t', p('name', 'a,b'), 0).error).toMatch(/comma/);
    expect(gate.propose('t', p('name', 'a\nb'), 0).error).toMatch(/control/);
  });

  it('spells booleans as declared', () => {
    const { gate, p } = setup();
    expect(gate.propose('t', p('match', true), 0).variable!.value).toBe('True');
    expect(gate.propose('t', p('flag', 0), 0).variable!.value).toBe('false');
    expect(gate.propose('t', p('ip', '2001:db8::1'), 0).variable!.value).toBe('2001:db8::1');
  });

  it('snapshot and restore keep dwell state', () => {
    const { gate, p } = setup();
    gate.propose('t', p('bw', 500), 0);
    gate.propose('t', p('bw', 900), 1);
    const b = setup().gate;
    b.restore(JSON.parse(JSON.stringify(gate.snapshot())));
    expect(b.propose('t', p('bw', 950), 2).verdict).toBe('dwell');
    expect(b.release(30_000).map((v) => v.value)).toEqual(['950']);
  });

  it("announces the current value of every variable, learners' and pinned, after a restore", () => {
    const pins = new Map<string, string>();
    const { gate, p } = setup(pins);
    gate.propose('t', p('bw', 500), 0);
    gate.propose('t', p('ip', '10.0.0.1', 'h2'), 0);
    gate.propose('t', p('bw', 400), 1); // urgent (down): goes at once
    gate.pin('h1', 'mode', 'b', 'pinned by op', 2);
    const b = setup(pins).gate;
    b.restore(JSON.parse(JSON.stringify(gate.snapshot())));
    const all = b.announce().map((v) => `${v.host}/${v.key}=${v.value} by ${v.learner}`);
    expect(all.sort()).toEqual(['h1/bw=400 by t', 'h1/mode=b by operator', 'h2/ip=10.0.0.1 by t']);
    // the same value proposed again is unchanged: re-announcing is the only way it goes out
    expect(b.propose('t', p('bw', 400), 3).verdict).toBe('unchanged');
  });

  it('property: emitted numbers stay in bounds and change at most once per dwell unless urgent', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.integer({ min: 0, max: 20_000 })),
          {
            minLength: 1,
            maxLength: 80,
          },
        ),
        (steps) => {
          const { gate, p } = setup();
          let t = 0;
          const emitted: { t: number; v: number }[] = [];
          for (const [value, dt] of steps) {
            t += dt;
            const out = [...gate.release(t)];
            const r = gate.propose('t', p('bw', value), t);
            if (r.variable) out.push(r.variable);
            for (const v of out) emitted.push({ t, v: Number(v.value) });
          }
          for (let i = 0; i < emitted.length; i++) {
            const e = emitted[i]!;
            expect(e.v).toBeGreaterThanOrEqual(10);
            expect(e.v).toBeLessThanOrEqual(1000);
            expect(Number.isInteger(e.v)).toBe(true);
            if (i > 0) {
              const prev = emitted[i - 1]!;
              if (e.t - prev.t < 30_000) expect(e.v).toBeLessThan(prev.v); // only urgent (down) may be quick
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('value rules', () => {
  it('normalise rejects instead of clamping for operators', () => {
    expect(() => normalise(DECLS[0]!, '5000', false)).toThrow(ValueError);
    expect(() => normalise(DECLS[0]!, '5000', false)).toThrow(/within \[10, 1000\] Mbps/);
    expect(normalise(DECLS[0]!, ' 250 ', false).value).toBe('250');
    expect(() => normalise(DECLS[0]!, '', false)).toThrow(ValueError);
  });

  it('string values follow the contract: printable, single-line, comma-free, at most 1000 bytes', () => {
    const s = { ...DECLS[0]!, key: 'who', type: 'string' as const };
    expect(normalise(s, 'ok value').value).toBe('ok value');
    expect(() => normalise(s, 'x'.repeat(1001))).toThrow(/1000 bytes/);
    expect(() => normalise(s, 'é'.repeat(501))).toThrow(/1000 bytes/);
    expect(() => normalise(s, 'a\tb')).toThrow(/control/);
    expect(() => normalise(s, 'a,b')).toThrow(/conf file separates pairs/);
  });
});

describe('emission gate: read-only states (the dashboard)', () => {
  it('says which variables are clamped, held by their dwell or pinned, and changes nothing', () => {
    const { gate, p, pins } = setup();
    gate.propose('t', p('bw', 5000), 0);
    gate.propose('t', p('risk', 0.5), 0);
    gate.propose('t', p('flag', false), 0);
    expect(gate.propose('t', p('bw', 700), 1_000).verdict).toBe('emit'); // down: urgent, no dwell
    expect(gate.propose('t', p('bw', 900), 2_000).verdict).toBe('dwell');
    pins.set('h1/risk', '0.9');
    const before = JSON.stringify(gate.snapshot());
    const byKey = new Map(gate.states().map((s) => [s.key, s]));
    expect(JSON.stringify(gate.snapshot())).toBe(before);
    expect(byKey.get('bw')).toEqual({
      host: 'h1',
      key: 'bw',
      value: '700',
      learner: 't',
      model: 'm@1',
      pinned: false,
      held: { value: '900', since: 2_000, dwellMs: 30_000 },
    });
    expect(byKey.get('risk')!.pinned).toBe(true);
    expect(byKey.get('flag')!.clamped).toBeUndefined();
    // a clamped value stays marked until a value inside the bounds replaces it
    gate.propose('t', p('risk', 7), 3_000);
    pins.delete('h1/risk');
    gate.propose('t', p('risk', 7), 3_000);
    expect(gate.states().find((s) => s.key === 'risk')).toMatchObject({
      value: '1',
      pinned: false,
      clamped: { from: 7, min: 0, max: 1 },
    });
    gate.propose('t', p('risk', 0.2), 4_000);
    expect(gate.states().find((s) => s.key === 'risk')!.clamped).toBeUndefined();
  });
});
