// The anomaly learner on logs with a known answer: a generated fleet (bench/gen-anomaly.ts, its
// own stated model) read through the ingest parser and miner, and small hand-built streams for
// the properties that matter: incidents flagged and routine errors not, context (dump) lines not
// taken for events, a critical fault that keeps recurring kept an alarm while routine critical
// noise fades, windows judged before they are learnt, explanations that name the template, and a
// restart that changes nothing.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateAnomalyLog } from '../../bench/gen-anomaly.ts';
import { AnomalyLearner, type AnomalyOptions, type ScoredWindow } from '../../learners/anomaly.ts';
import type { Proposal } from '../../learners/types.ts';
import { Rng } from '../../learners/window.ts';
import type { KernelEvent } from '../../schemas/index.ts';
import { ev, parseLines } from '../helpers/events.ts';

const MIN = 60_000;
const T0 = Date.UTC(2024, 2, 1);

function learner(opts: AnomalyOptions = {}): AnomalyLearner {
  return new AnomalyLearner(opts);
}

async function feed(l: AnomalyLearner, events: KernelEvent[], batch = 1000): Promise<Proposal[]> {
  const out: Proposal[] = [];
  for (let i = 0; i < events.length; i += batch) out.push(...(await l.onEvents(events.slice(i, i + batch))));
  return out;
}

const NORMAL = ['sshd-accept', 'cron-run', 'dhcp-renew', 'systemd-start', 'usb-enum', 'ntp-adjust'];

/** A host's ordinary minute: a few lines of its usual templates, info level. */
function minute(host: string, w: number, rng: Rng, extra: Partial<KernelEvent>[] = []): KernelEvent[] {
  const out: KernelEvent[] = [];
  for (let i = 0, n = 3 + rng.int(5); i < n; i++) {
    const t = NORMAL[Math.min(NORMAL.length - 1, Math.floor(-Math.log(1 - rng.next()) * 2))]!;
    out.push(ev(host, T0 + w * MIN + rng.int(MIN - 1), 'x', { templateId: t, template: t, severity: 6 }));
  }
  for (const x of extra) out.push(ev(host, T0 + w * MIN + rng.int(MIN - 1), 'x', { severity: 6, ...x }));
  return out.sort((a, b) => a.ts - b.ts);
}

describe('anomaly learner on a generated fleet', () => {
  it('flags the incidents, not the routine errors, and beats severity alone', async () => {
    const g = generateAnomalyLog({ seed: 8, hosts: 4, hours: 8, perKind: 1 });
    const labels = g.lines.map((l) => l.slice(0, l.indexOf(' ')));
    const events = parseLines(
      g.lines.map((l) => l.slice(l.indexOf(' ') + 1)),
      g.end + MIN,
    );
    expect(events).toHaveLength(g.lines.length);
    const scored: ScoredWindow[] = [];
    const l = learner({ onWindow: (w) => scored.push(w) });
    await feed(l, events);
    await l.flush();
    l.dispose();

    // truth and the severity-only rule per host-window
    const key = (h: string, t: number) => `${h}|${Math.floor(t / MIN) * MIN}`;
    const truth = new Map<string, boolean>();
    const severe = new Map<string, boolean>();
    events.forEach((e, i) => {
      const k = key(e.host, e.ts);
      truth.set(k, (truth.get(k) ?? false) || labels[i] !== '-');
      severe.set(k, (severe.get(k) ?? false) || (e.severity !== null && e.severity <= 3));
    });
    expect(scored.length).toBe(truth.size); // every window judged, none twice
    const f1 = (pred: (s: ScoredWindow) => boolean) => {
      let tp = 0;
      let fp = 0;
      let fn = 0;
      for (const s of scored) {
        const t = truth.get(key(s.host, s.start))!;
        if (pred(s) && t) tp++;
        else if (pred(s)) fp++;
        else if (t) fn++;
      }
      return (2 * tp) / (2 * tp + fp + fn);
    };
    const mine = f1((s) => s.anomalous);
    expect(mine).toBeGreaterThan(0.5);
    expect(mine).toBeGreaterThan(1.3 * f1((s) => severe.get(key(s.host, s.start))!));

    // every incident has a flagged window, attributed to one of its own templates
    for (const inc of g.incidents) {
      const during = scored.filter(
        (s) => s.host === inc.host && s.start >= inc.start - MIN && s.start < inc.start + 40 * MIN,
      );
      expect(
        during.some((s) => s.anomalous),
        `${inc.kind} on ${inc.host}`,
      ).toBe(true);
    }
    // routine errors (the ACPI line every host logs about every 20 minutes) are quiet once the
    // host has shown them for a couple of hours, outside incident windows
    const acpi = scored.filter(
      (s) =>
        s.start >= T0 + 3 * 60 * MIN &&
        !truth.get(key(s.host, s.start)) &&
        s.top.some((t) => t.text.startsWith('ACPI Error')),
    );
    expect(acpi.length).toBeGreaterThan(20);
    expect(acpi.filter((s) => s.anomalous).length).toBeLessThanOrEqual(acpi.length * 0.1);
  });
  it('flags an oops at its event lines, not at its register dump and call trace', async () => {
    const g = generateAnomalyLog({ seed: 3, hosts: 6, hours: 12, perKind: 2 });
    const events = parseLines(
      g.lines.map((l) => l.slice(l.indexOf(' ') + 1)),
      g.end + MIN,
    );
    const scored: ScoredWindow[] = [];
    const l = learner({ onWindow: (w) => scored.push(w) });
    await feed(l, events);
    await l.flush();
    const oopses = g.incidents.filter((i) => i.kind === 'OOPS');
    expect(oopses.length).toBe(2);
    for (const inc of oopses) {
      const w = scored.find((s) => s.host === inc.host && s.start === Math.floor(inc.start / MIN) * MIN)!;
      expect(w.anomalous, `oops on ${inc.host}`).toBe(true);
      // attributed to the event (BUG:, #PF:, Oops:), never to a template of context lines only
      const byId = new Map(w.top.map((t) => [t.templateId, t]));
      expect(w.flagged.some((id) => /BUG: kernel NULL pointer/.test(byId.get(id)?.text ?? ''))).toBe(true);
      for (const id of w.flagged) {
        const t = byId.get(id);
        if (t) expect(t.ctx, t.text).toBeLessThan(t.n);
      }
      // and the explanation says which lines it took as context
      expect(w.why).toMatch(/; \d\d context lines \(\w+(, \w+)+\) taken as part of the event they describe;/);
    }
  });
});

describe('context lines and recurring critical faults', () => {
  it('takes a FATAL register dump for the context it is, and the FATAL event for an alarm', async () => {
    // Blue Gene/L nodes as in Loghub BGL: a crashed job's dump (FATAL context lines) on some nodes,
    // a data storage interrupt (FATAL event) on another; each node logs once, as there
    const lines = [
      'RAS KERNEL FATAL instruction address: 0x00004ed8',
      'RAS KERNEL FATAL machine check: i-fetch......................0',
      'RAS KERNEL FATAL lr:00004ed0 cr:28244842 xer:20000002 ctr:00086000',
      'RAS KERNEL FATAL special purpose registers:',
      'RAS KERNEL FATAL floating pt ex mode 0 enable......0',
      'RAS KERNEL FATAL data storage interrupt',
    ];
    const raw = lines.map((m, i) => {
      const t = new Date(T0 + i * 10 * MIN);
      const p = (n: number) => String(n).padStart(2, '0');
      const stamp = `${t.getUTCFullYear()}-${p(t.getUTCMonth() + 1)}-${p(t.getUTCDate())}-${p(t.getUTCHours())}.${p(t.getUTCMinutes())}.00.000000`;
      const node = `R0${i}-M0-N1-C:J02-U11`;
      return `${Math.floor(t.getTime() / 1000)} ${stamp.slice(0, 10).replace(/-/g, '.')} ${node} ${stamp} ${node} ${m}`;
    });
    const events = parseLines(raw, T0 + 90 * MIN);
    expect(events.map((e) => e.severity)).toEqual([2, 2, 2, 2, 2, 2]);
    const scored: ScoredWindow[] = [];
    const l = learner({ onWindow: (w) => scored.push(w) });
    await feed(l, events);
    await l.flush();
    expect(scored.map((w) => w.anomalous)).toEqual([false, false, false, false, false, true]);
    expect(scored[0]!.why).toMatch(
      /"instruction address: <\*>" x1 new \(context line \(register; its crit belongs/,
    );
    expect(scored[5]!.why).toMatch(/"data storage interrupt" x1 new \(crit \+7\.0/);
    // the same stream with the context rule off: every dump line is an alarm (what severity-only does)
    const off: ScoredWindow[] = [];
    const l2 = learner({ context: false, onWindow: (w) => off.push(w) });
    await feed(l2, parseLines(raw, T0 + 90 * MIN));
    await l2.flush();
    expect(off.every((w) => w.anomalous)).toBe(true);
  });

  /**
   * 30 hours of a small fleet, every host busy every minute: `hot-1` throttles (crit) about every
   * half hour from the start; after the 2 h baseline `node-9` raises a crit TLB error every 5
   * minutes (a fault), `db-1` an err-level ACPI error every 5 minutes (noise), and `hot-2` starts
   * throttling like hot-1.
   */
  async function fleet(opts: AnomalyOptions = {}): Promise<{ scored: ScoredWindow[]; at: Set<string> }> {
    // host/minute of every planted line, to find their windows
    const rng = new Rng(9);
    const tlb = { templateId: 'tlb', template: 'data TLB error interrupt', severity: 2 };
    const acpi = { templateId: 'acpi', template: 'ACPI Error: AE_NOT_FOUND, Evaluating _DSM', severity: 3 };
    const hot = {
      templateId: 'thr',
      template: 'CPU<*>: Core temperature above threshold, cpu clock throttled',
      severity: 2,
    };
    const events: KernelEvent[] = [];
    const at = new Set<string>();
    const plant = (host: string, w: number, x: Partial<KernelEvent> | false) => {
      if (x) at.add(`${host}/${x.templateId}/${w}`);
      events.push(...minute(host, w, rng, x ? [x] : []));
    };
    for (let w = 0; w < 30 * 60; w++) {
      plant('hot-1', w, rng.next() < 1 / 30 && hot);
      plant('node-9', w, w >= 240 && w % 5 === 0 && tlb);
      plant('db-1', w, w >= 240 && w % 5 === 2 && acpi);
      plant('hot-2', w, w >= 240 && rng.next() < 1 / 30 && hot);
    }
    events.sort((a, b) => a.ts - b.ts);
    const scored: ScoredWindow[] = [];
    const l = learner({ ...opts, onWindow: (x) => scored.push(x) });
    await feed(l, events);
    await l.flush();
    return { scored, at };
  }
  const having = (
    { scored, at }: { scored: ScoredWindow[]; at: Set<string> },
    host: string,
    id: string,
    fromMin: number,
    toMin: number,
  ) =>
    scored.filter((s) => {
      const w = (s.start - T0) / MIN;
      return s.host === host && w >= fromMin && w < toMin && at.has(`${host}/${id}/${w}`);
    });

  it('keeps a critical fault that keeps recurring an alarm, while recurring err and baseline crit noise fade', async () => {
    const scored = await fleet();
    expect(scored.scored.length).toBe(4 * 30 * 60);
    // the TLB errors: every window of them an alarm for the whole first day they recur …
    const fault = having(scored, 'node-9', 'tlb', 240, 240 + 23 * 60);
    expect(fault.length).toBeGreaterThan(250);
    expect(fault.filter((s) => !s.anomalous)).toEqual([]);
    const late = fault[fault.length - 1]!;
    expect(late.why).toMatch(
      /"data TLB error interrupt" x1 expected [\d.]+ \(crit \+7\.0 kept: recurring for 2\d\.\d h, not in the fleet's baseline/,
    );
    // … and routine once the host has logged them for a day
    const dayOld = having(scored, 'node-9', 'tlb', 240 + 24 * 60 + 10, 30 * 60);
    expect(dayOld.length).toBeGreaterThan(15);
    expect(dayOld.filter((s) => s.anomalous).length).toBeLessThanOrEqual(1);
    // the same err-level recurrence fades within hours
    const acpi = having(scored, 'db-1', 'acpi', 240 + 180, 30 * 60);
    expect(acpi.length).toBeGreaterThan(250);
    expect(acpi.filter((s) => s.anomalous).length).toBeLessThanOrEqual(acpi.length * 0.02);
    // thermal throttling (crit) the fleet showed in its baseline: routine on hot-1, and on hot-2
    // once hot-2 has shown it for a couple of hours
    for (const host of ['hot-1', 'hot-2']) {
      const thr = having(scored, host, 'thr', 240 + 180, 30 * 60);
      expect(thr.length, host).toBeGreaterThan(20);
      expect(thr.filter((s) => s.anomalous).length, host).toBeLessThanOrEqual(2);
    }
  });

  it('without the rule the recurring fault falls silent within hours (what the rule is for)', async () => {
    const scored = await fleet({ critRoutineSec: 60 });
    const fault = having(scored, 'node-9', 'tlb', 240 + 180, 240 + 23 * 60);
    expect(fault.filter((s) => s.anomalous).length).toBeLessThan(fault.length * 0.1);
  });
});

describe('anomaly learner', () => {
  it('judges each window before learning it', async () => {
    const rng = new Rng(3);
    const l = learner();
    const events: KernelEvent[] = [];
    for (let w = 0; w < 90; w++) events.push(...minute('db-1', w, rng));
    await feed(l, events);
    await l.flush();
    // What the learner would say of window 90 before seeing it …
    const next = minute('db-1', 90, rng, [{ templateId: 'novel-x', template: 'novel-x' }]);
    const before = l.scoreWindow(
      'db-1',
      next[0]!.ts,
      next.map((e) => e.templateId),
    );
    expect(before.top.find((t) => t.templateId === 'novel-x')!.fleetNew).toBe(true);
    // … is exactly what it says when the window arrives: it was judged with the state before it.
    const judged: ScoredWindow[] = [];
    const l2 = learner({ onWindow: (w) => judged.push(w) });
    await feed(l2, events);
    await l2.flush();
    await l2.onEvents(next);
    await l2.flush();
    const w90 = judged.find((w) => w.start === T0 + 90 * MIN)!;
    expect(w90.score).toBeCloseTo(before.score, 9);
    // and only then learnt: the same lines a minute later are no longer new
    const after = l2.scoreWindow(
      'db-1',
      T0 + 91 * MIN,
      next.map((e) => e.templateId),
    );
    expect(after.top.find((t) => t.templateId === 'novel-x')!.fleetNew).toBe(false);
    l.dispose();
    l2.dispose();
  });

  it('raises a new error at once, with an explanation naming it; the same error as routine does not', async () => {
    const rng = new Rng(4);
    const scored: ScoredWindow[] = [];
    const l = learner({ onWindow: (w) => scored.push(w) });
    const fan = { templateId: 'fan-err', template: 'thermal: fan <*> failed', severity: 3 };
    const events: KernelEvent[] = [];
    // 12 hours: the fan error every 15 minutes (routine on this host)
    for (let w = 0; w < 720; w++) events.push(...minute('web-1', w, rng, w % 15 === 7 ? [fan] : []));
    // then a disk error never seen before, three lines of it
    const disk = {
      templateId: 'ext4-err',
      template: 'EXT4-fs error (device <*>): ext4_find_entry:<*>: reading directory lblock <*>',
      severity: 3,
    };
    events.push(...minute('web-1', 720, rng, [disk, disk, disk]));
    const out = await feed(l, events);
    out.push(...(await l.flush()));
    l.dispose();

    const late = scored.filter((s) => s.start >= T0 + 240 * MIN && s.start < T0 + 720 * MIN);
    const fanWindows = late.filter((s) => s.top.some((t) => t.templateId === 'fan-err'));
    expect(fanWindows.length).toBeGreaterThan(25);
    expect(fanWindows.filter((s) => s.anomalous)).toEqual([]);
    // early on the fan error was new, so it was an alarm
    expect(scored.find((s) => s.start === T0 + 7 * MIN)!.anomalous).toBe(true);

    const hit = scored.find((s) => s.start === T0 + 720 * MIN)!;
    expect(hit.anomalous).toBe(true);
    expect(hit.flagged).toEqual(['ext4-err']);
    // the why: the template text, its count, that it is new, and what the severity added
    expect(hit.why).toMatch(
      /"EXT4-fs error \(device <\*>\): ext4_find_entry:<\*>: reading directory lblock <\*>" x3 new \(err \+7\.0/,
    );
    const proposed = out.filter((p) => p.key === 'kernel.anomaly' && p.why === hit.why);
    expect(proposed.map((p) => p.value)).toEqual([true]);
    expect(proposed[0]!.model).toMatch(/^anomaly-surprise@3\.\d+$/);
    // a known template's expected count is there for the operator to compare with
    const usual = late[late.length - 1]!;
    expect(usual.why).toMatch(/x\d+ expected \d/);
  });

  it('flags a burst of a known template and names it', async () => {
    const rng = new Rng(5);
    const scored: ScoredWindow[] = [];
    const l = learner({ onWindow: (w) => scored.push(w) });
    const events: KernelEvent[] = [];
    for (let w = 0; w < 180; w++) events.push(...minute('gw-1', w, rng));
    const burst = Array.from({ length: 60 }, () => ({ templateId: 'cron-run', template: 'cron-run' }));
    events.push(...minute('gw-1', 180, rng, burst));
    await feed(l, events);
    await l.flush();
    l.dispose();
    const before = scored.filter((s) => s.start >= T0 + 60 * MIN && s.start < T0 + 180 * MIN);
    expect(before.filter((s) => s.anomalous).length).toBeLessThanOrEqual(2);
    const hit = scored.find((s) => s.start === T0 + 180 * MIN)!;
    expect(hit.anomalous).toBe(true);
    expect(hit.flagged).toContain('cron-run');
    expect(hit.why).toMatch(/"cron-run" x6\d expected [\d.]+ \(info \+0\.0, rate \+[\d.]+, burst \+[\d.]+\)/);
  });

  it('restores from a snapshot and goes on exactly as an uninterrupted learner', async () => {
    const rng = new Rng(6);
    const events: KernelEvent[] = [];
    for (let w = 0; w < 120; w++) {
      for (const h of ['a', 'b']) {
        const extra = w % 37 === 5 ? [{ templateId: `odd-${w}`, template: `odd ${w}`, severity: 3 }] : [];
        events.push(...minute(h, w, rng, extra));
      }
    }
    events.sort((x, y) => x.ts - y.ts);
    // split on a batch boundary, so both runs see the same batches
    const half = Math.round(events.length / 1000) * 500;
    const whole = learner();
    const all = await feed(whole, events, 500);
    const first = learner();
    const part1 = await feed(first, events.slice(0, half), 500);
    const dir = mkdtempSync(join(tmpdir(), 'virgo-anomaly-'));
    await first.save(dir);
    first.dispose();
    const second = learner();
    await second.load(dir);
    const part2 = await feed(second, events.slice(half), 500);
    expect([...part1, ...part2]).toEqual(all);
    expect(second.stats()).toEqual(whole.stats());
    whole.dispose();
    second.dispose();
  });

  it('refuses a snapshot of an older learner instead of misreading it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virgo-anomaly-'));
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ hosts: [], replay: [], history: [], df: [] }));
    const l = learner();
    await expect(l.load(dir)).rejects.toThrow(/anomaly-ae@1.*anomaly-surprise@3/);
    // the previous version (with its autoencoder, no baseline or context) is refused too
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ version: 2, arch: 'anomaly-surprise@2' }));
    await expect(l.load(dir)).rejects.toThrow(/anomaly-surprise@2 \(version 2\).*anomaly-surprise@3/);
    l.dispose();
  });
});
