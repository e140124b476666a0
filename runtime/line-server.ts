// A bounded, telnet-compatible TCP line server: the one implementation behind the feeder
// (:64000), the pooling drivers (:10000-:50000) and the VIRGO queue (:60000).
// What every port promises (docs/design.md §6.1): bounded line length, bounded connections,
// bounded output per client (slow readers are dropped, never stall others), per-client errors
// never take the server down, binds 127.0.0.1 unless told, optional allowlist/shared secret.
import { isUtf8 } from 'node:buffer';
import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { createLogger, type Logger } from './log.ts';
import { counter, gauge } from './metrics.ts';

export type RejectReason =
  | 'overlong'
  | 'binary'
  | 'partial'
  | 'unauthorised'
  | 'max-clients'
  | 'slow-reader'
  | 'idle';

export interface LineServerOptions {
  /** service name, for logs and metric labels */
  name: string;
  host?: string;
  port: number;
  /** longest accepted line in bytes, without the newline */
  maxLineBytes?: number;
  maxClients?: number;
  /** close a client that sends nothing for this long (0: never) */
  idleTimeoutMs?: number;
  /** bytes queued for one client before it counts as a slow reader and is dropped */
  maxOutputBytes?: number;
  /** remote addresses allowed to connect (exact match); empty/absent: all */
  allow?: string[];
  /** when set, a client's first line must be `AUTH <secret>` */
  secret?: string;
  /** say why a client is dropped before closing it (off for the feeder: its clients parse k=v) */
  errorLines?: boolean;
  onConnect?: (client: LineClient) => void;
  /** lines of one client are handled one at a time, in order */
  onLine: (client: LineClient, line: string) => void | Promise<void>;
  onClose?: (client: LineClient, reason: string) => void;
}

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
  close(reason?: string): void;
  /** per-connection state for the service */
  state: Record<string, unknown>;
}

const connections = gauge('virgo_tcp_connections', 'open TCP client connections', ['service']);
const accepted = counter('virgo_tcp_accepted_total', 'TCP clients accepted', ['service']);
const lines = counter('virgo_tcp_lines_total', 'lines received', ['service']);
const rejects = counter('virgo_tcp_rejects_total', 'lines or clients rejected, by reason', [
  'service',
  'reason',
]);

export class LineServer {
  private server: Server | undefined;
  private readonly clients = new Set<ClientImpl>();
  private nextId = 1;
  readonly log: Logger;
  readonly rejects = new Map<RejectReason, number>();
  private boundPort = 0;

  constructor(readonly opts: LineServerOptions) {
    this.log = createLogger(`tcp.${opts.name}`);
  }

  get port(): number {
    return this.boundPort;
  }

  get clientCount(): number {
    return this.clients.size;
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
    server.on('error', (err) => this.log.error('server error', { err }));
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: NodeJS.ErrnoException) => {
        reject(
          new Error(
            `${this.opts.name}: cannot listen on ${this.host}:${this.opts.port}: ${err.code ?? err.message}` +
              (err.code === 'EADDRINUSE'
                ? ' (another process has the port; choose another with --listen)'
                : ''),
          ),
        );
      };
      server.once('error', onErr);
      server.listen(this.opts.port, this.host, () => {
        server.off('error', onErr);
        resolve();
      });
    });
    this.server = server;
    const addr = server.address();
    this.boundPort = typeof addr === 'object' && addr ? addr.port : this.opts.port;
    this.log.info('listening', { host: this.host, port: this.boundPort });
    return this.boundPort;
  }

  private accept(sock: Socket): void {
    const remote = sock.remoteAddress ?? 'unknown';
    const maxClients = this.opts.maxClients ?? 1024;
    if (this.opts.allow && this.opts.allow.length > 0 && !this.opts.allow.includes(normaliseAddr(remote))) {
      this.reject('unauthorised');
      this.log.warn('connection refused by allowlist', { remote });
      sock.end('error: not allowed\n');
      return;
    }
    if (this.clients.size >= maxClients) {
      this.reject('max-clients');
      sock.end(`error: busy, ${maxClients} clients connected; try again later\n`);
      return;
    }
    const c = new ClientImpl(this, sock, this.nextId++);
    this.clients.add(c);
    accepted.inc({ service: this.opts.name });
    connections.inc({ service: this.opts.name });
    sock.once('close', () => {
      this.clients.delete(c);
      connections.dec({ service: this.opts.name });
      c.finish();
    });
    try {
      if (!this.opts.secret) this.opts.onConnect?.(c);
    } catch (err) {
      this.log.error('onConnect failed', { err, remote });
      c.close('internal error');
    }
  }

  countLine(): void {
    lines.inc({ service: this.opts.name });
  }

  /** stops accepting, ends every client (their queued output is flushed), then resolves */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
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
  private buf: Buffer[] = [];
  private bufLen = 0;
  private queue: string[] = [];
  private busy = false;
  private isClosed = false;
  private closeReason = 'client closed';
  private authed: boolean;
  private readonly maxLine: number;
  private readonly maxOut: number;

  constructor(
    private readonly srv: LineServer,
    private readonly sock: Socket,
    readonly id: number,
  ) {
    this.remote = normaliseAddr(sock.remoteAddress ?? 'unknown');
    this.remotePort = sock.remotePort ?? 0;
    this.maxLine = srv.opts.maxLineBytes ?? 4096;
    this.maxOut = srv.opts.maxOutputBytes ?? 1 << 20;
    this.authed = !srv.opts.secret;
    const idle = srv.opts.idleTimeoutMs ?? 0;
    if (idle > 0) {
      sock.setTimeout(idle, () => {
        srv.reject('idle');
        this.close(`idle for ${idle} ms`);
      });
    }
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('end', () => {
      if (this.bufLen > 0) {
        srv.reject('partial');
        srv.log.debug('half line dropped at disconnect', { remote: this.remote, bytes: this.bufLen });
        this.buf = [];
        this.bufLen = 0;
      }
      // Let queued lines finish and their replies go out, then end our side.
      this.closeReason = 'client closed';
      this.drainThenEnd();
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

  private onData(d: Buffer): void {
    if (this.isClosed) return;
    let start = 0;
    for (;;) {
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
      if (!this.accept(line)) return;
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

  /** false when the client was closed */
  private accept(raw: Buffer): boolean {
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
    const text = line.toString('utf8');
    if (!this.authed) {
      const want = Buffer.from(`AUTH ${this.srv.opts.secret}`);
      const got = Buffer.from(text);
      if (want.length === got.length && timingSafeEqual(want, got)) {
        this.authed = true;
        this.send('ok');
        this.srv.opts.onConnect?.(this);
        return true;
      }
      this.fail('unauthorised', 'first line must be AUTH <secret>');
      return false;
    }
    this.srv.countLine();
    this.queue.push(text);
    if (this.queue.length > 1024) this.sock.pause();
    if (!this.busy) void this.pump();
    return true;
  }

  private async pump(): Promise<void> {
    this.busy = true;
    while (this.queue.length > 0 && !this.sock.destroyed) {
      const text = this.queue.shift()!;
      try {
        const r = this.srv.opts.onLine(this, text);
        if (r && typeof (r as Promise<void>).then === 'function') await r;
      } catch (err) {
        this.srv.log.error('line handler failed', { remote: this.remote, err });
        this.send(`error: internal error: ${(err as Error).message}`);
      }
      if (this.queue.length < 256 && this.sock.isPaused()) this.sock.resume();
    }
    this.busy = false;
    if (this.ending) this.endNow();
  }

  private ending = false;

  private drainThenEnd(): void {
    this.ending = true;
    if (!this.busy) this.endNow();
  }

  private endNow(): void {
    if (!this.sock.destroyed) this.sock.end();
  }

  private fail(reason: RejectReason, message: string): void {
    this.srv.reject(reason);
    this.srv.log.warn('client dropped', { remote: this.remote, reason: message });
    if (this.srv.opts.errorLines !== false && !this.sock.destroyed) this.sock.write(`error: ${message}\n`);
    this.close(message);
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

  close(reason = 'closed by server'): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = reason;
    this.queue = [];
    // unread input goes too: it is not a "partial line" of a client that then hangs up
    this.buf = [];
    this.bufLen = 0;
    this.sock.end();
    // A peer that never reads would keep the socket half-open; don't wait for it forever.
    setTimeout(() => this.sock.destroy(), 2_000).unref();
  }

  finish(): void {
    this.isClosed = true;
    this.srv.opts.onClose?.(this, this.closeReason);
  }
}
