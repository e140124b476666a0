// A Kafka broker owned by one test file, for fault injection: the shared broker (VIRGO_TEST_BROKERS)
// serves every other test in parallel and must never be stopped. Started with the project's own
// service script (scripts/services.sh) in a private state directory on free ports, reusing the
// broker jars already fetched for KAFKA_VERSION (`services.sh libs`: .services/kafka-libs-<version>).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const SCRIPT = join(ROOT, 'scripts/services.sh');

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A free port whose successor is free too (the KRaft controller listens on port + 1). */
export async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await freePort();
    if (p < 65535 && (await portFree(p + 1))) return p;
  }
  throw new Error('no two consecutive free ports found');
}

export interface PrivateKafka {
  readonly port: number;
  readonly brokers: string[];
  readonly dir: string;
  /** graceful stop (SIGTERM, data kept): the fault */
  stop(): Promise<void>;
  /** start again on the same port and data; resolves once the broker answers metadata */
  start(): Promise<void>;
  /** SIGKILL the broker (a crash: no controlled shutdown, log recovery at the next start) */
  kill(): Promise<void>;
  /** stop and remove its data */
  down(): Promise<void>;
}

function script(action: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [SCRIPT, action, 'kafka'], { env, timeout: 120_000 }, (err, out, stderr) => {
      if (err) reject(new Error(`services.sh ${action} kafka failed: ${err.message}\n${stderr}`));
      else resolve(out);
    });
  });
}

/** The jar folder of the Kafka version the shared services run (KAFKA_VERSION, else the script's default). */
async function kafkaLibs(): Promise<string> {
  if (process.env.KAFKA_LIBS) return process.env.KAFKA_LIBS;
  // `libs` fetches the jars when missing (once per version): a machine that ran services:up has them.
  return (await script('libs', process.env)).trim().split('\n').pop() ?? '';
}

export async function startPrivateKafka(): Promise<PrivateKafka> {
  const libs = await kafkaLibs();
  if (!existsSync(join(libs, '.complete'))) {
    throw new Error(
      `Kafka jars missing in ${libs}: run \`npm run services:up\` first (it fetches them once), or set KAFKA_LIBS`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'virgo-private-kafka-'));
  const port = await freePortPair();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    VIRGO_SERVICES_DIR: dir,
    KAFKA_PORT: String(port),
    KAFKA_LIBS: libs,
    KAFKA_HEAP: process.env.VIRGO_PRIVATE_KAFKA_HEAP ?? '-Xmx384m -Xms128m',
  };
  try {
    await script('up', env);
  } catch (err) {
    await script('down', env).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    port,
    brokers: [`127.0.0.1:${port}`],
    dir,
    stop: async () => void (await script('stop-kafka', env)),
    start: async () => void (await script('start-kafka', env)),
    async kill() {
      const pidFile = join(dir, 'kafka', 'kafka.pid');
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      process.kill(pid, 'SIGKILL');
      // gone once signal 0 fails; the script's pid file then points at nothing
      for (;;) {
        try {
          process.kill(pid, 0);
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async down() {
      await script('down', env).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
