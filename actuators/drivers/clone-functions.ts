// What virgo_clone may run: functions registered here, in code. A name received over the wire is
// only ever a key into this map; it is never resolved as a path, a module or a shell command
// (the original's paramIsExecutable=1 ran a binary named by the client; we do not).
// Functions that compute (`cpu: true`) run in cpupooling's worker threads, never on the event
// loop every port shares; a new CPU-heavy function goes here, so the workers (clone-worker.ts,
// which loads this registry) know it too.
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { DriverError, quote } from './driver-server.ts';

export interface CloneFunction {
  name: string;
  /** e.g. "fib <n>" */
  usage: string;
  description: string;
  /** it computes (holds a CPU): run in a worker thread, not on the event loop */
  cpu?: boolean;
  /** args as typed; validates them and throws DriverError('malformed') with the usage */
  run(args: readonly string[], ctx: { signal: AbortSignal }): string | Promise<string>;
}

const FN_NAME = /^[a-z][a-z0-9_]{0,63}$/;

export class FunctionRegistry {
  private readonly fns = new Map<string, CloneFunction>();

  register(fn: CloneFunction): this {
    if (!FN_NAME.test(fn.name))
      throw new Error(`function name ${JSON.stringify(fn.name)} must match ${FN_NAME}`);
    if (this.fns.has(fn.name)) throw new Error(`function ${fn.name} is already registered`);
    this.fns.set(fn.name, fn);
    return this;
  }

  /** own-property lookup only: `constructor`, `__proto__` and friends are unknown names */
  get(name: string): CloneFunction | undefined {
    return this.fns.get(name);
  }

  names(): string[] {
    return [...this.fns.keys()].sort();
  }

  require(name: string): CloneFunction {
    const fn = this.fns.get(name);
    if (!fn) {
      throw new DriverError(
        'unknown-function',
        `no registered function ${quote(name)}; registered: ${this.names().join(', ')}`,
      );
    }
    return fn;
  }
}

function usage(fn: { name: string; usage: string }, why: string): DriverError {
  return new DriverError('malformed', `${fn.name}: ${why}; usage: ${fn.usage}`);
}

function intArg(
  fn: { name: string; usage: string },
  s: string | undefined,
  what: string,
  max: number,
): number {
  if (s === undefined || !/^\d{1,9}$/.test(s.trim()))
    throw usage(fn, `${what} must be a non-negative integer`);
  const n = Number(s.trim());
  if (n > max) throw usage(fn, `${what} ${n} is more than ${max}`);
  return n;
}

function arity(fn: { name: string; usage: string }, args: readonly string[], min: number, max: number): void {
  if (args.length < min || args.length > max) {
    throw usage(fn, `takes ${min === max ? min : `${min}-${max}`} argument(s), got ${args.length}`);
  }
}

const fib: CloneFunction = {
  name: 'fib',
  cpu: true,
  usage: 'fib <n>  (n <= 1000)',
  description: 'the n-th Fibonacci number (exact)',
  run(args) {
    arity(fib, args, 1, 1);
    const n = intArg(fib, args[0], 'n', 1000);
    let a = 0n;
    let b = 1n;
    for (let i = 0; i < n; i++) [a, b] = [b, a + b];
    return a.toString();
  },
};

const sum: CloneFunction = {
  name: 'sum',
  cpu: true,
  usage: 'sum <x> [<x> ...]  (up to 1000 numbers)',
  description: 'the sum of the numbers',
  run(args) {
    arity(sum, args, 1, 1000);
    let total = 0;
    for (const a of args) {
      const t = a.trim();
      if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) throw usage(sum, `${quote(t)} is not a number`);
      total += Number(t);
    }
    if (!Number.isFinite(total)) throw usage(sum, 'the sum overflows');
    return String(total);
  },
};

const sleepMs: CloneFunction = {
  name: 'sleep_ms',
  usage: 'sleep_ms <ms>  (ms <= 10000)',
  description: 'waits, without holding the CPU (a stand-in for I/O-bound work)',
  async run(args, { signal }) {
    arity(sleepMs, args, 1, 1);
    const ms = intArg(sleepMs, args[0], 'ms', 10_000);
    try {
      await sleep(ms, undefined, { signal });
    } catch {
      throw new DriverError('unavailable', 'sleep_ms: cancelled (server shutting down)');
    }
    return `slept ${ms} ms`;
  },
};

const echo: CloneFunction = {
  name: 'echo',
  usage: 'echo <text>',
  description: 'its arguments, joined by spaces',
  run(args) {
    return args.join(' ');
  },
};

const primes: CloneFunction = {
  name: 'primes',
  cpu: true,
  usage: 'primes <n>  (n <= 2000000)',
  description: 'how many primes are <= n (a CPU-bound job, milliseconds)',
  run(args) {
    arity(primes, args, 1, 1);
    const n = intArg(primes, args[0], 'n', 2_000_000);
    if (n < 2) return '0';
    const composite = new Uint8Array(n + 1);
    let count = 0;
    for (let i = 2; i <= n; i++) {
      if (composite[i]) continue;
      count++;
      for (let j = i * i; j <= n; j += i) composite[j] = 1;
    }
    return String(count);
  },
};

const load: CloneFunction = {
  name: 'loadavg',
  usage: 'loadavg',
  description: "the executing node's 1, 5 and 15 minute load averages",
  run(args) {
    arity(load, args, 0, 0);
    return loadavg()
      .map((x) => x.toFixed(2))
      .join(' ');
  },
};

const BUILTIN: readonly CloneFunction[] = [fib, sum, sleepMs, echo, primes, load];

/** The functions every node offers unless told otherwise. */
export function defaultRegistry(): FunctionRegistry {
  const r = new FunctionRegistry();
  for (const f of BUILTIN) r.register(f);
  return r;
}

/**
 * Whether `fn` is one of the functions above, which a worker thread can run by name (a function
 * registered elsewhere exists only in the registry that holds it, so it runs in place).
 */
export function isBuiltin(fn: CloneFunction): boolean {
  return BUILTIN.includes(fn);
}
