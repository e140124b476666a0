// A driver in another process: the table is exported to Redis by the real RedisExporter, the
// driver imports it with RedisVariables, and a change on one side changes the driver's behaviour.
import { describe, expect, it } from 'vitest';
import { MemoryPooling, RedisVariables } from '../../../actuators/drivers/index.ts';
import { exportTable, RedisExporter, VariableTable } from '../../../kernel-analytics/index.ts';
import { LineConn } from '../../helpers/line-client.ts';
import { testRedis } from '../../helpers/redis.ts';
import { REDIS_URL, run, waitFor } from '../../helpers/services.ts';

const { redis, prefix: uniquePrefix } = testRedis();
const prefix = () => uniquePrefix('test-analytics');

describe('RedisVariables', () => {
  it('loads the exporter snapshot, follows its changes and drives a driver', async () => {
    const p = prefix();
    const source = new VariableTable();
    source.set('memorypooling.max_bytes', '1000', { host: 'node-a' });
    source.set('pxrc.throttle', '0.5', { host: 'drone-1' });
    const exporter = new RedisExporter(redis, { prefix: p });
    const exp = exportTable(source, [exporter]);
    await exp.flush();

    const vars = await RedisVariables.connect({ url: REDIS_URL, prefix: p, resyncMs: 0 });
    try {
      expect(vars.get('memorypooling.max_bytes', 'node-a')).toBe('1000');
      expect(vars.get('pxrc.throttle', 'drone-1')).toBe('0.5');
      expect(vars.get('pxrc.throttle')).toBe('0.5');
      expect(vars.get('pxrc.throttle', 'node-a')).toBeUndefined();

      const mem = new MemoryPooling({ variables: vars, port: 0 });
      await mem.start();
      const c = await LineConn.open(mem.port);
      expect(await c.ask('virgo_cloud_malloc(800)')).toMatch(/^\d+$/);
      source.set('memorypooling.max_bytes', '500', { host: 'node-a' });
      await waitFor(() => vars.get('memorypooling.max_bytes') === '500', 'the change through Redis');
      expect(await c.ask('virgo_cloud_malloc(800)')).toMatch(/more than the 500-byte limit/);
      c.close();
      await mem.close();

      // a value that is not a valid variable line is counted and skipped, the rest applied
      await redis.publish(`${p}:changes:node-a`, 'bad key=1\nmemorypooling.pool_bytes=77\n');
      await waitFor(() => vars.get('memorypooling.pool_bytes') === '77', 'the valid line of a mixed message');
      expect(vars.get('bad key')).toBeUndefined();

      // deletions are not published: a resync finds them
      source.delete('pxrc.throttle', 'drone-1');
      await exp.flush();
      expect(vars.get('pxrc.throttle', 'drone-1')).toBe('0.5');
      await vars.resync();
      expect(vars.get('pxrc.throttle', 'drone-1')).toBeUndefined();
    } finally {
      await vars.close();
      exp.detach();
    }
  });

  it('mirrors only the hosts asked for', async () => {
    const p = prefix();
    await redis.hset(`${p}:drone-1`, 'pxrc.yaw', '0.2');
    await redis.hset(`${p}:drone-2`, 'pxrc.yaw', '-0.4');
    const vars = await RedisVariables.connect({ url: REDIS_URL, prefix: p, hosts: ['drone-2'], resyncMs: 0 });
    try {
      expect(vars.get('pxrc.yaw', 'drone-2')).toBe('-0.4');
      expect(vars.get('pxrc.yaw', 'drone-1')).toBeUndefined();
      // redis-cli as the publisher: any tool that speaks the exporter's format works
      const r = await run('redis-cli', ['-u', REDIS_URL, 'PUBLISH', `${p}:changes:drone-2`, 'pxrc.yaw=0.9']);
      expect(r.stdout.trim()).toBe('1');
      await waitFor(() => vars.get('pxrc.yaw', 'drone-2') === '0.9', 'the published change');
      await redis.publish(`${p}:changes:drone-1`, 'pxrc.yaw=0.7');
      await redis.publish(`${p}:changes:drone-2`, 'pxrc.yaw=1');
      await waitFor(() => vars.get('pxrc.yaw', 'drone-2') === '1', 'ordering');
      expect(vars.get('pxrc.yaw', 'drone-1')).toBeUndefined();
    } finally {
      await vars.close();
    }
  });

  it('says which Redis it could not reach', async () => {
    await expect(
      RedisVariables.connect({ url: 'redis://127.0.0.1:1', prefix: 'x', resyncMs: 0 }),
    ).rejects.toThrow(/cannot read variables from Redis at redis:\/\/127\.0\.0\.1:1/);
  });
});
