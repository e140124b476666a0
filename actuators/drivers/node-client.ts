// A line client to another node's port (cpupooling forwarding, device replies to the VIRGO queue):
// one connection per node, requests pipelined (the LineServer answers one client's lines in order,
// so replies match requests FIFO), reconnect on the next request after a failure. With a secret,
// every new connection starts with `AUTH <secret>`; its `ok` is the first reply and is consumed
// here (anything else fails the connection and every request on it with the server's answer).
// A timeout poisons the connection (a late reply would be matched with the wrong request), so it
// is dropped and every request still waiting fails.
import { connect, type Socket } from 'node:net';

interface Waiter {
  resolve: (line: string) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface NodeClientOptions {
  /** per request (default 15 s) */
  timeoutMs?: number;
  /** longest reply (default 1 MiB) */
  maxReplyBytes?: number;
  /** the server's shared secret: sent as `AUTH <secret>` first on every connection */
  secret?: string;
}

export class NodeClient {
  private sock: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private readonly waiters: Waiter[] = [];
  private buf = '';
  private closed = false;
  private readonly timeoutMs: number;
  private readonly maxReplyBytes: number;
  private readonly secret: string | undefined;

  constructor(
    readonly host: string,
    readonly port: number,
    opts: NodeClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.maxReplyBytes = opts.maxReplyBytes ?? 1 << 20;
    this.secret = opts.secret;
  }

  async request(line: string): Promise<string> {
    if (this.closed) throw new Error('client closed');
    const sock = await this.connection();
    return this.send(sock, line);
  }

  private send(sock: Socket, line: string): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(new Error(`no reply from ${this.host}:${this.port} within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      this.waiters.push({ resolve, reject, timer });
      sock.write(`${line}\n`);
    });
  }

  private connection(): Promise<Socket> {
    // while connecting (authenticating included) everyone waits for the same connection
    if (this.connecting) return this.connecting;
    if (this.sock && !this.sock.destroyed) return Promise.resolve(this.sock);
    this.connecting = new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: this.host, port: this.port, noDelay: true });
      const onErr = (err: NodeJS.ErrnoException) => {
        this.connecting = undefined;
        reject(new Error(`cannot connect to ${this.host}:${this.port}: ${err.code ?? err.message}`));
      };
      s.once('error', onErr);
      s.once('connect', () => {
        s.off('error', onErr);
        this.sock = s;
        s.setEncoding('utf8');
        s.on('data', (d: string) => this.onData(d));
        s.on('error', (err: NodeJS.ErrnoException) =>
          this.fail(new Error(`connection to ${this.host}:${this.port} failed: ${err.code ?? err.message}`)),
        );
        s.on('close', () => this.fail(new Error(`${this.host}:${this.port} closed the connection`)));
        if (!this.secret) {
          this.connecting = undefined;
          resolve(s);
          return;
        }
        // Requests wait for the server's `ok`: one sent before it would be refused with the
        // connection if the secret is wrong, and the error would name the request, not the secret.
        this.send(s, `AUTH ${this.secret}`).then(
          (answer) => {
            this.connecting = undefined;
            if (answer === 'ok') {
              resolve(s);
              return;
            }
            const err = new Error(
              `${this.host}:${this.port} refused the secret: ${JSON.stringify(answer.slice(0, 120))}`,
            );
            this.fail(err);
            reject(err);
          },
          (err: Error) => {
            this.connecting = undefined;
            reject(err);
          },
        );
      });
    });
    return this.connecting;
  }

  private onData(d: string): void {
    this.buf += d;
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl < 0) break;
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      const w = this.waiters.shift();
      if (!w) continue; // an unsolicited line (e.g. a shutdown notice): nobody asked
      clearTimeout(w.timer);
      w.resolve(line);
    }
    if (this.buf.length > this.maxReplyBytes)
      this.fail(new Error(`reply from ${this.host}:${this.port} too long`));
  }

  private fail(err: Error): void {
    const s = this.sock;
    this.sock = undefined;
    this.buf = '';
    s?.destroy();
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  close(): void {
    this.closed = true;
    this.fail(new Error('client closed'));
  }
}
