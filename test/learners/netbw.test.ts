// netbw converges on generated traffic with a known answer: congestion comes in persistent spells
// (a Markov chain staying put 90% of the time), so the Bayes-optimal forecast of "next window
// congested" is about 0.9 after a congested window and 0.1 after a quiet one.
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBackend } from '../../learners/backend.ts';
import { classifyNetEvent, f1Threshold, NetbwLearner } from '../../learners/netbw.ts';
import type { Tf } from '../../learners/types.ts';
import { Rng } from '../../learners/window.ts';
import type { KernelEvent } from '../../schemas/index.ts';
import { ev, ufwEvent } from '../helpers/events.ts';

let tf: Tf;
beforeAll(async () => {
  tf = (await loadBackend()).tf;
});

const MIN = 60_000;

function windowEvents(host: string, w: number, congested: boolean, rng: Rng): KernelEvent[] {
  const t = w * MIN;
  const at = () => t + rng.int(MIN - 1);
  const out: KernelEvent[] = [];
  for (let i = 0, n = 3 + rng.int(8); i < n; i++)
    out.push(ev(host, at(), 'systemd[1]: Started Session 12 of user root.'));
  for (let i = 0, n = rng.int(4); i < n; i++) out.push(ufwEvent(host, at(), `198.51.100.${rng.int(50)}`, 22));
  if (congested) {
    for (let i = 0, n = 1 + rng.int(2); i < n; i++) {
      out.push(
        ev(host, at(), 'NETDEV WATCHDOG: eth0 (e1000e): transmit queue 0 timed out', { family: 'watchdog' }),
      );
    }
    for (let i = 0, n = rng.int(2); i < n; i++) {
      out.push(
        ev(host, at(), 'e1000e: eth0 NIC Link is Down', {
          family: 'link',
          fields: { iface: 'eth0', state: 'down' },
        }),
      );
    }
    for (let i = 0, n = 1 + rng.int(4); i < n; i++)
      out.push(ev(host, at(), 'nf_conntrack: table full, dropping packet'));
    for (let i = 0, n = 10 + rng.int(20); i < n; i++)
      out.push(ufwEvent(host, at(), `203.0.113.${rng.int(9)}`, 80));
  }
  return out.sort((a, b) => a.ts - b.ts);
}

describe('netbw learner', () => {
  it('classifies network evidence into window features', () => {
    const c = new Array(8).fill(0);
    classifyNetEvent(ev('h', 0, 'NETDEV WATCHDOG: eth0 (igb): transmit queue 2 timed out'), c);
    classifyNetEvent(ev('h', 0, 'eth0: link down', { family: 'link', fields: { state: 'down' } }), c);
    classifyNetEvent(ev('h', 0, 'e1000e 0000:00:19.0 eth0: Reset adapter unexpectedly'), c);
    classifyNetEvent(ufwEvent('h', 0, '192.0.2.1', 22), c);
    expect(c).toEqual([1, 0, 1, 0, 1, 1, 0, 4]);
  });

  it('learns which windows precede congestion and maps the risk to MaxNetworkBandwidth', async () => {
    const rng = new Rng(3);
    const l = new NetbwLearner(tf, NetbwLearner.buildModel(tf, 0.05, 7), { warmup: 20, steps: 4 });
    const hosts = ['edge-1', 'edge-2', 'edge-3'];
    const state = new Map(hosts.map((h, i) => [h, i === 0]));
    let last: Awaited<ReturnType<NetbwLearner['onEvents']>> = [];
    const W = 240;
    const regime: boolean[][] = hosts.map(() => []);
    for (let w0 = 0; w0 < W; w0 += 8) {
      const batch: KernelEvent[] = [];
      for (let w = w0; w < w0 + 8; w++) {
        hosts.forEach((h, i) => {
          if (rng.next() > 0.9) state.set(h, !state.get(h));
          regime[i]!.push(state.get(h)!);
          batch.push(...windowEvents(h, w, state.get(h)!, rng));
        });
      }
      last = await l.onEvents(batch.sort((a, b) => a.ts - b.ts));
    }
    const congestedCounts = [1, 0, 2, 3, 0, 25, 0, 40];
    const quietCounts = [0, 0, 0, 0, 0, 2, 0, 8];
    const [hi, lo] = l.risk([congestedCounts, quietCounts]);
    expect(hi).toBeGreaterThan(0.7);
    expect(lo).toBeLessThan(0.3);

    // Held-out accuracy of the forecast against the true next regime, near the Bayes rate (0.9).
    const test = new Rng(99);
    let right = 0;
    let n = 0;
    for (let k = 0; k < 200; k++) {
      const now = test.next() < 0.5;
      const next = test.next() < 0.9 ? now : !now;
      const counts = new Array(8).fill(0);
      for (const e of windowEvents('x', 0, now, test)) classifyNetEvent(e, counts);
      const [r] = l.risk([counts]);
      if (r! > 0.5 === next) right++;
      n++;
    }
    expect(right / n).toBeGreaterThan(0.8);

    // The last proposals follow each host's last regime.
    hosts.forEach((h, i) => {
      const bw = last.filter((p) => p.host === h && p.key === 'MaxNetworkBandwidth').at(-1);
      expect(bw, `proposal for ${h}`).toBeDefined();
      const wasCongested = regime[i]![W - 2]!; // the last closed window
      if (wasCongested) expect(bw!.value as number).toBeLessThan(400);
      else expect(bw!.value as number).toBeGreaterThan(700);
      expect(bw!.why).toMatch(/next-window congestion risk=\d\.\d{3} evidence: link_down=\d+/);
      expect(bw!.model).toMatch(/^netbw-logreg@1\.\d+$/);
    });
    expect(l.stats()).toMatchObject({ hosts: 3, warm: 1 });
  });

  it('stays silent while it has seen fewer examples than its warm-up', async () => {
    const l = new NetbwLearner(tf, NetbwLearner.buildModel(tf, 0.05, 7), { warmup: 50 });
    const rng = new Rng(1);
    const events: KernelEvent[] = [];
    for (let w = 0; w < 10; w++) events.push(...windowEvents('h', w, false, rng));
    expect(await l.onEvents(events)).toEqual([]);
  });

  it('counts e1000e\'s "Detected Hardware Unit Hang" as a NIC error (a congestion precursor)', () => {
    const counts = new Array(8).fill(0);
    classifyNetEvent(ev('h', 0, 'e1000e 0000:00:19.0 eth0: Detected Hardware Unit Hang:'), counts);
    classifyNetEvent(ev('h', 0, 'e1000 0000:02:01.0 eth1: Detected Tx Unit Hang'), counts);
    expect(counts[4]).toBe(2);
  });

  it('learns its alert threshold as the F1-best cut of its own past forecasts', () => {
    // outcomes are 1 from risk 0.3 up, with one false alarm at 0.35: the best cut is below 0.3
    const pairs: [number, number][] = [
      [0.9, 1],
      [0.6, 1],
      [0.4, 1],
      [0.35, 0],
      [0.3, 1],
      [0.2, 0],
      [0.1, 0],
      [0.05, 0],
    ];
    expect(f1Threshold(pairs)).toBeCloseTo(0.25, 12);
    // no positive or no negative outcome yet: nothing to learn from
    expect(f1Threshold([[0.9, 0]], 0.5)).toBe(0.5);
    expect(f1Threshold([[0.1, 1]], 0.4)).toBe(0.4);
  });

  it('proposes netbw.congestion_expected from the learnt alert threshold, and saves it', async () => {
    const l = new NetbwLearner(tf, NetbwLearner.buildModel(tf, 0.05, 7), { warmup: 5, alertMin: 20 });
    const rng = new Rng(3);
    let out: Awaited<ReturnType<NetbwLearner['onEvents']>> = [];
    // a host whose congestion comes every other window: forecasts are judged as windows close
    for (let w = 0; w < 60; w++) out = await l.onEvents(windowEvents('h', w, w % 2 === 1, rng));
    const expected = out.find((p) => p.key === 'netbw.congestion_expected');
    const risk = out.find((p) => p.key === 'netbw.congestion_risk')!.value as number;
    const alert = Number(l.stats().alert_threshold);
    expect(alert).toBeGreaterThan(0);
    expect(alert).toBeLessThan(1);
    expect(expected?.value).toBe(risk >= alert);
    expect(expected?.why).toMatch(/alert>=\d\.\d{3}/);
    // advance() closes the open window without an event of the next one
    const next = await l.advance(61 * 60_000 + 1);
    expect(next.filter((p) => p.host === 'h').map((p) => p.key)).toContain('netbw.congestion_risk');
  });
});
