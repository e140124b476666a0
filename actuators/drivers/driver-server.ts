// The shape every pooling driver shares: one request line in, one reply line out, on the runtime
// LineServer (bounded lines, clients and output; binary or overlong input closes that client only).
// Expected failures are DriverErrors and become `error: <message>` lines; anything else is a bug,
// logged, and answered with `error: internal error` so the client is never left waiting.
import { type LineClient, LineServer, type ListenOptions } from '../../runtime/line-server.ts';
import type { Logger } from '../../runtime/log.ts';
import { counter, histogram } from '../../runtime/metrics.ts';

/** Why a request failed: the metric label, and a hint for the reader of the error line. */
export type DriverErrorCode =
  | 'malformed'
  | 'unknown-command'
  | 'unknown-function'
  | 'not-found'
  | 'double-free'
  | 'too-large'
  | 'limit'
  | 'forbidden'
  | 'rate-limited'
  | 'unavailable'
  | 'remote'
  | 'busy'
  | 'timeout'
  | 'io';

export class DriverError extends Error {
  override readonly name = 'DriverError';
  constructor(
    readonly code: DriverErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const requests = counter('virgo_driver_requests_total', 'driver requests by outcome', ['service', 'outcome']);
const seconds = histogram(
  'virgo_driver_request_seconds',
  'driver request handling time',
  ['service'],
  [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
);

/** The listener's options as the LineServer takes them (a driver keeps its default pending bound). */
export interface DriverServerOptions extends Omit<ListenOptions, 'maxPending'> {
  name: string;
  /** one request line in, the reply line out (without newline) */
  handle: (line: string, client: LineClient) => string | Promise<string>;
  /** what `help` answers: one line naming the requests */
  help: string;
  onClose?: (client: LineClient) => void;
}

/** The listener options every driver accepts and hands to its server unchanged. */
export type CommonServerOptions = Pick<
  DriverServerOptions,
  'host' | 'maxLineBytes' | 'maxClients' | 'allow' | 'secret' | 'handshakeTimeoutMs'
>;

/** Only the options that are set: an unset one keeps the server's default instead of arriving as `undefined`. */
export function commonServerOptions(opts: CommonServerOptions): CommonServerOptions {
  return {
    ...(opts.host !== undefined ? { host: opts.host } : {}),
    ...(opts.maxLineBytes !== undefined ? { maxLineBytes: opts.maxLineBytes } : {}),
    ...(opts.maxClients !== undefined ? { maxClients: opts.maxClients } : {}),
    ...(opts.allow !== undefined ? { allow: opts.allow } : {}),
    ...(opts.secret !== undefined ? { secret: opts.secret } : {}),
    ...(opts.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.handshakeTimeoutMs } : {}),
  };
}

/** A per-service tally the tests and `drivers up` status can read without scraping metrics. */
export interface DriverStats {
  ok: number;
  errors: Map<DriverErrorCode | 'internal', number>;
}

export function createDriverServer(
  opts: DriverServerOptions,
  log: Logger,
): { server: LineServer; stats: DriverStats } {
  const stats: DriverStats = { ok: 0, errors: new Map() };
  // labelled children resolved once: a label lookup per request costs more than a small request
  const okCount = requests.labels({ service: opts.name, outcome: 'ok' });
  const timer = seconds.labels({ service: opts.name });
  const fail = (code: DriverErrorCode | 'internal') => {
    stats.errors.set(code, (stats.errors.get(code) ?? 0) + 1);
    requests.inc({ service: opts.name, outcome: code });
  };
  const server = new LineServer({
    name: opts.name,
    port: opts.port,
    ...(opts.host !== undefined ? { host: opts.host } : {}),
    maxLineBytes: opts.maxLineBytes ?? 8192,
    ...(opts.maxClients !== undefined ? { maxClients: opts.maxClients } : {}),
    ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
    ...(opts.allow !== undefined ? { allow: opts.allow } : {}),
    ...(opts.secret !== undefined ? { secret: opts.secret } : {}),
    ...(opts.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.handshakeTimeoutMs } : {}),
    ...(opts.onClose ? { onClose: (c: LineClient) => opts.onClose?.(c) } : {}),
    onLine: async (client, raw) => {
      const line = raw.trim();
      if (line === '') return; // telnet users press Enter; an empty line is not a request
      if (line === 'help' || line === 'HELP') {
        client.send(opts.help);
        return;
      }
      const t0 = process.hrtime.bigint();
      try {
        const reply = await opts.handle(line, client);
        stats.ok++;
        okCount.inc();
        client.send(reply);
      } catch (err) {
        if (err instanceof DriverError) {
          fail(err.code);
          log.debug('request refused', { remote: client.remote, code: err.code, reason: err.message });
          client.send(`error: ${err.message}`);
        } else {
          fail('internal');
          log.error('request failed', { remote: client.remote, err });
          client.send(`error: internal error (${(err as Error).message}); the request was not applied`);
        }
      } finally {
        timer.observe(Number(process.hrtime.bigint() - t0) / 1e9);
      }
    },
  });
  return { server, stats };
}

/**
 * A pooling driver: its server (one request line in, one reply line out) and tally. A driver
 * answers requests in `handle` and may let go of a client's resources in `onClientClose`.
 */
export abstract class DriverService {
  readonly server: LineServer;
  readonly stats: DriverStats;

  /** `service`: its name, port and help (and any option of its own); `opts`: what its caller set of the listener options */
  protected constructor(
    service: Omit<DriverServerOptions, 'handle' | 'onClose'>,
    opts: CommonServerOptions,
    log: Logger,
  ) {
    const { server, stats } = createDriverServer(
      {
        ...commonServerOptions(opts),
        ...service,
        handle: (line, client) => this.handle(line, client),
        onClose: (client) => this.onClientClose(client),
      },
      log,
    );
    this.server = server;
    this.stats = stats;
  }

  get port(): number {
    return this.server.port;
  }

  /** the reply line to one request (a DriverError for a request refused) */
  protected abstract handle(line: string, client: LineClient): string | Promise<string>;

  /** a client went away */
  protected onClientClose(_client: LineClient): void {}
}

/** Quotes a piece of client input for an error line, shortened so errors stay one short line. */
export function quote(s: string, max = 60): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max - 3)}...` : s);
}
