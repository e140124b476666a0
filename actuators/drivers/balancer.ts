// CPU pooling's two node-choice rules (docs/design.md §6.2), and the variable that switches them.
//  - prg: the original's "Loadbalancer option 2": each request goes to node `random % N`, random
//    from the OS CSPRNG (the original read /dev/urandom). No load tracking at all.
//  - analytics: the least predicted load, from the variables the `load` learner exports.
import { randomInt } from 'node:crypto';
import { parseNumber } from '../../schemas/variable.ts';
import type { VariableSource } from './variables.ts';
import type { CloudNode } from './virgo-cloud-conf.ts';

export type BalancerRule = 'prg' | 'analytics';
export const BALANCER_RULES: readonly BalancerRule[] = ['prg', 'analytics'];

/**
 * The variables CPU pooling reads. The `load` learner publishes `cpupooling.predicted_exec_ms`
 * under each node's own host name and `cpupooling.least_loaded_node` (host `cluster`) naming one;
 * nodes in virgo_cloud.conf must be named as the load agents name them (`virgo_load: node=<name>`).
 * `cpupooling.balancer` is an operator's choice (`virgo pin`), read from whichever host set it last.
 */
export const CPU_VARS = {
  balancer: 'cpupooling.balancer',
  leastLoaded: 'cpupooling.least_loaded_node',
  predicted: 'cpupooling.predicted_exec_ms',
} as const;

/**
 * The original's closed form for the expected number of requests per node when k requests are
 * spread over N nodes by a PRG (design notes, item 890), kept verbatim so it can be compared:
 *   (N^(k+2) − kN^2 + kN − 1) / (N^(k+3) − 2N^(k+2) + N^(k+1))
 * Note the denominator is N^(k+1)(N−1)^2, zero for N = 1 (one node gets all k requests, returned as
 * such). It is not k/N: an iid uniform choice puts k/N requests on each node in expectation (what
 * prgPick achieves, see the tests); the formula is offered for the record, not used to route.
 */
export function expectedRequestsPerNode(N: number, k: number): number {
  if (!Number.isInteger(N) || N < 1) throw new RangeError(`N (nodes) must be a positive integer, got ${N}`);
  if (!Number.isInteger(k) || k < 0)
    throw new RangeError(`k (requests) must be a non-negative integer, got ${k}`);
  if (N === 1) return k;
  const num = N ** (k + 2) - k * N ** 2 + k * N - 1;
  const den = N ** (k + 3) - 2 * N ** (k + 2) + N ** (k + 1);
  return num / den;
}

/** `random % N`: the PRG rule; `rand(n)` returns an integer in [0, n). */
export function prgPick(n: number, rand: (n: number) => number = randomInt): number {
  if (n < 1) throw new RangeError('no nodes to choose from');
  return rand(n);
}

export interface AnalyticsChoice {
  index: number;
  /** the predicted load that decided, when per-node loads were used */
  load?: number;
  basis: 'predicted-load' | 'least-loaded-node';
}

/** A node's predicted execution time, published under its host:port or its host name. */
export function nodeLoad(vars: VariableSource, node: CloudNode): number | undefined {
  for (const host of [node.id, node.host]) {
    const raw = vars.get(CPU_VARS.predicted, host);
    if (raw === undefined) continue;
    const n = parseNumber(raw);
    if (n !== undefined && n >= 0) return n;
  }
  return undefined;
}

/**
 * The node with the least predicted load among those that have one (ties: fewer requests in
 * flight from us, then list order); else the node `cpupooling.least_loaded_node` names; else
 * undefined (no usable analytics: the caller falls back to PRG and says so).
 */
export function analyticsPick(
  nodes: readonly CloudNode[],
  vars: VariableSource,
  inFlight: (i: number) => number = () => 0,
): AnalyticsChoice | undefined {
  let best: AnalyticsChoice | undefined;
  for (let i = 0; i < nodes.length; i++) {
    const load = nodeLoad(vars, nodes[i]!);
    if (load === undefined) continue;
    if (!best || load < best.load! || (load === best.load && inFlight(i) < inFlight(best.index))) {
      best = { index: i, load, basis: 'predicted-load' };
    }
  }
  if (best) return best;
  const named = vars.get(CPU_VARS.leastLoaded)?.trim();
  if (named) {
    const i = nodes.findIndex((n) => n.id === named || n.host === named);
    if (i >= 0) return { index: i, basis: 'least-loaded-node' };
  }
  return undefined;
}

/** The rule the variable asks for; `fallback` when it is unset or not a rule we know. */
export function balancerRule(
  vars: VariableSource,
  fallback: BalancerRule,
): { rule: BalancerRule; invalid?: string } {
  const raw = vars.get(CPU_VARS.balancer);
  if (raw === undefined) return { rule: fallback };
  const v = raw.trim().toLowerCase();
  if ((BALANCER_RULES as readonly string[]).includes(v)) return { rule: v as BalancerRule };
  return { rule: fallback, invalid: raw };
}
