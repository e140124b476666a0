// The VIRGO queue's telnet-compatible port (:60000 by default): one request per line, one reply
// line per request, in order. The runtime LineServer bounds line length, clients and output and
// drops a client that sends an overlong or binary line (the server and other clients go on).
import { LineServer, type ListenOptions } from '../runtime/line-server.ts';
import type { KingCobra } from './kingcobra.ts';

export type TcpFrontOptions = ListenOptions;

export interface TcpFront {
  readonly server: LineServer;
  readonly port: number;
  /** stops the port once every reply owed has been written */
  close(): Promise<void>;
}

export async function startTcpFront(kc: KingCobra, opts: TcpFrontOptions): Promise<TcpFront> {
  // Lines whose reply is not written yet: close() waits for them, so a request that was in
  // flight at shutdown still gets its answer.
  let owed = 0;
  let settled: (() => void) | undefined;
  const server = new LineServer({
    name: 'kingcobra',
    host: opts.host ?? '127.0.0.1',
    port: opts.port,
    maxLineBytes: opts.maxLineBytes ?? 4096,
    maxClients: opts.maxClients ?? 1024,
    idleTimeoutMs: opts.idleTimeoutMs ?? 0,
    ...(opts.allow ? { allow: opts.allow } : {}),
    ...(opts.secret ? { secret: opts.secret } : {}),
    ...(opts.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.handshakeTimeoutMs } : {}),
    ...(opts.maxPending !== undefined ? { maxPending: opts.maxPending } : {}),
    // The reply is awaited here so a client that half-closes after its last line (nc -N) still
    // gets every reply: the LineServer ends a connection only once its lines are handled.
    onLine: async (client, line) => {
      if (line.trim() === '') {
        client.send('ERROR empty request; send one payload per line');
        return;
      }
      owed++;
      try {
        const o = await kc.request(line, client.remote, `tcp:${client.id}`, 'tcp');
        client.send(o.line);
      } finally {
        if (--owed === 0) settled?.();
      }
    },
  });
  await server.listen();
  return {
    server,
    port: server.port,
    async close() {
      if (owed > 0) {
        await new Promise<void>((r) => {
          settled = r;
        });
      }
      await server.close();
    },
  };
}
