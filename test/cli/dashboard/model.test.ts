// The dashboard's memory is bounded: so many variables, so many history points each; what does
// not fit is counted, and the changes pushed to browsers are the newest per variable.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DashboardModel, type DashVariable, plotValue } from '../../../cli/dashboard/model.ts';
import { RateSampler } from '../../../cli/dashboard/rates.ts';
import { counter } from '../../../runtime/metrics.ts';

const v = (host: string, key: string, value: string): DashVariable => ({
  host,
  key,
  value,
  why: 'because',
  learner: 'ufw',
  model: 'ufw-exact@1',
  confidence: 1,
  ts: 0,
  type: 'float',
  unit: null,
});

describe('dashboard model', () => {
  it('plots numbers and booleans, not other text', () => {
    expect(plotValue('12.5')).toBe(12.5);
    expect(plotValue('True')).toBe(1);
    expect(plotValue('off')).toBe(0);
    expect(plotValue('203.0.113.7')).toBeUndefined();
    expect(plotValue('')).toBeUndefined();
    expect(plotValue('Infinity')).toBeUndefined();
  });

  it('keeps the last historyPoints numbers of a variable, oldest first', () => {
    const m = new DashboardModel({ historyPoints: 3 });
    for (let i = 0; i < 5; i++) m.update(v('h', 'k', String(i)), 1000 + i);
    const [row] = m.snapshot();
    expect(row!.history).toEqual([
      [1002, 2],
      [1003, 3],
      [1004, 4],
    ]);
    expect(row!.updates).toBe(5);
    expect(row!.seen).toBe(1004);
  });

  it('refuses new variables past maxVariables, counts them, keeps updating the others', () => {
    const m = new DashboardModel({ maxVariables: 2 });
    expect(m.update(v('a', 'k', '1'), 0)).toBe('added');
    expect(m.update(v('b', 'k', '1'), 0)).toBe('added');
    expect(m.update(v('c', 'k', '1'), 0)).toBe('refused');
    expect(m.update(v('a', 'k', '2'), 1)).toBe('updated');
    expect(m.size).toBe(2);
    expect(m.refused).toBe(1);
  });

  it('hands out the changes once, the newest per variable, tombstones included', () => {
    const m = new DashboardModel();
    m.update(v('a', 'k', '1'), 10);
    m.update(v('a', 'k', '2'), 11);
    m.update(v('a', 'x', 'text'), 12);
    const first = m.takeChanges();
    expect(first).toHaveLength(2);
    expect(first[0]).toMatchObject({ host: 'a', key: 'k', value: '2', point: [11, 2], updates: 2 });
    expect(first[1]).not.toHaveProperty('point');
    expect(m.takeChanges()).toEqual([]);
    expect(m.remove('a', 'k')).toBe(true);
    expect(m.remove('a', 'nope')).toBe(false);
    expect(m.takeChanges()).toEqual([{ host: 'a', key: 'k', removed: true }]);
    expect(m.snapshot().map((r) => r.key)).toEqual(['x']);
  });
});

describe('stage rates', () => {
  it('per second over the sample interval, summed over labels; absent counters are left out', async () => {
    const reg = new Registry();
    const c = counter('virgo_ingest_lines_total', 'x');
    reg.registerMetric(c);
    const late = counter('virgo_test_late_events_total', 'late', ['host']);
    reg.registerMetric(late);
    // a name with "late" inside a word is not a late counter
    reg.registerMetric(counter('virgo_test_template_misses_total', 'not late'));
    const r = new RateSampler(reg);
    c.reset();
    late.reset();
    const first = await r.sample(0);
    expect(first.map((x) => x.name)).toEqual(['lines in', 'late']);
    c.inc(50);
    late.inc({ host: 'a' }, 3);
    late.inc({ host: 'b' }, 1);
    const second = await r.sample(2_000);
    expect(second.find((x) => x.name === 'lines in')).toMatchObject({ total: 50, perSec: 25 });
    expect(second.find((x) => x.name === 'late')).toMatchObject({ total: 4, perSec: 2 });
    expect(second[0]!.history).toEqual([0, 25]);
  });
});
