// Redis faults: a PRIVATE redis-server (no persistence) stopped and started again while
// `virgo consume` exports the ring-buffer consumer's table to it. After the restart Redis is
// empty; the exporter must bring back every variable, not only those that change afterwards.
import { describe, expect, it } from 'vitest';
import { startFeeder } from '../../kernel-analytics/feeder.ts';
import { Child } from '../helpers/child.ts';
import { startPrivateRedis } from '../helpers/private-redis.ts';
import { testScope } from '../helpers/scope.ts';
import { run, unique, waitFor } from '../helpers/services.ts';
import { Report } from './lib/summary.ts';

const report = new Report(import.meta.url);
const { cleanup } = testScope();

async function hgetall(port: number, key: string): Promise<Map<string, string>> {
  const r = await run('redis-cli', ['-p', String(port), '--raw', 'HGETALL', key]);
  const f = r.stdout.split('\n').filter((_, i, a) => i < a.length - 1 || a[i] !== '');
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < f.length; i += 2) m.set(f[i]!, f[i + 1]!);
  return m;
}

describe('redis faults (private redis-server restarted under virgo consume)', () => {
  it('after Redis comes back empty, the exporter writes every variable again', async () => {
    const redis = await startPrivateRedis();
    cleanup.push(() => redis.stop());
    const feeder = await startFeeder({ listen: { host: '127.0.0.1', port: 0 }, name: unique('rel-rf') });
    cleanup.push(() => feeder.close());
    const host = 'redis-fault-host';
    const keys = Array.from({ length: 100 }, (_, i) => `rel.redis.k${i}`);
    for (const k of keys) feeder.update({ host, key: k, value: 'r0' });
    const consume = Child.virgo(
      ['consume', '--feeder', `127.0.0.1:${feeder.port}`, '--host', host, '--redis', redis.url],
      { VIRGO_LOG_LEVEL: 'warn' },
    );
    cleanup.push(() => consume.kill9());
    const hash = `virgo:analytics:${host}`;
    const want = (m: Map<string, string>, changed: Set<string>) =>
      keys.filter((k) => m.get(k) !== (changed.has(k) ? 'r1' : 'r0'));
    await waitFor(
      async () => want(await hgetall(redis.port, hash), new Set()).length === 0,
      'round 0 in Redis',
    );

    await redis.stop();
    // half of the variables change while Redis is away
    const changed = new Set(keys.filter((_, i) => i % 2 === 0));
    for (const k of changed) feeder.update({ host, key: k, value: 'r1' });
    await redis.start();
    const upAt = Date.now();
    let missing: string[] = [];
    const recovered = await waitFor(
      async () => {
        missing = want(await hgetall(redis.port, hash), changed);
        return missing.length === 0;
      },
      'every variable back in Redis',
      20_000,
      100,
    ).then(
      () => true,
      () => false,
    );
    const recoveryMs = recovered ? Date.now() - upAt : null;
    await consume.stop();
    report.fault({
      fault: 'redis-server restarted empty under virgo consume --redis',
      injected: 1,
      survived: recovered,
      recordsLost: missing.length,
      duplicatesSeen: 0,
      recoveryMs,
      counts: { variables: keys.length, changedWhileDown: changed.size },
      note: 'a restarted Redis without persistence is empty: unchanged variables must be written again',
    });
    expect(missing).toEqual([]);
  }, 60_000);

  it('virgo up --redis: /health says not ok while Redis is away, ok again once it is back (issue #15.11)', async () => {
    const redis = await startPrivateRedis();
    cleanup.push(() => redis.stop());
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const state = mkdtempSync(join(tmpdir(), 'virgo-rel-health-'));
    cleanup.push(() => rmSync(state, { recursive: true, force: true }));
    const up = Child.virgo(
      [
        'up',
        '--redis',
        redis.url,
        '--any-ports',
        '--input',
        'none',
        '--status',
        'lines',
        '--state-dir',
        state,
      ],
      { VIRGO_LOG_LEVEL: 'error' },
    );
    cleanup.push(() => up.kill9());
    const metrics = (await up.waitLine(/metrics=(http:\/\/\S+)\/metrics/))[1]!;
    const health = async () => {
      const r = await fetch(`${metrics}/health`);
      const h = (await r.json()) as { ok: boolean; redis?: { connected: boolean } };
      return { status: r.status, ok: h.ok, connected: h.redis?.connected };
    };
    const before = await health();
    await redis.stop();
    await waitFor(async () => (await health()).status === 503, '/health 503 with Redis stopped', 20_000, 100);
    const during = await health();
    await redis.start();
    const upAt = Date.now();
    await waitFor(async () => (await health()).status === 200, '/health 200 with Redis back', 20_000, 100);
    const recoveryMs = Date.now() - upAt;
    await up.stop();
    report.fault({
      fault: 'redis-server stopped and started under virgo up --redis (/health)',
      injected: 1,
      survived: before.ok && !during.ok && during.connected === false,
      recordsLost: 0,
      duplicatesSeen: 0,
      recoveryMs,
      note: 'start-up fails when Redis does not answer; after start an outage is reported by /health and ridden out',
    });
    expect(before).toMatchObject({ status: 200, ok: true, connected: true });
    expect(during).toMatchObject({ status: 503, ok: false, connected: false });
  }, 90_000);
});
