// npm run eval -- parse --dataset NAME --dir DIR [--raw] [--strip-label] [--threshold X] [--sweep]
//                       [--min-ga X] [--no-drain3]
//        or              --log FILE --structured FILE [--dataset NAME] …
//
// Grouping accuracy (GA) and parsing accuracy (PA) of the template miner on a Loghub-format
// dataset: `NAME_2k.log` (or a split such as `BGL_2k.dev1000.log`) and its ground truth
// `…log_structured_corrected.csv` (Loghub-2.0) or `…log_structured.csv`. GA: a line counts when the
// set of lines sharing its template is exactly the set sharing its true event. PA: a line counts
// when its template text equals the true template (blanks collapsed).
//
// The HEADLINE is what production emits: each line scored with the template id and template the
// miner gave it at the moment it was mined (online; an id may be superseded later when its
// template generalises). The final-state figure (every line re-labelled with the template its id
// resolves to at the end) follows, named as such. Input: the CSV's Content column (the header cut
// as Loghub cut it); with --raw also the raw lines through parseLine, the production path, beside
// it. Baseline in the same run: Drain3 (PyPI `drain3`, default configuration) on the same Content
// lines, when installed; the published Drain figure for Linux is printed as literature.
//
// Labels never reach the miner: a raw log whose first field is a Loghub alert label (BGL,
// Thunderbird; ingest/hpc.ts hpcLabel) is refused unless --strip-label cuts it off first.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { hpcLabel, parseLine, TemplateMiner } from '../ingest/index.ts';
import { LOGHUB_SOURCE } from './util.ts';

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

export interface Dataset {
  name: string;
  log: string;
  structured: string;
}

const USAGE =
  'eval parse: give --dataset NAME --dir DIR (Loghub format: NAME_2k.log or a split like BGL_2k.dev1000.log, ' +
  `beside NAME_2k.log_structured_corrected.csv or _structured.csv), or --log FILE --structured FILE; get them from ${LOGHUB_SOURCE}`;

function structuredFor(log: string): string | undefined {
  for (const suffix of ['_structured_corrected.csv', '_structured.csv'])
    if (existsSync(log + suffix)) return log + suffix;
  return undefined;
}

/** The log and ground-truth files a run names, or why it cannot run. */
export function resolveDataset(args: string[]): Dataset | { error: string } {
  // `--loghub DIR` (the older spelling) is --dir DIR, Linux_2k unless --dataset says otherwise
  const loghub = flag(args, 'loghub');
  const name = flag(args, 'dataset') ?? (loghub ? 'Linux' : undefined);
  const log = flag(args, 'log');
  if (log) {
    const structured = flag(args, 'structured') ?? structuredFor(log);
    if (!existsSync(log)) return { error: `eval parse: no log file ${log}` };
    if (!structured || !existsSync(structured))
      return { error: `eval parse: no ground truth for ${log}: give --structured FILE` };
    return { name: name ?? basename(log).replace(/\.log$/, ''), log, structured };
  }
  const dirArg = flag(args, 'dir') ?? loghub;
  if (!dirArg) return { error: USAGE };
  const dir = resolve(dirArg);
  if (!existsSync(dir)) return { error: `eval parse: no directory ${dir}\n${USAGE}` };
  const files = readdirSync(dir);
  const withTruth = files.filter((f) => f.endsWith('.log') && structuredFor(join(dir, f)));
  if (!name)
    return {
      error: `eval parse: give --dataset NAME; in ${dir}: ${withTruth.map((f) => f.replace(/\.log$/, '')).join(', ') || 'no Loghub-format log'}`,
    };
  const candidates = [
    name,
    `${name}.log`,
    `${name}_2k.log`,
    ...withTruth.filter((f) => f.startsWith(`${name}_2k.`)).sort(),
  ];
  for (const c of candidates) {
    const p = join(dir, c);
    const structured = existsSync(p) && c.endsWith('.log') ? structuredFor(p) : undefined;
    if (structured) return { name: c.replace(/\.log$/, ''), log: p, structured };
  }
  return {
    error: `eval parse: no ${name}_2k.log (or ${name}_2k.*.log) with a _structured[_corrected].csv in ${dir}; there: ${withTruth.join(', ') || 'none'}`,
  };
}

export interface Scores {
  gaOnline: number;
  paOnline: number;
  gaFinal: number;
  paFinal: number;
  templates: number;
  /** mis-grouped final groups, for --verbose */
  wrong: string[];
}

const norm = (t: string): string => t.replace(/\s+/g, ' ').trim();

/** GA: the share of lines whose predicted group is exactly their true event's group. */
export function groupingAccuracy(
  predicted: readonly string[],
  truth: readonly string[],
): { score: number; wrong: string[] } {
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
  return { score: predicted.length ? correct / predicted.length : 0, wrong };
}

function parsingAccuracy(templates: readonly string[], truthTemplates: readonly string[]): number {
  let ok = 0;
  templates.forEach((t, i) => {
    if (norm(t) === truthTemplates[i]) ok++;
  });
  return templates.length ? ok / templates.length : 0;
}

/** Scores of ids and templates as emitted online, and re-labelled with the final state. */
function score(
  onlineIds: readonly string[],
  onlineTemplates: readonly string[],
  finalTemplates: readonly string[],
  truthEvents: readonly string[],
  truthTemplates: readonly string[],
  templates: number,
): Scores {
  const final = groupingAccuracy(finalTemplates, truthEvents);
  return {
    gaOnline: groupingAccuracy(onlineIds, truthEvents).score,
    paOnline: parsingAccuracy(onlineTemplates, truthTemplates),
    gaFinal: final.score,
    paFinal: parsingAccuracy(finalTemplates, truthTemplates),
    templates,
    wrong: final.wrong,
  };
}

function mineOurs(
  messages: readonly string[],
  threshold: number,
  truthEvents: string[],
  truthTemplates: string[],
): Scores {
  const miner = new TemplateMiner({ threshold });
  const ids: string[] = [];
  const templates: string[] = [];
  for (const m of messages) {
    const r = miner.add(m);
    ids.push(r.templateId);
    templates.push(r.template);
  }
  const final = ids.map((id) => miner.resolve(id)?.template ?? `(evicted ${id})`);
  return score(ids, templates, final, truthEvents, truthTemplates, miner.size);
}

/** Drain3 on the same lines in a child process; undefined (and why) when it cannot run. */
function mineDrain3(
  messages: readonly string[],
  truthEvents: string[],
  truthTemplates: string[],
): { scores?: Scores; why?: string } {
  const script = new URL('drain3_baseline.py', import.meta.url).pathname;
  const py = process.env.PYTHON ?? 'python3';
  const r = spawnSync(py, [script], {
    input: `${messages.join('\n')}\n`,
    maxBuffer: 1 << 28,
    encoding: 'utf8',
  });
  if (r.error) return { why: `${py} not runnable (${(r.error as NodeJS.ErrnoException).code})` };
  if (r.status === 3) return { why: 'drain3 not installed (pip install drain3)' };
  if (r.status !== 0) return { why: `drain3 failed: ${r.stderr.slice(0, 300)}` };
  const lines = r.stdout.trimEnd().split('\n');
  const final = (JSON.parse(lines.pop()!) as { final: Record<string, string> }).final;
  const ids: string[] = [];
  const templates: string[] = [];
  for (const l of lines) {
    const o = JSON.parse(l) as { id: number; template: string };
    ids.push(String(o.id));
    templates.push(o.template);
  }
  if (ids.length !== messages.length)
    return { why: `drain3 gave ${ids.length} answers for ${messages.length} lines` };
  return {
    scores: score(
      ids,
      templates,
      ids.map((id) => final[id] ?? ''),
      truthEvents,
      truthTemplates,
      Object.keys(final).length,
    ),
  };
}

const f4 = (x: number) => x.toFixed(4);

function row(label: string, s: Scores, note: string): string {
  return `  ${label.padEnd(22)} ${f4(s.gaOnline)}  ${f4(s.paOnline)}   ${f4(s.gaFinal)}  ${f4(s.paFinal)}  ${String(s.templates).padStart(5)}  ${note}`;
}

/** Literature figures (not run here): the Loghub-2.0 paper's Drain on the corrected Linux_2k. */
const LITERATURE: Record<string, { ga: number; pa: number; what: string }> = {
  Linux_2k: {
    ga: 0.69,
    pa: 0.183,
    what: 'Drain, Loghub-2.0 paper (Jiang et al., ISSTA 2024), corrected Linux_2k',
  },
};

export default async function evalParse(args: string[]): Promise<number> {
  const ds = resolveDataset(args);
  if ('error' in ds) {
    console.error(ds.error);
    return 2;
  }
  const threshold = Number(flag(args, 'threshold') ?? new TemplateMiner().options.threshold);
  const minGa = flag(args, 'min-ga');
  const rawText = readFileSync(ds.log, 'utf8');
  const lines = rawText.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const labelled = lines.slice(0, 50).some((l) => hpcLabel(l) !== undefined);
  if (labelled && !args.includes('--strip-label')) {
    console.error(
      `eval parse: ${ds.log} is a labelled raw log (its first field is a Loghub alert label, e.g. "${hpcLabel(lines.find((l) => hpcLabel(l))!)}"): ` +
        'labels must never reach the miner. Give --strip-label to cut the first field off every line first.',
    );
    return 2;
  }
  const raw = labelled
    ? lines.map((l) => (hpcLabel(l) !== undefined ? l.slice(l.indexOf(' ') + 1) : l))
    : lines;
  const csv = readFileSync(ds.structured, 'utf8').split(/\r?\n/);
  const header = csvFields(csv[0]!);
  const rows = csv
    .slice(1)
    .filter((r) => r.length > 0)
    .map(csvFields);
  if (rows.length !== raw.length) {
    console.error(
      `eval parse: ${raw.length} log lines but ${rows.length} ground-truth rows (${ds.log}, ${ds.structured})`,
    );
    return 2;
  }
  const col = (n: string) => {
    const i = header.indexOf(n);
    if (i < 0) throw new Error(`${ds.structured} has no ${n} column (has ${header.join(', ')})`);
    return i;
  };
  const contentCol = col('Content');
  const eventCol = col('EventId');
  const templateCol = col('EventTemplate');
  const content = rows.map((r) => r[contentCol]!.trimEnd());
  const truthEvents = rows.map((r) => r[eventCol]!);
  const truthTemplates = rows.map((r) => norm(r[templateCol]!));

  console.log(
    `eval parse: ${ds.name} (${raw.length} lines, ${new Set(truthEvents).size} true events${labelled ? ', label field stripped' : ''}), miner threshold ${threshold}`,
  );
  console.log(`  log ${ds.log}\n  truth ${ds.structured}`);
  console.log('  input                  GA online PA online  GA final  PA final  tmpl.');
  const c = mineOurs(content, threshold, truthEvents, truthTemplates);
  console.log(row('ours, Content column', c, "(the CSV's Content: the header cut as Loghub cut it)"));
  let r: Scores | undefined;
  if (args.includes('--raw')) {
    let differ = 0;
    const messages = raw.map((l, i) => {
      const m = parseLine(l).message;
      if (m !== content[i]) differ++;
      return m;
    });
    r = mineOurs(messages, threshold, truthEvents, truthTemplates);
    console.log(
      row('ours, raw lines', r, `(parseLine, the production path; ${differ} messages differ from Content)`),
    );
  }
  if (!args.includes('--no-drain3')) {
    const d = mineDrain3(content, truthEvents, truthTemplates);
    if (d.scores)
      console.log(
        row(
          'Drain3 (same run)',
          d.scores,
          '(PyPI drain3, default config: sim 0.4, depth 4, no masking; Content column)',
        ),
      );
    else console.log(`  Drain3 (same run)      not run: ${d.why}`);
  }
  const lit = LITERATURE[ds.name];
  if (lit)
    console.log(`  literature, not run    GA ${lit.ga.toFixed(3)}, PA ${lit.pa.toFixed(3)}: ${lit.what}`);
  console.log(
    `headline (ids as emitted online): GA ${f4(c.gaOnline)}, PA ${f4(c.paOnline)} on Content${r ? `; raw lines GA ${f4(r.gaOnline)} (Δ ${(r.gaOnline - c.gaOnline).toFixed(4)}), final-state Δ ${(r.gaFinal - c.gaFinal).toFixed(4)}` : ''}`,
  );
  console.log(
    '  final = every line re-labelled with the template its id resolves to after the whole file (not what was emitted)',
  );
  if (args.includes('--verbose') && c.wrong.length)
    console.log(`  mis-grouped (final):\n    ${c.wrong.join('\n    ')}`);
  if (args.includes('--sweep')) {
    console.log('  threshold sweep on Content (GA online / GA final / PA final, templates):');
    for (const t of [0.4, 0.5, 0.6, 0.65, 0.7, 0.72, 0.75, 0.78, 0.8, 0.85, 0.9]) {
      const x = mineOurs(content, t, truthEvents, truthTemplates);
      console.log(
        `    ${t.toFixed(2)}  ${f4(x.gaOnline)} / ${f4(x.gaFinal)} / ${f4(x.paFinal)}  (${x.templates})`,
      );
    }
  }
  return minGa !== undefined && c.gaOnline < Number(minGa) ? 1 : 0;
}
