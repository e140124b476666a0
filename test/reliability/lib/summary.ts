// The reliability suite's report: every fault, fuzzed surface, load run and security check
// records what happened, and summary.json gathers them all. Test files run in parallel processes,
// so each writes its own part (parts/<summary>/<file>.json) and then rebuilds summary.json from
// every part under a lock (an atomic mkdir), written atomically.
// A test run writes into a git-ignored folder (test/reliability/results/latest/, or
// VIRGO_RELIABILITY_RESULTS): tests never rewrite tracked files. The committed representative
// results (test/reliability/results/summary.json, soak.json) change only through
// `npm run reliability:record` (scripts/reliability-record.ts).

import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Where this run's results go (never a tracked file). */
export const RESULTS = resolve(
  process.env.VIRGO_RELIABILITY_RESULTS || fileURLToPath(new URL('../results/latest/', import.meta.url)),
);

/** One injected fault: the numbers issue #9 asks for. */
export interface FaultResult {
  fault: string;
  /** how many times it was injected */
  injected: number;
  /** the system recovered on its own every time */
  survived: boolean;
  /** acknowledged records that never came out (must be 0) */
  recordsLost: number;
  /** records that came out more than once (bounded; de-duplicated by id) */
  duplicatesSeen: number;
  /** from the end of the fault to the system serving everything again, ms (worst of the injections) */
  recoveryMs: number | null;
  /** what was counted: produced, acknowledged, delivered … */
  counts?: Record<string, number>;
  note?: string;
}

/** One hostile-input surface (a parser or a port). */
export interface FuzzResult {
  surface: string;
  via: 'parser' | 'port';
  cases: number;
  /** uncaught errors, crashed servers (must be 0) */
  crashes: number;
  accepted: number;
  /** rejected cases by reason, as the component counted them */
  rejects: Record<string, number>;
  /** a good request got a good answer after the fuzzing */
  servesAfter: boolean;
  ms: number;
}

export interface LoadResult {
  target: string;
  clients: number;
  slowReaders: number;
  /** fast clients that got everything they were owed */
  servedFast: number;
  slowDropped: number;
  maxQueuedBytes: number;
  queuedBound: number;
  rssGrowthMB: number;
  ms: number;
  counts?: Record<string, number>;
}

export interface SecurityResult {
  check: string;
  passed: boolean;
  detail: string;
}

type Entry =
  | ({ kind: 'fault' } & FaultResult)
  | ({ kind: 'fuzz' } & FuzzResult)
  | ({ kind: 'load' } & LoadResult)
  | ({ kind: 'security' } & SecurityResult);

export class Report {
  private readonly entries: Entry[] = [];
  private readonly part: string;
  private readonly file: string;

  /** `file`: the test file's import.meta.url; `summary`: which summary file (soak runs keep their own) */
  constructor(
    file: string,
    private readonly summary = 'summary.json',
  ) {
    this.part = basename(fileURLToPath(file)).replace(/(\.int)?\.test\.ts$/, '');
    this.file = relative(ROOT, fileURLToPath(file));
  }

  fault(r: FaultResult): void {
    this.add({ kind: 'fault', ...r });
  }

  fuzz(r: FuzzResult): void {
    this.add({ kind: 'fuzz', ...r });
  }

  load(r: LoadResult): void {
    this.add({ kind: 'load', ...r });
  }

  security(r: SecurityResult): void {
    this.add({ kind: 'security', ...r });
  }

  private add(e: Entry): void {
    const name = entryName(e);
    const i = this.entries.findIndex((x) => x.kind === e.kind && entryName(x) === name);
    if (i >= 0) this.entries[i] = e;
    else this.entries.push(e);
    this.write();
  }

  private write(): void {
    const parts = join(RESULTS, 'parts', this.summary.replace(/\.json$/, ''));
    mkdirSync(parts, { recursive: true });
    atomicWrite(join(parts, `${this.part}.json`), formatJson({ file: this.file, entries: this.entries }));
    withLock(join(RESULTS, `.${this.summary}.lock`), () => {
      const all: Entry[] = [];
      for (const f of readdirSync(parts).sort()) {
        if (!f.endsWith('.json')) continue;
        try {
          all.push(...(JSON.parse(readFileSync(join(parts, f), 'utf8')) as { entries: Entry[] }).entries);
        } catch {
          // a part being replaced right now: the next write includes it
        }
      }
      const pick = <K extends Entry['kind']>(k: K) =>
        all
          .filter((e): e is Extract<Entry, { kind: K }> => e.kind === k)
          .map(({ kind: _k, ...rest }) => rest)
          .sort((a, b) =>
            entryName({ kind: k, ...a } as Entry).localeCompare(entryName({ kind: k, ...b } as Entry)),
          );
      const faults = pick('fault');
      const summary = {
        generatedAt: new Date().toISOString(),
        machine: { cpus: cpus().length, node: process.version },
        totals: {
          faults: faults.length,
          faultsSurvived: faults.filter((f) => f.survived).length,
          recordsLost: faults.reduce((n, f) => n + f.recordsLost, 0),
          duplicatesSeen: faults.reduce((n, f) => n + f.duplicatesSeen, 0),
          fuzzCases: pick('fuzz').reduce((n, f) => n + f.cases, 0),
          fuzzCrashes: pick('fuzz').reduce((n, f) => n + f.crashes, 0),
          securityChecks: pick('security').length,
          securityPassed: pick('security').filter((s) => s.passed).length,
        },
        faults,
        fuzz: pick('fuzz'),
        load: pick('load'),
        security: pick('security'),
      };
      atomicWrite(join(RESULTS, this.summary), formatJson(summary));
    });
  }
}

function entryName(e: Entry): string {
  switch (e.kind) {
    case 'fault':
      return e.fault;
    case 'fuzz':
      return e.surface;
    case 'load':
      return e.target;
    default:
      return e.check;
  }
}

/** JSON as the repository's formatter (biome) writes it, so the committed results stay lint-clean. */
export function formatJson(v: unknown): string {
  const out = (x: unknown, indent: string, prefix: number): string => {
    if (x === null || typeof x !== 'object') return JSON.stringify(x) ?? 'null';
    const inner = `${indent}  `;
    if (Array.isArray(x)) {
      if (x.length === 0) return '[]';
      if (x.every((e) => e === null || typeof e !== 'object')) {
        const flat = `[${x.map((e) => JSON.stringify(e)).join(', ')}]`;
        if (prefix + flat.length <= 110) return flat;
      }
      return `[\n${x.map((e) => `${inner}${out(e, inner, inner.length)}`).join(',\n')}\n${indent}]`;
    }
    const entries = Object.entries(x).filter(([, e]) => e !== undefined);
    if (entries.length === 0) return '{}';
    return `{\n${entries
      .map(([k, e]) => {
        const head = `${inner}${JSON.stringify(k)}: `;
        return `${head}${out(e, inner, head.length + 1)}`;
      })
      .join(',\n')}\n${indent}}`;
  };
  return `${out(v, '', 0)}\n`;
}

function atomicWrite(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

function withLock(lock: string, fn: () => void): void {
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (Date.now() > deadline) {
        // A holder that died (a killed test run) leaves its lock behind: take it over.
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
  try {
    fn();
  } finally {
    rmdirSync(lock);
  }
}
