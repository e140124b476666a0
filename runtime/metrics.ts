// Prometheus metrics (prom-client) and the /metrics + /health HTTP endpoint every service exposes.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { PortInUseError } from './port-in-use.ts';

export const registry = new Registry();
let defaultsOn = false;

/** Process metrics (RSS, event-loop lag, GC) once per process. */
export function enableProcessMetrics(): void {
  if (defaultsOn) return;
  defaultsOn = true;
  collectDefaultMetrics({ register: registry, prefix: 'virgo_' });
}

// Get-or-create: modules that are loaded twice (tests, several services in one process) share
// one metric instead of failing on re-registration.
export function counter<L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Counter<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

export function gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge<L>;
  return new Gauge({ name, help, labelNames, registers: [registry] });
}

export function histogram<L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  buckets?: number[],
): Histogram<L> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Histogram<L>;
  return new Histogram({ name, help, labelNames, registers: [registry], ...(buckets ? { buckets } : {}) });
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** More routes on the same server (the web dashboard): tried first, true when it answered. */
export interface HttpRoutes {
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** ends what it keeps open (event streams), so the server can close */
  close(): Promise<void>;
}

/**
 * Serves GET /metrics (Prometheus text) and GET /health (JSON from `health`, 503 when not ok), and
 * whatever `routes` answers (the dashboard at /).
 */
export async function serveMetrics(opts: {
  host?: string;
  port: number;
  health?: () => { ok: boolean; [k: string]: unknown };
  routes?: HttpRoutes;
}): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (opts.routes?.handle(req, res)) return;
    if (req.method === 'GET' && url.startsWith('/metrics')) {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`metrics failed: ${err.message}\n`);
        },
      );
    } else if (req.method === 'GET' && url.startsWith('/health')) {
      const h = opts.health ? opts.health() : { ok: true };
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(h)}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(opts.routes ? 'GET / (the dashboard), /metrics or /health\n' : 'GET /metrics or /health\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new PortInUseError('metrics', `${opts.host ?? '127.0.0.1'}:${opts.port}`, { cause: err })
          : err,
      ),
    );
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      await opts.routes?.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        // keep-alive connections idle between requests would hold close() open
        server.closeIdleConnections();
      });
    },
  };
}
