// Test clients for the kernel-analytics tests: line-collecting sockets, real nc processes, free ports.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';

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

  /** the latest value of each key received so far */
  table(): Map<string, string> {
    const m = new Map<string, string>();
    for (const l of this.lines) {
      const eq = l.indexOf('=');
      if (eq > 0) m.set(l.slice(0, eq), l.slice(eq + 1));
    }
    return m;
  }

  /** resolves when `pred` holds (checked on every read); rejects after `ms` */
  until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
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

  close(): void {
    this.sock.destroy();
  }
}

/** A real `nc` process; its stdout collected as text. */
export class Nc {
  readonly proc: ChildProcessWithoutNullStreams;
  out = '';
  err = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.proc = spawn('nc', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (d: string) => {
      this.out += d;
    });
    this.proc.stderr.on('data', (d: Buffer) => {
      this.err += d.toString();
    });
    this.proc.stdin.on('error', () => {});
    this.exited = new Promise((r) => this.proc.on('close', (code) => r(code)));
  }

  type(text: string | Buffer): void {
    this.proc.stdin.write(text);
  }

  lines(): string[] {
    return this.out.split('\n').filter((l) => l !== '');
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}

/** A port nothing listens on right now (for `nc -l`, which cannot report a port-0 choice). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
