// A `virgo` command (or any program) as a child process the suite can wait on, SIGKILL and restart.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

const BIN = new URL('../../bin/virgo.js', import.meta.url).pathname;

export class Child {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  private readonly waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly proc: ChildProcess,
    readonly label: string,
  ) {
    for (const [stream, lines] of [
      [proc.stdout!, this.stdout],
      [proc.stderr!, this.stderr],
    ] as const) {
      createInterface({ input: stream }).on('line', (l) => {
        lines.push(l);
        for (let i = this.waiters.length - 1; i >= 0; i--) {
          const m = this.waiters[i]!.re.exec(l);
          if (m) this.waiters.splice(i, 1)[0]!.resolve(m);
        }
      });
    }
    this.exited = once(proc, 'exit').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
  }

  /** `virgo <args>` with extra environment; stdin is a pipe the caller may write or close. */
  static virgo(args: string[], env: NodeJS.ProcessEnv = {}, label = args[0] ?? 'virgo'): Child {
    return Child.spawn(process.execPath, [BIN, ...args], env, label);
  }

  static spawn(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, label = cmd): Child {
    const proc = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    return new Child(proc, label);
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** the first line (stdout or stderr, past or future) matching `re` */
  waitLine(re: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
    for (const l of [...this.stdout, ...this.stderr]) {
      const m = re.exec(l);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        reject(
          new Error(
            `${this.label}: no line matching ${re} within ${timeoutMs} ms; stderr tail: ${this.stderr.slice(-5).join(' | ')}`,
          ),
        );
      }, timeoutMs);
      const w = {
        re,
        resolve: (m: RegExpExecArray) => {
          clearTimeout(t);
          resolve(m);
        },
      };
      this.waiters.push(w);
      void this.exited.then(({ code, signal }) => {
        const i = this.waiters.indexOf(w);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        clearTimeout(t);
        reject(
          new Error(
            `${this.label} exited (${code ?? signal}) before a line matching ${re}; stderr: ${this.stderr.slice(-8).join(' | ')}`,
          ),
        );
      });
    });
  }

  /** SIGKILL: no cleanup, no flush, no commit; resolves once the process is gone */
  async kill9(): Promise<void> {
    if (this.running) this.proc.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, the graceful stop; resolves with the exit code */
  async stop(): Promise<number | null> {
    if (this.running) this.proc.kill('SIGTERM');
    return (await this.exited).code;
  }
}
