// A redis-server owned by one test (a child process on a free port, no persistence): tests that
// share the machine's Redis must not see each other's keys, and a fault may stop it.
import { connect } from 'node:net';
import { Child } from './child.ts';
import { freePort } from './ports.ts';
import { waitFor } from './services.ts';

export interface PrivateRedis {
  port: number;
  url: string;
  stop(): Promise<void>;
  /** start again on the same port (empty: no persistence), after stop() */
  start(): Promise<void>;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.setTimeout(1_000, () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d: Buffer) => {
      s.destroy();
      // a password-protected server answers NOAUTH: up all the same
      resolve(/^(\+PONG|-NOAUTH)/.test(d.toString()));
    });
  });
}

export async function startPrivateRedis(extra: string[] = []): Promise<PrivateRedis> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const spawnOne = async () => {
    const c = Child.spawn('redis-server', [...args, '--daemonize', 'no', ...extra], {}, 'redis-server');
    await waitFor(async () => c.running && (await ping(port)), `redis-server on :${port}`, 15_000, 20);
    return c;
  };
  let child = await spawnOne();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: async () => {
      await child.stop();
    },
    start: async () => {
      child = await spawnOne();
    },
  };
}
