// The VIRGO queue (:60000, ZeroMQ :60001) and its KingCobra segment log: device replies land here.
import { join } from 'node:path';
import type { QueueService } from '../../queue-bridge/index.ts';
import { QUEUE_PORT, QUEUE_ZMQ_ENDPOINT } from '../../queue-bridge/ports.ts';
import { SECRET_ENV } from '../../runtime/secret.ts';
import type { PipelineStage } from './stage.ts';

export const queueStage: PipelineStage<QueueService> = {
  name: 'queue',
  listens: true,
  options: {
    zmq: {
      type: 'string',
      default: QUEUE_ZMQ_ENDPOINT,
      arg: 'ENDPOINT|none',
      description: 'ZeroMQ ROUTER endpoint of the VIRGO queue',
    },
  },
  portFix:
    'virgo up --any-ports takes free ports (printed when ready); --listen-host HOST binds another address; --zmq ENDPOINT moves ZeroMQ (none: no ZeroMQ)',
  configure(flags, o) {
    const any = flags['any-ports'] === true;
    // none (or off, as virgo queue serve spells it): no ZeroMQ
    if (flags.zmq === 'none' || flags.zmq === 'off') o.zmq = false;
    else o.zmq = any ? 'tcp://127.0.0.1:*' : String(flags.zmq);
    if (any) o.queuePort = 0;
  },
  async start(ctx) {
    const { startQueueService } = await import('../../queue-bridge/index.ts');
    const queue = await startQueueService({
      dir: join(ctx.o.stateDir, 'kingcobra'),
      listen: { host: ctx.listenHost, port: ctx.o.queuePort ?? QUEUE_PORT },
      zmq: ctx.o.zmq ?? false,
      ...(ctx.o.secrets?.queue ? { secret: ctx.o.secrets.queue } : {}),
      ...(ctx.o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: ctx.o.handshakeTimeoutMs } : {}),
    });
    return {
      handle: queue,
      endpoints: {
        queue: `${ctx.listenHost}:${queue.port}`,
        ...(queue.zmqEndpoint ? { zmq: queue.zmqEndpoint } : {}),
      },
      health: () => {
        const q = queue.stats();
        return { queue: { requests: q.kingcobra, tcpClients: q.tcpClients } };
      },
      close: () => queue.close(),
    };
  },
  child(o) {
    const host = o.listenHost ?? '127.0.0.1';
    // the secret by environment, never on the command line
    const env: Record<string, string> = {};
    if (o.secrets?.queue) env[SECRET_ENV.queue] = o.secrets.queue;
    return {
      args: [
        'queue',
        'serve',
        '--dir',
        join(o.stateDir, 'kingcobra'),
        '--listen',
        `${host}:${o.queuePort ?? QUEUE_PORT}`,
        '--zmq',
        o.zmq === false || o.zmq === undefined ? 'off' : o.zmq,
        '--handshake-timeout',
        String((o.handshakeTimeoutMs ?? 5_000) / 1000),
      ],
      env,
      // "listening tcp=HOST:PORT zmq=ENDPOINT|off dir=…"
      ready(line) {
        const m = /^listening tcp=(\S+) zmq=(\S+)/.exec(line);
        if (!m) return undefined;
        return { queue: m[1]!, ...(m[2] !== 'off' ? { zmq: m[2]! } : {}) };
      },
    };
  },
};
