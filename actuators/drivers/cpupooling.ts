// CPU pooling, :10000 (virgo_clone): a request names a registered function and its arguments; the
// driver picks a node of virgo_cloud.conf by the rule `cpupooling.balancer` selects (prg or
// analytics), runs the function there (here, or forwarded to that node's cpupooling port as
// `virgo_clone_local(…)`, which is never balanced again, so no loops) and replies
//   node=<host:port> rule=<rule> result=<result>
// Requests: `virgo_clone(fib,30)`, `fib(30)`, `fib 30`. At most once: a failed forward is reported,
// not retried elsewhere (a function may have side effects).
// Functions that compute run in a bounded pool of worker threads (runtime/worker-pool.ts), with a
// time limit per call (`cpupooling.timeout_ms`), so a heavy clone never holds up this port's other
// clients or any other port of the process; a full pool or a call over its time gets an error line.
import { networkInterfaces } from 'node:os';
import { createLogger } from '../../runtime/log.ts';
import { counter } from '../../runtime/metrics.ts';
import { PoolBusyError, TaskError, TaskTimeoutError, WorkerPool } from '../../runtime/worker-pool.ts';
import { analyticsPick, type BalancerRule, balancerRule, prgPick } from './balancer.ts';
import { parseCall } from './call-syntax.ts';
import { type CloneFunction, defaultRegistry, type FunctionRegistry, isBuiltin } from './clone-functions.ts';
import type { CloneTask } from './clone-worker.ts';
import {
  type CommonServerOptions,
  DriverError,
  type DriverErrorCode,
  DriverService,
  quote,
} from './driver-server.ts';
import { NodeClient } from './node-client.ts';
import { CPUPOOLING_PORT } from './ports.ts';
import { readNumber, type VariableSource } from './variables.ts';
import { type CloudNode, nodeId } from './virgo-cloud-conf.ts';

const log = createLogger('drivers.cpupooling');
const picks = counter('virgo_cpupooling_picks_total', 'virgo_clone requests by node and rule', [
  'node',
  'rule',
]);

export const CPU_TIMEOUT_VAR = 'cpupooling.timeout_ms';

/** The worker pool of the CPU-bound clone functions. */
export interface CloneWorkersOptions {
  /** threads at most (default: CPUs - 1, between 1 and 4) */
  size?: number;
  /** calls waiting for a thread at most; one more is refused at once (default 64) */
  maxQueued?: number;
  /** time limit of a call when `cpupooling.timeout_ms` is unset (default 10 s) */
  timeoutMs?: number;
}

export interface CpuPoolingOptions extends CommonServerOptions {
  variables: VariableSource;
  /** default 10000; 0 picks a free port */
  port?: number;
  /** virgo_cloud.conf; default: this node alone */
  nodes?: CloudNode[];
  registry?: FunctionRegistry;
  /** the rule when `cpupooling.balancer` is unset or invalid */
  defaultRule?: BalancerRule;
  /** integer in [0, n); default the OS CSPRNG */
  rand?: (n: number) => number;
  /** node ids that are this process, beyond what is detected (same port on a local address) */
  self?: string[];
  forwardTimeoutMs?: number;
  /** worker threads for the functions that compute; false: run them on the event loop (tests) */
  workers?: CloneWorkersOptions | false;
}

export interface Pick {
  index: number;
  node: CloudNode;
  /** what decided, as the reply says it */
  rule: string;
}

const HELP =
  'cpupooling: virgo_clone(<fn>,<arg>,…) | <fn>(<arg>,…) | <fn> <arg> …  runs a registered function on a node of virgo_cloud.conf; reply node=<node> rule=<rule> result=<result>';

export class CpuPooling extends DriverService {
  /** requests run per node id, local and forwarded */
  readonly perNode = new Map<string, number>();
  private nodes: CloudNode[];
  private readonly registry: FunctionRegistry;
  private readonly clients = new Map<string, NodeClient>();
  private readonly inFlight: number[] = [];
  private readonly abort = new AbortController();
  private warnedRule: string | undefined;
  readonly pool: WorkerPool | undefined;

  constructor(private readonly opts: CpuPoolingOptions) {
    const registry = opts.registry ?? defaultRegistry();
    super(
      {
        name: 'cpupooling',
        port: opts.port ?? CPUPOOLING_PORT,
        help: `${HELP}; functions: ${registry.names().join(', ')}`,
      },
      opts,
      log,
    );
    this.registry = registry;
    this.nodes = opts.nodes ?? [];
    if (opts.workers !== false) {
      this.pool = new WorkerPool({
        name: 'cpupooling',
        module: new URL('./clone-worker.ts', import.meta.url),
        ...(opts.workers?.size !== undefined ? { size: opts.workers.size } : {}),
        ...(opts.workers?.maxQueued !== undefined ? { maxQueued: opts.workers.maxQueued } : {}),
        ...(opts.workers?.timeoutMs !== undefined ? { timeoutMs: opts.workers.timeoutMs } : {}),
      });
    }
  }

  async start(): Promise<number> {
    const port = await this.server.listen();
    this.pool?.warm();
    if (this.nodes.length === 0)
      this.nodes = [{ host: this.server.host, port, id: nodeId(this.server.host, port) }];
    this.resetInFlight();
    return port;
  }

  /** replaces the node list (a re-read virgo_cloud.conf) */
  setNodes(nodes: CloudNode[]): void {
    if (nodes.length === 0) throw new Error('cpupooling needs at least one node');
    this.nodes = nodes;
    this.resetInFlight();
    for (const [id, c] of this.clients) {
      if (!nodes.some((n) => n.id === id)) {
        c.close();
        this.clients.delete(id);
      }
    }
  }

  get nodeList(): readonly CloudNode[] {
    return this.nodes;
  }

  private resetInFlight(): void {
    this.inFlight.length = 0;
    for (let i = 0; i < this.nodes.length; i++) this.inFlight.push(0);
  }

  /** The node the next request goes to, by the rule the variables select now. */
  choose(): Pick {
    const vars = this.opts.variables;
    const fallback = this.opts.defaultRule ?? 'prg';
    const { rule, invalid } = balancerRule(vars, fallback);
    if (invalid !== undefined && invalid !== this.warnedRule) {
      this.warnedRule = invalid;
      log.warn('cpupooling.balancer is not prg or analytics; using the default', {
        value: invalid,
        fallback,
      });
    }
    if (rule === 'analytics') {
      const a = analyticsPick(this.nodes, vars, (i) => this.inFlight[i] ?? 0);
      if (a) return { index: a.index, node: this.nodes[a.index]!, rule: 'analytics' };
      const index = prgPick(this.nodes.length, this.opts.rand);
      return { index, node: this.nodes[index]!, rule: 'prg(no-load-variables)' };
    }
    const index = prgPick(this.nodes.length, this.opts.rand);
    return { index, node: this.nodes[index]!, rule: 'prg' };
  }

  private readonly pickCounters = new Map<string, ReturnType<typeof picks.labels>>();

  private pickCounter(node: string, rule: string): ReturnType<typeof picks.labels> {
    const k = `${node} ${rule}`;
    let c = this.pickCounters.get(k);
    if (!c) {
      c = picks.labels({ node, rule });
      this.pickCounters.set(k, c);
    }
    return c;
  }

  private isSelf(node: CloudNode): boolean {
    if (this.opts.self?.includes(node.id)) return true;
    return node.port === this.port && isLocalHost(node.host, this.server.host);
  }

  protected async handle(line: string): Promise<string> {
    const req = parseCloneRequest(line);
    const fn = this.registry.require(req.fn);
    if (req.local) return this.runLocal(fn.name, req.args);
    const pick = this.choose();
    this.inFlight[pick.index] = (this.inFlight[pick.index] ?? 0) + 1;
    const nodes = this.nodes;
    try {
      const result = this.isSelf(pick.node)
        ? await this.runLocal(fn.name, req.args)
        : await this.forward(pick.node, fn.name, req.args);
      this.perNode.set(pick.node.id, (this.perNode.get(pick.node.id) ?? 0) + 1);
      this.pickCounter(pick.node.id, pick.rule).inc();
      return `node=${pick.node.id} rule=${pick.rule} result=${result}`;
    } finally {
      // the list may have been replaced meanwhile; only count down on the one we counted up
      if (nodes === this.nodes) this.inFlight[pick.index] = Math.max(0, (this.inFlight[pick.index] ?? 1) - 1);
    }
  }

  private async runLocal(name: string, args: string[]): Promise<string> {
    const fn = this.registry.require(name);
    const result =
      fn.cpu && this.pool && isBuiltin(fn)
        ? await this.inWorker(fn, args)
        : await fn.run(args, { signal: this.abort.signal });
    return oneLine(result);
  }

  private async inWorker(fn: CloneFunction, args: string[]): Promise<string> {
    const pool = this.pool!;
    const timeoutMs = Math.floor(
      readNumber(this.opts.variables, CPU_TIMEOUT_VAR, pool.timeoutMs, { min: 1 }),
    );
    try {
      return await pool.run<string>({ fn: fn.name, args } satisfies CloneTask, { timeoutMs });
    } catch (err) {
      if (err instanceof PoolBusyError) {
        throw new DriverError(
          'busy',
          `${fn.name}: every worker is busy and ${pool.maxQueued} calls wait already; try again later`,
        );
      }
      if (err instanceof TaskTimeoutError) {
        throw new DriverError(
          'timeout',
          `${fn.name}: stopped after ${err.timeoutMs} ms (${CPU_TIMEOUT_VAR}); ask for less work`,
        );
      }
      if (err instanceof TaskError && err.errorName === 'DriverError') {
        throw new DriverError((err.code as DriverErrorCode | undefined) ?? 'malformed', err.message);
      }
      throw new DriverError('unavailable', `${fn.name}: ${(err as Error).message}`);
    }
  }

  private async forward(node: CloudNode, name: string, args: string[]): Promise<string> {
    let c = this.clients.get(node.id);
    if (!c) {
      // every node of virgo_cloud.conf shares this node's secret
      c = new NodeClient(node.host, node.port, {
        ...(this.opts.forwardTimeoutMs !== undefined ? { timeoutMs: this.opts.forwardTimeoutMs } : {}),
        ...(this.opts.secret ? { secret: this.opts.secret } : {}),
      });
      this.clients.set(node.id, c);
    }
    // Arguments go as they came; commas inside one would split differently, so refuse them.
    if (args.some((a) => a.includes(',') || a.includes(')'))) {
      throw new DriverError('malformed', `an argument for a remote node may not contain ',' or ')'`);
    }
    let reply: string;
    try {
      reply = await c.request(`virgo_clone_local(${[name, ...args].join(',')})`);
    } catch (err) {
      throw new DriverError(
        'unavailable',
        `node ${node.id} unreachable (${(err as Error).message}); request not run`,
      );
    }
    if (reply.startsWith('error: ')) throw new DriverError('remote', `node ${node.id}: ${reply.slice(7)}`);
    return reply;
  }

  async close(): Promise<void> {
    this.abort.abort();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    await this.server.close();
    await this.pool?.close();
  }
}

export interface CloneRequest {
  fn: string;
  args: string[];
  /** virgo_clone_local: run here, never balance (what a forwarding node sends) */
  local: boolean;
}

/** `virgo_clone(fn,a,b)`, `virgo_clone_local(fn,a,b)`, `fn(a,b)`, `fn a b`, `fn`. */
export function parseCloneRequest(line: string): CloneRequest {
  const call = parseCall(line);
  if (call) {
    const parts = call.inner === '' ? [] : call.inner.split(',').map((s) => s.trim());
    if (call.name === 'virgo_clone' || call.name === 'virgo_clone_local') {
      const fn = parts.shift();
      if (!fn)
        throw new DriverError('malformed', `${call.name}: name the function, e.g. ${call.name}(fib,30)`);
      return { fn: checkName(fn), args: parts, local: call.name === 'virgo_clone_local' };
    }
    return { fn: checkName(call.name), args: parts, local: false };
  }
  if (/[()]/.test(line)) {
    throw new DriverError(
      'malformed',
      `${quote(line)}: unbalanced parentheses; expected <fn>(<arg>,…) or <fn> <arg> …`,
    );
  }
  const [fn, ...args] = line.split(/\s+/);
  return { fn: checkName(fn ?? ''), args, local: false };
}

function checkName(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name)) {
    throw new DriverError(
      'unknown-function',
      `${quote(name)} is not a function name (letters, digits, _); names are looked up in the registry only`,
    );
  }
  return name;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

function isLocalHost(host: string, listenHost: string): boolean {
  if (host === listenHost || host === 'localhost' || host === '::1' || host.startsWith('127.')) return true;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.address === host) return true;
  }
  return false;
}
