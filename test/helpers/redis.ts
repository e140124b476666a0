// The machine's Redis for one test file: a connection, and key prefixes of its own whose keys are
// deleted when the file is done (every test shares that Redis).
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { REDIS_URL, unique } from './services.ts';

export interface TestRedis {
  redis: Redis;
  /** a prefix no other test uses (`unique(name)`); its keys go when the file is done */
  prefix(name: string): string;
}

export function testRedis(): TestRedis {
  const redis = new Redis(REDIS_URL);
  const prefixes: string[] = [];
  afterAll(async () => {
    for (const p of prefixes) {
      const keys = await redis.keys(`${p}:*`);
      if (keys.length > 0) await redis.del(...keys);
    }
    await redis.quit();
  });
  return {
    redis,
    prefix(name) {
      const p = unique(name);
      prefixes.push(p);
      return p;
    },
  };
}
