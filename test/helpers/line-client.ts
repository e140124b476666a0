// A telnet-style client: send lines, read reply lines in order, notice the server hanging up.
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
