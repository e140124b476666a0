// The load regression converges on generated samples with known coefficients, and the least-loaded
// node it emits is the one the generator makes fastest.
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBackend } from '../../learners/backend.ts';
import { CLUSTER_HOST, LOAD_HEURISTIC, LoadLearner, parseLoadLine } from '../../learners/load.ts';
import type { Tf } from '../../learners/types.ts';
import { Rng } from '../../learners/window.ts';
import type { KernelEvent } from '../../schemas/index.ts';
import { ev } from '../helpers/events.ts';

let tf: Tf;
beforeAll(async () => {
  tf = (await loadBackend()).tf;
});

// the truth: exec_ms = 20 + 40·load + 5·runq + 30·hung, hung being the node's hung-task reports
// decayed with the learner's half-life (300 s), i.e. in the learner's own feature space
const truth = (load: number, runq: number, hung: number) => 20 + 40 * load + 5 * runq + 30 * hung;
const decay = (v: number, dtMs: number) => v * 0.5 ** (dtMs / 300_000);

describe('load learner', () => {
  it('parses the evidence lines it accepts', () => {
    expect(parseLoadLine('virgo_load: node=n1 load=1.5 runq=3 exec_ms=120', 'h')).toEqual({
      node: 'n1',
      load: 1.5,
      runq: 3,
      execMs: 120,
    });
    expect(parseLoadLine('virgo_load: load=0.2', 'h')).toEqual({ node: 'h', load: 0.2 });
    expect(parseLoadLine('virgo_load: node=n1 load=-1 exec_ms=abc', 'h')).toEqual({ node: 'n1' });
    expect(parseLoadLine('eth0: link up', 'h')).toBeUndefined();
  });

  it('learns execution time from load evidence and names the least loaded node', async () => {
    const rng = new Rng(21);
    const l = new LoadLearner(tf, LoadLearner.buildModel(tf, 0.05, 13), { warmup: 16, steps: 10 });
    const nodes = ['n1', 'n2', 'n3', 'n4', 'n5'];
    const base = [3.0, 1.0, 0.4, 2.0, 4.0];
    let t = Date.UTC(2024, 0, 1);
    let out: Awaited<ReturnType<LoadLearner['onEvents']>> = [];
    // before any exec_ms: the heuristic ranks by raw load
    out = await l.onEvents(nodes.map((n, i) => ev(n, t, `virgo_load: node=${n} load=${base[i]} runq=1`)));
    expect(out.find((p) => p.key === 'cpupooling.least_loaded_node')).toMatchObject({
      host: CLUSTER_HOST,
      value: 'n3',
      model: LOAD_HEURISTIC,
    });
    const lastSeen = new Map<string, [number, number]>();
    let hungN3 = 0;
    let hungAt = t;
    for (let round = 0; round < 60; round++) {
      const batch: KernelEvent[] = [];
      for (let k = 0; k < 25; k++) {
        t += 2_000;
        const i = rng.int(nodes.length);
        const load = Math.max(0, base[i]! + (rng.next() - 0.5) * 2);
        const runq = rng.int(8);
        // n3 is the least loaded, but it keeps hanging tasks: it is not the fastest.
        if (i === 2 && rng.next() < 0.3) {
          batch.push(ev('n3', t - 1, 'INFO: task kworker/0:1:123 blocked for more than 120 seconds.'));
          hungN3 = decay(hungN3, t - 1 - hungAt) + 1;
          hungAt = t - 1;
        }
        const y = truth(load, runq, i === 2 ? decay(hungN3, t - hungAt) : 0) + rng.normal() * 3;
        lastSeen.set(nodes[i]!, [Number(load.toFixed(3)), runq]);
        batch.push(
          ev(
            nodes[i]!,
            t,
            `virgo_load: node=${nodes[i]} load=${load.toFixed(3)} runq=${runq} exec_ms=${y.toFixed(1)}`,
          ),
        );
      }
      out = await l.onEvents(batch);
    }
    const c = l.coefficients();
    // the generator's coefficients: 40 per unit of load, 5 per runnable task, 30 per hung task
    expect(c.w[0]).toBeGreaterThan(34);
    expect(c.w[0]).toBeLessThan(46);
    expect(c.w[1]).toBeGreaterThan(3);
    expect(c.w[1]).toBeLessThan(7);
    expect(c.w[2]).toBeGreaterThan(20);
    expect(c.w[2]).toBeLessThan(40);
    const pred = l.predict();
    expect(pred.size).toBe(5);
    // n2 (load 1, no hung tasks) is the fastest by construction
    expect(out.find((p) => p.key === 'cpupooling.least_loaded_node')).toMatchObject({
      host: CLUSTER_HOST,
      value: 'n2',
    });
    // its prediction for n2's latest evidence is close to the generator's truth
    const [load2, runq2] = lastSeen.get('n2')!;
    const want = truth(load2, runq2, 0);
    expect(Math.abs(pred.get('n2')! - want) / want).toBeLessThan(0.15);
    expect(pred.get('n5')!).toBeGreaterThan(pred.get('n1')!);
    const perNode = out.filter((p) => p.key === 'cpupooling.predicted_exec_ms');
    expect(perNode.map((p) => p.host).sort()).toEqual(nodes);
    expect(perNode[0]!.model).toMatch(/^load-linreg@1\.\d+$/);
    expect(perNode[0]!.why).toMatch(/load=\S+ runq=\d+ hung=\S+/);
  });

  it('keeps the current node unless another is clearly better (no flapping on noise)', async () => {
    const l = new LoadLearner(tf, LoadLearner.buildModel(tf, 0.05, 13), { switchMargin: 0.1 });
    const t = Date.UTC(2024, 0, 1);
    const least = async (loads: [number, number]) =>
      (
        await l.onEvents([
          ev('a', t, `virgo_load: node=a load=${loads[0]}`),
          ev('b', t, `virgo_load: node=b load=${loads[1]}`),
        ])
      ).find((p) => p.key === 'cpupooling.least_loaded_node')!.value;
    expect(await least([1.0, 1.05])).toBe('a');
    expect(await least([1.05, 1.0])).toBe('a');
    expect(await least([2.0, 1.0])).toBe('b');
  });

  it('learns how much slower a node runs than its load says (hardware differs), per node', async () => {
    const l = new LoadLearner(tf, LoadLearner.buildModel(tf, 0.05, 13), { warmup: 16, steps: 10 });
    const rng = new Rng(5);
    let t = Date.UTC(2024, 0, 1);
    // the same load and run queue everywhere; node slow's jobs take twice as long
    for (let round = 0; round < 40; round++) {
      const batch: KernelEvent[] = [];
      for (const node of ['fast', 'slow', 'mid']) {
        t += 1_000;
        const load = 1 + rng.next() * 3;
        const y = (node === 'slow' ? 2 : 1) * (20 + 40 * load) * Math.exp(0.05 * rng.normal());
        batch.push(
          ev(node, t, `virgo_load: node=${node} load=${load.toFixed(2)} runq=2 exec_ms=${y.toFixed(1)}`),
        );
      }
      await l.onEvents(batch);
    }
    const out = await l.onEvents(
      ['fast', 'slow', 'mid'].map((n) => ev(n, t + 1_000, `virgo_load: node=${n} load=2 runq=2`)),
    );
    const pred = l.predict();
    expect(pred.get('slow')! / pred.get('fast')!).toBeGreaterThan(1.6);
    expect(pred.get('slow')! / pred.get('fast')!).toBeLessThan(2.4);
    expect(out.find((p) => p.host === 'slow' && p.key === 'cpupooling.predicted_exec_ms')!.why).toMatch(
      /node_factor=1\.[3-9]\d/,
    );
    expect(out.find((p) => p.key === 'cpupooling.least_loaded_node')!.value).not.toBe('slow');
  });
});
