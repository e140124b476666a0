// Errors the queue bridge raises, each naming what failed and what to do about it.

export type LogErrorCode =
  | 'closed'
  | 'locked'
  | 'write-failed'
  | 'sync-failed'
  | 'stopped'
  | 'too-large'
  | 'encode'
  | 'corrupt'
  | 'not-open';

/** A segment-log failure; `code` says which, the message says what to do. */
export class LogError extends Error {
  override readonly name = 'KingCobraLogError';
  constructor(
    readonly code: LogErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The queue is full (or shutting down): try again later; nothing was persisted. */
export class QueueBusyError extends Error {
  override readonly name = 'QueueBusyError';
}

/** A request could not be persisted, so it was not accepted. */
export class NotQueuedError extends Error {
  override readonly name = 'NotQueuedError';
}

export class ReplayError extends Error {
  override readonly name = 'ReplayError';
}

export function errnoCode(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code ?? e?.message ?? String(err);
}
