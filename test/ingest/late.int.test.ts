// Nothing is dropped silently: a line that arrives more than --allowed-lateness behind its host's
// newest line is counted (virgo_ingest_late_total), logged at most once per interval, and
// dead-lettered to <topic>.dlq with reason `late` and its original bytes; a line within the
// allowed lateness is taken. Real broker, kcat, `virgo learn` as a child process.

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KafkaBus } from '../../bus/index.ts';
import { kcatConsume, kcatProduce } from '../helpers/kcat.ts';
import { BROKERS, spawnVirgo, unique, waitFor } from '../helpers/services.ts';

const kids: ChildProcess[] = [];
afterAll(() => {
  for (const k of kids) k.kill('SIGKILL');
});

let id = 1000;
function line(host: string, t: number): string {
  id++;
  return `${new Date(t).toISOString()} ${host} kernel: [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.${id % 200} DST=10.0.0.1 LEN=40 TTL=50 ID=${id} PROTO=TCP SPT=40000 DPT=22 WINDOW=1024 SYN URGP=0`;
}

async function produce(topic: string, host: string, lines: string[]): Promise<void> {
  const r = await kcatProduce(topic, `${lines.map((l) => `${host}|${l}`).join('\n')}\n`, ['-K', '|']);
  expect(r.code, r.stderr).toBe(0);
}

interface Health {
  ingest: { events: number; late: number; duplicates: number };
}

describe('late lines', () => {
  it('are counted, logged once per interval and dead-lettered with reason late; lines within the lateness are taken', async () => {
    const topic = unique('late-logs');
    const admin = new KafkaBus({ brokers: BROKERS });
    await admin.ensureTopics([{ topic, partitions: 1 }]);
    await admin.close();
    const p = spawnVirgo([
      'learn',
      '--brokers',
      BROKERS.join(','),
      '--learners',
      'ufw',
      '--logs-topic',
      topic,
      '--analytics-topic',
      unique('late-analytics'),
      '--group',
      unique('late-learners'),
      '--from-beginning',
      '--allowed-lateness',
      '60',
      '--state-dir',
      mkdtempSync(join(tmpdir(), 'virgo-late-')),
      '--metrics-port',
      '0',
      '--log-level',
      'info',
    ]);
    kids.push(p);
    let stderr = '';
    p.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    await waitFor(() => stderr.includes('virgo learn running'), 'virgo learn to start', 45_000);
    const port = Number(/"msg":"serving \/metrics and \/health","port":(\d+)/.exec(stderr)![1]);
    const health = async () => (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as Health;
    const warns = () => stderr.split('\n').filter((l) => l.includes('arrived too late'));

    const host = 'edge-late';
    const base = Date.now() - 3_600_000;
    await produce(
      topic,
      host,
      Array.from({ length: 10 }, (_, i) => line(host, base + i * 60_000)),
    );
    await waitFor(async () => (await health()).ingest.events === 10, 'ten lines taken', 30_000, 100);

    const wm = base + 9 * 60_000;
    const within = [line(host, wm - 30_000), line(host, wm - 59_000)];
    const late = [line(host, wm - 3_600_000), line(host, wm - 61_000), line(host, wm - 7_200_000)];
    await produce(topic, host, [...within, ...late]);
    await waitFor(
      async () => {
        const h = await health();
        return h.ingest.events === 12 && h.ingest.late === 3;
      },
      'two lines taken, three late',
      30_000,
      100,
    );

    // dead-lettered with the reason and the original bytes; exactly once, the letters go out with
    // the next transaction, after the counters moved: wait for the three, not for the topic's end
    const dlq = await kcatConsume(`${topic}.dlq`, '%k\t%h\t%s\n', { count: 3, untilEnd: false });
    const rows = dlq.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(rows.map((r) => r[2]).sort()).toEqual([...late].sort());
    for (const r of rows) {
      expect(r[0]).toBe(host);
      expect(r[1]).toMatch(
        /virgo-error=late: event time \S+ is more than 60s behind host edge-late's watermark/,
      );
      expect(r[1]).toMatch(new RegExp(`virgo-source=${topic}/0/\\d+`));
    }

    // counted, with the topic as label
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toContain(`virgo_ingest_late_total{topic="${topic}"} 3`);

    // logged once for the three, with the host and the allowed lateness
    await waitFor(() => warns().length === 1, 'one warning');
    expect(warns()[0]).toContain('"late":3');
    expect(warns()[0]).toContain('"edge-late":3');
    expect(warns()[0]).toContain('"allowedLatenessSec":60');

    // one more within the interval: counted at once, logged at the end of the interval
    await produce(topic, host, [line(host, wm - 3_000_000)]);
    await waitFor(async () => (await health()).ingest.late === 4, 'the fourth late line');
    expect(warns()).toHaveLength(1);
    await waitFor(() => warns().length === 2, 'the next interval', 20_000, 100);
    expect(warns()[1]).toContain('"late":1');

    p.kill('SIGTERM');
    await new Promise((r) => p.on('exit', r));
  }, 120_000);
});
