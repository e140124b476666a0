// npm run eval -- <name> [args]: runs bench/eval-<name>.ts (accuracy evaluations, not speed).
import { readdirSync } from 'node:fs';

const dir = new URL('.', import.meta.url);
const names = readdirSync(dir)
  .filter((f) => f.startsWith('eval-') && f.endsWith('.ts'))
  .map((f) => f.slice(5, -3));
const [name, ...args] = process.argv.slice(2);
if (!name || !names.includes(name)) {
  console.error(`usage: npm run eval -- <${names.join('|') || 'none yet'}> [args]`);
  process.exit(2);
}
const mod = (await import(new URL(`eval-${name}.ts`, dir).href)) as {
  default: (args: string[]) => Promise<number>;
};
process.exit(await mod.default(args));
