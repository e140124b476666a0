// ZeroMQ ROUTER in front of KingCobra (the original's router-dealer pattern): DEALER clients send
// one request per message and may keep many in flight; each peer's replies come back in the
// order of its requests. REQ clients work too (their empty delimiter frame is echoed back).
// ZeroMQ itself persists nothing: a request counts as accepted only once the segment log has it.
//
// Authentication is ZeroMQ's own (ZAP, RFC 27), so a peer that fails it never gets a message into
// the ROUTER: with a secret the socket is a PLAIN server and a ZAP handler (in the socket's own
// context) accepts a handshake only when the password is the secret (any user name; "virgo" by
// convention) and, with an allowlist, the peer address is listed. The same secret as the text
// port, so one secret covers both; like the text port's AUTH line it crosses the wire in clear
// (tunnel it, or keep the port on 127.0.0.1, where the network cannot see it).
import type { Context, Reply, Router } from 'zeromq';
import { createLogger } from '../runtime/log.ts';
import { counter } from '../runtime/metrics.ts';
import { isPortInUse, PortInUseError } from '../runtime/port-in-use.ts';
import { secretDigest, secretMatches } from '../runtime/secret.ts';
import type { KingCobra, Outcome } from './kingcobra.ts';
import { countRequest } from './metrics.ts';
import { checkPayload } from './payload.ts';

const log = createLogger('kingcobra.zmq');
const handshakes = counter('virgo_zmq_handshakes_total', 'ZeroMQ handshakes judged by ZAP, by outcome', [
  'outcome',
]);

/** The ZAP domain the ROUTER asks its handler about. */
export const ZAP_DOMAIN = 'virgo-queue';

export interface ZmqFrontOptions {
  maxRequestBytes?: number;
  /** peers must authenticate with PLAIN, password = this secret */
  secret?: string;
  /** peer addresses allowed to connect (exact match); empty/absent: all */
  allow?: string[];
  /** a connection whose ZMTP handshake (authentication included) takes longer is closed (default 5 s) */
  handshakeTimeoutMs?: number;
}

export interface ZmqFront {
  /** the bound endpoint, with the real port when bound to port 0 or `*` */
  readonly endpoint: string;
  close(): Promise<void>;
}

/** A printable routing id as is (clients that set one), else hex (ZeroMQ's generated ids). */
function peerName(id: Buffer): string {
  return /^[\x21-\x7e]{1,64}$/.test(id.toString('latin1')) ? id.toString('latin1') : id.toString('hex');
}

/**
 * Answers the ZAP requests of one context (RFC 27: version, request id, domain, address, routing
 * id, mechanism, credentials) until the socket is closed.
 */
async function serveZap(zap: Reply, opts: ZmqFrontOptions): Promise<void> {
  const digest = opts.secret ? secretDigest(opts.secret) : undefined;
  const allow = opts.allow && opts.allow.length > 0 ? opts.allow : undefined;
  for await (const frames of zap) {
    const [version, requestId, domain, address, , mechanism, ...credentials] = frames as Buffer[];
    const text = (b: Buffer | undefined) => b?.toString('utf8') ?? '';
    let status = '200';
    let why = 'OK';
    let user = '';
    if (text(version) !== '1.0') {
      status = '500';
      why = 'unsupported ZAP version';
    } else if (text(domain) !== ZAP_DOMAIN) {
      status = '400';
      why = 'unknown domain';
    } else if (allow && !allow.includes(normaliseAddr(text(address)))) {
      status = '400';
      why = 'address not allowed';
    } else if (digest) {
      const [username, password] = credentials;
      if (text(mechanism) !== 'PLAIN' || !password || !secretMatches(digest, password)) {
        status = '400';
        why = 'PLAIN password must be the secret';
      } else {
        user = text(username);
      }
    }
    const outcome = status === '200' ? 'accepted' : 'refused';
    handshakes.inc({ outcome });
    if (outcome === 'refused') log.warn('handshake refused', { address: text(address), reason: why });
    await zap.send([version ?? '1.0', requestId ?? '', status, why, user, '']);
  }
}

function normaliseAddr(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export async function startZmqFront(
  kc: KingCobra,
  endpoint: string,
  opts: ZmqFrontOptions = {},
): Promise<ZmqFront> {
  const zmq = await import('zeromq');
  const maxBytes = opts.maxRequestBytes ?? 4096;
  const guarded = !!opts.secret || (opts.allow?.length ?? 0) > 0;
  // A context of its own: libzmq has one ZAP handler per context (inproc://zeromq.zap.01), and
  // another ROUTER in this process (a test, a second queue) must not be judged by this one.
  let context: Context | undefined;
  let zap: Reply | undefined;
  let zapLoop: Promise<void> = Promise.resolve();
  if (guarded) {
    context = new zmq.Context({ blocky: false });
    zap = new zmq.Reply({ context, linger: 0 });
    await zap.bind('inproc://zeromq.zap.01');
    const z = zap;
    zapLoop = serveZap(z, opts).catch((err: unknown) => {
      if (!z.closed) log.error('ZAP handler stopped; no peer can authenticate', { err });
    });
  }
  const router: Router = new zmq.Router({
    ...(context ? { context } : {}),
    linger: 1000,
    receiveHighWaterMark: 10_000,
    sendHighWaterMark: 10_000,
    handshakeInterval: opts.handshakeTimeoutMs ?? 5_000,
    // with NULL security ZAP is asked only when a domain is set (the allowlist case)
    ...(guarded ? { zapDomain: ZAP_DOMAIN, zapEnforceDomain: true } : {}),
    ...(opts.secret ? { plainServer: true } : {}),
  });
  // libzmq spells "any port" as `*`; port 0 is accepted here too.
  const bindTo = endpoint.replace(/:0$/, ':*');
  try {
    await router.bind(bindTo);
  } catch (err) {
    router.close();
    zap?.close();
    // a taken port: the command names its flag (runtime/port-in-use.ts)
    if (isPortInUse(err)) throw new PortInUseError('kingcobra ZeroMQ', endpoint, { cause: err });
    throw new Error(`kingcobra: cannot bind ZeroMQ ${endpoint}: ${(err as Error).message}`, { cause: err });
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
  log.info('listening', {
    endpoint: bound,
    auth: opts.secret ? 'PLAIN (password = the secret)' : 'none',
    ...(opts.allow?.length ? { allow: opts.allow } : {}),
  });

  return {
    endpoint: bound,
    async close() {
      closing = true;
      await Promise.all([...peers.values()].map((p) => p.tail.catch(() => {})));
      await sending.catch(() => {});
      router.close();
      await loop;
      zap?.close();
      await zapLoop;
    },
  };
}
