// The VIRGO queue service: KingCobra behind TCP :60000, a ZeroMQ ROUTER and an in-process
// submit() for device models, all writing one segment log.
import { createLogger } from '../runtime/log.ts';
import { NotQueuedError, QueueBusyError } from './errors.ts';
import { type Handler, KingCobra, type KingCobraStats } from './kingcobra.ts';
import { checkPayload } from './payload.ts';
import { QUEUE_PORT } from './ports.ts';
import { type LogStats, SegmentLog, type SegmentLogOptions } from './segment-log.ts';
import { startTcpFront, type TcpFront } from './tcp-front.ts';
import { startZmqFront, type ZmqFront } from './zmq-front.ts';

const log = createLogger('kingcobra.service');

export interface QueueServiceOptions {
  /** the segment-log directory */
  dir: string;
  /** the text port (default 127.0.0.1:60000); false: none */
  listen?: { host: string; port: number } | false;
  /** a ZeroMQ ROUTER endpoint such as tcp://127.0.0.1:60001; false or absent: none */
  zmq?: string | false;
  /** requests handled at once (default 4) */
  workers?: number;
  /** requests in flight before clients get BUSY (default 1024) */
  maxQueue?: number;
  handler?: Handler;
  handlerTimeoutMs?: number;
  /** longest request in bytes (a TCP line, a ZeroMQ message, a submit) (default 4096) */
  maxLineBytes?: number;
  maxClients?: number;
  idleTimeoutMs?: number;
  /**
   * when set, a TCP client's first line must be `AUTH <secret>` and a ZeroMQ peer must
   * authenticate with PLAIN, password = the secret
   */
  secret?: string;
  /** client addresses allowed to connect, TCP and ZeroMQ (exact match); empty or absent: all */
  allow?: string[];
  /** with a secret: time to authenticate before the connection is closed (default 5 s) */
  handshakeTimeoutMs?: number;
  /** with a secret: TCP connections waiting to authenticate, apart from maxClients (default 128) */
  maxPending?: number;
  /** re-handle durable requests that have no reply after a crash (default true) */
  recoverPending?: boolean;
  logOptions?: SegmentLogOptions;
  /** use this open log instead of opening `dir` */
  log?: SegmentLog;
}

export interface SubmitResult {
  id: string;
  /** `<client>:<sec>:<nsec>` */
  ts: string;
  /** the log offset of the request */
  offset: number;
  /** the handler's reply text */
  reply: string;
  /** the `REPLY#<id>#<ts> <reply>` line */
  line: string;
}

export interface QueueStats {
  kingcobra: KingCobraStats;
  log: LogStats;
  tcpClients: number;
}

export interface QueueService {
  /** the bound TCP port (0 without one) */
  readonly port: number;
  /** the bound ZeroMQ endpoint, undefined without one */
  readonly zmqEndpoint: string | undefined;
  readonly log: SegmentLog;
  /**
   * Sends one request in-process (device models: telemetry, replies) and resolves with the
   * reply once request and reply are durable. Throws QueueBusyError when the queue is full and
   * NotQueuedError when it could not be persisted.
   */
  submit(payload: string, clientAddr: string): Promise<SubmitResult>;
  stats(): QueueStats;
  /** stops taking requests, lets those in flight finish, closes sockets, flushes the log */
  close(): Promise<void>;
}

export async function startQueueService(opts: QueueServiceOptions): Promise<QueueService> {
  const ownLog = !opts.log;
  const segLog = opts.log ?? new SegmentLog(opts.dir, opts.logOptions);
  if (!segLog.isOpen) {
    const report = await segLog.open();
    log.info('segment log open', { dir: segLog.dir, ...report });
  }
  const maxLine = opts.maxLineBytes ?? 4096;
  const kc = new KingCobra(segLog, {
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    ...(opts.maxQueue !== undefined ? { maxQueue: opts.maxQueue } : {}),
    ...(opts.handler ? { handler: opts.handler } : {}),
    ...(opts.handlerTimeoutMs !== undefined ? { handlerTimeoutMs: opts.handlerTimeoutMs } : {}),
  });
  let tcp: TcpFront | undefined;
  let zmq: ZmqFront | undefined;
  try {
    if (opts.recoverPending !== false) await kc.recoverPending();
    const listen = opts.listen === undefined ? { host: '127.0.0.1', port: QUEUE_PORT } : opts.listen;
    if (listen) {
      tcp = await startTcpFront(kc, {
        host: listen.host,
        port: listen.port,
        maxLineBytes: maxLine,
        ...(opts.maxClients !== undefined ? { maxClients: opts.maxClients } : {}),
        ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
        ...(opts.secret ? { secret: opts.secret } : {}),
        ...(opts.allow?.length ? { allow: opts.allow } : {}),
        ...(opts.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.handshakeTimeoutMs } : {}),
        ...(opts.maxPending !== undefined ? { maxPending: opts.maxPending } : {}),
      });
    }
    if (opts.zmq) {
      zmq = await startZmqFront(kc, opts.zmq, {
        maxRequestBytes: maxLine,
        ...(opts.secret ? { secret: opts.secret } : {}),
        ...(opts.allow?.length ? { allow: opts.allow } : {}),
        ...(opts.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.handshakeTimeoutMs } : {}),
      });
    }
  } catch (err) {
    await tcp?.close();
    await zmq?.close();
    if (ownLog) await segLog.close();
    throw err;
  }

  let closed: Promise<void> | undefined;
  return {
    port: tcp?.port ?? 0,
    zmqEndpoint: zmq?.endpoint,
    log: segLog,
    async submit(payload, clientAddr) {
      const check = checkPayload(payload, maxLine);
      if (!check.ok) throw new TypeError(`kingcobra submit from ${clientAddr}: ${check.error}`);
      const o = await kc.request(check.text, clientAddr, `local:${clientAddr}`, 'local');
      if (o.status === 'busy') throw new QueueBusyError(o.line);
      if (o.status === 'not-queued') throw new NotQueuedError(o.line, { cause: o.error });
      return { id: o.id, ts: o.ts, offset: o.offset, reply: o.reply, line: o.line };
    },
    stats: () => ({ kingcobra: kc.stats(), log: segLog.stats(), tcpClients: tcp?.server.clientCount ?? 0 }),
    close() {
      closed ??= (async () => {
        // KingCobra first (new requests get BUSY, those in flight finish), then the fronts once
        // they have written the replies they owe, then the log.
        await kc.drain();
        await tcp?.close();
        await zmq?.close();
        if (ownLog) await segLog.close();
        log.info('closed', { ...kc.stats() });
      })();
      return closed;
    },
  };
}
