import { describe, expect, it } from 'vitest';
import {
  InProcessMemoryStore,
  MemoryPooling,
  type MemoryStore,
  RedisMemoryStore,
} from '../../../actuators/drivers/index.ts';
import { VariableTable } from '../../../kernel-analytics/index.ts';
import { closeAfterEach } from '../../helpers/cleanup.ts';
import { LineConn } from '../../helpers/line-client.ts';
import { testRedis } from '../../helpers/redis.ts';
import { run } from '../../helpers/services.ts';
import { expectRobust } from './lib/robust.ts';

const { redis, prefix } = testRedis();

const track = closeAfterEach();

async function start(table: VariableTable, store: MemoryStore, extra: { defaultMaxBytes?: number } = {}) {
  const s = new MemoryPooling({ variables: table, store, port: 0, ...extra });
  await s.start();
  track(s);
  return s;
}

const stores: [string, () => MemoryStore][] = [
  ['in-process', () => new InProcessMemoryStore()],
  [
    'redis',
    () => {
      return new RedisMemoryStore(redis, prefix('test-mempool'));
    },
  ],
];

describe.each(stores)('memorypooling :30000 (%s store)', (_name, makeStore) => {
  it('malloc, set, get, free with decimal u64 VUIDs', async () => {
    const s = await start(new VariableTable(), makeStore());
    const c = await LineConn.open(s.port);
    const vuid = await c.ask('virgo_cloud_malloc(64)');
    expect(vuid).toMatch(/^\d{1,20}$/);
    expect(BigInt(vuid) > 0n && BigInt(vuid) < 1n << 64n).toBe(true);
    expect(await c.ask(`virgo_cloud_get(${vuid})`)).toBe('');
    // the data is the rest of the line: commas and parentheses included
    expect(await c.ask(`virgo_cloud_set(${vuid},hello, (pooled) world)`)).toBe('ok');
    expect(await c.ask(`virgo_cloud_get(${vuid})`)).toBe('hello, (pooled) world');
    expect(await c.ask(`virgo_cloud_set( ${vuid} ,é)`)).toBe('ok');
    expect(await c.ask(`virgo_cloud_get(${vuid})`)).toBe('é');
    expect(await s.store.usedBytes()).toBe(64);
    expect(await c.ask(`virgo_cloud_free(${vuid})`)).toBe('kernel memory freed');
    expect(await s.store.usedBytes()).toBe(0);
    const other = await c.ask('virgo_cloud_malloc(1)');
    expect(other).not.toBe(vuid);
    c.close();
  });

  it('bounds blocks in number and per client: max_blocks, client_blocks, client_bytes', async () => {
    const table = new VariableTable();
    const s = await start(table, makeStore());
    const a = await LineConn.open(s.port);
    const b = await LineConn.open(s.port, '127.0.0.1', '127.0.0.2');
    table.set('memorypooling.client_blocks', '3');
    const mine = [];
    for (let i = 0; i < 3; i++) mine.push(await a.ask('virgo_cloud_malloc(10)'));
    expect(mine.every((v) => /^\d+$/.test(v))).toBe(true);
    expect(await a.ask('virgo_cloud_malloc(1)')).toBe(
      'error: quota: 127.0.0.1 holds 3 blocks, the limit per client is 3 (memorypooling.client_blocks); free some first',
    );
    // another client (address) has its own quota
    expect(await b.ask('virgo_cloud_malloc(10)')).toMatch(/^\d+$/);
    // a block counts against whoever allocated it, freed from any connection
    expect(await b.ask(`virgo_cloud_free(${mine[0]})`)).toBe('kernel memory freed');
    expect(await a.ask('virgo_cloud_malloc(10)')).toMatch(/^\d+$/);
    table.set('memorypooling.client_blocks', '100');
    table.set('memorypooling.client_bytes', '50');
    expect(await a.ask('virgo_cloud_malloc(21)')).toBe(
      'error: quota: 127.0.0.1 holds 30 bytes, 21 more would pass the 50-byte limit per client (memorypooling.client_bytes); free some first',
    );
    expect(await a.ask('virgo_cloud_malloc(20)')).toMatch(/^\d+$/);
    // all blocks together: 5 now (4 of a, 1 of b)
    table.set('memorypooling.max_blocks', '5');
    expect(await s.store.usedBlocks()).toBe(5);
    expect(await b.ask('virgo_cloud_malloc(1)')).toBe(
      'error: pool full: 5 blocks allocated, the limit is 5 (memorypooling.max_blocks); free some first',
    );
    for (const v of mine.slice(1)) expect(await a.ask(`virgo_cloud_free(${v})`)).toBe('kernel memory freed');
    expect(await s.store.usedBlocks()).toBe(3);
    expect(await b.ask('virgo_cloud_malloc(1)')).toMatch(/^\d+$/);
    a.close();
    b.close();
  });

  it('refuses unknown VUIDs, use after free, double free and oversize data', async () => {
    const s = await start(new VariableTable(), makeStore());
    const c = await LineConn.open(s.port);
    expect(await c.ask('virgo_cloud_get(12345)')).toBe(
      'error: unknown VUID 12345; virgo_cloud_malloc(<size>) returns one',
    );
    expect(await c.ask('virgo_cloud_set(12345,x)')).toMatch(/^error: unknown VUID 12345/);
    expect(await c.ask('virgo_cloud_free(12345)')).toMatch(/^error: unknown VUID 12345/);
    const v = await c.ask('virgo_cloud_malloc(4)');
    expect(await c.ask(`virgo_cloud_set(${v},12345)`)).toBe(
      `error: data is 5 bytes but VUID ${v} has 4; malloc a larger block`,
    );
    // UTF-8 bytes count, not characters
    expect(await c.ask(`virgo_cloud_set(${v},ééé)`)).toMatch(/^error: data is 6 bytes/);
    expect(await c.ask(`virgo_cloud_set(${v},abcd)`)).toBe('ok');
    expect(await c.ask(`virgo_cloud_free(${v})`)).toBe('kernel memory freed');
    expect(await c.ask(`virgo_cloud_free(${v})`)).toBe(`error: VUID ${v} was already freed (double free)`);
    expect(await c.ask(`virgo_cloud_get(${v})`)).toBe(`error: VUID ${v} was freed; malloc a new block`);
    expect(await c.ask(`virgo_cloud_set(${v},x)`)).toBe(`error: VUID ${v} was freed; malloc a new block`);
    c.close();
  });

  it('takes its size limits from variables, and a change takes effect on the next request', async () => {
    const table = new VariableTable();
    const s = await start(table, makeStore(), { defaultMaxBytes: 1000 });
    const c = await LineConn.open(s.port);
    const keep = await c.ask('virgo_cloud_malloc(800)');
    expect(keep).toMatch(/^\d+$/);
    table.set('memorypooling.max_bytes', '100');
    expect(await c.ask('virgo_cloud_malloc(800)')).toBe(
      'error: virgo_cloud_malloc: 800 bytes is more than the 100-byte limit (memorypooling.max_bytes)',
    );
    expect(await c.ask('virgo_cloud_malloc(100)')).toMatch(/^\d+$/);
    // existing blocks keep their size
    expect(await c.ask(`virgo_cloud_set(${keep},${'x'.repeat(800)})`)).toBe('ok');
    table.set('memorypooling.max_bytes', '5000');
    table.set('memorypooling.pool_bytes', '1000');
    expect(await c.ask('virgo_cloud_malloc(200)')).toBe(
      'error: pool full: 200 bytes requested, 900 of 1000 in use (memorypooling.pool_bytes); free some first',
    );
    expect(await c.ask(`virgo_cloud_free(${keep})`)).toBe('kernel memory freed');
    expect(await c.ask('virgo_cloud_malloc(200)')).toMatch(/^\d+$/);
    // a bad value from a learner does not lift or break the limit: the default applies
    table.set('memorypooling.max_bytes', 'lots');
    expect(await c.ask('virgo_cloud_malloc(2000)')).toMatch(/more than the 1000-byte limit/);
    c.close();
  });
});

describe('memorypooling bad input', () => {
  it('answers every malformed request with an error line and keeps serving', async () => {
    const s = await start(new VariableTable(), new InProcessMemoryStore());
    await expectRobust(s.port, {
      maxLineBytes: 8192,
      good: { line: 'virgo_cloud_malloc(8)', reply: /^\d+$/ },
      bad: [
        { line: 'GET / HTTP/1.1', says: /is not a request; expected one of virgo_cloud_malloc\(…\)/ },
        { line: 'virgo_cloud_malloc', says: /virgo_cloud_malloc: expected virgo_cloud_malloc\(…\)/ },
        { line: 'virgo_cloud_malloc()', says: /size must be a non-negative integer, got ""/ },
        { line: 'virgo_cloud_malloc(-5)', says: /size must be a non-negative integer, got "-5"/ },
        { line: 'virgo_cloud_malloc(0)', says: /size must be at least 1 byte/ },
        { line: 'virgo_cloud_malloc(1e9)', says: /non-negative integer/ },
        { line: 'virgo_cloud_malloc(99999999999)', says: /more than the 1048576-byte limit/ },
        { line: 'virgo_cloud_set(abc,x)', says: /vuid must be a decimal number, got "abc"/ },
        { line: 'virgo_cloud_set(5)', says: /expected virgo_cloud_set\(<vuid>,<data>\)/ },
        { line: 'virgo_cloud_get(18446744073709551616)', says: /larger than 2\^64-1/ },
        { line: 'virgo_cloud_get(1,2)', says: /decimal number, got "1,2"/ },
        { line: 'virgo_cloud_drop(1)', says: /unknown command "virgo_cloud_drop"/ },
        { line: 'virgo_cloud_free(../../etc/passwd)', says: /decimal number/ },
      ],
    });
    expect(s.stats.errors.get('malformed')).toBeGreaterThanOrEqual(8);
  });

  it('talks to nc', async () => {
    const s = await start(new VariableTable(), new InProcessMemoryStore());
    const r = await run(
      'nc',
      ['-N', '127.0.0.1', String(s.port)],
      'virgo_cloud_malloc(16)\nvirgo_cloud_free(7)\n',
    );
    const [vuid, err] = r.stdout.trim().split('\n');
    expect(vuid).toMatch(/^\d+$/);
    expect(err).toBe('error: unknown VUID 7; virgo_cloud_malloc(<size>) returns one');
  });
});
