// `virgo publish-logs` on the real broker, fed by real processes that write one line a second:
// stdin, a followed file, and `dmesg -w` reading lines written to /dev/kmsg (needs root, as the
// services script does). Each line carries the wall clock of its writing (ms); the Kafka record's
// timestamp is set when its batch is published, so their difference is the source's latency,
// whatever the consumer's own delay. Also: the summary line on stderr when not on a terminal.
import { accessSync, constants, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type BusMessage, KafkaBus } from '../../../bus/index.ts';
import { Child } from '../../helpers/child.ts';
import { testScope } from '../../helpers/scope.ts';
import { BROKERS, run, unique, waitFor } from '../../helpers/services.ts';

const { cleanup, tempDir, track } = testScope();
const B = BROKERS.join(',');
const LINES = 4;

/** Records of `topic` as they arrive, with the latency of the lines that carry a writing time. */
async function watch(topic: string, marker: string) {
  const bus = new KafkaBus({ brokers: BROKERS });
  cleanup.push(() => bus.close());
  await bus.ensureTopics([{ topic, partitions: 2 }]);
  const got: { line: string; latencyMs: number }[] = [];
  const sub = await bus.subscribe({
    topics: [topic],
    groupId: unique('watch'),
    fromBeginning: true,
    onBatch: async (batch: BusMessage[]) => {
      for (const m of batch) {
        const line = m.value?.toString() ?? '';
        const at = new RegExp(`${marker} (\\d{13}) `).exec(line);
        if (at) got.push({ line, latencyMs: m.timestamp - Number(at[1]) });
      }
    },
  });
  cleanup.push(() => sub.close());
  await sub.ready;
  return got;
}

/** A shell loop writing LINES lines, one a second, each stamped with the ms of its writing. */
function writer(marker: string, to: string): string {
  return `for i in $(seq 1 ${LINES}); do echo "${marker} $(date +%s%3N) line $i" ${to}; sleep 1; done`;
}

function expectLive(got: { line: string; latencyMs: number }[]): void {
  expect(got).toHaveLength(LINES);
  for (const g of got) expect(g.latencyMs, g.line).toBeLessThan(1_000);
}

describe('virgo publish-logs: live sources flow within the linger', () => {
  it('stdin written one line a second: every line is in Kafka within 1 s of its writing', async () => {
    const topic = unique('pl-stdin');
    const marker = unique('stdin');
    const got = await watch(topic, marker);
    // The writer's first line, once in Kafka, says the publisher is up (its start-up is not the
    // latency measured); the test then lets the writer go on by creating a file it waits for.
    const go = join(tempDir('pl-stdin'), 'go');
    const r = run(
      'sh',
      [
        '-c',
        `(echo "${marker} 0000000000000 ready"; while [ ! -e ${go} ]; do sleep 0.05; done; ${writer(marker, '')}) | node bin/virgo.js publish-logs - --brokers ${B} --topic ${topic}`,
      ],
      undefined,
      60_000,
    );
    await waitFor(() => got.length === 1, 'the first line', 60_000);
    writeFileSync(go, '');
    const { code, stdout, stderr } = await r;
    expect(code).toBe(0);
    await waitFor(() => got.length === 1 + LINES, 'every line in Kafka');
    expectLive(got.slice(1));
    // Not a terminal: one summary line on stderr, nothing on stdout.
    expect(stdout).toBe('');
    expect(stderr.trim()).toMatch(
      new RegExp(
        `^publish-logs: ${1 + LINES} lines, \\d+ bytes, 0 dead-lettered by the consumer, \\d+\\.\\d s, \\d+ lines/s$`,
      ),
    );
  }, 90_000);

  it('a followed file appended one line a second, then SIGTERM: lines within 1 s, a summary at the end', async () => {
    const topic = unique('pl-follow');
    const marker = unique('follow');
    const got = await watch(topic, marker);
    const dir = tempDir('pl-follow');
    const file = join(dir, 'kern.log');
    const pub = track(
      Child.spawn(
        process.execPath,
        ['bin/virgo.js', 'publish-logs', file, '--follow', '--brokers', B, '--topic', topic],
        { VIRGO_STATE_DIR: join(dir, 'state') },
        'publish-logs',
      ),
    );
    // The file does not exist yet: --follow waits for it, as tail -F, and says so. Its first line,
    // once in Kafka, says the publisher is up (its start-up is not the latency measured).
    await pub.waitLine(/does not exist yet; waiting for it \(--follow\)$/);
    await run('sh', ['-c', `echo "${marker} 0000000000000 ready" > ${file}`]);
    await waitFor(() => got.length === 1, 'the first line', 60_000);
    const w = await run('sh', ['-c', writer(marker, `>> ${file}`)], undefined, 60_000);
    expect(w.code).toBe(0);
    await waitFor(() => got.length === 1 + LINES, 'every line in Kafka');
    expectLive(got.slice(1));
    expect(await pub.stop()).toBe(0);
    expect(pub.stderr[0]).toBe(`publish-logs: ${file} does not exist yet; waiting for it (--follow)`);
    expect(pub.stderr.join('\n')).toMatch(new RegExp(`^publish-logs: ${1 + LINES} lines, `, 'm'));
    // the checkpoint it kept, under the state dir
    expect(readdirSync(join(dir, 'state', 'publish-logs'))).toEqual([
      expect.stringMatching(/^kern\.log-[0-9a-f]{12}\.json$/),
    ]);
  }, 90_000);

  it('dmesg -w | publish-logs: a line written to /dev/kmsg is in Kafka within 1 s', async () => {
    // the real kernel log: root may write /dev/kmsg (this suite runs as root, like services.sh)
    expect(
      () => accessSync('/dev/kmsg', constants.W_OK),
      'needs write access to /dev/kmsg (root)',
    ).not.toThrow();
    const topic = unique('pl-kmsg');
    const marker = unique('virgo-test');
    const got = await watch(topic, marker);
    // Written before dmesg starts, so it comes with dmesg's dump of the ring buffer: once it is in
    // Kafka, the publisher is connected and has sent the dump.
    await run('sh', ['-c', `echo "<6>${marker} 0000000000000 ready" > /dev/kmsg`]);
    const dmesg = track(Child.spawn('dmesg', ['-w'], {}, 'dmesg -w'));
    const pub = track(
      Child.spawn(process.execPath, ['bin/virgo.js', 'publish-logs', '-', '--brokers', B, '--topic', topic]),
    );
    dmesg.proc.stdout!.pipe(pub.proc.stdin!);
    await waitFor(() => got.length === 1, 'the line written before dmesg started', 60_000);
    const w = await run('sh', ['-c', writer(`<6>${marker}`, '> /dev/kmsg')], undefined, 60_000);
    expect(w.code).toBe(0);
    await waitFor(() => got.length === 1 + LINES, 'every kernel line in Kafka');
    expectLive(got.slice(1));
    await dmesg.kill9();
    // dmesg gone, stdin ends: the publisher sends what it has and exits with its summary
    expect((await pub.exited).code).toBe(0);
    expect(pub.stderr.join('\n')).toMatch(/^publish-logs: \d+ lines, /m);
  }, 120_000);
});

describe('virgo publish-logs: input problems end the run at once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virgo-pl-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a missing FILE exits 2 naming the file, before contacting Kafka', async () => {
    const r = await run(process.execPath, [
      'bin/virgo.js',
      'publish-logs',
      join(dir, 'nope.log'),
      '--brokers',
      B,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nope\.log: no such file/);
  });
});
