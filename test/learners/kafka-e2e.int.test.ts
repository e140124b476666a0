// End to end on the real broker: the 20 real UFW lines published with `kcat -P` become analytics
// variables from `virgo learn` (a child process, as an operator runs it), which `virgo subscribe`
// prints and `kcat -C` reads raw (Avro single-object, key host/key, the contract headers).
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KafkaBus } from '../../bus/index.ts';
import { currentSnapshot } from '../../learners/snapshot.ts';
import { codecFor } from '../../schemas/index.ts';
import { UFW_SAMPLES } from '../helpers/events.ts';
import { kcatConsume, kcatProduce, kcatValues } from '../helpers/kcat.ts';
import { BROKERS, spawnVirgo, unique, virgo, waitFor } from '../helpers/services.ts';

// What the original Spark job and our window make of the 20 lines (one line per host/key): the
// window and the whole history agree on a sample this small. The file holds linode's three blocks
// twice, verbatim (same packet ids): counted once.
const EXPECTED = [
  'ip-172-30-0-158/ufw.block_rate=0.1',
  'ip-172-30-0-158/ufw.history.blocks=1',
  'ip-172-30-0-158/ufw.history.top_dst_port=23',
  'ip-172-30-0-158/ufw.history.top_src_ip=61.7.190.140',
  'ip-172-30-0-158/ufw.top_dst_port=23',
  'ip-172-30-0-158/ufw.top_src_ip=61.7.190.140',
  'ip-172-30-0-64/ufw.block_rate=0.8',
  'ip-172-30-0-64/ufw.history.blocks=8',
  'ip-172-30-0-64/ufw.history.top_dst_port=23',
  'ip-172-30-0-64/ufw.history.top_src_ip=46.188.26.149',
  'ip-172-30-0-64/ufw.top_dst_port=23',
  'ip-172-30-0-64/ufw.top_src_ip=46.188.26.149',
  'linode/ufw.block_rate=0.3',
  'linode/ufw.history.blocks=3',
  'linode/ufw.history.top_dst_port=3389',
  'linode/ufw.history.top_src_ip=91.230.47.38',
  'linode/ufw.top_dst_port=3389',
  'linode/ufw.top_src_ip=91.230.47.38',
  'myhost/ufw.block_rate=0.4',
  'myhost/ufw.history.blocks=4',
  'myhost/ufw.history.top_dst_port=123',
  'myhost/ufw.history.top_src_ip=0.0.0.0',
  'myhost/ufw.top_dst_port=123',
  'myhost/ufw.top_src_ip=0.0.0.0',
  'ubuntu-xenial/ufw.block_rate=0.1',
  'ubuntu-xenial/ufw.history.blocks=1',
  'ubuntu-xenial/ufw.history.top_dst_port=22',
  'ubuntu-xenial/ufw.history.top_src_ip=10.0.2.2',
  'ubuntu-xenial/ufw.top_dst_port=22',
  'ubuntu-xenial/ufw.top_src_ip=10.0.2.2',
];

let learn: ChildProcess | undefined;
afterAll(() => {
  learn?.kill('SIGKILL');
});

describe('learners on the real broker', () => {
  it('kcat -P lines become variables seen by virgo subscribe and by kcat -C', async () => {
    const logs = unique('e2e-logs');
    const analytics = unique('e2e-analytics');
    const group = unique('e2e-learners');
    const dir = mkdtempSync(join(tmpdir(), 'virgo-e2e-'));
    const admin = new KafkaBus({ brokers: BROKERS });
    // One partition, lines in before the learner starts: it reads them as one batch, so each
    // variable changes once (with lines spread over batches the 30 s dwell would hold the later
    // values back, as it should).
    await admin.ensureTopics([{ topic: logs, partitions: 1 }]);
    await admin.close();
    const lines = readFileSync(UFW_SAMPLES, 'utf8');
    const p = await kcatProduce(logs, lines, ['-H', 'content-type=text/plain']);
    expect(p.code).toBe(0);

    learn = spawnVirgo([
      'learn',
      '--brokers',
      BROKERS.join(','),
      '--learners',
      'ufw',
      '--logs-topic',
      logs,
      '--analytics-topic',
      analytics,
      '--group',
      group,
      '--from-beginning',
      '--state-dir',
      dir,
      '--log-level',
      'info',
    ]);
    let stderr = '';
    learn.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((r) => learn!.on('exit', (code) => r(code)));
    await waitFor(() => stderr.includes('virgo learn running'), 'virgo learn to start', 45_000);

    const sub = await virgo(
      [
        'subscribe',
        analytics,
        '--brokers',
        BROKERS.join(','),
        '--from-beginning',
        '--max',
        String(EXPECTED.length),
      ],
      undefined,
      60_000,
    );
    expect(sub.code).toBe(0);
    expect(sub.stdout.trim().split('\n').sort()).toEqual(EXPECTED);

    // kcat sees the same messages: keys host/key, Avro headers, raw single-object values
    const listed = await kcatConsume(analytics, '%k\t%p\t%o\t%h\n');
    const rows = listed.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    expect(rows.map((r) => r[0]).sort()).toEqual(EXPECTED.map((e) => e.split('=')[0]));
    const codec = codecFor('AnalyticsVariable');
    for (const r of rows) expect(r[3]).toBe(`content-type=avro/binary,virgo-schema=${codec.fingerprintHex}`);
    const top = rows.find((r) => r[0] === 'ip-172-30-0-64/ufw.top_src_ip')!;
    const v = codec.decode(
      await kcatValues(analytics, { partition: Number(top[1]), offset: top[2]!, count: 1 }),
    );
    expect(v).toMatchObject({
      host: 'ip-172-30-0-64',
      key: 'ufw.top_src_ip',
      value: '46.188.26.149',
      learner: 'ufw',
      model: 'ufw-exact@1',
      type: 'ip',
    });
    expect(v.why).toContain('top_src=46.188.26.149 count=4');

    // SIGTERM: it commits, saves a snapshot and exits cleanly
    learn.kill('SIGTERM');
    expect(await exited).toBe(0);
    learn = undefined;
    const snap = currentSnapshot(join(dir, 'learners'));
    expect(snap && existsSync(join(snap, 'ufw', 'state.json'))).toBe(true);
  });
});

describe('pins through Kafka', () => {
  it('virgo pin --brokers reaches a learner with another state dir through the pins topic', async () => {
    const { createLearnerHost } = await import('../../learners/host.ts');
    const analytics = unique('e2e-pin-analytics');
    const pins = unique('e2e-pins');
    const bus = new KafkaBus({ brokers: BROKERS });
    const h = await createLearnerHost({ bus, learners: ['ufw'], analyticsTopic: analytics, pinsTopic: pins });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'virgo-e2e-pin-'));
      const args = ['--brokers', BROKERS.join(','), '--state-dir', dir, '--pins-topic', pins];
      const r = await virgo([
        'pin',
        'gw-1/ufw.top_src_ip=192.0.2.66',
        ...args,
        '--analytics-topic',
        analytics,
      ]);
      expect(r).toMatchObject({ code: 0, stdout: 'pinned gw-1/ufw.top_src_ip=192.0.2.66\n' });
      await waitFor(() => h.stats().pins === 1, 'the pin through the topic');
      const { ufwEvent } = await import('../helpers/events.ts');
      await h.handleEvents([ufwEvent('gw-1', Date.now(), '198.51.100.3', 22)]);
      // the value on the analytics topic is the operator's, published once (by the CLI)
      const listed = await kcatConsume(analytics, '%k\n');
      const keys = listed.stdout.trim().split('\n');
      expect(keys.filter((k) => k === 'gw-1/ufw.top_src_ip')).toHaveLength(1);
      expect(keys).toContain('gw-1/ufw.block_rate');
      const un = await virgo(['unpin', 'gw-1/ufw.top_src_ip', ...args]);
      expect(un.code).toBe(0);
      await waitFor(() => h.stats().pins === 0, 'the unpin through the topic');
    } finally {
      await h.close({ save: false });
      await bus.close();
    }
  });
});
