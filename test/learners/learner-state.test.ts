// The one persistence shape of the learners (learners/learner-state.ts): state.json in a shared
// part and a part per host, the model beside it; a host's part taken out of one learner and put
// into another continues exactly where the first would have; states of the layout before it are
// read; a state of another learner or version is refused.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBackend } from '../../learners/backend.ts';
import { exportShared, importShared, LearnerStateError, STATE_FORMAT } from '../../learners/learner-state.ts';
import { LoadLearner } from '../../learners/load.ts';
import { NetbwLearner } from '../../learners/netbw.ts';
import type { Learner, Proposal, Tf } from '../../learners/types.ts';
import { UfwLearner } from '../../learners/ufw.ts';
import { Rng } from '../../learners/window.ts';
import type { KernelEvent } from '../../schemas/index.ts';
import { ev, ufwEvent } from '../helpers/events.ts';

let tf: Tf;
beforeAll(async () => {
  tf = (await loadBackend()).tf;
});

const MIN = 60_000;
const tmp = () => mkdtempSync(join(tmpdir(), 'virgo-lstate-'));

/** Minutes of mixed traffic for `hosts`: UFW blocks, link and drop reports, load samples. */
function traffic(hosts: string[], from: number, minutes: number, seed: number): KernelEvent[] {
  const rng = new Rng(seed);
  const out: KernelEvent[] = [];
  for (let m = from; m < from + minutes; m++) {
    for (const h of hosts) {
      const t = m * MIN + rng.int(MIN - 1);
      for (let i = 0; i < 1 + rng.int(4); i++) out.push(ufwEvent(h, t + i, `198.51.100.${rng.int(20)}`, 22));
      if (rng.int(3) === 0) out.push(ev(h, t + 10, 'e1000e: eth0 NIC Link is Down'));
      if (rng.int(4) === 0) out.push(ev(h, t + 20, 'nf_conntrack: table full, dropping packet'));
      out.push(
        ev(
          h,
          t + 30,
          `virgo_load: load=${(rng.int(400) / 100).toFixed(2)} runq=${rng.int(8)} exec_ms=${100 + rng.int(200)}`,
        ),
      );
    }
  }
  return out.sort((a, b) => a.ts - b.ts);
}

const strip = (ps: Proposal[]) => ps.map((p) => `${p.host}/${p.key}=${p.value}`).sort();

const makers: Record<string, () => Learner> = {
  ufw: () => new UfwLearner(),
  netbw: () => new NetbwLearner(tf, NetbwLearner.buildModel(tf, 0.05, 7), { warmup: 5 }),
  load: () => new LoadLearner(tf, LoadLearner.buildModel(tf, 0.05, 13), { warmup: 4 }),
};

describe('learner state: a shared part, a part per host, the model beside them', () => {
  for (const name of Object.keys(makers)) {
    it(`${name}: saved and loaded, it goes on as if never stopped`, async () => {
      const a = makers[name]!();
      const b = makers[name]!();
      const first = traffic(['h1', 'h2', 'h3'], 0, 30, 1);
      const then = traffic(['h1', 'h2', 'h3'], 30, 10, 2);
      await a.onEvents!(first);
      const dir = tmp();
      await a.save(dir);
      const file = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
      expect(file).toMatchObject({ format: STATE_FORMAT, learner: name, version: 1 });
      expect(file.hosts.map(([h]: [string]) => h).sort()).toEqual(['h1', 'h2', 'h3']);
      await b.load(dir);
      expect(strip(await b.onEvents!(then))).toEqual(strip(await a.onEvents!(then)));
      a.dispose();
      b.dispose();
    });
  }

  it("a host's part moves to another learner: exactly what the first learner had for it, and only that", async () => {
    const a = makers.ufw!();
    const b = makers.ufw!();
    await a.onEvents!(traffic(['h1', 'h2'], 0, 20, 3));
    await b.onEvents!(traffic(['h9'], 0, 20, 4));
    const moved = JSON.parse(JSON.stringify(a.state!.host('h2')));
    b.state!.restoreHost('h2', moved);
    a.state!.dropHost('h2');
    expect([...a.state!.hosts()]).toEqual(['h1']);
    expect([...b.state!.hosts()].sort()).toEqual(['h2', 'h9']);
    expect(b.state!.host('h2')).toEqual(moved);
    // the moved host goes on in b as it would have in a
    const ref = makers.ufw!();
    await ref.onEvents!(traffic(['h1', 'h2'], 0, 20, 3));
    const next = traffic(['h2'], 20, 10, 5);
    expect(strip(await b.onEvents!(next))).toEqual(strip(await ref.onEvents!(next)));
  });

  it('netbw: the forecast a host waits to judge moves with it', async () => {
    const a = makers.netbw!();
    await a.onEvents!(traffic(['h1', 'h2'], 0, 30, 6));
    const part = a.state!.host('h1') as { win: unknown; forecast?: number };
    expect(part.forecast).toBeTypeOf('number');
    a.dispose();
  });

  it('load: a node reported by another host moves with that host', async () => {
    const a = makers.load!();
    await a.onEvents!([
      ev('agent', 1_000, 'virgo_load: node=n7 load=1.5 runq=2'),
      ev('n8', 1_000, 'virgo_load: load=0.5'),
    ]);
    expect([...a.state!.hosts()].sort()).toEqual(['agent', 'n8']);
    const part = a.state!.host('agent') as { nodes: [string][] };
    expect(part.nodes.map(([n]) => n)).toEqual(['n7']);
    a.state!.dropHost('agent');
    expect(a.state!.host('agent')).toBeUndefined();
    a.dispose();
  });

  it("another instance's shared part and model (optimiser included) continue exactly where it was", async () => {
    const a = makers.netbw!() as NetbwLearner;
    const b = makers.netbw!() as NetbwLearner;
    await a.onEvents!(traffic(['h1', 'h2', 'h3'], 0, 40, 8));
    const doc = JSON.parse(JSON.stringify(await exportShared(a.state, tf)));
    expect(doc.trained).toBeGreaterThan(0);
    expect(await importShared(b.state, doc, tf)).toBe(true);
    // the same hosts' windows too, so both propose for the same hosts
    for (const h of ['h1', 'h2', 'h3']) b.state.restoreHost(h, JSON.parse(JSON.stringify(a.state.host(h))));
    const next = traffic(['h1', 'h2', 'h3'], 40, 20, 9);
    expect(strip(await b.onEvents!(next))).toEqual(strip(await a.onEvents!(next)));
    expect(b.risk([[1, 0, 1, 3, 0, 5, 0, 20]])).toEqual(a.risk([[1, 0, 1, 3, 0, 5, 0, 20]]));
    expect(await importShared(makers.load!().state!, doc, tf)).toBe(false);
    a.dispose();
    b.dispose();
  });

  it("load: another instance's shared part continues exactly, its plain-JS weights written into the model", async () => {
    const a = makers.load!() as LoadLearner;
    const b = makers.load!() as LoadLearner;
    // ends mid-window, so the open window's examples travel in the shared part too
    await a.onEvents!(traffic(['h1', 'h2', 'h3'], 0, 40, 8).slice(0, -5));
    const doc = JSON.parse(JSON.stringify(await exportShared(a.state, tf)));
    expect(doc.shared.pending.length).toBeGreaterThan(0);
    expect(await importShared(b.state, doc, tf)).toBe(true);
    expect(b.coefficients()).toEqual(a.coefficients());
    for (const h of ['h1', 'h2', 'h3']) b.state.restoreHost(h, JSON.parse(JSON.stringify(a.state.host(h))));
    const next = traffic(['h1', 'h2', 'h3'], 40, 20, 9);
    expect(strip(await b.onEvents!(next))).toEqual(strip(await a.onEvents!(next)));
    expect(b.coefficients()).toEqual(a.coefficients());
    a.dispose();
    b.dispose();
  });

  it('reads the layout before the split, and refuses a state of another learner or version', async () => {
    const dir = tmp();
    // ufw's state.json as it was: hosts beside the counts
    const a = makers.ufw!();
    await a.onEvents!(traffic(['h1'], 0, 5, 7));
    const host = a.state!.host('h1');
    writeFileSync(join(dir, 'state.json'), JSON.stringify({ hosts: [['h1', host]], events: 3, blocks: 2 }));
    const b = makers.ufw!();
    await b.load(dir);
    expect(b.state!.host('h1')).toEqual(host);
    expect(b.state!.shared()).toEqual({ events: 3, blocks: 2 });

    const netbw = tmp();
    const n = makers.netbw!();
    await n.save(netbw);
    await expect(b.load(netbw)).rejects.toThrow(LearnerStateError);
    const j = JSON.parse(readFileSync(join(netbw, 'state.json'), 'utf8'));
    writeFileSync(join(netbw, 'state.json'), JSON.stringify({ ...j, version: 99 }));
    await expect(n.load(netbw)).rejects.toThrow(/version 99/);
    n.dispose();
  });
});
