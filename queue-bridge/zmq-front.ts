// ZeroMQ ROUTER in front of KingCobra (the original's router-dealer pattern): DEALER clients send
// one request per message and may keep many in flight; each peer's replies come back in the
// order of its requests. REQ clients work too (their empty delimiter frame is echoed back).
// ZeroMQ itself persists nothing: a request counts as accepted only once the segment log has it.
import type { Router } from 'zeromq';
import { createLogger } from '../runtime/log.ts';
import type { KingCobra, Outcome } from './kingcobra.ts';
import { countRequest } from './metrics.ts';
import { checkPayload } from './payload.ts';

const log = createLogger('kingcobra.zmq');

export interface ZmqFront {
  /** the bound endpoint, with the real port when bound to port 0 or `*` */
  readonly endpoint: string;
  close(): Promise<void>;
}

/** A printable routing id as is (clients that set one), else hex (ZeroMQ's generated ids). */
function peerName(id: Buffer): string {
  return /^[\x21-\x7e]{1,64}$/.test(id.toString('latin1')) ? id.toString('latin1') : id.toString('hex');
}

export async function startZmqFront(
  kc: KingCobra,
  endpoint: string,
  opts: { maxRequestBytes?: number } = {},
): Promise<ZmqFront> {
  const zmq = await import('zeromq');
  const maxBytes = opts.maxRequestBytes ?? 4096;
  const router: Router = new zmq.Router({
    linger: 1000,
    receiveHighWaterMark: 10_000,
    sendHighWaterMark: 10_000,
  });
  // libzmq spells "any port" as `*`; port 0 is accepted here too.
  const bindTo = endpoint.replace(/:0$/, ':*');
  try {
    await router.bind(bindTo);
  } catch (err) {
    router.close();
    throw new Error(
      `kingcobra: cannot bind ZeroMQ ${endpoint}: ${(err as Error).message}` +
        ' (choose another with --zmq, or --zmq off)',
    );
  }
  const bound = router.lastEndpoint ?? endpoint;
  const peers = new Map<string, { tail: Promise<void>; n: number }>();
  let sending: Promise<void> = Promise.resolve();
  let closing = false;

  const send = (frames: Buffer[]): void => {
    // One send at a time on a socket; a ROUTER never blocks (unroutable replies are dropped).
    sending = sending.then(
      () => router.send(frames),
      () => router.send(frames),
    );
    sending.catch((err: unknown) => {
      if (!closing) log.warn('reply not sent', { err });
    });
  };

  const onMessage = (frames: Buffer[]): void => {
    const [rid, ...rest] = frames;
    if (!rid) return;
    const delimited = rest.length >= 2 && rest[0]!.length === 0;
    const envelope = delimited ? [rid, Buffer.alloc(0)] : [rid];
    const body = delimited ? rest.slice(1) : rest;
    const key = rid.toString('hex');
    let result: Promise<Outcome | { status: 'invalid'; line: string }>;
    const check = body.length === 1 ? checkPayload(body[0]!, maxBytes) : undefined;
    if (!check?.ok) {
      const why = check && !check.ok ? check.error : `${body.length} frames; send one request per message`;
      countRequest('zmq', 'invalid');
      log.warn('bad request', { peer: peerName(rid), reason: why });
      result = Promise.resolve({ status: 'invalid', line: `ERROR bad request: ${why}` });
    } else {
      result = kc.request(check.text, `zmq:${peerName(rid)}`, `zmq:${key}`, 'zmq');
    }
    // Replies leave in request order per peer, busy and error lines included.
    let p = peers.get(key);
    if (!p) {
      p = { tail: Promise.resolve(), n: 0 };
      peers.set(key, p);
    }
    const peer = p;
    peer.n++;
    peer.tail = peer.tail
      .then(() => result)
      .then((o) => send([...envelope, Buffer.from(o.line)]))
      .finally(() => {
        if (--peer.n === 0 && peers.get(key) === peer) peers.delete(key);
      });
  };

  const loop = (async () => {
    try {
      for await (const frames of router) onMessage(frames as Buffer[]);
    } catch (err) {
      if (!closing) log.error('ZeroMQ receive loop stopped', { err });
    }
  })();
  log.info('listening', { endpoint: bound });

  return {
    endpoint: bound,
    async close() {
      closing = true;
      await Promise.all([...peers.values()].map((p) => p.tail.catch(() => {})));
      await sending.catch(() => {});
      router.close();
      await loop;
    },
  };
}
