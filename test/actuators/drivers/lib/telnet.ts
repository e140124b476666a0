// A telnet-style test client: write a line, read reply lines, see the server hang up.
import { connect, type Socket } from 'node:net';

export class TelnetClient {
  private buf = '';
  private readonly lines: string[] = [];
  private waiting: ((line: string | undefined) => void) | undefined;
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (;;) {
        const nl = this.buf.indexOf('\n');
        if (nl < 0) break;
        this.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
    });
    this.closed = new Promise((resolve) => {
      sock.on('close', () => {
        this.ended = true;
        const w = this.waiting;
        this.waiting = undefined;
        w?.(undefined);
        resolve();
      });
    });
    sock.on('error', () => {});
  }

  /** `localAddress`: the client's own address (all of 127/8 is loopback on Linux) */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<TelnetClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, ...(localAddress ? { localAddress } : {}) });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new TelnetClient(s));
      });
    });
  }

  private push(line: string): void {
    const w = this.waiting;
    if (w) {
      this.waiting = undefined;
      w(line);
    } else this.lines.push(line);
  }

  /** the next line, or undefined when the server closed the connection first */
  next(timeoutMs = 10_000): Promise<string | undefined> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no line within ${timeoutMs} ms`)), timeoutMs);
      this.waiting = (line) => {
        clearTimeout(t);
        resolve(line);
      };
    });
  }

  write(text: string | Buffer): void {
    this.sock.write(text);
  }

  async request(line: string): Promise<string> {
    this.sock.write(`${line}\n`);
    const r = await this.next();
    if (r === undefined)
      throw new Error(`connection closed before a reply to ${JSON.stringify(line.slice(0, 80))}`);
    return r;
  }

  close(): void {
    this.sock.end();
  }
}

export async function oneShot(port: number, line: string): Promise<string> {
  const c = await TelnetClient.connect(port);
  try {
    return await c.request(line);
  } finally {
    c.close();
  }
}
