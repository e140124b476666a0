// Replay equals batch over Kafka: the generated three-day multi-host kern.log published twice with
// `virgo publish-logs`, or once with `kcat -P` without a key over four partitions, then read by
// `virgo learn`, ends with the values a plain batch computation over the same lines gives
// (test/helpers/ufw-batch.ts). The second copy is recognised as duplicates; nothing is late.
// Real services: the Kafka broker, kcat, the virgo CLI as child processes.
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { KafkaBus } from '../../bus/index.ts';
import { kcatProduceFile } from '../helpers/kcat.ts';
import { BROKERS, spawnVirgo, unique, virgo, waitFor } from '../helpers/services.ts';
import { finals, replayFixture, ufwOnly } from '../helpers/ufw-batch.ts';

const fx = replayFixture('kafka');
const { log, expected, file, tmp, report } = fx;
afterAll(() => fx.cleanup());

interface Health {
  ingest: {
    lines: number;
    events: number;
    duplicates: number;
    late: number;
    order: { buffered: number; forced: number };
  };
  held: number;
  outbox: number;
  clock: { event: number; processing: number };
}

/** Whether the group committed every partition of `topic` up to its end (nothing left to read). */
async function committedToEnd(groupId: string, topic: string): Promise<boolean> {
  const admin = new Kafka({ brokers: BROKERS, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const at = new Map(committed?.partitions.map((p) => [p.partition, BigInt(p.offset)]) ?? []);
    return ends.every((e) => BigInt(e.high) === 0n || at.get(e.partition) === BigInt(e.high));
  } finally {
    await admin.disconnect();
  }
}

/**
 * `virgo learn --brokers` over a topic read from the beginning: a service, so "done" is when it
 * read `lines` lines, nothing waits in the reorder buffer, nothing is held by dwell and every host
 * is back on processing time (caught up). Returns the last printed values and the health.
 */
async function learnFromTopic(
  topic: string,
  lines: number,
): Promise<{ values: Map<string, string>; h: Health; stderr: string }> {
  const group = unique('replay-learners');
  const p = spawnVirgo([
    'learn',
    '--brokers',
    BROKERS.join(','),
    '--learners',
    'ufw',
    '--logs-topic',
    topic,
    '--analytics-topic',
    unique('replay-analytics'),
    '--group',
    group,
    '--from-beginning',
    '--print',
    '--state-dir',
    tmp(),
    '--metrics-port',
    '0',
    '--log-level',
    'info',
  ]);
  let stdout = '';
  let stderr = '';
  let lastHealth: Health | undefined;
  p.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  p.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  try {
    const port = await waitFor(
      () => /"msg":"serving \/metrics and \/health","port":(\d+)/.exec(stderr)?.[1],
      'virgo learn to serve /health',
      60_000,
    );
    // Done is: every line read and committed (the group's offsets at the topic's end; a count of
    // lines read is not enough: a rebalance re-reads from the last commit), nothing waiting in the
    // reorder buffer, nothing held by dwell, nothing unsent, every host back on processing time.
    const h = await waitFor(
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/health`).catch((err: Error) => {
          throw new Error(`GET /health on ${port}: ${String((err as { cause?: unknown }).cause ?? err)}`);
        });
        const j = (await r.json()) as Health;
        lastHealth = j;
        const done =
          j.ingest.lines >= lines &&
          j.ingest.order.buffered === 0 &&
          j.held === 0 &&
          j.outbox === 0 &&
          j.clock.event === 0 &&
          (await committedToEnd(group, topic));
        return done ? j : undefined;
      },
      `virgo learn to read and commit ${lines} lines and release everything`,
      120_000,
      250,
    );
    // The values of the last transaction are printed once it committed: the printed values end
    // at the batch answer (or, after the wait, the assertion shows how they differ).
    const values = await waitFor(
      () => {
        const v = ufwOnly(finals(stdout));
        return JSON.stringify([...v]) === JSON.stringify([...ufwOnly(expected)]) ? v : undefined;
      },
      'the batch answer printed',
      20_000,
      50,
    ).catch(() => ufwOnly(finals(stdout)));
    return { values, h, stderr: stderr.slice(-3000) };
  } catch (err) {
    const h = lastHealth
      ? {
          ingest: lastHealth.ingest,
          held: lastHealth.held,
          outbox: lastHealth.outbox,
          clock: lastHealth.clock,
        }
      : undefined;
    throw new Error(`${(err as Error).message}\nhealth ${JSON.stringify(h)}\n${stderr.slice(-3000)}`);
  } finally {
    p.kill('SIGTERM');
    await exited;
  }
}

describe('replay equals batch (3-day multi-host kern.log, Kafka)', () => {
  it('virgo publish-logs twice, then virgo learn: the batch answer, the second copy all duplicates', async () => {
    const topic = unique('replay-logs');
    for (let i = 0; i < 2; i++) {
      const r = await virgo(
        ['publish-logs', file, '--brokers', BROKERS.join(','), '--topic', topic],
        undefined,
        120_000,
      );
      expect(r.code, r.stderr).toBe(0);
    }
    const { values, h, stderr } = await learnFromTopic(topic, 2 * log.lines.length);
    report['publish-logs x2 + virgo learn'] = Object.fromEntries(values);
    expect(values, stderr).toEqual(ufwOnly(expected));
    expect(h.ingest.late).toBe(0);
    // Lines read once each (no rebalance re-read any): the counters are exact.
    if (h.ingest.lines === 2 * log.lines.length) {
      expect(h.ingest).toMatchObject({ lines: 2 * log.lines.length, duplicates: log.lines.length });
      expect(h.ingest.events).toBe(log.lines.length);
    } else {
      // A rebalance re-read lines from the last commit: the process counters count them again
      // (the learners' state was restored to that commit: the values above prove nothing twice).
      expect(h.ingest.lines).toBeGreaterThan(2 * log.lines.length);
      expect(h.ingest.duplicates).toBeGreaterThanOrEqual(log.lines.length);
    }
  }, 200_000);

  it('kcat -P without a key into 4 partitions, then virgo learn: the batch answer, nothing late', async () => {
    // kcat's sticky partitioner sends each batch of unkeyed lines to one partition picked at
    // random: one host's lines land on several partitions in chunks far apart in event time, or
    // now and then all on one (which proves nothing here): then a fresh topic, at most 5 times.
    const admin = new KafkaBus({ brokers: BROKERS });
    let topic = '';
    let spread = 0;
    for (let attempt = 0; attempt < 5 && spread < 2; attempt++) {
      topic = unique('replay-unkeyed');
      await admin.ensureTopics([{ topic, partitions: 4 }]);
      const r = await kcatProduceFile(topic, file);
      expect(r.code, r.stderr).toBe(0);
      spread = (await admin.topicOffsets(topic)).filter((o) => BigInt(o.high) > 0n).length;
    }
    await admin.close();
    expect(spread).toBeGreaterThan(1);
    const { values, h, stderr } = await learnFromTopic(topic, log.lines.length);
    report['kcat -P (no key, 4 partitions) + virgo learn'] = Object.fromEntries(values);
    expect(values, stderr).toEqual(ufwOnly(expected));
    expect(h.ingest.late).toBe(0);
    if (h.ingest.lines === log.lines.length) {
      expect(h.ingest).toMatchObject({ lines: log.lines.length, events: log.lines.length, duplicates: 0 });
    } else {
      expect(h.ingest.lines).toBeGreaterThan(log.lines.length);
    }
    expect(h.ingest.order.forced).toBe(0);
  }, 200_000);
});
