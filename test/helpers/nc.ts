// A real `nc` process (netcat-openbsd), as a user runs it against our ports; its output collected.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';

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
