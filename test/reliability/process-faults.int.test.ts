// Process faults: each stage runs as the `virgo` command a user runs, is SIGKILLed under load (no
// cleanup, no flush, no commit) and started again. What was produced is counted against what came
// out: consumer-group offsets, the feeder's compacted topic, the conf file's atomic writes, the
// persisted queue and the pooling drivers' state must all resume with nothing acknowledged lost.
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type BusMessage,
  CONTENT_TYPES,
  HEADERS,
  KafkaBus,
  namespaced,
  type Subscription,
  TOPICS,
  topicSpecs,
} from '../../bus/index.ts';
import { type Checkpoint, checkpointPath } from '../../ingest/checkpoint.ts';
import { parseConf } from '../../kernel-analytics/conf-file.ts';
import { RingConsumer } from '../../kernel-analytics/consumer.ts';
import { startFeeder } from '../../kernel-analytics/feeder.ts';
import { type AnalyticsVariable, codecFor } from '../../schemas/index.ts';
import { Child } from '../helpers/child.ts';
import { driversUpArgs } from '../helpers/drivers.ts';
import { kcatRecords } from '../helpers/kcat.ts';
import { LineConn } from '../helpers/line-client.ts';
import { freePort } from '../helpers/ports.ts';
import { startPrivateRedis } from '../helpers/private-redis.ts';
import { testScope } from '../helpers/scope.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';
import { hostAnswer, ufwMessages } from './lib/lines.ts';
import { storedRequests } from './lib/queue-log.ts';
import { Report } from './lib/summary.ts';

const report = new Report(import.meta.url);
const { cleanup, tempDir, track } = testScope();

const LOGS = { VIRGO_LOG_LEVEL: 'info', VIRGO_LOG_FORMAT: 'json' };
const KILLS = 2;

describe('process faults: SIGKILL each stage under load, restart, count', () => {
  it('virgo learn: consumer-group offsets resume; every acknowledged line still becomes its variables', async () => {
    const ns = unique('rel-learn');
    const bus = namespaced(new KafkaBus({ brokers: BROKERS }), ns);
    cleanup.push(() => bus.close());
    await bus.ensureTopics(topicSpecs(2));
    const codec = codecFor('AnalyticsVariable');
    const seen: AnalyticsVariable[] = [];
    const arrivals = new Map<string, number>();
    const follower: Subscription = await bus.subscribe({
      topics: [TOPICS.kernelAnalytics],
      groupId: unique('follower'),
      fromBeginning: true,
      onBatch: async (batch: BusMessage[]) => {
        for (const m of batch) {
          if (!m.value) continue;
          const v = codec.decode(m.value);
          seen.push(v);
          if (!arrivals.has(v.host)) arrivals.set(v.host, Date.now());
        }
      },
    });
    cleanup.push(() => follower.close());
    await follower.ready;

    const dir = tempDir('learn');
    const start = () =>
      track(
        Child.virgo(
          [
            'learn',
            '--brokers',
            BROKERS.join(','),
            '--state-dir',
            dir,
            '--learners',
            'ufw',
            '--from-beginning',
          ],
          { ...LOGS, VIRGO_NAMESPACE: ns },
        ),
      );
    let learn = start();
    await learn.waitLine(/virgo learn running/);

    const hosts = Array.from({ length: 36 }, (_, i) => hostAnswer('learn', i));
    const killAt = [12, 24];
    const kills: { at: number; firstHostAfter: string }[] = [];
    for (const [i, a] of hosts.entries()) {
      await bus.publish(TOPICS.kernelLogs, ufwMessages([a], 3));
      if (killAt.includes(i + 1)) {
        // mid-stream: its last hosts are published but perhaps not yet handled or committed
        await learn.kill9();
        kills.push({ at: Date.now(), firstHostAfter: hosts[i + 1]!.host });
        learn = start();
      }
    }
    const want = hosts.flatMap((a) => [
      `${a.host}/ufw.top_src_ip=${a.ip}`,
      `${a.host}/ufw.top_dst_port=${a.port}`,
    ]);
    const got = () => new Set(seen.map((v) => `${v.host}/${v.key}=${v.value}`));
    await waitFor(() => want.every((w) => got().has(w)), 'every host variable after the kills', 90_000, 50);
    await learn.stop();

    const outcome = got();
    const lost = want.filter((w) => !outcome.has(w)).length;
    const relevant = seen.filter((v) => v.key === 'ufw.top_src_ip' || v.key === 'ufw.top_dst_port');
    const duplicates = relevant.length - new Set(relevant.map((v) => `${v.host}/${v.key}`)).size;
    const recovery = kills.map((k) => (arrivals.get(k.firstHostAfter) ?? Number.NaN) - k.at);
    report.fault({
      fault: 'SIGKILL virgo learn under load (consumer group virgo-learners)',
      injected: kills.length,
      survived: lost === 0,
      recordsLost: lost,
      duplicatesSeen: duplicates,
      recoveryMs: Math.max(...recovery),
      counts: {
        hostsProduced: hosts.length,
        linesProduced: hosts.length * 3,
        variablesExpected: want.length,
      },
      note: 'recovery: SIGKILL to the first variable of a host published after it (includes the group rebalance)',
    });
    expect(kills).toHaveLength(KILLS);
    expect(lost).toBe(0);
    // at-least-once: only batches handled but not yet committed come again
    expect(duplicates).toBeLessThanOrEqual(want.length);
  }, 150_000);

  it('virgo feeder: a restarted feeder re-reads the compacted topic; a reconnecting consumer ends with every latest value', async () => {
    const ns = unique('rel-feeder');
    const bus = namespaced(new KafkaBus({ brokers: BROKERS }), ns);
    cleanup.push(() => bus.close());
    const spec = topicSpecs(2).find((s) => s.topic === TOPICS.kernelAnalytics)!;
    await bus.ensureTopics([spec]);
    const codec = codecFor('AnalyticsVariable');
    const keys = Array.from({ length: 150 }, (_, i) => ({
      host: `fh-${i % 5}`,
      key: `rel.fh${i % 5}.k${i}`,
    }));
    const publishRound = async (round: number) => {
      await bus.publish(
        TOPICS.kernelAnalytics,
        keys.map((k) => ({
          key: `${k.host}/${k.key}`,
          value: codec.encode({
            host: k.host,
            key: k.key,
            value: `r${round}`,
            why: 'reliability test',
            learner: 'test',
            model: 'test',
            confidence: 1,
            ts: Date.now(),
            type: 'string',
            unit: null,
          }),
          headers: { [HEADERS.contentType]: CONTENT_TYPES.avro, [HEADERS.schema]: codec.fingerprintHex },
        })),
      );
    };
    const port = await freePort();
    const start = () =>
      track(
        Child.virgo(['feeder', '--brokers', BROKERS.join(','), '--listen', `127.0.0.1:${port}`], {
          ...LOGS,
          VIRGO_NAMESPACE: ns,
        }),
      );
    let feeder = start();
    await feeder.waitLine(/following analytics topic/);
    const consumer = new RingConsumer({
      port,
      backoff: { initialMs: 20, maxMs: 300 },
      name: unique('rel-c'),
    });
    cleanup.push(() => consumer.close());
    let changes = 0;
    // A value going back to an older round is a stale snapshot served as current.
    let regressions = 0;
    const lastRound = new Map<string, number>();
    consumer.table.on('change', (ch) => {
      changes++;
      const r = Number(ch.value.slice(1));
      if (r < (lastRound.get(ch.key) ?? -1)) regressions++;
      lastRound.set(ch.key, r);
    });
    const hasRound = (r: number) => keys.every((k) => consumer.table.get(k.key) === `r${r}`);

    await publishRound(0);
    await waitFor(() => hasRound(0), 'round 0 through the feeder');
    const recovery: number[] = [];
    for (let round = 1; round <= KILLS; round++) {
      await feeder.kill9();
      // the stream goes on while the feeder is down: only the topic holds these
      await publishRound(round);
      const restartedAt = Date.now();
      feeder = start();
      await waitFor(() => hasRound(round), `round ${round} after the feeder restart`, 30_000);
      recovery.push(Date.now() - restartedAt);
    }
    await publishRound(KILLS + 1);
    await waitFor(() => hasRound(KILLS + 1), 'the last round');
    await feeder.stop();
    const lost = keys.filter((k) => consumer.table.get(k.key) !== `r${KILLS + 1}`).length;
    const s = consumer.stats();
    // Every reconnect gets the whole snapshot again: pairs that changed nothing are the duplicates.
    const duplicates = s.pairs - changes;
    report.fault({
      fault: 'SIGKILL virgo feeder while variables change (consumer reconnects)',
      injected: KILLS,
      survived: lost === 0 && regressions === 0,
      recordsLost: lost,
      duplicatesSeen: duplicates,
      recoveryMs: Math.max(...recovery),
      counts: {
        staleValuesServed: regressions,
        variables: keys.length,
        updatesProduced: keys.length * (KILLS + 2),
        pairsReceived: s.pairs,
        consumerConnects: s.connects,
      },
      note: 'duplicates: snapshot lines re-sent on reconnect that changed nothing (bounded by the snapshot size per reconnect)',
    });
    expect(lost).toBe(0);
    expect(regressions, 'values that went back to an older round after a feeder restart').toBe(0);
    expect(s.connects).toBeGreaterThanOrEqual(KILLS + 1);
    expect(duplicates).toBeLessThanOrEqual((KILLS + 1) * keys.length);
    expect(Object.values(s.rejects).reduce((a, b) => a + b, 0)).toBe(0);
  }, 120_000);

  it('virgo consume: the conf file is never torn by a SIGKILL and catches up after the restart', async () => {
    const feeder = await startFeeder({ listen: { host: '127.0.0.1', port: 0 }, name: unique('rel-feed') });
    cleanup.push(() => feeder.close());
    const conf = join(tempDir('consume'), 'virgo_kernel_analytics.conf');
    const keys = Array.from({ length: 120 }, (_, i) => `rel.conf.k${i}`);
    let round = 0;
    const update = (r: number) => {
      for (const k of keys) feeder.update({ key: k, value: `v${r}` });
    };
    const start = () =>
      track(
        Child.virgo(
          ['consume', '--feeder', `127.0.0.1:${feeder.port}`, '--conf', conf, '--max-reconnect-delay', '300'],
          LOGS,
        ),
      );
    const confHas = (r: number) => {
      try {
        const c = parseConf(readFileSync(conf, 'utf8'));
        return keys.every((k) => c.values.get(k) === `v${r}`);
      } catch {
        return false;
      }
    };
    let consume = start();
    update(round);
    await waitFor(() => confHas(0), 'round 0 in the conf file');
    const recovery: number[] = [];
    let torn = 0;
    for (let k = 1; k <= KILLS; k++) {
      round = k;
      update(round);
      // killed while it may be rewriting the file for this round
      await consume.kill9();
      const c = parseConf(readFileSync(conf, 'utf8'));
      if (c.problems.length > 0 || c.values.size !== keys.length) torn++;
      const restartedAt = Date.now();
      consume = start();
      await waitFor(() => confHas(round), `round ${round} after the restart`, 30_000);
      recovery.push(Date.now() - restartedAt);
    }
    await consume.stop();
    const final = parseConf(readFileSync(conf, 'utf8'));
    const lost = keys.filter((k) => final.values.get(k) !== `v${round}`).length;
    report.fault({
      fault: 'SIGKILL virgo consume while it exports to the conf file',
      injected: KILLS,
      survived: lost === 0 && torn === 0,
      recordsLost: lost,
      duplicatesSeen: 0,
      recoveryMs: Math.max(...recovery),
      counts: {
        variables: keys.length,
        tornFilesAfterKill: torn,
        problemsInFinalFile: final.problems.length,
      },
      note: 'the conf file holds the latest value per key: duplicates cannot show; torn = a file read right after the SIGKILL with problems',
    });
    expect(torn).toBe(0);
    expect(lost).toBe(0);
  }, 90_000);

  it('virgo queue serve: every acknowledged request is in the persisted log exactly once', async () => {
    const dir = tempDir('queue');
    const start = async () => {
      const c = track(
        Child.virgo(['queue', 'serve', '--dir', dir, '--listen', '127.0.0.1:0', '--zmq', 'off'], LOGS),
      );
      const m = await c.waitLine(/^listening tcp=127\.0\.0\.1:(\d+)/);
      return { c, port: Number(m[1]) };
    };
    const acked = new Set<string>();
    let sent = 0;
    /** keeps `depth` requests in flight on one connection until it dies */
    const writer = async (port: number, tag: string, depth = 8) => {
      const conn = await LineConn.open(port);
      const outstanding: string[] = [];
      let n = 0;
      const fill = () => {
        while (outstanding.length < depth && !conn.isClosed) {
          const p = `${tag}-${n++}`;
          outstanding.push(p);
          sent++;
          conn.write(`${p}\n`);
        }
      };
      fill();
      for (;;) {
        const l = await conn.next(30_000).catch(() => undefined);
        if (l === undefined) return;
        const p = outstanding.shift();
        if (p && l.startsWith('REPLY#')) acked.add(p);
        fill();
      }
    };
    const recovery: number[] = [];
    let srv = await start();
    for (let k = 0; k <= KILLS; k++) {
      const writers = [0, 1, 2].map((w) => writer(srv.port, `q${k}-w${w}`));
      const before = acked.size;
      await waitFor(() => acked.size >= before + 150, 'requests acknowledged under load', 30_000);
      if (k === KILLS) {
        await srv.c.stop();
      } else {
        await srv.c.kill9();
      }
      await Promise.all(writers);
      if (k < KILLS) {
        const t = Date.now();
        srv = await start();
        recovery.push(Date.now() - t);
      }
    }
    const stored = await storedRequests(dir);
    const lost = [...acked].filter((p) => !stored.has(p)).length;
    const duplicates = [...stored.values()].reduce((n, c) => n + (c - 1), 0);
    report.fault({
      fault: 'SIGKILL virgo queue serve while TCP clients write',
      injected: KILLS,
      survived: lost === 0 && duplicates === 0,
      recordsLost: lost,
      duplicatesSeen: duplicates,
      recoveryMs: Math.max(...recovery),
      counts: { sent, acknowledged: acked.size, stored: stored.size },
      note: 'recovery: restart to listening again (segment log recovery, torn tail truncated)',
    });
    expect(lost).toBe(0);
    expect(duplicates).toBe(0);
  }, 90_000);

  it('virgo drivers up: memorypooling blocks (in Redis) and cloudfs writes acknowledged before a SIGKILL survive it', async () => {
    const redis = await startPrivateRedis();
    cleanup.push(() => redis.stop());
    const root = tempDir('cloudfs');
    const start = async () => {
      const c = track(
        Child.virgo(
          await driversUpArgs({
            only: 'memorypooling,cloudfs',
            redis: redis.url,
            extra: ['--redis-prefix', unique('rel'), '--mempool', 'redis', '--cloudfs-root', root],
          }),
          LOGS,
        ),
      );
      const m = await c.waitLine(/^listening memorypooling=127\.0\.0\.1:(\d+) cloudfs=127\.0\.0\.1:(\d+)/);
      return { c, mem: Number(m[1]), fs: Number(m[2]) };
    };
    const blocks = new Map<string, string>();
    const files = new Map<string, string>();
    let n = 0;
    /** allocates, sets, writes files until the connection dies; only full replies count as acknowledged */
    const load = async (mem: number, fs: number) => {
      const [m, f] = await Promise.all([LineConn.open(mem), LineConn.open(fs)]);
      for (;;) {
        const i = n++;
        const data = `block-${i}-${'x'.repeat(i % 50)}`;
        const vuid = await m.request('virgo_cloud_malloc(64)').catch(() => undefined);
        if (!vuid || !/^\d+$/.test(vuid)) return;
        const ok = await m.request(`virgo_cloud_set(${vuid},${data})`).catch(() => undefined);
        if (ok === undefined) return;
        if (ok === 'ok') blocks.set(vuid, data);
        const fd = await f.request(`virgo_cloud_open(rel/file-${i}.txt)`).catch(() => undefined);
        if (!fd || !/^\d+$/.test(fd)) {
          // the directory is created below before the first run
          if (fd === undefined) return;
          continue;
        }
        const text = `file ${i} contents`;
        const w = await f.request(`virgo_cloud_write(${fd},${text},${text.length},0)`).catch(() => undefined);
        if (w === undefined) return;
        if (w === String(text.length)) files.set(`rel/file-${i}.txt`, text);
        if ((await f.request(`virgo_cloud_close(${fd})`).catch(() => undefined)) === undefined) return;
      }
    };
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(root, 'rel'));
    const recovery: number[] = [];
    let srv = await start();
    for (let k = 0; k < KILLS; k++) {
      const running = load(srv.mem, srv.fs);
      const before = blocks.size;
      await waitFor(() => blocks.size >= before + 40, 'blocks acknowledged under load', 30_000);
      await srv.c.kill9();
      await running;
      const t = Date.now();
      srv = await start();
      recovery.push(Date.now() - t);
    }
    // everything acknowledged before any kill, read back through the restarted drivers
    const m = await LineConn.open(srv.mem);
    const f = await LineConn.open(srv.fs);
    let lost = 0;
    for (const [vuid, data] of blocks) if ((await m.request(`virgo_cloud_get(${vuid})`)) !== data) lost++;
    for (const [path, text] of files) {
      const fd = await f.request(`virgo_cloud_open(${path})`);
      const got = await f.request(`virgo_cloud_read(${fd},none,${text.length},0)`);
      await f.request(`virgo_cloud_close(${fd})`);
      if (got !== text) lost++;
    }
    m.close();
    f.close();
    await srv.c.stop();
    report.fault({
      fault: 'SIGKILL virgo drivers up (memorypooling in Redis, cloudfs) under load',
      injected: KILLS,
      survived: lost === 0,
      recordsLost: lost,
      duplicatesSeen: 0,
      recoveryMs: Math.max(...recovery),
      counts: { blocksAcknowledged: blocks.size, filesAcknowledged: files.size },
      note: 'recovery: restart to listening again; blocks are read back by VUID, files by path',
    });
    expect(blocks.size).toBeGreaterThan(0);
    expect(files.size).toBeGreaterThan(0);
    expect(lost).toBe(0);
  }, 90_000);

  it('virgo publish-logs --follow: SIGKILL mid-file, restart from the checkpoint: every line once', async () => {
    const ns = unique('rel-publish');
    const bus = namespaced(new KafkaBus({ brokers: BROKERS }), ns);
    cleanup.push(() => bus.close());
    await bus.ensureTopics(topicSpecs(2).filter((t) => t.topic === TOPICS.kernelLogs));
    const dir = tempDir('publish');
    const file = join(dir, 'kern.log');
    const state = join(dir, 'state');
    let written = 0;
    const append = (n: number) => {
      const lines = Array.from(
        { length: n },
        (_, i) => `Nov 23 19:37:32 ph kernel: [ ${written + i}.000000] reliability line ${written + i}`,
      );
      appendFileSync(file, `${lines.join('\n')}\n`);
      written += n;
    };
    // where the publisher says it is: the checkpoint it writes after each acknowledged batch
    const checkpoint = checkpointPath(state, file, `${ns}.${TOPICS.kernelLogs}`);
    const offset = (): number => {
      try {
        return (JSON.parse(readFileSync(checkpoint, 'utf8')) as Checkpoint).position.offset;
      } catch {
        return 0;
      }
    };
    const size = () => statSync(file).size;
    const BATCH = 100;
    const start = (extra: string[] = []) =>
      track(
        Child.virgo(
          ['publish-logs', file, '--follow', '--brokers', BROKERS.join(','), '--host', 'ph', ...extra],
          { VIRGO_NAMESPACE: ns, VIRGO_STATE_DIR: state },
        ),
      );
    const recovery: number[] = [];
    const kills: string[] = [];
    append(500);
    let shipper = start();
    // 1. killed between batches, mid-file: caught up, killed, the file grows, restarted
    await waitFor(() => offset() === size(), 'the shipper to catch up', 30_000);
    await shipper.kill9();
    kills.push('idle');
    append(300);
    let t = Date.now();
    // small batches: the backlog below takes a while to send
    shipper = start(['--batch-size', String(BATCH)]);
    await waitFor(() => offset() === size(), 'the restarted shipper to catch up', 30_000);
    recovery.push(Date.now() - t);
    const tally = async () => {
      const records = await kcatRecords(`${ns}.${TOPICS.kernelLogs}`);
      const counts = new Map<string, number>();
      for (const l of records) counts.set(l.value.toString(), (counts.get(l.value.toString()) ?? 0) + 1);
      return {
        records: records.length,
        lost: written - counts.size,
        duplicates: records.length - counts.size,
      };
    };
    // nothing was in flight at the kill: exactly once
    expect(await tally()).toEqual({ records: written, lost: 0, duplicates: 0 });
    // 2. killed while sending a backlog (small batches, so it takes a while): at a random batch
    append(20_000);
    await waitFor(
      () => offset() > 0 && offset() < size() && offset() > size() / 4,
      'a quarter sent',
      60_000,
      5,
    );
    await shipper.kill9();
    kills.push(`backlog at byte ${offset()} of ${size()}`);
    t = Date.now();
    shipper = start();
    await waitFor(() => offset() === size(), 'the restarted shipper to finish the backlog', 60_000);
    recovery.push(Date.now() - t);
    append(100);
    await waitFor(() => offset() === size(), 'the last lines', 30_000);
    expect(await shipper.stop()).toBe(0);
    const { records, lost, duplicates } = await tally();
    report.fault({
      fault: 'SIGKILL virgo publish-logs --follow mid-file (between batches, then during a backlog)',
      injected: kills.length,
      survived: lost === 0,
      recordsLost: lost,
      duplicatesSeen: duplicates,
      recoveryMs: Math.max(...recovery),
      counts: { linesWritten: written, messagesInKafka: records, batchLines: BATCH },
      note: `checkpoint (dev, inode, first-bytes hash, offset) written after each acknowledged batch; kills: ${kills.join('; ')}. Between batches: exactly once. During a send: the batches the broker appended but whose acknowledgement the killed process never handled are sent again (at-least-once, at most 2 batches in flight)`,
    });
    expect(lost).toBe(0);
    expect(duplicates).toBeLessThanOrEqual(2 * BATCH);
  }, 180_000);
});
