// npm run eval -- parse --loghub DIR [--threshold X] [--min-ga X] [--sweep]
// Grouping accuracy (GA) and parsing accuracy (PA) of the parser + template miner on Loghub's
// Linux_2k against its corrected ground truth (Loghub-2.0). GA: a line counts when the set of lines
// sharing its template is exactly the set sharing its true event. PA: a line counts when its
// template text equals the true template (whitespace collapsed). Published Drain: GA 0.690, PA 0.183.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseLine, TemplateMiner } from '../ingest/index.ts';
import { LOGHUB_SOURCE, requireDataDir } from './util.ts';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

/** RFC 4180 fields of one CSV record (the ground truth quotes templates with commas). */
export function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"') {
        if (line[i + 1] === '"') {
          cur += '"';
          i++;
        } else quoted = false;
      } else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

interface Scores {
  ga: number;
  gaOnline: number;
  pa: number;
  templates: number;
  linesPerSec: number;
}

function score(lines: string[], truth: string[], threshold: number): Scores & { wrong: string[] } {
  const miner = new TemplateMiner({ threshold });
  const ids: string[] = [];
  const t0 = process.hrtime.bigint();
  for (const l of lines) ids.push(miner.add(parseLine(l).message).templateId);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const final = ids.map((id) => miner.resolve(id)?.template ?? `(evicted ${id})`);
  const ga = groupingAccuracy(final, truth);
  const gaOnline = groupingAccuracy(ids, truth);
  let pa = 0;
  const wrong = new Map<string, string>();
  final.forEach((t, i) => {
    const g = truth[i]!.replace(/\s+/g, ' ').trim();
    if (t === g) pa++;
    else if (!wrong.has(g)) wrong.set(g, t);
  });
  return {
    ga: ga.score,
    gaOnline: gaOnline.score,
    pa: pa / lines.length,
    templates: miner.size,
    linesPerSec: Math.round(lines.length / secs),
    wrong: ga.wrong,
  };
}

function groupingAccuracy(predicted: string[], truth: string[]): { score: number; wrong: string[] } {
  const groups = new Map<string, number[]>();
  predicted.forEach((p, i) => {
    const g = groups.get(p);
    if (g) g.push(i);
    else groups.set(p, [i]);
  });
  const truthSize = new Map<string, number>();
  for (const t of truth) truthSize.set(t, (truthSize.get(t) ?? 0) + 1);
  let correct = 0;
  const wrong: string[] = [];
  for (const [p, idx] of groups) {
    const events = new Set(idx.map((i) => truth[i]!));
    if (events.size === 1 && truthSize.get(truth[idx[0]!]!) === idx.length) correct += idx.length;
    else wrong.push(`${idx.length} lines as "${p}" hold ${[...events].map((e) => `"${e}"`).join(', ')}`);
  }
  return { score: correct / predicted.length, wrong };
}

export default async function evalParse(args: string[]): Promise<number> {
  const needs = 'Linux_2k.log and Linux_2k.log_structured_corrected.csv';
  let dir: string;
  try {
    dir = resolve(requireDataDir(args, 'loghub', 'eval parse', needs));
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const logPath = join(dir, 'Linux_2k.log');
  const csvPath = join(dir, 'Linux_2k.log_structured_corrected.csv');
  if (!existsSync(logPath) || !existsSync(csvPath)) {
    console.error(
      `eval parse: need ${logPath} and ${csvPath} (Loghub Linux_2k); get them from ${LOGHUB_SOURCE}`,
    );
    return 2;
  }
  const threshold = Number(flag(args, 'threshold') ?? new TemplateMiner().options.threshold);
  const minGa = Number(flag(args, 'min-ga') ?? 0.9);
  const lines = readFileSync(logPath, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const rows = readFileSync(csvPath, 'utf8')
    .split(/\r?\n/)
    .slice(1)
    .filter((r) => r.length > 0)
    .map(csvFields);
  if (rows.length !== lines.length) {
    console.error(`eval parse: ${lines.length} log lines but ${rows.length} ground-truth rows`);
    return 2;
  }
  const header = csvFields(readFileSync(csvPath, 'utf8').split(/\r?\n/, 1)[0]!);
  const contentCol = header.indexOf('Content');
  const templateCol = header.indexOf('EventTemplate');
  const truth = rows.map((r) => r[templateCol]!);
  // The parser's message must be the ground truth's Content (trailing blanks aside).
  let contentMismatch = 0;
  lines.forEach((l, i) => {
    if (parseLine(l).message !== rows[i]![contentCol]!.trimEnd()) contentMismatch++;
  });
  const s = score(lines, truth, threshold);
  console.log(
    `Loghub Linux_2k (${lines.length} lines, ${new Set(truth).size} true events), threshold ${threshold}`,
  );
  console.log(`  grouping accuracy GA  ${s.ga.toFixed(4)}   (published Drain 0.690; target >= ${minGa})`);
  console.log(
    `  GA of ids as emitted  ${s.gaOnline.toFixed(4)}   (streaming: ids before later generalisation)`,
  );
  console.log(`  parsing accuracy PA   ${s.pa.toFixed(4)}   (published Drain 0.183)`);
  console.log(`  templates ${s.templates}; header parse: ${contentMismatch} messages differ from Content`);
  if (s.wrong.length) console.log(`  mis-grouped:\n    ${s.wrong.join('\n    ')}`);
  if (args.includes('--sweep')) {
    console.log('  threshold sweep (GA / PA):');
    for (const t of [0.4, 0.5, 0.6, 0.65, 0.7, 0.72, 0.75, 0.78, 0.8, 0.85, 0.9]) {
      const x = score(lines, truth, t);
      console.log(`    ${t.toFixed(2)}  ${x.ga.toFixed(4)} / ${x.pa.toFixed(4)}  (${x.templates} templates)`);
    }
  }
  return s.ga >= minGa ? 0 : 1;
}
