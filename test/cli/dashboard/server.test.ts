// The dashboard's HTTP side, over real sockets: the page and its event stream, and who may write.
// Reads are open (to requests addressed to this server); pins need the secret, sent by this
// origin as JSON with a bearer header: cross-origin, form-encoded, unauthenticated, oversized and
// repeated wrong-secret requests are refused with a reason, and nothing is pinned.
import { request } from 'node:http';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBus, TOPICS } from '../../../bus/index.ts';
import { followAnalytics } from '../../../cli/dashboard/follow.ts';
import { DashboardModel } from '../../../cli/dashboard/model.ts';
import { Dashboard, type DashboardSources } from '../../../cli/dashboard/server.ts';
import { type MetricsServer, serveMetrics } from '../../../runtime/metrics.ts';
import { type AnalyticsVariable, codecFor } from '../../../schemas/index.ts';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(
  port: number,
  opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.headers ?? {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Server-Sent Events of GET /events, as `{ event, data }`, until `until` returns true. */
function events(
  port: number,
  until: (e: { event: string; data: unknown }, all: { event: string; data: unknown }[]) => boolean,
): Promise<{ event: string; data: unknown }[]> {
  return new Promise((resolve, reject) => {
    const seen: { event: string; data: unknown }[] = [];
    const req = request({ host: '127.0.0.1', port, path: '/events' }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!ev || data === undefined) continue;
          const e = { event: ev, data: JSON.parse(data) as unknown };
          seen.push(e);
          if (until(e, seen)) {
            req.destroy();
            resolve(seen);
            return;
          }
        }
      });
    });
    req.on('error', (err) => {
      if (!req.destroyed) reject(err);
    });
    req.end();
  });
}

const variable = (host: string, key: string, value: string): AnalyticsVariable => ({
  host,
  key,
  value,
  why: 'window=60s blocks=12',
  learner: 'ufw',
  model: 'ufw-exact@1',
  confidence: 1,
  ts: 1_700_000_000_000,
  type: 'float',
  unit: 'blocks/min',
});

let open: { dash: Dashboard; srv: MetricsServer }[] = [];
afterEach(async () => {
  for (const o of open) await o.srv.close();
  open = [];
});

async function serve(opts: { secret?: string; sources?: DashboardSources; model?: DashboardModel } = {}) {
  const model = opts.model ?? new DashboardModel();
  const dash = new Dashboard({
    model,
    registry: new Registry(),
    pushMs: 20,
    statsMs: 50,
    ...(opts.secret ? { secret: opts.secret } : {}),
    ...(opts.sources ? { sources: opts.sources } : {}),
  }).start();
  const srv = await serveMetrics({ port: 0, routes: dash });
  open.push({ dash, srv });
  return { model, dash, port: srv.port };
}

function pinRecorder() {
  const calls: string[] = [];
  const sources: DashboardSources = {
    pins: {
      pin: async (host, key, value) => {
        if (value === 'bad') throw new Error(`cannot pin ${host}/${key}: not a number`);
        calls.push(`pin ${host}/${key}=${value}`);
        return { host, key, value };
      },
      unpin: async (host, key) => {
        calls.push(`unpin ${host}/${key}`);
        return true;
      },
    },
  };
  return { calls, sources };
}

describe('dashboard: page and events', () => {
  it('serves the page, its script and style from this origin only, beside /metrics and /health', async () => {
    const { port } = await serve();
    const page = await call(port);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toContain('<script src="/dashboard.js"');
    // nothing from elsewhere: no absolute URL in the page, its script or its style
    const js = await call(port, { path: '/dashboard.js' });
    const css = await call(port, { path: '/dashboard.css' });
    for (const text of [page.body, js.body, css.body]) {
      // (the SVG namespace is a name, not a fetch)
      expect(text.replaceAll('http://www.w3.org/2000/svg', '')).not.toMatch(/https?:\/\//);
      expect(text).not.toMatch(/(src|href)=["']?\/\/|url\(|@import/);
    }
    expect(js.headers['content-type']).toMatch(/javascript/);
    // the page puts values in as text: the script never parses markup
    expect(js.body).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect((await call(port, { path: '/metrics' })).status).toBe(200);
    expect((await call(port, { path: '/health' })).status).toBe(200);
    expect((await call(port, { path: '/nope' })).body).toMatch(/the dashboard/);
  });

  it('streams a snapshot, then each change within a push period', async () => {
    const { model, port } = await serve();
    model.update(variable('edge-1', 'ufw.block_rate', '12.5'), 1000);
    const got = events(port, (e) => e.event === 'vars' && JSON.stringify(e.data).includes('13'));
    // the change arrives after the snapshot was sent
    setTimeout(() => model.update(variable('edge-1', 'ufw.block_rate', '<b>13</b>'), 2000), 100);
    const all = await got;
    const snap = all.find((e) => e.event === 'snapshot')!.data as {
      variables: { value: string; history: [number, number][] }[];
      writable: boolean;
    };
    expect(snap.variables[0]).toMatchObject({ value: '12.5', history: [[1000, 12.5]] });
    expect(snap.writable).toBe(false);
    const vars = all[all.length - 1]!.data as { value: string; point?: unknown }[];
    // untrusted text goes out as it came, in JSON; the page inserts it as text
    expect(vars).toEqual([expect.objectContaining({ host: 'edge-1', value: '<b>13</b>' })]);
    expect(vars[0]).not.toHaveProperty('point');
  });

  it("pushes the gate's flags when they change, and the stats every period", async () => {
    let pinned = false;
    const model = new DashboardModel();
    model.update(variable('h', 'k', '1'), 0);
    const { port } = await serve({
      model,
      sources: {
        // the gate knows more than the page shows: only the variables held are sent
        states: () => [
          { host: 'h', key: 'k', learner: 'l', model: 'm', pinned },
          { host: 'other', key: 'k', learner: 'l', model: 'm', pinned: true },
        ],
        panels: () => ({ feeder: { clients: 2 } }),
      },
    });
    setTimeout(() => {
      pinned = true;
    }, 120);
    const all = await events(
      port,
      (e) => e.event === 'flags' && (e.data as { pinned: boolean }[])[0]!.pinned,
    );
    expect(all.some((e) => e.event === 'stats' && JSON.stringify(e.data).includes('"clients":2'))).toBe(true);
    for (const e of all.filter((x) => x.event === 'flags')) expect(e.data).toHaveLength(1);
  });

  it('refuses requests addressed to another host name (DNS rebinding)', async () => {
    const { port } = await serve();
    for (const path of ['/', '/events', '/api/state']) {
      const r = await call(port, { path, headers: { host: `attacker.example:${port}` } });
      expect(r.status).toBe(403);
      expect(r.body).toMatch(/not this server/);
    }
    expect((await call(port, { path: '/', headers: { host: `localhost:${port}` } })).status).toBe(200);
  });
});

describe('dashboard: pins', () => {
  const SECRET = 'correct horse battery staple';
  const json = (port: number, path: string, body: unknown, headers: Record<string, string> = {}) =>
    call(port, {
      method: 'POST',
      path,
      headers: {
        origin: `http://127.0.0.1:${port}`,
        'content-type': 'application/json',
        authorization: `Bearer ${SECRET}`,
        ...headers,
      },
      body: JSON.stringify(body),
    });

  it('is read-only without a secret, even for a well-formed request', async () => {
    const { calls, sources } = pinRecorder();
    const { port } = await serve({ sources });
    const r = await json(port, '/api/pin', { host: 'h', key: 'k', value: '1' });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body).error).toMatch(/read-only/);
    expect(calls).toEqual([]);
  });

  it('pins and unpins with the secret from this origin', async () => {
    const { calls, sources } = pinRecorder();
    const { port } = await serve({ secret: SECRET, sources });
    expect((await json(port, '/api/login', {})).status).toBe(200);
    const r = await json(port, '/api/pin', { host: 'edge-1', key: 'MaxNetworkBandwidth', value: '100' });
    expect(r.status).toBe(200);
    expect((await json(port, '/api/unpin', { host: 'edge-1', key: 'MaxNetworkBandwidth' })).status).toBe(200);
    expect(calls).toEqual(['pin edge-1/MaxNetworkBandwidth=100', 'unpin edge-1/MaxNetworkBandwidth']);
    // a value the declaration refuses: said, not pinned
    const bad = await json(port, '/api/pin', { host: 'edge-1', key: 'MaxNetworkBandwidth', value: 'bad' });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).error).toMatch(/not a number/);
    expect(calls).toHaveLength(2);
  });

  it('refuses cross-origin, form-encoded, secret-less, wrong-secret and oversized writes', async () => {
    const { calls, sources } = pinRecorder();
    const { port } = await serve({ secret: SECRET, sources });
    const body = { host: 'h', key: 'k', value: '1' };
    const cases: [Record<string, string>, number, RegExp][] = [
      [{ origin: 'http://attacker.example' }, 403, /cross-origin/],
      [{ origin: '' }, 403, /cross-origin/],
      [{ 'sec-fetch-site': 'cross-site' }, 403, /cross-site/],
      [{ 'content-type': 'application/x-www-form-urlencoded' }, 415, /JSON/],
      [{ 'content-type': 'text/plain' }, 415, /JSON/],
      [{ authorization: '' }, 401, /required/],
      [{ authorization: 'Bearer nope' }, 401, /wrong secret/],
      [{ authorization: `Basic ${Buffer.from(`u:${SECRET}`).toString('base64')}` }, 401, /required/],
    ];
    for (const [headers, status, error] of cases) {
      const r = await json(port, '/api/pin', body, headers);
      expect({ headers, status: r.status }).toEqual({ headers, status });
      expect(JSON.parse(r.body).error).toMatch(error);
    }
    const big = await json(port, '/api/pin', { ...body, value: 'x'.repeat(5000) });
    expect(big.status).toBe(413);
    // the secret is never taken from the URL
    const inUrl = `/api/pin?secret=${encodeURIComponent(SECRET)}`;
    expect((await call(port, { method: 'POST', path: inUrl })).status).toBe(403);
    expect(calls).toEqual([]);
  });

  it('rate-limits wrong secrets: after 10 in a minute even the right one waits', async () => {
    const { calls, sources } = pinRecorder();
    const { port } = await serve({ secret: SECRET, sources });
    for (let i = 0; i < 10; i++) {
      expect((await json(port, '/api/login', {}, { authorization: `Bearer guess${i}` })).status).toBe(401);
    }
    const r = await json(port, '/api/pin', { host: 'h', key: 'k', value: '1' });
    expect(r.status).toBe(429);
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    expect(calls).toEqual([]);
  });

  it('says where to pin when no learners run in the process', async () => {
    const { port } = await serve({ secret: SECRET });
    const r = await json(port, '/api/pin', { host: 'h', key: 'k', value: '1' });
    expect(r.status).toBe(409);
    expect(JSON.parse(r.body).error).toMatch(/virgo pin/);
  });
});

describe('dashboard: the analytics topic', () => {
  it('follows the bus: decodes variables, counts and skips what is not one, drops tombstones', async () => {
    const bus = new MemoryBus();
    const model = new DashboardModel();
    const sub = await followAnalytics(bus, model);
    await sub.ready;
    const codec = codecFor('AnalyticsVariable');
    await bus.publish(TOPICS.kernelAnalytics, [
      { key: 'edge-1/ufw.block_rate', value: codec.encode(variable('edge-1', 'ufw.block_rate', '3')) },
      { key: 'edge-1/junk', value: Buffer.from('not avro\0') },
      { key: 'edge-2/ufw.block_rate', value: codec.encode(variable('edge-2', 'ufw.block_rate', '4')) },
    ]);
    await bus.publish(TOPICS.kernelAnalytics, [{ key: 'edge-2/ufw.block_rate', value: null }]);
    await expect
      .poll(() => model.snapshot().map((r) => `${r.host}/${r.key}=${r.value}`))
      .toEqual(['edge-1/ufw.block_rate=3']);
    await sub.close();
    await bus.close();
  });
});
