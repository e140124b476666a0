// npm run bench -- e2e [lines]: kernel lines published with publish-logs to the real broker, then
// the whole pipeline (ingest → learners → analytics topic → feeder → consumer → exports) consumes
// them; lines/s from the first read to the last line's variables exported, next to kcat consuming
// the same topic in the same run. RSS is sampled through the pipeline's run.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaBus, namespaced, TOPICS, topicSpecs } from '../bus/index.ts';
import { startPipeline } from '../cli/pipeline.ts';
import { DemoLog } from '../ingest/demo-stream.ts';
import { publishLogs } from '../ingest/index.ts';
import { setLogLevel } from '../runtime/log.ts';
import { BENCH_BROKERS, timeCommand } from './util.ts';

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export default async function bench(args: string[]): Promise<Record<string, unknown>> {
  setLogLevel('warn');
  const lines = Number(args[0] ?? 300_000);
  // optional: --learners ufw,load (default all) to see what each learner costs
  const li = args.indexOf('--learners');
  const learners = li >= 0 ? args[li + 1]?.split(',') : undefined;
  const ns = `bench-e2e-${randomUUID().slice(0, 8)}`;
  const dir = mkdtempSync(join(tmpdir(), 'bench-e2e-'));
  const file = join(dir, 'kern.log');
  const gen = new DemoLog({ seed: 7, hosts: Array.from({ length: 16 }, (_, i) => `edge-${i}`) });
  const out: string[] = [];
  for (let i = 0; i < lines; i++) out.push(gen.next());
  writeFileSync(file, `${out.join('\n')}\n`);
  out.length = 0;

  const kafka = new KafkaBus({ brokers: BENCH_BROKERS, clientId: 'virgo-bench-e2e' });
  const bus = namespaced(kafka, ns);
  await bus.ensureTopics(topicSpecs(4));
  const t0 = process.hrtime.bigint();
  await publishLogs({ bus, source: file });
  const publishS = Number(process.hrtime.bigint() - t0) / 1e9;
  await kafka.close();

  // Baseline: kcat reading the same topic to its end, same broker, same run.
  const kcatS = await timeCommand('kcat', [
    '-C',
    '-b',
    BENCH_BROKERS.join(','),
    '-t',
    `${ns}.${TOPICS.kernelLogs}`,
    '-o',
    'beginning',
    '-e',
    '-q',
    '-f',
    '%o\n',
  ]);

  const stateDir = join(dir, 'state');
  const rss: number[] = [];
  const sample = setInterval(() => rss.push(process.memoryUsage().rss), 250);
  const t1 = process.hrtime.bigint();
  const p = await startPipeline({
    brokers: BENCH_BROKERS,
    namespace: ns,
    input: 'none',
    stateDir,
    feederPort: 0,
    queuePort: 0,
    zmq: false,
    metrics: false,
    devices: [],
    drivers: [],
    ...(learners ? { learners } : {}),
  });
  const startS = Number(process.hrtime.bigint() - t1) / 1e9;
  await waitUntil(() => (p.learn.stats().ingest?.lines ?? 0) >= lines, 600_000, 'every line through ingest');
  const ingestS = Number(process.hrtime.bigint() - t1) / 1e9;
  // then until the learners' last variables have reached the consumer's table (exported)
  const published = () => p.learn.stats().published;
  await waitUntil(() => p.learn.stats().outbox === 0, 60_000, 'the learner outbox to drain');
  const want = published();
  await waitUntil(
    () => p.feeder.stats().updates.changed + p.feeder.stats().updates.unchanged >= want,
    60_000,
    'the feeder to see every variable',
  );
  const exportedS = Number(process.hrtime.bigint() - t1) / 1e9;
  clearInterval(sample);
  const ingest = p.learn.stats().ingest;
  const tableSize = p.table.size;
  await p.close();
  rmSync(dir, { recursive: true, force: true });

  const oursRate = lines / (exportedS - startS);
  const kcatRate = lines / kcatS;
  const mb = (b: number) => Math.round(b / 2 ** 20);
  return {
    lines,
    learners: learners ?? 'all',
    brokers: BENCH_BROKERS,
    publishLogsLinesPerS: Math.round(lines / publishS),
    pipelineStartS: +startS.toFixed(2),
    ingestDoneS: +ingestS.toFixed(2),
    exportedS: +exportedS.toFixed(2),
    pipelineLinesPerS: Math.round(oursRate),
    kcatConsumeLinesPerS: Math.round(kcatRate),
    ratioToKcat: +(oursRate / kcatRate).toFixed(3),
    variablesPublished: want,
    tableSize,
    deadLettered: ingest?.deadLettered,
    rssMiB: {
      first: mb(rss[0] ?? 0),
      max: mb(Math.max(...rss)),
      last: mb(rss[rss.length - 1] ?? 0),
      samples: rss.length,
    },
    note: 'rate excludes pipeline start-up (group join); ingest → learners → analytics topic → feeder; RSS of the whole bench process',
  };
}
