// A bounded, telnet-compatible TCP line server: the one implementation behind the feeder
// (:64000), the pooling drivers (:10000-:50000) and the VIRGO queue (:60000).
// What every port promises (docs/design.md §6.1): bounded line length, bounded connections,
// bounded input and output per client (a client's unhandled lines pause its socket; slow readers
// are dropped, never stall others), per-client errors never take the server down, binds 127.0.0.1
// unless told, optional allowlist and shared secret. With a secret, a connection is first
// *pending*: it must send `AUTH <secret>` within a short handshake time, pending connections have
// their own bound (the oldest is dropped for a new one) and never count toward maxClients, so
// sockets that never authenticate can lock nobody out.
import { isUtf8 } from 'node:buffer';
import { createServer, type Server, type Socket } from 'node:net';
import { createLogger, type Logger } from './log.ts';
import { counter, gauge } from './metrics.ts';
import { PortInUseError } from './port-in-use.ts';
import { secretDigest, secretMatches } from './secret.ts';

export type RejectReason =
  | 'overlong'
  | 'binary'
  | 'partial'
  | 'unauthorised'
  | 'max-clients'
  | 'slow-reader'
  | 'idle'
  | 'handshake-timeout'
  | 'pending-full';

export interface LineServerOptions {
  /** service name, for logs and metric labels */
  name: string;
  host?: string;
  port: number;
  /** longest accepted line in bytes, without the newline */
  maxLineBytes?: number;
  /** clients served at once; with a secret, only authenticated ones count */
  maxClients?: number;
  /** close a client that sends nothing for this long (0: never) */
  idleTimeoutMs?: number;
  /** bytes queued for one client before it counts as a slow reader and is dropped */
  maxOutputBytes?: number;
  /** lines read from one client and not yet handled; past it the server stops reading that socket */
  maxQueuedLines?: number;
  /** the same bound in bytes of queued lines (at least one line is always taken) */
  maxQueuedBytes?: number;
  /** remote addresses allowed to connect (exact match); empty/absent: all */
  allow?: string[];
  /** when set, a client's first line must be `AUTH <secret>` */
  secret?: string;
  /** with a secret: a connection that has not authenticated within this long is closed (default 5 s) */
  handshakeTimeoutMs?: number;
  /**
   * with a secret: connections waiting to authenticate, apart from maxClients (default 128); one
   * more drops the oldest of them, so idle sockets can neither lock clients out nor use up fds
   */
  maxPending?: number;
  /** say why a client is dropped before closing it (off for the feeder: its clients parse k=v) */
  errorLines?: boolean;
  onConnect?: (client: LineClient) => void;
  /** lines of one client are handled one at a time, in order */
  onLine: (client: LineClient, line: string) => void | Promise<void>;
  /**
   * The client half-closed (sent FIN) and its lines were handled. Without this hook the server ends
   * its side at once; with it the service decides when (e.g. the feeder sends the snapshot first).
   */
  onInputEnd?: (client: LineClient) => void;
  onClose?: (client: LineClient, reason: string) => void;
}

/**
 * Where a LineServer listens, to whom, and its bounds: what a service built on one (the pooling
 * drivers, the VIRGO queue) takes from its caller and hands over unchanged.
 */
export type ListenOptions = Pick<
  LineServerOptions,
  | 'host'
  | 'port'
  | 'maxLineBytes'
  | 'maxClients'
  | 'idleTimeoutMs'
  | 'allow'
  | 'secret'
  | 'handshakeTimeoutMs'
  | 'maxPending'
>;

export interface LineClient {
  readonly id: number;
  readonly remote: string;
  readonly remotePort: number;
  readonly connectedAt: number;
  readonly closed: boolean;
  /** queues `line` + "\n"; false (and the client is dropped) when it is a slow reader */
  send(line: string): boolean;
  /** writes raw text without adding a newline; bytes (e.g. one Buffer broadcast to many clients) as they are */
  write(text: string | Uint8Array): boolean;
  /** bytes queued and not yet taken by the kernel */
  readonly pending: number;
  /** ends the connection after what is queued; destroyed if the peer has not taken it in graceMs (default 2 s) */
  close(reason?: string, graceMs?: number): void;
  /** per-connection state for the service */
  state: Record<string, unknown>;
}

/** Defaults every port shares (docs/design.md §6.1). */
export const LINE_SERVER_DEFAULTS = {
  maxLineBytes: 4096,
  maxClients: 1024,
  maxOutputBytes: 1 << 20,
  maxQueuedLines: 1024,
  maxQueuedBytes: 1 << 20,
  handshakeTimeoutMs: 5_000,
  maxPending: 128,
} as const;

const connections = gauge('virgo_tcp_connections', 'open TCP client connections', ['service']);
const pendingGauge = gauge(
  'virgo_tcp_pending_connections',
  'TCP connections waiting to authenticate (AUTH <secret>)',
  ['service'],
);
const accepted = counter('virgo_tcp_accepted_total', 'TCP clients accepted', ['service']);
const lines = counter('virgo_tcp_lines_total', 'lines received', ['service']);
const rejects = counter('virgo_tcp_rejects_total', 'lines or clients rejected, by reason', [
  'service',
  'reason',
]);

export class LineServer {
  private server: Server | undefined;
  /** served clients: authenticated ones when there is a secret */
  private readonly clients = new Set<ClientImpl>();
  /** connections waiting to authenticate, oldest first */
  private readonly waiting = new Set<ClientImpl>();
  private nextId = 1;
  readonly log: Logger;
  readonly rejects = new Map<RejectReason, number>();
  private boundPort = 0;
  /** SHA-256 of the secret: the secret itself is not kept */
  readonly secretDigest: Buffer | undefined;

  constructor(readonly opts: LineServerOptions) {
    this.log = createLogger(`tcp.${opts.name}`);
    this.secretDigest = opts.secret ? secretDigest(opts.secret) : undefined;
  }

  get port(): number {
    return this.boundPort;
  }

  /** clients being served (authenticated, when there is a secret) */
  get clientCount(): number {
    return this.clients.size;
  }

  /** connections that have not authenticated yet */
  get pendingCount(): number {
    return this.waiting.size;
  }

  get host(): string {
    return this.opts.host ?? '127.0.0.1';
  }

  /** every open client, e.g. to broadcast */
  forEachClient(fn: (c: LineClient) => void): void {
    for (const c of this.clients) if (!c.closed) fn(c);
  }

  reject(reason: RejectReason): void {
    this.rejects.set(reason, (this.rejects.get(reason) ?? 0) + 1);
    rejects.inc({ service: this.opts.name, reason });
  }

  async listen(): Promise<number> {
    // allowHalfOpen: a client that half-closes after its last line (nc -N, printf | nc) still gets
    // the replies to its queued lines; the client's "end" handler ends our side once they are out.
    const server = createServer({ noDelay: true, allowHalfOpen: true }, (sock) => this.accept(sock));
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: NodeJS.ErrnoException) => {
        // which flag moves the port depends on the command: it adds that (runtime/port-in-use.ts)
        reject(
          err.code === 'EADDRINUSE'
            ? new PortInUseError(this.opts.name, `${this.host}:${this.opts.port}`, { cause: err })
            : new Error(
                `${this.opts.name}: cannot listen on ${this.host}:${this.opts.port}: ${err.code ?? err.message}`,
                {
                  cause: err,
                },
              ),
        );
      };
      server.once('error', onErr);
      server.listen(this.opts.port, this.host, () => {
        server.off('error', onErr);
        // from here on (not for the listen itself: the caller reports that once)
        server.on('error', (err) => this.log.error('server error', { err }));
        resolve();
      });
    });
    this.server = server;
    const addr = server.address();
    this.boundPort = typeof addr === 'object' && addr ? addr.port : this.opts.port;
    this.log.info('listening', {
      host: this.host,
      port: this.boundPort,
      ...(this.secretDigest ? { auth: 'AUTH <secret>' } : {}),
    });
    return this.boundPort;
  }

  private get maxClients(): number {
    return this.opts.maxClients ?? LINE_SERVER_DEFAULTS.maxClients;
  }

  private accept(sock: Socket): void {
    const remote = sock.remoteAddress ?? 'unknown';
    if (this.opts.allow && this.opts.allow.length > 0 && !this.opts.allow.includes(normaliseAddr(remote))) {
      this.reject('unauthorised');
      this.log.warn('connection refused by allowlist', { remote });
      sock.end('error: not allowed\n');
      return;
    }
    if (this.clients.size >= this.maxClients) {
      this.busy(sock);
      return;
    }
    const c = new ClientImpl(this, sock, this.nextId++);
    accepted.inc({ service: this.opts.name });
    sock.once('close', () => {
      if (this.clients.delete(c)) connections.dec({ service: this.opts.name });
      if (this.waiting.delete(c)) pendingGauge.dec({ service: this.opts.name });
      c.finish();
    });
    if (this.secretDigest) {
      const maxPending = this.opts.maxPending ?? LINE_SERVER_DEFAULTS.maxPending;
      // The oldest waiting connection makes room: a flood of idle sockets then only ever delays a
      // real client by the time it takes to send one line, never locks it out.
      while (this.waiting.size >= maxPending) {
        const oldest = this.waiting.values().next().value as ClientImpl;
        this.waiting.delete(oldest);
        pendingGauge.dec({ service: this.opts.name });
        oldest.fail('pending-full', `too many connections waiting to authenticate (${maxPending})`);
      }
      this.waiting.add(c);
      pendingGauge.inc({ service: this.opts.name });
      return;
    }
    this.admit(c);
  }

  private busy(sock: Socket): void {
    this.reject('max-clients');
    sock.end(`error: busy, ${this.maxClients} clients connected; try again later\n`);
    setTimeout(() => sock.destroy(), 2_000).unref();
  }

  /** A connection becomes a served client (at once, or once authenticated); false when full. */
  admit(c: ClientImpl): boolean {
    if (this.waiting.delete(c)) pendingGauge.dec({ service: this.opts.name });
    if (this.clients.size >= this.maxClients) {
      this.reject('max-clients');
      c.fail('max-clients', `busy, ${this.maxClients} clients connected; try again later`, false);
      return false;
    }
    this.clients.add(c);
    connections.inc({ service: this.opts.name });
    try {
      this.opts.onConnect?.(c);
    } catch (err) {
      this.log.error('onConnect failed', { err, remote: c.remote });
      c.close('internal error');
    }
    return true;
  }

  countLine(): void {
    lines.inc({ service: this.opts.name });
  }

  /** stops accepting, ends every client (their queued output is flushed), then resolves */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const c of this.waiting) c.close('server shutting down');
    for (const c of this.clients) c.close('server shutting down');
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }
}

function normaliseAddr(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

class ClientImpl implements LineClient {
  readonly remote: string;
  readonly remotePort: number;
  readonly connectedAt = Date.now();
  state: Record<string, unknown> = {};
  /** a line's beginning, waiting for its newline */
  private buf: Buffer[] = [];
  private bufLen = 0;
  /** bytes read but not parsed yet, because the queue was full (at most one chunk) */
  private held: Buffer | undefined;
  private queue: string[] = [];
  private queuedBytes = 0;
  private busy = false;
  /** input is taken (false once failed or closed) */
  private reading = true;
  /** the peer ended its side */
  private eof = false;
  /** onInputEnd was called (at most once) */
  private inputEnded = false;
  /** why the client is being dropped once its queued lines are answered */
  private failure: { message: string; errorLine: boolean } | undefined;
  private isClosed = false;
  private closeReason = 'client closed';
  private authed: boolean;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private readonly maxLine: number;
  private readonly maxOut: number;
  private readonly maxLines: number;
  private readonly maxBytes: number;

  constructor(
    private readonly srv: LineServer,
    private readonly sock: Socket,
    readonly id: number,
  ) {
    const o = srv.opts;
    this.remote = normaliseAddr(sock.remoteAddress ?? 'unknown');
    this.remotePort = sock.remotePort ?? 0;
    this.maxLine = o.maxLineBytes ?? LINE_SERVER_DEFAULTS.maxLineBytes;
    this.maxOut = o.maxOutputBytes ?? LINE_SERVER_DEFAULTS.maxOutputBytes;
    this.maxLines = Math.max(1, o.maxQueuedLines ?? LINE_SERVER_DEFAULTS.maxQueuedLines);
    this.maxBytes = Math.max(1, o.maxQueuedBytes ?? LINE_SERVER_DEFAULTS.maxQueuedBytes);
    this.authed = !srv.secretDigest;
    if (!this.authed) {
      const ms = o.handshakeTimeoutMs ?? LINE_SERVER_DEFAULTS.handshakeTimeoutMs;
      // an absolute deadline, not an idle timer: a client trickling bytes does not extend it
      this.handshakeTimer = setTimeout(
        () => this.fail('handshake-timeout', `no AUTH <secret> within ${ms} ms`),
        ms,
      );
      this.handshakeTimer.unref();
    }
    const idle = o.idleTimeoutMs ?? 0;
    if (idle > 0) {
      sock.setTimeout(idle, () => {
        srv.reject('idle');
        this.close(`idle for ${idle} ms`);
      });
    }
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('end', () => {
      this.eof = true;
      this.closeReason = 'client closed';
      // Let queued lines finish and their replies go out, then end our side.
      this.afterPump();
    });
    sock.on('error', (err) => {
      srv.log.debug('client socket error', { remote: this.remote, err });
    });
  }

  get closed(): boolean {
    return this.isClosed || this.sock.destroyed;
  }

  get pending(): number {
    return this.sock.writableLength;
  }

  private get full(): boolean {
    return this.queue.length >= this.maxLines || this.queuedBytes >= this.maxBytes;
  }

  private onData(d: Buffer): void {
    if (!this.reading) return;
    if (this.held) {
      // cannot happen while paused; kept in order if it does
      this.held = Buffer.concat([this.held, d]);
      return;
    }
    this.parse(d);
  }

  /** Splits `d` into lines; stops (holding the rest, pausing the socket) while the queue is full. */
  private parse(d: Buffer): void {
    let start = 0;
    for (;;) {
      if (this.full) {
        if (start < d.length) this.held = d.subarray(start);
        this.sock.pause();
        return;
      }
      const nl = d.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = d.subarray(start, nl);
      start = nl + 1;
      let line: Buffer;
      if (this.bufLen > 0) {
        this.buf.push(piece);
        line = Buffer.concat(this.buf, this.bufLen + piece.length);
        this.buf = [];
        this.bufLen = 0;
      } else {
        line = piece;
      }
      if (!this.take(line)) return;
    }
    if (start < d.length) {
      const rest = d.subarray(start);
      this.buf.push(Buffer.from(rest));
      this.bufLen += rest.length;
      if (this.bufLen > this.maxLine + 1) {
        this.fail('overlong', `line longer than ${this.maxLine} bytes`);
      }
    }
  }

  /** One complete line; false when the client is being dropped. */
  private take(raw: Buffer): boolean {
    let line = raw;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    if (line.length > this.maxLine) {
      this.fail('overlong', `line longer than ${this.maxLine} bytes`);
      return false;
    }
    if (line.includes(0) || !isUtf8(line)) {
      this.fail('binary', 'binary data (NUL or invalid UTF-8) is not a text line');
      return false;
    }
    if (!this.authed) return this.authenticate(line);
    const text = line.toString('utf8');
    this.srv.countLine();
    this.queue.push(text);
    this.queuedBytes += line.length;
    if (!this.busy) void this.pump();
    return true;
  }

  private authenticate(line: Buffer): boolean {
    const digest = this.srv.secretDigest!;
    const ok =
      line.length > 5 &&
      line.subarray(0, 5).toString('latin1') === 'AUTH ' &&
      secretMatches(digest, line.subarray(5));
    if (!ok) {
      this.fail('unauthorised', 'first line must be AUTH <secret>');
      return false;
    }
    clearTimeout(this.handshakeTimer);
    this.authed = true;
    if (!this.srv.admit(this)) return false;
    this.send('ok');
    return true;
  }

  private async pump(): Promise<void> {
    this.busy = true;
    for (;;) {
      if (this.sock.destroyed || this.isClosed) break;
      const text = this.queue.shift();
      if (text === undefined) break;
      this.queuedBytes -= Buffer.byteLength(text);
      try {
        const r = this.srv.opts.onLine(this, text);
        if (r && typeof (r as Promise<void>).then === 'function') await r;
      } catch (err) {
        this.srv.log.error('line handler failed', { remote: this.remote, err });
        this.send(`error: internal error: ${(err as Error).message}`);
      }
      this.refill();
    }
    this.busy = false;
    this.afterPump();
  }

  /** Once the queue is down to half its bound: parse what was held back, then read again. */
  private refill(): void {
    if (!this.reading) return;
    if (this.queue.length > this.maxLines / 2 || this.queuedBytes > this.maxBytes / 2) return;
    const h = this.held;
    if (h) {
      this.held = undefined;
      this.parse(h);
    }
    if (!this.held && this.reading && this.sock.isPaused()) this.sock.resume();
  }

  /** Nothing is being handled: a failed client gets its error line now; an ended one, our end. */
  private afterPump(): void {
    if (this.busy || this.queue.length > 0) return;
    if (this.failure) {
      const { message, errorLine } = this.failure;
      this.failure = undefined;
      if (errorLine && this.srv.opts.errorLines !== false && !this.closed)
        this.sock.write(`error: ${message}\n`);
      this.close(message);
      return;
    }
    if (!this.eof || this.held) return;
    if (this.bufLen > 0) {
      this.srv.reject('partial');
      this.srv.log.debug('half line dropped at disconnect', { remote: this.remote, bytes: this.bufLen });
      this.buf = [];
      this.bufLen = 0;
    }
    if (this.srv.opts.onInputEnd) {
      // the service ends it (e.g. the feeder, once its snapshot is out); told once
      if (!this.inputEnded && !this.isClosed) {
        this.inputEnded = true;
        this.srv.opts.onInputEnd(this);
      }
    } else if (!this.sock.destroyed) this.sock.end();
  }

  /**
   * Drops the client for `reason`: no more input is taken, the lines it sent before are still
   * answered (a request already handled keeps its reply), then the error line, then the close.
   */
  fail(reason: RejectReason, message: string, count = true): void {
    if (this.failure || this.isClosed) return;
    if (count) this.srv.reject(reason);
    this.srv.log.warn('client dropped', { remote: this.remote, reason: message });
    clearTimeout(this.handshakeTimer);
    this.stopReading();
    this.failure = { message, errorLine: true };
    this.afterPump();
  }

  private stopReading(): void {
    this.reading = false;
    this.held = undefined;
    this.buf = [];
    this.bufLen = 0;
    if (!this.sock.destroyed) this.sock.pause();
  }

  write(text: string | Uint8Array): boolean {
    if (this.closed) return false;
    if (this.sock.writableLength > this.maxOut) {
      this.srv.reject('slow-reader');
      this.srv.log.warn('slow reader dropped', { remote: this.remote, queued: this.sock.writableLength });
      this.closeReason = `slow reader: more than ${this.maxOut} bytes queued`;
      this.isClosed = true;
      this.sock.destroy();
      return false;
    }
    this.sock.write(text);
    return true;
  }

  send(line: string): boolean {
    return this.write(`${line}\n`);
  }

  close(reason = 'closed by server', graceMs = 2_000): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = reason;
    clearTimeout(this.handshakeTimer);
    // lines not started yet are not answered: the client is gone or being shut down
    this.queue = [];
    this.queuedBytes = 0;
    this.stopReading();
    this.sock.end();
    // A peer that never reads would keep the socket half-open; don't wait for it forever.
    setTimeout(() => this.sock.destroy(), graceMs).unref();
  }

  finish(): void {
    this.isClosed = true;
    clearTimeout(this.handshakeTimer);
    this.srv.opts.onClose?.(this, this.closeReason);
  }
}
