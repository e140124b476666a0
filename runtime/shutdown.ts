// Graceful shutdown on SIGINT/SIGTERM: run cleanups newest-first (flush, commit offsets, fsync,
// close sockets), each bounded in time; a second signal exits at once.
import { createLogger } from './log.ts';

const log = createLogger('shutdown');
type Cleanup = { name: string; fn: () => Promise<void> | void };
const cleanups: Cleanup[] = [];
let installed = false;
let stopping: Promise<void> | undefined;

export function onShutdown(name: string, fn: () => Promise<void> | void): () => void {
  const entry = { name, fn };
  cleanups.push(entry);
  return () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

/** Runs every registered cleanup once, newest first. */
export function shutdown(timeoutMs = 10_000): Promise<void> {
  if (stopping) return stopping;
  stopping = (async () => {
    for (const c of cleanups.splice(0).reverse()) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve(c.fn()),
          new Promise((_, rej) => {
            timer = setTimeout(() => rej(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
      } catch (err) {
        log.error('cleanup failed', { step: c.name, err });
      } finally {
        clearTimeout(timer);
      }
    }
  })();
  return stopping;
}

/** what exitOnSignals() is waiting for, resolved by a signal or by stopProcess() */
let wake: ((sig: NodeJS.Signals) => void) | undefined;
let stopRequested = false;

/**
 * Stops the process as SIGTERM would (the waiter of exitOnSignals() wakes, cleanups run, exit
 * with `code`): for when there is no point going on, e.g. the reader of stdout went away
 * (`virgo conf list | head`).
 */
export function stopProcess(reason: string, code = 0): void {
  if (stopRequested) return;
  stopRequested = true;
  log.debug('stopping', { reason });
  wake?.('SIGPIPE');
  void shutdown().then(() => process.exit(code));
}

/** Installs SIGINT/SIGTERM handlers that shut down and then exit with `code`. */
export function exitOnSignals(code = 0): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    if (installed) return;
    installed = true;
    wake = resolve;
    let count = 0;
    const handler = (sig: NodeJS.Signals) => {
      count++;
      if (count > 1) {
        log.warn('second signal: exiting now', { signal: sig });
        process.exit(130);
      }
      log.info('shutting down', { signal: sig });
      resolve(sig);
      void shutdown().then(() => process.exit(code));
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}
