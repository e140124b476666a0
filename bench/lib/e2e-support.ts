// What `npm run bench -- e2e` needs around the pipeline: the input file, the publisher and kcat
// as child processes (their memory and CPU stay out of the measured process), an RSS sampler with
// the warm-up rule, and a CPU profile of a phase (node:inspector, so only the measured phase).
import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { DemoLog } from '../../ingest/demo-stream.ts';

/**
 * Writes `lines` demo kernel lines to `file` (streamed: a 10M-line file never sits in memory), on
 * a virtual clock of `stepMs` per line that ends now, so the log spans lines x stepMs of event
 * time (10 ms: 100 lines/s over all hosts, 10M lines = 28 h) and the learners' windows close as
 * they do on a real log. Returns the event-time span.
 */
export function writeDemoLog(
  file: string,
  lines: number,
  opts: { hosts: number; stepMs: number; seed?: number },
): { start: number; end: number } {
  let end = Date.now() - 60_000;
  let start = end - lines * opts.stepMs;
  // RFC 3164 stamps have no year: keep the log within one (the parser takes it from receive time)
  if (new Date(start).getFullYear() !== new Date(end).getFullYear()) {
    end = new Date(new Date(end).getFullYear() - 1, 11, 30).getTime();
    start = end - lines * opts.stepMs;
  }
  let t = start;
  const gen = new DemoLog({
    seed: opts.seed ?? 7,
    hosts: Array.from({ length: opts.hosts }, (_, i) => `edge-${i}`),
    now: () => t,
  });
  const fd = openSync(file, 'w');
  try {
    let chunk: string[] = [];
    for (let i = 0; i < lines; i++) {
      chunk.push(gen.next());
      t += opts.stepMs;
      if (chunk.length === 10_000) {
        writeSync(fd, `${chunk.join('\n')}\n`);
        chunk = [];
      }
    }
    if (chunk.length > 0) writeSync(fd, `${chunk.join('\n')}\n`);
  } finally {
    closeSync(fd);
  }
  return { start, end };
}

export interface ChildRun {
  wallS: number;
  /** user + system CPU seconds of the child (and its children) */
  cpuS: number;
  stderr: string;
}

/**
 * Runs `cmd args` to completion under bash, which reports its children's CPU time (`times`):
 * the CPU a baseline such as kcat spent, beside its wall time.
 */
export function runChild(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn('bash', ['-c', '"$@" >/dev/null; s=$?; times >&2; exit $s', 'bench', cmd, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env,
    });
    let err = '';
    p.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    p.on('error', reject);
    p.on('close', (code) => {
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      const lines = err.trim().split('\n');
      const times = lines.pop() ?? '';
      lines.pop(); // the shell's own times
      const secs = [...times.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
      const stderr = lines.join('\n');
      if (code !== 0) reject(new Error(`${cmd} exited ${code}: ${stderr.slice(-800)}`));
      else resolve({ wallS, cpuS: (secs[0] ?? 0) + (secs[1] ?? 0), stderr });
    });
  });
}

export interface RssSample {
  /** seconds since the sampler started */
  t: number;
  rssMiB: number;
  heapUsedMiB: number;
  /** V8 heap committed (used + free pages V8 keeps): what the heap costs in RSS */
  heapTotalMiB: number;
  /** off-heap memory V8 knows of (Buffers, ArrayBuffers), arrayBuffers a part of it */
  externalMiB: number;
  arrayBuffersMiB: number;
  /** the tfjs wasm backend's linear memory (grows, never shrinks), when that backend runs */
  wasmMiB?: number;
  /** lines the pipeline had read by then */
  lines: number;
}

/** Samples RSS once a second; the limit applies once `warm()` says the warm-up is over. */
export class RssSampler {
  readonly samples: RssSample[] = [];
  /** first sample past the limit after warm-up */
  breach: RssSample | undefined;
  private warmAt: number | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly t0 = Date.now();

  constructor(
    private readonly lines: () => number,
    private readonly warm: () => boolean,
    private readonly limitMiB: number,
    private readonly wasmBytes: () => number | undefined = () => undefined,
  ) {
    this.timer = setInterval(() => this.sample(), 1000);
    this.sample();
  }

  sample(): void {
    const m = process.memoryUsage();
    const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
    const s: RssSample = {
      t: Math.round((Date.now() - this.t0) / 100) / 10,
      rssMiB: mib(m.rss),
      heapUsedMiB: mib(m.heapUsed),
      heapTotalMiB: mib(m.heapTotal),
      externalMiB: mib(m.external),
      arrayBuffersMiB: mib(m.arrayBuffers),
      lines: this.lines(),
    };
    const wasm = this.wasmBytes();
    if (wasm !== undefined) s.wasmMiB = mib(wasm);
    this.samples.push(s);
    if (this.warmAt === undefined && this.warm()) this.warmAt = this.samples.length - 1;
    if (this.warmAt !== undefined && this.limitMiB > 0 && s.rssMiB > this.limitMiB && !this.breach)
      this.breach = s;
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /** The curve in figures: before and after warm-up, and RSS growth per million lines after it. */
  summary(): Record<string, unknown> {
    const all = this.samples;
    const after = this.warmAt === undefined ? [] : all.slice(this.warmAt);
    const max = (xs: RssSample[]) => (xs.length ? Math.max(...xs.map((s) => s.rssMiB)) : null);
    // least-squares slope of RSS over lines read, after warm-up: flat is ~0
    let slope: number | null = null;
    if (after.length >= 3) {
      const n = after.length;
      const mx = after.reduce((a, s) => a + s.lines, 0) / n;
      const my = after.reduce((a, s) => a + s.rssMiB, 0) / n;
      let sxy = 0;
      let sxx = 0;
      for (const s of after) {
        sxy += (s.lines - mx) * (s.rssMiB - my);
        sxx += (s.lines - mx) ** 2;
      }
      slope = sxx > 0 ? Math.round((sxy / sxx) * 1e6 * 10) / 10 : null;
    }
    return {
      limitMiB: this.limitMiB,
      samples: all.length,
      first: all[0]?.rssMiB ?? null,
      max: max(all),
      warmUpEndsAt:
        this.warmAt === undefined ? null : { t: all[this.warmAt]!.t, lines: all[this.warmAt]!.lines },
      atWarmUp: this.warmAt === undefined ? null : all[this.warmAt]!.rssMiB,
      maxAfterWarmUp: max(after),
      last: all[all.length - 1]?.rssMiB ?? null,
      growthMiBPerMillionLinesAfterWarmUp: slope,
      breach: this.breach ?? null,
    };
  }
}

/** A CPU profile of what runs between start() and stop(), written as a .cpuprofile file. */
export class PhaseProfiler {
  private session: Session | undefined;

  async start(): Promise<void> {
    this.session = new Session();
    this.session.connect();
    await this.session.post('Profiler.enable');
    await this.session.post('Profiler.setSamplingInterval', { interval: 500 });
    await this.session.post('Profiler.start');
  }

  async stop(file: string): Promise<void> {
    if (!this.session) return;
    const { profile } = await this.session.post('Profiler.stop');
    await writeFile(file, JSON.stringify(profile));
    this.session.disconnect();
    this.session = undefined;
  }
}
