// KingCobra: the request/reply core behind every front (TCP :60000, ZeroMQ, in-process submit).
// A request gets an id and a `<client>:<sec>:<nsec>` timestamp, is appended to the segment log
// (accepted only once durable), then handled by a bounded pool of workers, FIFO per client;
// the reply is appended too before it goes back. Past `maxQueue` requests in flight a request
// is refused at once with a BUSY line: nothing is persisted, nothing hangs.
import { createLogger } from '../runtime/log.ts';
import type { KingCobraMessage } from '../schemas/index.ts';
import { type Clock, createClock, createIdSource, formatTs } from './clock.ts';
import { countRequest, inflight as inflightGauge } from './metrics.ts';
import type { SegmentLog } from './segment-log.ts';

const log = createLogger('kingcobra');

/** Services one request; the string is the reply text (one line; CR/LF become spaces). */
export type Handler = (req: KingCobraMessage) => Promise<string>;

/** What the original kernel service answered to every request. */
export const ORIGINAL_REPLY_TEXT = ':--- from kingcobra_servicerequest_kernelspace() to client';
export const defaultHandler: Handler = async () => ORIGINAL_REPLY_TEXT;

export interface KingCobraOptions {
  /** requests handled at once (default 4) */
  workers?: number;
  /** requests in flight (persisting, waiting, handled, replying) before BUSY (default 1024) */
  maxQueue?: number;
  handler?: Handler;
  /** a handler slower than this gets an error reply (default 30 s) */
  handlerTimeoutMs?: number;
  clock?: Clock;
}

export type Outcome =
  | {
      status: 'replied';
      id: string;
      /** `<client>:<sec>:<nsec>` of the request */
      ts: string;
      offset: number;
      /** the handler's text */
      reply: string;
      /** `REPLY#<id>#<ts> <reply>`, what goes back on the wire */
      line: string;
      /** where the reply record landed; null when it could not be persisted */
      replyOffset: number | null;
    }
  | { status: 'busy'; line: string }
  | { status: 'not-queued'; id: string; ts: string; line: string; error: Error };

export interface KingCobraStats {
  inflight: number;
  accepted: number;
  replied: number;
  busy: number;
  notQueued: number;
  handlerErrors: number;
  replyNotPersisted: number;
  recovered: number;
  clients: number;
}

/** A fixed number of slots, handed over in arrival order. */
class Workers {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly size: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active < this.size) this.active++;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/** One line of printable text: a reply must not break the line protocol. */
export function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

export class KingCobra {
  private readonly workers: Workers;
  private readonly maxQueue: number;
  private readonly handler: Handler;
  private readonly handlerTimeoutMs: number;
  private readonly clock: Clock;
  private readonly nextId = createIdSource();
  private readonly chains = new Map<string, { tail: Promise<unknown>; n: number }>();
  private inflight = 0;
  private closing = false;
  private idleWaiters: (() => void)[] = [];
  private readonly counts = {
    accepted: 0,
    replied: 0,
    busy: 0,
    notQueued: 0,
    handlerErrors: 0,
    replyNotPersisted: 0,
    recovered: 0,
  };

  constructor(
    readonly log: SegmentLog,
    opts: KingCobraOptions = {},
  ) {
    this.workers = new Workers(Math.max(1, opts.workers ?? 4));
    this.maxQueue = Math.max(1, opts.maxQueue ?? 1024);
    this.handler = opts.handler ?? defaultHandler;
    this.handlerTimeoutMs = opts.handlerTimeoutMs ?? 30_000;
    this.clock = opts.clock ?? createClock();
  }

  /**
   * Queues one request of `clientKey` (FIFO per key: a connection, a ZeroMQ peer, a device).
   * Never rejects: the outcome says replied, busy or not queued.
   */
  request(payload: string, clientAddr: string, clientKey: string, front: string): Promise<Outcome> {
    if (this.closing || this.inflight >= this.maxQueue) {
      this.counts.busy++;
      countRequest(front, 'busy');
      const line = this.closing
        ? 'BUSY the queue is shutting down; try again later'
        : `BUSY ${this.inflight} requests in flight (limit ${this.maxQueue}); try again later`;
      return Promise.resolve({ status: 'busy', line });
    }
    const t = this.clock();
    const req: KingCobraMessage = {
      id: this.nextId(),
      kind: 'REQUEST',
      clientAddr,
      ts_sec: t.sec,
      ts_nsec: t.nsec,
      payload,
      inReplyTo: null,
    };
    return this.pipeline(req, this.log.append(req), clientKey, front);
  }

  private pipeline(
    req: KingCobraMessage,
    persisted: Promise<{ offset: number }>,
    clientKey: string,
    front: string,
  ): Promise<Outcome> {
    // The chain reaches `persisted` later; mark it handled now so a rejection is not "unhandled".
    persisted.catch(() => {});
    this.inflight++;
    inflightGauge.inc();
    const ts = formatTs(req.clientAddr, { sec: req.ts_sec, nsec: req.ts_nsec });
    let chain = this.chains.get(clientKey);
    if (!chain) {
      chain = { tail: Promise.resolve(), n: 0 };
      this.chains.set(clientKey, chain);
    }
    const c = chain;
    c.n++;
    // Handling is FIFO per client; persisting the reply is not on the chain, so one client's
    // replies are group-committed together rather than one fdatasync each.
    const handled = c.tail.then(async () => {
      const { offset } = await persisted;
      this.counts.accepted++;
      const reply = await this.workers.run(() => this.handle(req));
      return { offset, reply };
    });
    c.tail = handled.catch(() => {});
    const outcome = handled.then(
      async ({ offset, reply }): Promise<Outcome> => {
        const rt = this.clock();
        const rec: KingCobraMessage = {
          id: this.nextId(),
          kind: 'REPLY',
          clientAddr: req.clientAddr,
          ts_sec: rt.sec,
          ts_nsec: rt.nsec,
          payload: reply,
          inReplyTo: req.id,
        };
        let replyOffset: number | null = null;
        try {
          replyOffset = (await this.log.append(rec)).offset;
        } catch (err) {
          // The request is durable and was handled; the client still gets its reply.
          this.counts.replyNotPersisted++;
          log.error('reply not persisted', { id: req.id, err });
        }
        this.counts.replied++;
        countRequest(front, 'replied');
        return {
          status: 'replied',
          id: req.id,
          ts,
          offset,
          reply,
          line: `REPLY#${req.id}#${ts} ${reply}`,
          replyOffset,
        };
      },
      (err: Error): Outcome => {
        this.counts.notQueued++;
        countRequest(front, 'not-queued');
        log.warn('request not queued', { id: req.id, err: err.message });
        return {
          status: 'not-queued',
          id: req.id,
          ts,
          error: err,
          line: `ERROR#${req.id}#${ts} not queued: ${oneLine(err.message)}`,
        };
      },
    );
    return outcome.finally(() => {
      this.inflight--;
      inflightGauge.dec();
      if (--c.n === 0 && this.chains.get(clientKey) === c) this.chains.delete(clientKey);
      if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  private async handle(req: KingCobraMessage): Promise<string> {
    try {
      const text = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`handler timed out after ${this.handlerTimeoutMs} ms`)),
          this.handlerTimeoutMs,
        );
        const done = () => clearTimeout(timer);
        Promise.resolve()
          .then(() => this.handler(req))
          .then(
            (v) => {
              done();
              resolve(v);
            },
            (err: unknown) => {
              done();
              reject(err);
            },
          );
      });
      if (typeof text !== 'string') throw new Error(`handler returned ${typeof text}, not a string`);
      return oneLine(text);
    } catch (err) {
      this.counts.handlerErrors++;
      log.warn('handler failed', { id: req.id, err });
      return `error: ${oneLine((err as Error).message ?? String(err))}`;
    }
  }

  /**
   * After a crash: requests of the last `window` records that are durable but have no reply
   * are handled again (their replies persisted; the client that sent them is gone). Imported
   * legacy records are history, not work, and are left alone. Returns how many were queued.
   */
  async recoverPending(window = 100_000): Promise<number> {
    const from = Math.max(this.log.firstOffset, this.log.nextOffset - window);
    const open = new Map<string, { offset: number; req: KingCobraMessage }>();
    // A salvaged request (virgo queue salvage) lands after its reply: match them in any order.
    const replied = new Set<string>();
    for await (const { offset, message } of this.log.read({ fromOffset: from })) {
      if (message.kind === 'REQUEST') {
        if (!message.id.startsWith('legacy-') && !replied.has(message.id))
          open.set(message.id, { offset, req: message });
      } else if (message.inReplyTo) {
        open.delete(message.inReplyTo);
        replied.add(message.inReplyTo);
      }
    }
    for (const { offset, req } of open.values()) {
      this.counts.recovered++;
      void this.pipeline(req, Promise.resolve({ offset }), `recovered:${req.clientAddr}`, 'recovery');
    }
    if (open.size > 0) log.info('re-handling requests that had no reply', { count: open.size });
    return open.size;
  }

  /** Refuses new requests (BUSY) and waits up to `timeoutMs` for those in flight. */
  async drain(timeoutMs = 10_000): Promise<boolean> {
    this.closing = true;
    if (this.inflight === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = await Promise.race([
      new Promise<boolean>((r) => this.idleWaiters.push(() => r(true))),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!idle) log.warn('requests still in flight at shutdown', { inflight: this.inflight });
    return idle;
  }

  stats(): KingCobraStats {
    return { inflight: this.inflight, clients: this.chains.size, ...this.counts };
  }
}
