// A port another process holds. The code that binds knows the address but not the command that
// was run, so it names no flag: the command (cli/main.ts, each Command's portFix) or the pipeline
// (cli/topology: each stage's portFix, for `virgo up` in one process and, through
// VIRGO_PORT_FIX, for its `--split` children) adds the flag that moves that port there.

export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
  readonly code = 'EADDRINUSE';
  /** what the command that was run offers to move the port (set by the command or pipeline) */
  fix: string | undefined;

  constructor(
    /** who wanted it: a LineServer's name, "metrics", "ZeroMQ" … */
    readonly service: string,
    /** host:port, or an endpoint */
    readonly address: string,
    options?: { cause?: unknown },
  ) {
    super(`${service}: ${address} is in use by another process`, options);
  }
}

/** Whether `err` says an address is taken (our error, a Node/libzmq EADDRINUSE, or one it caused). */
export function isPortInUse(err: unknown): boolean {
  for (let e = err as (Error & { code?: unknown; cause?: unknown }) | undefined, i = 0; e && i < 5; i++) {
    if (e instanceof PortInUseError || e.code === 'EADDRINUSE') return true;
    if (typeof e.message === 'string' && /EADDRINUSE|address already in use/i.test(e.message)) return true;
    e = e.cause as typeof e;
  }
  return false;
}

/** `err` as a PortInUseError (the same object when it is one), for an address taken by `service`. */
export function asPortInUse(err: unknown, service: string, address: string): PortInUseError {
  if (err instanceof PortInUseError) return err;
  return new PortInUseError(service, address, { cause: err });
}

/** The PortInUseError in `err` or its causes; a plain EADDRINUSE becomes one (service unknown). */
export function findPortInUse(err: unknown): PortInUseError | undefined {
  for (let e = err as (Error & { cause?: unknown }) | undefined, i = 0; e && i < 5; i++) {
    if (e instanceof PortInUseError) return e;
    e = e.cause as typeof e;
  }
  if (!isPortInUse(err)) return undefined;
  const p = new PortInUseError('', '', { cause: err });
  p.message = (err as Error).message ?? String(err);
  return p;
}
