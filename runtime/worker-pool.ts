// A bounded pool of worker threads for CPU-heavy work, so that no port of a process waits on
// another's computation (the event loop only passes messages). Bounded three ways: at most `size`
// workers, at most `maxQueued` tasks waiting for one (past it a task is refused at once, never
// queued without limit), and a time limit per task (a worker over it is terminated, the task fails
// and a fresh worker takes the next one). Each worker loads `module` and calls its exported
// `handle(task)`; TypeScript modules are loaded through tsx, as the CLI loads them.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { createLogger } from './log.ts';
import { counter, gauge } from './metrics.ts';

const log = createLogger('workers');
const tasks = counter('virgo_worker_tasks_total', 'worker pool tasks by outcome', ['pool', 'outcome']);
const busyGauge = gauge('virgo_worker_busy', 'workers running a task', ['pool']);
const queuedGauge = gauge('virgo_worker_queued', 'tasks waiting for a worker', ['pool']);

export interface WorkerPoolOptions {
  /** for logs, metrics and errors */
  name: string;
  /** what each worker imports; it must export `handle(task): result | Promise<result>` */
  module: URL;
  /** workers at most (default: CPUs - 1, between 1 and 4) */
  size?: number;
  /** tasks waiting for a worker at most (default 64) */
  maxQueued?: number;
  /** default time limit of a task, ms (default 10 s) */
  timeoutMs?: number;
  /** heap limit of a worker, MB (default 256): a task that allocates more fails, the process lives */
  maxHeapMb?: number;
}

/** The pool is full: every worker busy and the waiting line at its bound. */
export class PoolBusyError extends Error {
  override readonly name = 'PoolBusyError';
}

/** A task ran past its time limit; its worker was terminated. */
export class TaskTimeoutError extends Error {
  override readonly name = 'TaskTimeoutError';
  constructor(
    message: string,
    readonly timeoutMs: number,
  ) {
    super(message);
  }
}

/** What a task threw inside the worker, as far as it survives the message channel. */
export class TaskError extends Error {
  override readonly name = 'TaskError';
  constructor(
    message: string,
    /** the thrown error's name, e.g. DriverError */
    readonly errorName: string,
    /** its `code` property, when it had one */
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

interface Task {
  task: unknown;
  timeoutMs: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  current: (Task & { timer: NodeJS.Timeout | undefined }) | undefined;
  ready: boolean;
}

// The worker's first code: plain CommonJS (eval), so it needs no loader; it registers tsx when the
// module is TypeScript, imports it, then answers one message at a time.
const BOOT = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  const mod = await import(workerData.module);
  parentPort.on('message', async (task) => {
    try {
      parentPort.postMessage({ ok: true, result: await mod.handle(task) });
    } catch (err) {
      parentPort.postMessage({
        ok: false,
        name: (err && err.name) || 'Error',
        message: String((err && err.message) || err),
        code: err && typeof err.code === 'string' ? err.code : undefined,
      });
    }
  });
  parentPort.postMessage({ ready: true });
})().catch((err) => {
  parentPort.postMessage({ fatal: String((err && err.stack) || err) });
});
`;

/** tsx's ESM API, as this module resolves it (the worker's eval code has no base to resolve from). */
function tsxEntry(): string {
  return import.meta.resolve('tsx/esm/api');
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly waiting: Task[] = [];
  private closed = false;
  readonly size: number;
  readonly maxQueued: number;
  readonly timeoutMs: number;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.size = Math.max(1, opts.size ?? Math.min(4, Math.max(1, availableParallelism() - 1)));
    this.maxQueued = Math.max(0, opts.maxQueued ?? 64);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** workers running a task, tasks waiting */
  stats(): { workers: number; busy: number; queued: number } {
    return {
      workers: this.slots.length,
      busy: this.slots.filter((s) => s.current).length,
      queued: this.waiting.length,
    };
  }

  /** Starts one worker now, so the first task does not pay for loading the module. */
  warm(): void {
    if (!this.closed && this.slots.length === 0) this.spawn();
  }

  /**
   * Runs `task` in a worker. Rejects with PoolBusyError when the pool is full, TaskTimeoutError
   * past the time limit, TaskError with what the task threw.
   */
  run<T>(task: unknown, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`${this.opts.name}: the worker pool is closed`));
    const s = this.stats();
    if (s.busy >= this.size && this.waiting.length >= this.maxQueued) {
      tasks.inc({ pool: this.opts.name, outcome: 'busy' });
      return Promise.reject(
        new PoolBusyError(
          `${this.opts.name}: ${s.busy} tasks running and ${s.queued} waiting, the limit; try again later`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({
        task,
        timeoutMs: opts.timeoutMs ?? this.timeoutMs,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
      queuedGauge.set({ pool: this.opts.name }, this.waiting.length);
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.waiting.length > 0 && !this.closed) {
      const slot = this.slots.find((s) => s.ready && !s.current);
      if (!slot) {
        // workers still loading take tasks once ready; start more only for the tasks beyond them
        const loading = this.slots.filter((s) => !s.ready).length;
        if (loading >= this.waiting.length || this.slots.length >= this.size) break;
        this.spawn();
        continue;
      }
      const t = this.waiting.shift()!;
      queuedGauge.set({ pool: this.opts.name }, this.waiting.length);
      this.start(slot, t);
    }
    busyGauge.set({ pool: this.opts.name }, this.stats().busy);
  }

  private start(slot: Slot, t: Task): void {
    const current = { ...t, timer: undefined as NodeJS.Timeout | undefined };
    slot.current = current;
    if (t.timeoutMs > 0) {
      current.timer = setTimeout(() => {
        if (slot.current !== current) return;
        slot.current = undefined;
        tasks.inc({ pool: this.opts.name, outcome: 'timeout' });
        t.reject(new TaskTimeoutError(`stopped after ${t.timeoutMs} ms`, t.timeoutMs));
        // the only way to stop running JavaScript: end its thread; a fresh one takes the next task
        this.remove(slot);
        void slot.worker.terminate();
        this.dispatch();
      }, t.timeoutMs);
    }
    slot.worker.postMessage(t.task);
  }

  private spawn(): void {
    const module = this.opts.module.href;
    const worker = new Worker(BOOT, {
      eval: true,
      workerData: {
        module,
        tsx: module.endsWith('.ts') ? tsxEntry() : undefined,
      },
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb ?? 256 },
    });
    // a pool must not keep the process alive by itself
    worker.unref();
    const slot: Slot = { worker, current: undefined, ready: false };
    this.slots.push(slot);
    worker.on(
      'message',
      (m: {
        ready?: true;
        fatal?: string;
        ok?: boolean;
        result?: unknown;
        name?: string;
        message?: string;
        code?: string;
      }) => {
        if (m.ready) {
          slot.ready = true;
          this.dispatch();
          return;
        }
        if (m.fatal !== undefined) {
          log.error('worker could not load its module', { pool: this.opts.name, module, err: m.fatal });
          this.fail(slot, new Error(`${this.opts.name}: worker could not start: ${m.fatal.split('\n')[0]}`));
          return;
        }
        const cur = slot.current;
        if (!cur) return;
        clearTimeout(cur.timer);
        slot.current = undefined;
        if (m.ok) {
          tasks.inc({ pool: this.opts.name, outcome: 'ok' });
          cur.resolve(m.result);
        } else {
          tasks.inc({ pool: this.opts.name, outcome: 'error' });
          cur.reject(new TaskError(m.message ?? 'task failed', m.name ?? 'Error', m.code));
        }
        this.dispatch();
      },
    );
    worker.on('error', (err) => {
      log.error('worker failed', { pool: this.opts.name, err });
      this.fail(slot, new Error(`${this.opts.name}: worker failed: ${err.message}`));
    });
    worker.on('exit', (code) => {
      if (this.slots.includes(slot)) {
        this.fail(slot, new Error(`${this.opts.name}: worker exited (${code}) during the task`));
      }
    });
  }

  /** A worker is gone: its task fails, and if it never loaded, so does every waiting one. */
  private fail(slot: Slot, err: Error): void {
    const neverReady = !slot.ready;
    this.remove(slot);
    void slot.worker.terminate();
    const cur = slot.current;
    slot.current = undefined;
    if (cur) {
      clearTimeout(cur.timer);
      tasks.inc({ pool: this.opts.name, outcome: 'error' });
      cur.reject(err);
    }
    if (neverReady && this.slots.length === 0) {
      // a module that cannot load will not load on the next try either: fail fast
      for (const t of this.waiting.splice(0)) t.reject(err);
      queuedGauge.set({ pool: this.opts.name }, 0);
      return;
    }
    this.dispatch();
  }

  private remove(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    busyGauge.set({ pool: this.opts.name }, this.stats().busy);
  }

  /** Fails every waiting and running task and ends the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error(`${this.opts.name}: shutting down`);
    for (const t of this.waiting.splice(0)) t.reject(err);
    const slots = this.slots.splice(0);
    for (const s of slots) {
      if (s.current) {
        clearTimeout(s.current.timer);
        s.current.reject(err);
        s.current = undefined;
      }
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
    busyGauge.set({ pool: this.opts.name }, 0);
    queuedGauge.set({ pool: this.opts.name }, 0);
  }
}
