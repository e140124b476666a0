// Replay equals batch: a generated three-day multi-host kern.log, read by every route a user has
// (virgo learn --input, virgo up --input, publish-logs then virgo learn, kcat -P without a key over
// four partitions then virgo learn), ends with the values a plain batch computation over the same
// lines gives, for the window and the whole-history variables alike. Publishing the file twice
// changes nothing (the second copy is recognised as duplicates); nothing is late.
// Real services: the Kafka broker, kcat, the virgo CLI as child processes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaBus } from '../../bus/index.ts';
import { kernLog } from '../helpers/kernlog.ts';
import { BROKERS, run, spawnVirgo, unique, virgo, waitFor } from '../helpers/services.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const BLOCK_RE =
  /^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\S+) kernel: .*\[UFW BLOCK\] .*\bSRC=(\S+) .*\bDPT=(\d+)/;

/** The answer of the original job over a list of blocks: the most frequent key, ties to the smallest. */
function top(keys: string[]): string {
  const n = new Map<string, number>();
  for (const k of keys) n.set(k, (n.get(k) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]![0];
}

/**
 * The batch answer, computed from the text alone: per host, the UFW BLOCK lines over the whole
 * file (history) and over the 60 ten-second buckets ending with the bucket of the host's newest
 * block (the declared window), as `host/key` → value text.
 */
function batch(lines: string[], year: number): Map<string, string> {
  const byHost = new Map<string, { ts: number; src: string; dpt: string }[]>();
  for (const l of lines) {
    const m = BLOCK_RE.exec(l);
    if (!m) continue;
    const ts = Date.UTC(year, MONTHS.indexOf(m[1]!), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
    const list = byHost.get(m[6]!) ?? [];
    list.push({ ts, src: m[7]!, dpt: m[8]! });
    byHost.set(m[6]!, list);
  }
  const out = new Map<string, string>();
  for (const [host, all] of byHost) {
    const last = Math.floor(Math.max(...all.map((b) => b.ts)) / 10_000);
    const win = all.filter((b) => Math.floor(b.ts / 10_000) > last - 60);
    out.set(`${host}/ufw.history.blocks`, String(all.length));
    out.set(`${host}/ufw.history.top_src_ip`, top(all.map((b) => b.src)));
    out.set(`${host}/ufw.history.top_dst_port`, top(all.map((b) => b.dpt)));
    out.set(`${host}/ufw.block_rate`, String(Number((win.length / 10).toFixed(2))));
    out.set(`${host}/ufw.top_src_ip`, top(win.map((b) => b.src)));
    out.set(`${host}/ufw.top_dst_port`, top(win.map((b) => b.dpt)));
  }
  return out;
}

/** The last value printed for each host/key (`host/key=value` lines). */
function finals(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of stdout.split('\n')) {
    const i = l.indexOf('=');
    if (i > 0 && l.includes('/')) out.set(l.slice(0, i), l.slice(i + 1));
  }
  return out;
}

function ufwOnly(m: Map<string, string>): Map<string, string> {
  return new Map([...m].filter(([k]) => k.includes('/ufw.')).sort(([a], [b]) => (a < b ? -1 : 1)));
}

const log = kernLog({ seed: 12 });
const expected = batch(log.lines, log.year);
const dirs: string[] = [];
let file = '';

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'virgo-replay-'));
  dirs.push(d);
  return d;
}

/** A report row per route for whoever reads the run (results go to a git-ignored folder). */
const report: Record<string, Record<string, string>> = {};

beforeAll(() => {
  file = join(tmp(), 'kern.log');
  writeFileSync(file, `${log.lines.join('\n')}\n`);
  report.batch = Object.fromEntries(expected);
});

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (process.env.VIRGO_REPLAY_REPORT)
    writeFileSync(process.env.VIRGO_REPLAY_REPORT, JSON.stringify(report, null, 2));
});

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

/**
 * `virgo learn --brokers` over a topic read from the beginning: a service, so "done" is when it
 * read `lines` lines, nothing waits in the reorder buffer, nothing is held by dwell and every host
 * is back on processing time (caught up). Returns the last printed values and the health.
 */
async function learnFromTopic(
  topic: string,
  lines: number,
): Promise<{ values: Map<string, string>; h: Health }> {
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
    unique('replay-learners'),
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
          j.clock.event === 0;
        return done ? j : undefined;
      },
      `virgo learn to read ${lines} lines and release everything`,
      120_000,
      250,
    );
    // Nothing is pending any more: what was printed last is final.
    const values = await waitFor(() => {
      const v = ufwOnly(finals(stdout));
      return v.size === expected.size ? v : undefined;
    }, 'every variable printed');
    return { values, h };
  } catch (err) {
    const h = lastHealth ? { ingest: lastHealth.ingest, held: lastHealth.held, outbox: lastHealth.outbox, clock: lastHealth.clock } : undefined;
    throw new Error(`${(err as Error).message}\nhealth ${JSON.stringify(h)}\n${stderr.slice(-3000)}`);
  } finally {
    p.kill('SIGTERM');
    await exited;
  }
}

describe('replay equals batch (3-day multi-host kern.log)', () => {
  it('the generated log is one where the whole-history and last-window answers differ', () => {
    expect(log.lines.length).toBeGreaterThan(3000);
    for (const h of log.hosts) {
      expect(expected.get(`${h}/ufw.history.top_src_ip`)).not.toBe(expected.get(`${h}/ufw.top_src_ip`));
      expect(expected.get(`${h}/ufw.history.top_dst_port`)).not.toBe(expected.get(`${h}/ufw.top_dst_port`));
    }
    expect(expected.size).toBe(log.hosts.length * 6);
  });

  it('virgo learn --input FILE', async () => {
    const r = await virgo(
      ['learn', '--input', file, '--learners', 'ufw', '--state-dir', tmp()],
      undefined,
      180_000,
    );
    expect(r.code, r.stderr).toBe(0);
    const got = ufwOnly(finals(r.stdout));
    report['virgo learn --input'] = Object.fromEntries(got);
    expect(got).toEqual(ufwOnly(expected));
  }, 200_000);

  it('virgo up --input FILE (embedded)', async () => {
    const p = spawnVirgo([
      'up',
      '--input',
      file,
      '--learners',
      'ufw',
      '--devices',
      'none',
      '--drivers',
      'none',
      '--any-ports',
      '--zmq',
      'none',
      '--metrics',
      'none',
      '--status',
      'lines',
      '--state-dir',
      tmp(),
      '--log-level',
      'info',
    ]);
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
    try {
      await waitFor(
        () => stderr.includes('input replayed to its end'),
        'the end of the input',
        180_000,
        100,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${stderr.slice(-3000)}`);
      });
      // After the final watermark nothing changes any more: wait for the feeder's table to show it.
      await waitFor(
        () => JSON.stringify([...ufwOnly(finals(stdout))]) === JSON.stringify([...ufwOnly(expected)]),
        'the final values on the feeder',
        10_000,
      ).catch(() => undefined);
      const got = ufwOnly(finals(stdout));
      report['virgo up --input'] = Object.fromEntries(got);
      expect(got).toEqual(ufwOnly(expected));
    } finally {
      p.kill('SIGINT');
      await exited;
    }
  }, 200_000);

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
    const { values, h } = await learnFromTopic(topic, 2 * log.lines.length);
    report['publish-logs x2 + virgo learn'] = Object.fromEntries(values);
    expect(values).toEqual(ufwOnly(expected));
    expect(h.ingest).toMatchObject({ lines: 2 * log.lines.length, duplicates: log.lines.length, late: 0 });
    expect(h.ingest.events).toBe(log.lines.length);
  }, 200_000);

  it('kcat -P without a key into 4 partitions, then virgo learn: the batch answer, nothing late', async () => {
    const topic = unique('replay-unkeyed');
    const admin = new KafkaBus({ brokers: BROKERS });
    await admin.ensureTopics([{ topic, partitions: 4 }]);
    const r = await run('kcat', ['-P', '-b', BROKERS.join(','), '-t', topic, '-l', file]);
    expect(r.code, r.stderr).toBe(0);
    const offsets = await admin.topicOffsets(topic);
    await admin.close();
    const spread = offsets.filter((o) => BigInt(o.high) > 0n).length;
    // one host's lines really are spread over several partitions (else this proves nothing)
    expect(spread).toBeGreaterThan(1);
    const { values, h } = await learnFromTopic(topic, log.lines.length);
    report['kcat -P (no key, 4 partitions) + virgo learn'] = Object.fromEntries(values);
    expect(values).toEqual(ufwOnly(expected));
    expect(h.ingest).toMatchObject({
      lines: log.lines.length,
      events: log.lines.length,
      duplicates: 0,
      late: 0,
    });
    expect(h.ingest.order.forced).toBe(0);
  }, 200_000);
});
