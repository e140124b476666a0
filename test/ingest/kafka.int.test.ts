// On the real broker: lines that `kcat -P` publishes come out of the ingest stage as the right
// KernelEvents; garbage lands on the dead-letter topic, where `virgo subscribe` shows it; and
// `virgo publish-logs` writes what kcat would (keys, header, raw value), or fails clearly.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KafkaBus } from '../../bus/index.ts';
import { startIngestStage } from '../../ingest/index.ts';
import type { KernelEvent } from '../../schemas/index.ts';
import { kcatConsume, kcatProduce } from '../helpers/kcat.ts';
import { BROKERS, unique, virgo, waitFor } from '../helpers/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'virgo-ingest-kafka-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const kcatRead = async (topic: string, n: number): Promise<string[]> => {
  const r = await kcatConsume(topic, '%k|%h|%s\n', { count: n, untilEnd: false });
  expect(r.code).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
};

describe('ingest on Kafka (real broker)', () => {
  it('kcat -P lines become KernelEvents; garbage goes to the DLQ and virgo subscribe shows it', async () => {
    const topic = unique('kernel-logs');
    const dlqTopic = `${topic}.dlq`;
    const bus = new KafkaBus({ brokers: BROKERS });
    await bus.ensureTopics([
      { topic, partitions: 2 },
      { topic: dlqTopic, partitions: 1 },
    ]);
    const input = Buffer.concat([
      Buffer.from(
        [
          'fw-1|Mar  3 10:00:01 fw-1 kernel: [ 8812.004411] [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.7 DST=192.0.2.10 LEN=60 TTL=52 PROTO=TCP SPT=51515 DPT=22 SYN URGP=0',
          'db-2|Mar  3 10:01:00 db-2 kernel: [12001.552001] Out of memory: Killed process 4711 (postgres) total-vm:8812340kB, anon-rss:6021116kB, file-rss:1024kB',
          'edge-4|[   42.000100] e1000e: eth1 NIC Link is Down',
          'edge-4|',
          '',
        ].join('\n'),
      ),
      Buffer.from('edge-4|bad \xc3\x28 utf8\n', 'latin1'),
      Buffer.from('edge-4|\x00\x01\x02\x03\x04binary\n', 'latin1'),
    ]);
    const kc = await kcatProduce(topic, input, ['-K', '|', '-H', 'content-type=text/plain']);
    expect(kc.code, kc.stderr).toBe(0);

    const events: KernelEvent[] = [];
    const stage = await startIngestStage({
      bus,
      topic,
      groupId: unique('learners'),
      fromBeginning: true,
      onEvents: async (e) => void events.push(...e),
    });
    await stage.ready;
    await waitFor(
      () => events.length === 3 && stage.stats().deadLettered === 3,
      'three events, three dead letters',
    );
    const byHost = new Map(events.map((e) => [e.host, e]));
    expect(byHost.get('fw-1')).toMatchObject({
      family: 'ufw',
      mono: 8812.004411,
      fields: { action: 'BLOCK', SRC: '203.0.113.7', DPT: '22', PROTO: 'TCP' },
    });
    expect(byHost.get('db-2')).toMatchObject({ family: 'oom', fields: { pid: '4711', comm: 'postgres' } });
    // dmesg output has no host: the Kafka key names it
    expect(byHost.get('edge-4')).toMatchObject({
      family: 'link',
      program: 'kernel',
      fields: { iface: 'eth1', state: 'down' },
    });
    expect(stage.stats().byReason).toEqual({ empty: 1, 'invalid-utf8': 1, binary: 1 });
    await stage.close();
    await bus.close();

    const sub = await virgo([
      'subscribe',
      dlqTopic,
      '--brokers',
      BROKERS.join(','),
      '--from-beginning',
      '--max',
      '3',
    ]);
    expect(sub.code, sub.stderr).toBe(0);
    const shown = sub.stdout.trim().split('\n');
    expect(shown).toHaveLength(3);
    expect(shown.some((l) => l.startsWith('[empty:'))).toBe(true);
    expect(shown.some((l) => l.startsWith('[invalid-utf8:') && l.includes('utf8'))).toBe(true);
    expect(shown.some((l) => l.startsWith('[binary:') && l.endsWith('binary'))).toBe(true);
  });

  it('virgo publish-logs writes what kcat -P -K writes: key = host, raw line, content-type header', async () => {
    const topic = unique('published');
    const file = join(dir, 'kern.log');
    writeFileSync(
      file,
      'Jun 14 15:16:01 combo kernel: [ 1.5] usb 1-1: USB disconnect, device number 2\r\n' +
        '[ 2.0] e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex\n',
    );
    const r = await virgo([
      'publish-logs',
      file,
      '--brokers',
      BROKERS.join(','),
      '--topic',
      topic,
      '--host',
      'edge-3',
    ]);
    expect(r.code, r.stderr).toBe(0);
    // piped: stdout stays empty, stderr has one summary line (issue #20)
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^publish-logs: 2 lines, \d+ bytes, 0 dead-lettered by the consumer, [\d.]+ s, [\d,]+ lines\/s\n$/,
    );
    expect(await kcatRead(topic, 2)).toEqual([
      'edge-3|content-type=text/plain|Jun 14 15:16:01 combo kernel: [ 1.5] usb 1-1: USB disconnect, device number 2',
      'edge-3|content-type=text/plain|[ 2.0] e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex',
    ]);
    // without --host, the host a line names keys it
    const topic2 = unique('published');
    const r2 = await virgo(
      ['publish-logs', '-', '--brokers', BROKERS.join(','), '--topic', topic2],
      'Jun 14 15:16:01 combo sshd[9]: x\n',
    );
    expect(r2.code, r2.stderr).toBe(0);
    expect(await kcatRead(topic2, 1)).toEqual([
      'combo|content-type=text/plain|Jun 14 15:16:01 combo sshd[9]: x',
    ]);
  });

  it('fails clearly: refused (exit 1), silent broker (exit 1 at the deadline), no --brokers (exit 2)', async () => {
    const file = join(dir, 'one.log');
    writeFileSync(file, 'a line\n');
    const t0 = Date.now();
    const dead = await virgo(['publish-logs', file, '--brokers', '127.0.0.1:1', '--retries', '2']);
    expect(dead.code).toBe(1);
    expect(dead.stderr).toMatch(/Kafka at 127\.0\.0\.1:1/);
    expect(Date.now() - t0).toBeLessThan(30_000);
    // a port that accepts and never answers: the connect deadline ends it
    const held: Socket[] = [];
    const silent = createServer((s) => void held.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const t1 = Date.now();
    const mute = await virgo([
      'publish-logs',
      file,
      '--brokers',
      `127.0.0.1:${port}`,
      '--connect-timeout',
      '2',
    ]);
    expect(mute.code).toBe(1);
    expect(mute.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*(did not answer within 2 s|failed)`));
    expect(Date.now() - t1).toBeLessThan(20_000);
    for (const s of held) s.destroy();
    silent.close();
    const embedded = await virgo(['publish-logs', file], undefined);
    expect(embedded.code).toBe(2);
    expect(embedded.stderr).toMatch(/give --brokers.*virgo up/s);
  });
});
