// A line client to another node's cpupooling port: one connection per node, requests pipelined
// (the LineServer answers one client's lines in order, so replies match requests FIFO), reconnect
// on the next request after a failure. A timeout poisons the connection (a late reply would be
// matched with the wrong request), so it is dropped and every request still waiting fails.
import { connect, type Socket } from 'node:net';

interface Waiter {
  resolve: (line: string) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class NodeClient {
  private sock: Socket | undefined;
  private connecting: Promise<Socket> | undefined;
  private readonly waiters: Waiter[] = [];
  private buf = '';
  private closed = false;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly timeoutMs = 15_000,
    private readonly maxReplyBytes = 1 << 20,
  ) {}

  async request(line: string): Promise<string> {
    if (this.closed) throw new Error('client closed');
    const sock = await this.connection();
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
    if (this.sock && !this.sock.destroyed) return Promise.resolve(this.sock);
    if (this.connecting) return this.connecting;
    this.connecting = new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: this.host, port: this.port, noDelay: true });
      const onErr = (err: NodeJS.ErrnoException) => {
        this.connecting = undefined;
        reject(new Error(`cannot connect to ${this.host}:${this.port}: ${err.code ?? err.message}`));
      };
      s.once('error', onErr);
      s.once('connect', () => {
        s.off('error', onErr);
        this.connecting = undefined;
        this.sock = s;
        s.setEncoding('utf8');
        s.on('data', (d: string) => this.onData(d));
        s.on('error', (err: NodeJS.ErrnoException) =>
          this.fail(new Error(`connection to ${this.host}:${this.port} failed: ${err.code ?? err.message}`)),
        );
        s.on('close', () => this.fail(new Error(`${this.host}:${this.port} closed the connection`)));
        resolve(s);
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
