import { describe, expect, it } from 'vitest';
import {
  analyticsPick,
  balancerRule,
  CloudConfError,
  expectedRequestsPerNode,
  parseVirgoCloudConf,
  prgPick,
} from '../../../actuators/drivers/index.ts';
import { VariableTable } from '../../../kernel-analytics/index.ts';
import { seededRandom } from '../../../runtime/rng.ts';

describe('expectedRequestsPerNode (the original PRG formula)', () => {
  it('evaluates the closed form exactly', () => {
    // (N^(k+2) - kN^2 + kN - 1) / (N^(k+3) - 2N^(k+2) + N^(k+1)), by hand:
    expect(expectedRequestsPerNode(2, 1)).toBeCloseTo(5 / 4, 12); // (8-4+2-1)/(16-16+4)
    expect(expectedRequestsPerNode(3, 2)).toBeCloseTo(68 / 108, 12); // (81-18+6-1)/(243-162+27)
    expect(expectedRequestsPerNode(10, 3)).toBeCloseTo((1e5 - 300 + 30 - 1) / (1e6 - 2e5 + 1e4), 12);
  });

  it('is the sum over x of x/N^x plus (N+1)/(N^(k+1)(N-1)): what the notes derived', () => {
    for (const N of [2, 3, 5, 8]) {
      for (const k of [1, 2, 5, 10]) {
        let s = 0;
        for (let x = 1; x <= k; x++) s += x / N ** x;
        expect(expectedRequestsPerNode(N, k)).toBeCloseTo(s + (N + 1) / (N ** (k + 1) * (N - 1)), 10);
      }
    }
  });

  it('handles one node and refuses nonsense', () => {
    expect(expectedRequestsPerNode(1, 7)).toBe(7);
    expect(() => expectedRequestsPerNode(0, 1)).toThrow(/positive integer/);
    expect(() => expectedRequestsPerNode(2, -1)).toThrow(/non-negative/);
    expect(() => expectedRequestsPerNode(2.5, 1)).toThrow(RangeError);
  });
});

describe('prgPick', () => {
  it('spreads k requests evenly: k/N per node in expectation (chi-square, seeded)', () => {
    const rand = seededRandom(42);
    const N = 5;
    const k = 50_000;
    const counts = new Array<number>(N).fill(0);
    for (let i = 0; i < k; i++) counts[prgPick(N, (n) => Math.floor(rand() * n))]!++;
    const e = k / N;
    const chi2 = counts.reduce((a, c) => a + (c - e) ** 2 / e, 0);
    expect(chi2).toBeLessThan(18.5); // 4 degrees of freedom, p = 0.001
  });

  it('uses the OS generator by default and stays in range', () => {
    for (let i = 0; i < 1000; i++) {
      const x = prgPick(3);
      expect(x >= 0 && x < 3 && Number.isInteger(x)).toBe(true);
    }
    expect(() => prgPick(0)).toThrow(/no nodes/);
  });
});

describe('analyticsPick and the balancer variable', () => {
  const nodes = parseVirgoCloudConf('10.0.0.1,10.0.0.2,10.0.0.3:10001');

  it('picks the least predicted execution time, published per node host', () => {
    const t = new VariableTable();
    expect(analyticsPick(nodes, t)).toBeUndefined();
    t.set('cpupooling.predicted_exec_ms', '120', { host: '10.0.0.1' });
    t.set('cpupooling.predicted_exec_ms', '80', { host: '10.0.0.2' });
    t.set('cpupooling.predicted_exec_ms', '95', { host: '10.0.0.3:10001' });
    expect(analyticsPick(nodes, t)).toEqual({ index: 1, load: 80, basis: 'predicted-load' });
    t.set('cpupooling.predicted_exec_ms', '60', { host: '10.0.0.3:10001' });
    expect(analyticsPick(nodes, t)?.index).toBe(2);
    // a non-number is no evidence
    t.set('cpupooling.predicted_exec_ms', 'soon', { host: '10.0.0.3:10001' });
    expect(analyticsPick(nodes, t)?.index).toBe(1);
  });

  it('breaks ties by requests in flight, then list order', () => {
    const t = new VariableTable();
    t.set('cpupooling.predicted_exec_ms', '50', { host: '10.0.0.1' });
    t.set('cpupooling.predicted_exec_ms', '50', { host: '10.0.0.2' });
    expect(analyticsPick(nodes, t)?.index).toBe(0);
    expect(analyticsPick(nodes, t, (i) => (i === 0 ? 3 : 0))?.index).toBe(1);
  });

  it('falls back to cpupooling.least_loaded_node (the load learner publishes it for host cluster)', () => {
    const t = new VariableTable();
    t.set('cpupooling.least_loaded_node', '10.0.0.3', { host: 'cluster' });
    expect(analyticsPick(nodes, t)).toEqual({ index: 2, basis: 'least-loaded-node' });
    t.set('cpupooling.least_loaded_node', 'nowhere', { host: 'cluster' });
    expect(analyticsPick(nodes, t)).toBeUndefined();
  });

  it('reads the rule from cpupooling.balancer, falling back on unknown values', () => {
    const t = new VariableTable();
    expect(balancerRule(t, 'prg')).toEqual({ rule: 'prg' });
    t.set('cpupooling.balancer', 'Analytics');
    expect(balancerRule(t, 'prg')).toEqual({ rule: 'analytics' });
    t.set('cpupooling.balancer', 'round-robin');
    expect(balancerRule(t, 'prg')).toEqual({ rule: 'prg', invalid: 'round-robin' });
  });
});

describe('virgo_cloud.conf', () => {
  it('reads the original comma-separated IP list with port 10000', () => {
    expect(parseVirgoCloudConf('192.168.1.2,192.168.1.3\n')).toEqual([
      { host: '192.168.1.2', port: 10000, id: '192.168.1.2:10000' },
      { host: '192.168.1.3', port: 10000, id: '192.168.1.3:10000' },
    ]);
  });

  it('takes host:port, names, IPv6, newlines and comments', () => {
    const n = parseVirgoCloudConf('# the cloud\nnode-a.local:10001, 10.0.0.2\n[::1]:10002,::2\n');
    expect(n.map((x) => x.id)).toEqual([
      'node-a.local:10001',
      '10.0.0.2:10000',
      '[::1]:10002',
      '[::2]:10000',
    ]);
  });

  it.each([
    ['10.0.0.1,,10.0.0.2', /entry 2 is empty \(two commas in a row\?\)/],
    ['10.0.0.1,', /entry 2 is empty \(a trailing comma\?\)/],
    ['10.0.0.1:99999', /port must be 1-65535/],
    ['10.0.0.1:', /has a ':' but no port/],
    ['bad host!', /neither an IP address nor a host name/],
    ['10.0.0.1,10.0.0.1:10000', /listed twice \(also entry 1\)/],
    ['# nothing\n\n', /lists no nodes/],
    ['[10.0.0.1]:5', /only IPv6 addresses go in brackets/],
    ['999.1.1.1', /neither an IP address nor a host name/],
  ])('%j is refused: %s', (text, msg) => {
    expect(() => parseVirgoCloudConf(text, { source: '/etc/virgo_cloud.conf' })).toThrow(CloudConfError);
    expect(() => parseVirgoCloudConf(text, { source: '/etc/virgo_cloud.conf' })).toThrow(msg);
  });

  it('names the file and line in errors', () => {
    expect(() => parseVirgoCloudConf('10.0.0.1\n10.0.0.2,x y', { source: 'c.conf' })).toThrow(
      /^c\.conf line 2, entry 3: /,
    );
  });
});
