// Broker faults: a PRIVATE Kafka broker (the shared one serves every other test) is stopped and
// started again while log lines flow through the whole pipeline and the KingCobra queue is being
// replayed into Kafka. The pipeline must recover on its own; every acknowledged log line must
// still become its analytics variables, every acknowledged queue record must reach the topic,
// and duplicates are counted (by host/key for variables, by record id for the queue).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Bus, BusError, KafkaBus, namespaced, TOPICS } from '../../bus/index.ts';
import { type Pipeline, startPipeline } from '../../cli/pipeline.ts';
import { replay } from '../../queue-bridge/index.ts';
import { codecFor } from '../../schemas/index.ts';
import { kcatRecords } from '../helpers/kcat.ts';
import { type PrivateKafka, startPrivateKafka } from '../helpers/private-kafka.ts';
import { unique, waitFor } from '../helpers/services.ts';
import { type HostAnswer, hostAnswer, ufwMessages } from './lib/lines.ts';
import { Report } from './lib/summary.ts';
import { duplicatesByKey } from './lib/topic.ts';

const report = new Report(import.meta.url);
let kafka: PrivateKafka;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  kafka = await startPrivateKafka();
}, 120_000);

afterAll(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  await kafka?.down();
}, 120_000);

/** Publishes until the broker acknowledges: what rsyslog's omkafka or any durable shipper does. */
async function publishAcked(bus: Bus, topic: string, msgs: Parameters<Bus['publish']>[1]): Promise<number> {
  let attempts = 0;
  await waitFor(
    async () => {
      attempts++;
      try {
        await bus.publish(topic, msgs);
        return true;
      } catch (err) {
        if (!(err instanceof BusError)) throw err;
        return false;
      }
    },
    `the broker to acknowledge ${msgs.length} lines`,
    120_000,
    100,
  );
  return attempts;
}

function missingVariables(p: Pipeline, hosts: HostAnswer[]): HostAnswer[] {
  return hosts.filter(
    (a) =>
      p.feeder.table.get('ufw.top_src_ip', a.host) !== a.ip ||
      p.feeder.table.get('ufw.top_dst_port', a.host) !== String(a.port),
  );
}

describe('broker faults (private Kafka stopped and restarted mid-stream)', () => {
  it('the pipeline recovers by itself: no acknowledged line loses its variables, no acknowledged queue record is lost', async () => {
    const ns = unique('rel-broker');
    const stateDir = mkdtempSync(join(tmpdir(), 'virgo-rel-broker-'));
    cleanup.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const p = await startPipeline({
      brokers: kafka.brokers,
      namespace: ns,
      input: 'none',
      stateDir,
      learners: ['ufw'],
      drivers: [],
      devices: [],
      partitions: 2,
      feederPort: 0,
      queuePort: 0,
      zmq: false,
      metrics: false,
    });
    cleanup.push(() => p.close());
    // The test's own producer gives up quickly on a dead broker and tries again (publishAcked).
    const producer = namespaced(new KafkaBus({ brokers: kafka.brokers, retries: 1 }), ns);
    cleanup.push(() => producer.close());
    const logs = TOPICS.kernelLogs;

    // Before: a first wave goes all the way through.
    const before = Array.from({ length: 8 }, (_, i) => hostAnswer('before', i));
    await publishAcked(producer, logs, ufwMessages(before));
    await waitFor(() => missingVariables(p, before).length === 0, 'the first wave of variables', 60_000);

    // The queue: records acknowledged (fsynced) by the pipeline's KingCobra, half replayed now.
    const acked: string[] = [];
    for (let i = 0; i < 20; i++) acked.push((await p.queue.submit(`before-${i}`, '127.0.0.1')).id);
    const kcTopic = `${ns}.${TOPICS.kingcobraRequests}`;
    const replayBus = new KafkaBus({ brokers: kafka.brokers, retries: 1 });
    cleanup.push(() => replayBus.close());
    const first = await replay({ log: p.queue.log, bus: replayBus, topic: kcTopic, batchSize: 8 });
    expect(first.published).toBeGreaterThanOrEqual(40); // requests and their replies

    // During: a stream of hosts, one batch at a time, each acknowledged before the next.
    const during = Array.from({ length: 30 }, (_, i) => hostAnswer('during', i));
    let sent = 0;
    let retriedBatches = 0;
    const stream = (async () => {
      for (const a of during) {
        const attempts = await publishAcked(producer, logs, ufwMessages([a]));
        if (attempts > 1) retriedBatches++;
        sent++;
      }
    })();
    await waitFor(() => sent >= 5, 'the stream to be under way');

    await kafka.stop();
    const downAt = Date.now();
    // While the broker is away: the queue still acknowledges (disk only) …
    for (let i = 0; i < 20; i++) acked.push((await p.queue.submit(`during-${i}`, '127.0.0.1')).id);
    // … a replay fails with a clear error instead of hanging …
    const failed = await replay({ log: p.queue.log, bus: replayBus, topic: kcTopic, batchSize: 8 }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(failed, 'a replay while the broker is down must fail').toBeInstanceOf(BusError);
    expect(failed!.message).toMatch(/Kafka at 127\.0\.0\.1:\d+/);
    // … and the stages are still alive and answering.
    expect(p.feeder.port).toBeGreaterThan(0);
    expect(p.health().ok).toBe(true);
    const sentWhileDown = sent;

    await kafka.start();
    const upAt = Date.now();
    await stream;
    const after = Array.from({ length: 8 }, (_, i) => hostAnswer('after', i));
    await publishAcked(producer, logs, ufwMessages(after));
    const all = [...before, ...during, ...after];
    await waitFor(
      () => missingVariables(p, all).length === 0,
      'every acknowledged host variable',
      90_000,
      50,
    );
    const recoveredAt = Date.now();

    // The queue: the replay resumes from its checkpoint after the broker is back.
    await replay({ log: p.queue.log, bus: replayBus, topic: kcTopic, batchSize: 8 });
    const kc = await kcatRecords(kcTopic, kafka.brokers);
    const kcKeys = new Set(kc.map((r) => r.key));
    const queueLost = acked.filter((id) => !kcKeys.has(id));
    const queueDup = duplicatesByKey(kc);

    // The analytics topic, read back with kcat: every host's variables once or more (never lost).
    const codec = codecFor('AnalyticsVariable');
    const analytics = (await kcatRecords(`${ns}.${TOPICS.kernelAnalytics}`, kafka.brokers))
      .filter((r) => r.value.length > 0)
      .map((r) => codec.decode(r.value));
    const want = all.flatMap((a) => [
      { id: `${a.host}/ufw.top_src_ip`, value: a.ip },
      { id: `${a.host}/ufw.top_dst_port`, value: String(a.port) },
    ]);
    const emitted = analytics.map((v) => ({ key: `${v.host}/${v.key}=${v.value}` }));
    const varsLost = want.filter((w) => !emitted.some((e) => e.key === `${w.id}=${w.value}`)).length;
    const varsDup = duplicatesByKey(
      emitted.filter((e) => /ufw\.top_(src_ip|dst_port)=/.test(e.key)),
    ).duplicates;
    const ingest = p.learn.stats().ingest!;

    report.fault({
      fault: 'kafka broker stopped and restarted mid-stream (pipeline + replay)',
      injected: 1,
      survived: varsLost === 0 && queueLost.length === 0,
      recordsLost: varsLost + queueLost.length,
      duplicatesSeen: varsDup + queueDup.duplicates,
      recoveryMs: recoveredAt - upAt,
      counts: {
        hostsAcked: all.length,
        variablesExpected: want.length,
        variablesLost: varsLost,
        variableDuplicates: varsDup,
        queueRecordsAcked: acked.length,
        queueRecordsLost: queueLost.length,
        queueDuplicates: queueDup.duplicates,
        queueTopicRecords: kc.length,
        linesAckedBeforeStop: sentWhileDown,
        batchesRetriedAcrossOutage: retriedBatches,
        downMs: upAt - downAt,
        ingestMessages: ingest.messages,
        ingestDeadLettered: ingest.deadLettered,
        learnerPublishFailures: p.learn.stats().publishFailures,
      },
    });
    expect(varsLost).toBe(0);
    expect(queueLost).toEqual([]);
    // at-least-once, bounded: a retried batch at most once more per variable
    expect(varsDup).toBeLessThanOrEqual(want.length);
    expect(queueDup.duplicates).toBeLessThanOrEqual(8);
    expect(ingest.deadLettered).toBe(0);
  }, 180_000);
});
