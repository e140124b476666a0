// npm run reliability:record [-- --soak]: the one way the committed reliability results change.
// Runs the reliability suite (test/reliability, on the real services) or the soak
// (vitest.soak.config.ts) into a fresh results folder and, only when every test passed, copies
// that run's summary over the committed one: test/reliability/results/summary.json or soak.json.
// Ordinary test runs write to test/reliability/results/latest/ (git-ignored) instead.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const soak = process.argv.includes('--soak');
const name = soak ? 'soak.json' : 'summary.json';
const out = mkdtempSync(join(tmpdir(), 'virgo-reliability-record-'));
const args = soak
  ? ['vitest', 'run', '--config', 'vitest.soak.config.ts']
  : ['vitest', 'run', 'test/reliability'];

const run = spawnSync('npx', ['--no-install', ...args], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, VIRGO_RELIABILITY_RESULTS: out },
});
const produced = join(out, name);
if (run.status !== 0 || !existsSync(produced)) {
  process.stderr.write(
    `reliability:record: the run failed (exit ${run.status ?? run.signal}); the committed ${name} is unchanged. ` +
      `This run's results: ${out}\n`,
  );
  process.exit(run.status || 1);
}
const target = join(root, 'test/reliability/results', name);
copyFileSync(produced, target);
rmSync(out, { recursive: true, force: true });
process.stdout.write(`recorded ${target}\n`);
