// TCP line clients for the tests. LineConn is telnet-style: send a request line, read its reply
// line, notice the server hanging up. LineClient collects every line it reads, as a user's `nc`
// prints them, for the services that stream (the feeder) or answer many requests at once.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

export class LineConn {
  readonly lines: string[] = [];
  private rest = '';
  private readonly waiting: ((l: string | undefined) => void)[] = [];
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      const parts = (this.rest + d).split('\n');
      this.rest = parts.pop() ?? '';
      for (const p of parts) {
        const w = this.waiting.shift();
        if (w) w(p);
        else this.lines.push(p);
      }
    });
    sock.on('error', () => {});
    this.closed = new Promise((resolve) => {
      sock.on('close', () => {
        this.ended = true;
        for (const w of this.waiting.splice(0)) w(undefined);
        resolve();
      });
    });
  }

  static open(port: number, host = '127.0.0.1', localAddress?: string): Promise<LineConn> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new LineConn(s));
      });
    });
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** the next line, or undefined once the server has closed the connection */
  next(timeoutMs = 15_000): Promise<string | undefined> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply line within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.push((line) => {
        clearTimeout(t);
        resolve(line);
      });
    });
  }

  write(data: string | Buffer): void {
    if (!this.sock.destroyed) this.sock.write(data);
  }

  async request(line: string, timeoutMs?: number): Promise<string | undefined> {
    this.write(`${line}\n`);
    return this.next(timeoutMs);
  }

  /** one request, its reply line; throws when the server closed the connection instead */
  async ask(line: string, timeoutMs?: number): Promise<string> {
    const r = await this.request(line, timeoutMs);
    if (r === undefined)
      throw new Error(`connection closed before a reply to ${JSON.stringify(line.slice(0, 80))}`);
    return r;
  }

  /** sends every line at once (pipelined) and reads as many replies; undefined for those never answered */
  async batch(lines: string[], timeoutMs = 30_000): Promise<(string | undefined)[]> {
    this.write(`${lines.join('\n')}\n`);
    const out: (string | undefined)[] = [];
    for (let i = 0; i < lines.length; i++) out.push(await this.next(timeoutMs));
    return out;
  }

  close(): void {
    this.sock.end();
  }

  destroy(): void {
    this.sock.destroy();
  }
}

/** One request on a connection of its own, its reply line. */
export async function oneShot(port: number, line: string): Promise<string> {
  const c = await LineConn.open(port);
  try {
    return await c.ask(line);
  } finally {
    c.close();
  }
}

/** A TCP client that collects the lines it reads (what a user's `nc` would print). */
export class LineClient {
  readonly sock: Socket;
  readonly lines: string[] = [];
  closed = false;
  private rest = '';
  private readonly waiters: { pred: () => boolean; resolve: () => void }[] = [];

  constructor(port: number, host = '127.0.0.1') {
    this.sock = connect({ port, host });
    this.sock.setEncoding('utf8');
    this.sock.on('data', (d: string) => {
      const parts = (this.rest + d).split('\n');
      this.rest = parts.pop() ?? '';
      for (const p of parts) this.lines.push(p);
      this.check();
    });
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      this.closed = true;
      this.check();
    });
  }

  connected(): Promise<void> {
    return this.sock.connecting ? once(this.sock, 'connect').then(() => {}) : Promise.resolve();
  }

  send(line: string): void {
    this.sock.write(`${line}\n`);
  }

  write(data: string | Buffer): void {
    this.sock.write(data);
  }

  /** the latest value of each key received so far */
  table(): Map<string, string> {
    const m = new Map<string, string>();
    for (const l of this.lines) {
      const eq = l.indexOf('=');
      if (eq > 0) m.set(l.slice(0, eq), l.slice(eq + 1));
    }
    return m;
  }

  /** resolves when `pred` holds (checked on every read and on close); rejects after `ms` */
  until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.lines.slice(-5))}`)),
        ms,
      );
      this.waiters.push({
        pred,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      });
    });
  }

  private check(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.pred()) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** half-closes (FIN): the server still answers what it was sent */
  end(): void {
    this.sock.end();
  }

  /** drops the connection at once */
  close(): void {
    this.sock.destroy();
  }
}
