// The live web dashboard, served beside /metrics and /health (runtime/metrics.ts serveMetrics):
//   GET  /               the page (page/: plain HTML, CSS, JS; nothing fetched elsewhere)
//   GET  /events         Server-Sent Events: `snapshot` on connect, then `vars` (changed variables,
//                        every 250 ms at most), `stats` (rates, panels: every second), `flags` (what
//                        the gate says: pinned, clamped, held; when it changes)
//   GET  /api/state      the snapshot as JSON (curl, scripts)
//   POST /api/login      checks the secret; POST /api/pin {host,key,value}, /api/unpin {host,key}
// Reads need no secret; writes need the configured one (guard.ts). Every value is untrusted text:
// it travels as JSON and the page puts it in the DOM as text only, never as markup.
// Time: processing time (this process's wall clock) paces the pushes and stamps the samples.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { createLogger } from '../../runtime/log.ts';
import { counter, gauge, type HttpRoutes } from '../../runtime/metrics.ts';
import { type Refusal, RequestGuard } from './guard.ts';
import type { DashboardModel, VariableRow } from './model.ts';
import { type Rate, RateSampler } from './rates.ts';

const log = createLogger('dashboard');

const mClients = gauge('virgo_dashboard_clients', 'browsers following the dashboard (SSE)');
const mDropped = counter('virgo_dashboard_clients_dropped_total', 'dashboard event streams ended by us', [
  'reason',
]);
const mRefused = counter('virgo_dashboard_refused_total', 'dashboard requests refused, by reason', [
  'reason',
]);
const mPins = counter('virgo_dashboard_pins_total', 'pins and unpins made through the dashboard', ['op']);

/** What the gate says of a variable (learners' VariableState, structurally). */
export interface GateFlags {
  host: string;
  key: string;
  learner: string;
  model: string;
  pinned: boolean;
  clamped?: { from: number; min: number | undefined; max: number | undefined };
  held?: { value: string; since: number; dwellMs: number };
}

export type PanelValue = string | number | boolean | null;

/** Pins where the learners run in this process. */
export interface PinControl {
  pin(host: string, key: string, value: string): Promise<unknown>;
  unpin(host: string, key: string): Promise<boolean>;
}

/** What this process can tell the dashboard; each part optional (a --split child knows little). */
export interface DashboardSources {
  /** shown in the header: e.g. { command: 'virgo up', mode: 'embedded', source: 'demo' } */
  meta?(): Record<string, string>;
  /** hosts of the device models: listed after the kernel hosts, folded */
  deviceHosts?: readonly string[];
  /** the gate's view, read every second */
  states?(): GateFlags[];
  /** named groups of figures (ring buffer, feeder, queue, …), read every second */
  panels?(): Record<string, Record<string, PanelValue>>;
  pins?: PinControl;
}

export interface DashboardOptions {
  model: DashboardModel;
  registry: Registry;
  sources?: DashboardSources;
  /** writes (pins) need it; without it the dashboard is read-only */
  secret?: string;
  /** browsers followed at once (default 32) */
  maxClients?: number;
  /** bytes queued for one browser before its stream is ended (it reconnects; default 1 MiB) */
  maxClientBuffer?: number;
  /** ms between two pushes of changed variables (default 250) */
  pushMs?: number;
  /** ms between two stats (default 1000) */
  statsMs?: number;
  now?: () => number;
}

const PAGE_DIR = new URL('./page/', import.meta.url);
const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
  '/dashboard.css': { file: 'dashboard.css', type: 'text/css; charset=utf-8' },
};

// Only this origin's own files run; no inline script or style, no frames, no other origins.
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'cross-origin-resource-policy': 'same-origin',
};

const MAX_BODY = 4096;

export class Dashboard implements HttpRoutes {
  private readonly guard: RequestGuard;
  private readonly rates: RateSampler;
  private readonly files = new Map<string, Buffer>();
  private readonly clients = new Set<ServerResponse>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly now: () => number;
  private flagsJson = '';
  private flags: GateFlags[] = [];
  private panels: Record<string, Record<string, PanelValue>> = {};
  private closed = false;

  constructor(private readonly opts: DashboardOptions) {
    this.guard = new RequestGuard(opts.secret);
    this.rates = new RateSampler(opts.registry);
    this.now = opts.now ?? Date.now;
    for (const { file } of Object.values(STATIC)) {
      if (!this.files.has(file)) this.files.set(file, readFileSync(new URL(file, PAGE_DIR)));
    }
  }

  /** Starts the pushes; the first stats sample is taken at once. */
  start(): this {
    const push = setInterval(() => this.pushVariables(), this.opts.pushMs ?? 250);
    const stats = setInterval(() => void this.pushStats(), this.opts.statsMs ?? 1000);
    const ping = setInterval(() => this.broadcast(': ping\n\n'), 15_000);
    for (const t of [push, stats, ping]) {
      t.unref();
      this.timers.push(t);
    }
    void this.pushStats();
    return this;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const res of this.clients) res.end();
    this.clients.clear();
    mClients.set(0);
  }

  /** Whether the pins can be made here: a secret is configured and the learners run here. */
  get writable(): boolean {
    return this.guard.secretConfigured && this.opts.sources?.pins !== undefined;
  }

  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '/').split('?')[0]!;
    const isStatic = path in STATIC;
    if (!isStatic && path !== '/events' && !path.startsWith('/api/')) return false;
    const bad = this.guard.checkHost(req);
    if (bad) {
      this.refuse(res, bad);
      return true;
    }
    if (req.method === 'GET' && isStatic) {
      const s = STATIC[path]!;
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': s.type });
      res.end(this.files.get(s.file));
    } else if (req.method === 'GET' && path === '/events') {
      this.follow(req, res);
    } else if (req.method === 'GET' && path === '/api/state') {
      this.json(res, 200, this.snapshot());
    } else if (req.method === 'POST' && ['/api/login', '/api/pin', '/api/unpin'].includes(path)) {
      void this.write(req, res, path);
    } else {
      res.writeHead(405, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8' });
      res.end('GET /, /events, /api/state; POST /api/login, /api/pin, /api/unpin\n');
    }
    return true;
  }

  /** What a new browser starts from. */
  snapshot(): {
    meta: Record<string, string>;
    deviceHosts: readonly string[];
    writable: boolean;
    secretConfigured: boolean;
    pinsHere: boolean;
    historyPoints: number;
    maxVariables: number;
    variables: VariableRow[];
    flags: GateFlags[];
    stats: ReturnType<Dashboard['stats']>;
  } {
    return {
      meta: this.opts.sources?.meta?.() ?? {},
      deviceHosts: this.opts.sources?.deviceHosts ?? [],
      writable: this.writable,
      secretConfigured: this.guard.secretConfigured,
      pinsHere: this.opts.sources?.pins !== undefined,
      historyPoints: this.opts.model.historyPoints,
      maxVariables: this.opts.model.maxVariables,
      variables: this.opts.model.snapshot(),
      flags: this.flags,
      stats: this.stats(this.rates.latest()),
    };
  }

  private stats(rates: Rate[]) {
    return {
      at: this.now(),
      rates,
      panels: this.panels,
      variables: this.opts.model.size,
      refused: this.opts.model.refused,
      browsers: this.clients.size,
    };
  }

  private follow(req: IncomingMessage, res: ServerResponse): void {
    if (this.closed || this.clients.size >= (this.opts.maxClients ?? 32)) {
      mRefused.inc({ reason: 'max-clients' });
      res.writeHead(503, {
        ...SECURITY_HEADERS,
        'content-type': 'text/plain; charset=utf-8',
        'retry-after': '5',
      });
      res.end('too many dashboards open\n');
      return;
    }
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      connection: 'keep-alive',
    });
    // the browser reconnects by itself after 2 s, and gets a fresh snapshot
    res.write('retry: 2000\n\n');
    this.clients.add(res);
    mClients.set(this.clients.size);
    req.on('close', () => {
      this.clients.delete(res);
      mClients.set(this.clients.size);
    });
    this.send(res, 'snapshot', this.snapshot());
  }

  private send(res: ServerResponse, event: string, data: unknown): void {
    // JSON.stringify escapes CR and LF: one data line, whatever a value holds
    this.write1(res, `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private write1(res: ServerResponse, chunk: string): void {
    if (res.writableEnded) return;
    res.write(chunk);
    // A browser that does not read (a background tab, a stalled link) must not grow our memory.
    if (res.writableLength > (this.opts.maxClientBuffer ?? 1 << 20)) {
      mDropped.inc({ reason: 'slow-reader' });
      log.warn('ending a dashboard stream that does not keep up; the browser reconnects', {
        queued: res.writableLength,
      });
      this.clients.delete(res);
      mClients.set(this.clients.size);
      res.destroy();
    }
  }

  private broadcast(chunk: string): void {
    for (const res of [...this.clients]) this.write1(res, chunk);
  }

  private pushVariables(): void {
    const changes = this.opts.model.takeChanges();
    if (changes.length === 0 || this.clients.size === 0) return;
    this.broadcast(`event: vars\ndata: ${JSON.stringify(changes)}\n\n`);
  }

  private async pushStats(): Promise<void> {
    try {
      const s = this.opts.sources;
      this.panels = s?.panels?.() ?? {};
      // only what the page shows: the gate may know many more variables than the model holds
      const model = this.opts.model;
      const flags = (s?.states?.() ?? []).filter((f) => model.has(f.host, f.key));
      const json = JSON.stringify(flags);
      if (json !== this.flagsJson) {
        this.flagsJson = json;
        this.flags = flags;
        this.broadcast(`event: flags\ndata: ${json}\n\n`);
      }
      const rates = await this.rates.sample(this.now());
      this.broadcast(`event: stats\ndata: ${JSON.stringify(this.stats(rates))}\n\n`);
    } catch (err) {
      log.warn('dashboard stats failed; retrying next second', { err });
    }
  }

  private async write(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const bad = this.guard.checkWrite(req);
    if (bad) {
      req.resume();
      this.refuse(res, bad);
      return;
    }
    let body: Record<string, unknown>;
    try {
      body = await readJson(req);
    } catch (err) {
      this.refuse(res, {
        status: (err as { status?: number }).status ?? 400,
        reason: 'body',
        error: (err as Error).message,
      });
      return;
    }
    if (path === '/api/login') {
      this.json(res, 200, { writable: this.writable, pinsHere: this.opts.sources?.pins !== undefined });
      return;
    }
    const pins = this.opts.sources?.pins;
    if (!pins) {
      this.refuse(res, {
        status: 409,
        reason: 'no-pins',
        error:
          'no learners run in this process: pin where they run (virgo up, virgo learn) or with `virgo pin`',
      });
      return;
    }
    const host = body.host;
    const key = body.key;
    const value = body.value;
    if (
      typeof host !== 'string' ||
      typeof key !== 'string' ||
      (path === '/api/pin' && typeof value !== 'string')
    ) {
      this.refuse(res, {
        status: 400,
        reason: 'body',
        error: 'expected {"host": "…", "key": "…", "value": "…"}',
      });
      return;
    }
    try {
      if (path === '/api/pin') {
        const v = await pins.pin(host, key, value as string);
        mPins.inc({ op: 'pin' });
        log.info('pinned from the dashboard', { variable: `${host}/${key}`, value });
        this.json(res, 200, { pinned: v });
      } else {
        const had = await pins.unpin(host, key);
        mPins.inc({ op: 'unpin' });
        log.info('unpinned from the dashboard', { variable: `${host}/${key}`, had });
        this.json(res, 200, { unpinned: had });
      }
    } catch (err) {
      // a value the declaration refuses (PinValueError …): the operator's mistake, said plainly
      this.refuse(res, { status: 400, reason: 'value', error: (err as Error).message });
    }
  }

  private refuse(res: ServerResponse, r: Refusal): void {
    mRefused.inc({ reason: r.reason });
    this.json(res, r.status, { error: r.error }, r.headers);
  }

  private json(
    res: ServerResponse,
    status: number,
    data: unknown,
    headers: Record<string, string> = {},
  ): void {
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      ...headers,
      'content-type': 'application/json; charset=utf-8',
    });
    res.end(`${JSON.stringify(data)}\n`);
  }
}

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        // the rest is read and dropped; the answer goes out at once
        req.removeAllListeners('end');
        reject(Object.assign(new Error(`body over ${MAX_BODY} bytes`), { status: 413 }));
      } else chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        const v = text === '' ? {} : (JSON.parse(text) as unknown);
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
        resolve(v as Record<string, unknown>);
      } catch {
        reject(Object.assign(new Error('the body is not a JSON object'), { status: 400 }));
      }
    });
  });
}
