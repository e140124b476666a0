// The batch answer of the UFW job over a generated kern.log (test/helpers/kernlog.ts), computed
// from the text alone with a regular expression and a sort: what every replay route must end with.
// Also the fixture both replay test files share (the log written to a temporary file).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KernLog, kernLog } from './kernlog.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const BLOCK_RE =
  /^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\S+) kernel: .*\[UFW BLOCK\] .*\bSRC=(\S+) .*\bDPT=(\d+)/;

/** The answer of the original job over a list of blocks: the most frequent key, ties to the smallest. */
function top(keys: string[]): string {
  const n = new Map<string, number>();
  for (const k of keys) n.set(k, (n.get(k) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
}

/**
 * The batch answer, computed from the text alone: per host, the UFW BLOCK lines over the whole
 * file (history) and over the 60 ten-second buckets ending with the bucket of the host's newest
 * block (the declared window), as `host/key` → value text.
 */
export function batch(lines: string[], year: number): Map<string, string> {
  const byHost = new Map<string, { ts: number; src: string; dpt: string }[]>();
  for (const l of lines) {
    const m = BLOCK_RE.exec(l);
    if (!m) continue;
    const ts = Date.UTC(year, MONTHS.indexOf(m[1]!), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
    const list = byHost.get(m[6]!) ?? [];
    list.push({ ts, src: m[7]!, dpt: m[8]! });
    byHost.set(m[6]!, list);
  }
  const out = new Map<string, string>();
  for (const [host, all] of byHost) {
    const last = Math.floor(Math.max(...all.map((b) => b.ts)) / 10_000);
    const win = all.filter((b) => Math.floor(b.ts / 10_000) > last - 60);
    out.set(`${host}/ufw.history.blocks`, String(all.length));
    out.set(`${host}/ufw.history.top_src_ip`, top(all.map((b) => b.src)));
    out.set(`${host}/ufw.history.top_dst_port`, top(all.map((b) => b.dpt)));
    out.set(`${host}/ufw.block_rate`, String(Number((win.length / 10).toFixed(2))));
    out.set(`${host}/ufw.top_src_ip`, top(win.map((b) => b.src)));
    out.set(`${host}/ufw.top_dst_port`, top(win.map((b) => b.dpt)));
  }
  return out;
}

/** The last value printed for each host/key (`host/key=value` lines). */
export function finals(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of stdout.split('\n')) {
    const i = l.indexOf('=');
    if (i > 0 && l.includes('/')) out.set(l.slice(0, i), l.slice(i + 1));
  }
  return out;
}

export function ufwOnly(m: Map<string, string>): Map<string, string> {
  return new Map([...m].filter(([k]) => k.includes('/ufw.')).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export interface ReplayFixture {
  log: KernLog;
  expected: Map<string, string>;
  file: string;
  /** a fresh temporary directory, removed by cleanup() */
  tmp(): string;
  cleanup(): void;
  /** the final values of each route, written to $VIRGO_REPLAY_REPORT_DIR/<name>.json when set */
  report: Record<string, Record<string, string>>;
}

export function replayFixture(name: string): ReplayFixture {
  const log = kernLog({ seed: 12 });
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'virgo-replay-'));
    dirs.push(d);
    return d;
  };
  const file = join(tmp(), 'kern.log');
  writeFileSync(file, `${log.lines.join('\n')}\n`);
  const expected = batch(log.lines, log.year);
  const report: Record<string, Record<string, string>> = { batch: Object.fromEntries(expected) };
  return {
    log,
    expected,
    file,
    tmp,
    report,
    cleanup: () => {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
      const out = process.env.VIRGO_REPLAY_REPORT_DIR;
      if (out) writeFileSync(join(out, `${name}.json`), JSON.stringify(report, null, 2));
    },
  };
}
