// How the kernel actuator runs tc, nft, sysctl and ip: execFile with an argument vector (never a
// shell, so no value can become syntax), a bounded run time, and optionally inside a network
// namespace (`ip netns exec NS …`, which tests use to leave the host alone). The same argv is what
// a dry run prints and what the audit log records, so an operator can paste it.
import { execFile } from 'node:child_process';
import { isNetnsName } from './allowlist.ts';

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly code: number | string | null,
    readonly stderr: string,
  ) {
    super(
      `${argv.join(' ')} failed (${code === null ? 'killed' : `exit ${code}`}): ${stderr.trim().split('\n')[0] ?? ''}`,
    );
  }
}

export interface CommandRunnerOptions {
  /** run every command inside this network namespace (`ip netns exec NAME`) */
  netns?: string;
  /** each command is killed after this long (processing time, ms; default 10 s) */
  timeoutMs?: number;
}

export class CommandRunner {
  readonly netns: string | undefined;
  private readonly timeoutMs: number;

  constructor(opts: CommandRunnerOptions = {}) {
    if (opts.netns !== undefined && !isNetnsName(opts.netns)) {
      throw new Error(`network namespace name ${JSON.stringify(opts.netns)} is not one ip netns accepts`);
    }
    this.netns = opts.netns;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** The argv that runs `cmd` here: with the namespace prefix when there is one. */
  argv(cmd: readonly string[]): string[] {
    return this.netns ? ['ip', 'netns', 'exec', this.netns, ...cmd] : [...cmd];
  }

  /** Runs `cmd`; resolves with its stdout, rejects with a CommandError naming the argv. */
  run(cmd: readonly string[]): Promise<string> {
    const argv = this.argv(cmd);
    return new Promise((resolve, reject) => {
      execFile(
        argv[0]!,
        argv.slice(1),
        {
          timeout: this.timeoutMs,
          killSignal: 'SIGKILL',
          maxBuffer: 16 * 1024 * 1024,
          // C locale: the tools' messages and number formats do not depend on the operator's.
          env: { ...process.env, LC_ALL: 'C' },
        },
        (err, stdout, stderr) => {
          if (err) {
            const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
            const why =
              e.code === 'ENOENT' ? `${argv[0]} not found (install iproute2 / nftables / procps)` : stderr;
            reject(new CommandError(argv, e.killed ? null : (e.code ?? null), why || e.message));
            return;
          }
          resolve(stdout);
        },
      );
    });
  }
}

/** An argv as one shell-quoted line, for people (the argv array stays the exact form). */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_./:=@,+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
