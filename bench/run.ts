// npm run bench -- <name> [args]: runs bench/<name>.ts, whose default export returns the result
// object; writes it to bench/results/<name>-<iso time>.json with the machine's description. A
// result with `failed` (a bound the benchmark enforces) exits 1 after it is written.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { DataDirError } from './util.ts';

const dir = new URL('.', import.meta.url);
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !['run.ts', 'eval.ts', 'util.ts'].includes(f) && !f.startsWith('eval-'))
  .map((f) => f.slice(0, -3));
const [name, ...args] = process.argv.slice(2);
if (!name || !names.includes(name)) {
  console.error(`usage: npm run bench -- <${names.join('|')}> [args]`);
  process.exit(2);
}
const mod = (await import(new URL(`${name}.ts`, dir).href)) as {
  default: (args: string[]) => Promise<Record<string, unknown>>;
};
const started = new Date();
let result: Record<string, unknown>;
try {
  result = await mod.default(args);
} catch (err) {
  // A missing data set is a usage error: its message says which flag and where to get the data.
  if (!(err instanceof DataDirError)) throw err;
  console.error(err.message);
  process.exit(2);
}
const out = {
  bench: name,
  started: started.toISOString(),
  seconds: (Date.now() - started.getTime()) / 1000,
  machine: {
    cpus: cpus().length,
    model: cpus()[0]?.model,
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  },
  ...result,
};
mkdirSync(new URL('results/', dir), { recursive: true });
const file = new URL(`results/${name}-${started.toISOString().replace(/[:.]/g, '-')}.json`, dir);
writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
console.log(JSON.stringify(out, null, 2));
console.error(`written ${file.pathname}`);
// A benchmark whose own bound was broken (e2e's RSS after warm-up) fails the run, result written.
if (typeof result.failed === 'string') {
  console.error(`FAILED: ${result.failed}`);
  process.exit(1);
}
process.exit(0);
