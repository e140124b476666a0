// The anomaly evaluation: precision, recall and F1 on a small labelled log (Loghub style, a
// leading `-` marks a normal line), inline labels or a separate labels file, via npm run eval.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EvalInputError, evaluateAnomaly, readLabels } from '../../bench/eval-anomaly.ts';
import { run } from '../helpers/services.ts';

const FIXTURE = 'test/learners/fixtures/anomaly-labelled.log';
const lines = readFileSync(FIXTURE, 'utf8').split('\n').filter(Boolean);
let inline: ReturnType<typeof evaluateAnomaly> | undefined;
const evalInline = () => {
  inline ??= evaluateAnomaly({ lines });
  return inline;
};

describe('anomaly evaluation', () => {
  it('scores the labelled fixture well above both baselines', async () => {
    const r = await evalInline();
    expect(r).toMatchObject({
      lines: 1740,
      anomalousLines: 33,
      windows: 60,
      anomalousWindows: 10,
      backend: expect.stringMatching(/^(tensorflow|wasm|cpu)$/),
    });
    expect(r.model.f1).toBeGreaterThanOrEqual(0.8);
    expect(r.model.precision).toBeGreaterThanOrEqual(0.8);
    expect(r.model.f1).toBeGreaterThan(r.baselines.newTemplate.f1);
    expect(r.model.f1).toBeGreaterThan(r.baselines.all.f1);
    expect(r.model.tp + r.model.fn).toBe(10);
  });

  it('reads labels from a separate file (first token, or a CSV Label column)', async () => {
    expect(readLabels('LineId,Label,Content\n1,-,a\n2,KERNDTLB,b\n')).toEqual(['-', 'KERNDTLB']);
    expect(readLabels('-\nAPPREAD x\n\n-\n')).toEqual(['-', 'APPREAD', '-', '-']);
    const plain = lines.map((l) => l.slice(l.indexOf(' ') + 1));
    const labels = lines.map((l) => l.slice(0, l.indexOf(' ')));
    const a = await evalInline();
    const b = await evaluateAnomaly({ lines: plain, labels, windowSec: 60 });
    expect(b.model).toEqual(a.model);
    await expect(evaluateAnomaly({ lines: plain, labels: labels.slice(1) })).rejects.toThrow(EvalInputError);
  });

  it('npm run eval -- anomaly prints precision, recall and F1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virgo-eval-'));
    const log = join(dir, 'plain.log');
    const lab = join(dir, 'labels.txt');
    writeFileSync(log, `${lines.map((l) => l.slice(l.indexOf(' ') + 1)).join('\n')}\n`);
    writeFileSync(lab, `${lines.map((l) => l.slice(0, l.indexOf(' '))).join('\n')}\n`);
    const r = await run(process.execPath, [
      '--import',
      'tsx',
      'bench/eval.ts',
      'anomaly',
      '--log',
      log,
      '--labels',
      lab,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^anomaly eval: 1740 lines \(33 anomalous\), 60 60 s windows/m);
    expect(r.stdout).toMatch(/^model \(autoencoder\)\s+precision=\d\.\d{3} recall=\d\.\d{3} f1=\d\.\d{3}/m);
    expect(r.stdout).toMatch(/^baseline new-template\s+precision=/m);
    const bad = await run(process.execPath, ['--import', 'tsx', 'bench/eval.ts', 'anomaly', '--labels', lab]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--log FILE is required/);
  });
});
