// Whether a Redis answers, asked once before a command that needs it starts (issue #15.11): a
// wrong --redis or a stopped Redis fails start-up within seconds, naming the fix, instead of a
// pipeline that runs for hours exporting nothing while /health says ok. Once running, an outage
// is ridden out (the exporters retry and write everything again after a reconnect) and shows
// in /health. ioredis is loaded only when a probe runs.

export class RedisUnreachableError extends Error {
  override readonly name = 'RedisUnreachableError';
}

/** The URL without its password, for messages. */
export function redactRedisUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/** Connects to `url` and sends PING; throws RedisUnreachableError after at most `timeoutMs`. */
export async function probeRedis(url: string, timeoutMs = 5_000): Promise<void> {
  const { Redis } = await import('ioredis');
  const started = Date.now();
  let client: InstanceType<typeof Redis>;
  try {
    client = new Redis(url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      // one attempt: the probe's caller decides what a failure means
      retryStrategy: () => null,
    });
  } catch (err) {
    throw new RedisUnreachableError(
      `--redis ${redactRedisUrl(url)} is not a Redis URL (${(err as Error).message})`,
    );
  }
  // ioredis rejects connect() with "Connection is closed"; the cause comes as an 'error' event
  let cause: NodeJS.ErrnoException | undefined;
  client.on('error', (err: NodeJS.ErrnoException) => {
    cause ??= err;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect().then(() => client.ping()),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    const e = cause ?? (err as NodeJS.ErrnoException);
    const why = e.code ?? e.message;
    throw new RedisUnreachableError(
      `cannot reach Redis at ${redactRedisUrl(url)} (${why}, after ${((Date.now() - started) / 1000).toFixed(1)} s): ` +
        'start it (npm run services:up), correct --redis / VIRGO_REDIS_URL, or leave --redis out to use the in-process table',
      { cause: err },
    );
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
