// Helpers of the queue-bridge tests: temp queue dirs, a line-collecting TCP client, messages.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KingCobraMessage } from '../../../schemas/index.ts';

const dirs: string[] = [];

/** A fresh directory, removed by cleanupDirs(). */
export function tempDir(prefix = 'kc'): string {
  const d = mkdtempSync(join(tmpdir(), `virgo-${prefix}-`));
  dirs.push(d);
  return d;
}

export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function msg(n: number, over: Partial<KingCobraMessage> = {}): KingCobraMessage {
  return {
    id: `t-${n}`,
    kind: 'REQUEST',
    clientAddr: '127.0.0.1',
    ts_sec: 1_700_000_000 + n,
    ts_nsec: n * 1000,
    payload: `payload ${n}`,
    inReplyTo: null,
    ...over,
  };
}

/** A TCP client that collects the lines it reads, as `nc` would print them. */
export class LineClient {
  readonly sock: Socket;
  readonly lines: string[] = [];
  closed = false;
  private rest = '';
  private waiters: (() => void)[] = [];

  constructor(port: number, host = '127.0.0.1') {
    this.sock = connect({ port, host });
    this.sock.setEncoding('utf8');
    this.sock.on('data', (d: string) => {
      const parts = (this.rest + d).split('\n');
      this.rest = parts.pop() ?? '';
      this.lines.push(...parts);
      this.wake();
    });
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async connected(): Promise<void> {
    if (this.sock.connecting) await once(this.sock, 'connect');
  }

  send(line: string): void {
    this.sock.write(`${line}\n`);
  }

  write(data: string | Buffer): void {
    this.sock.write(data);
  }

  /** resolves once `pred` holds (checked on every read and on close) */
  async until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; last lines ${JSON.stringify(this.lines.slice(-3))}`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  close(): void {
    this.sock.end();
  }
}
