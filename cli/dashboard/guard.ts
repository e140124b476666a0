// Who may read and who may write the dashboard (docs/design.md §9):
// - every dashboard route answers only requests whose Host names this server (an IP it listens on,
//   localhost, this machine's name): a page from elsewhere that rebinds its DNS name to
//   127.0.0.1 cannot read the variables;
// - writes (pin, unpin, login) are POSTs of JSON from this origin (Origin must equal the Host it
//   was sent to, Sec-Fetch-Site same-origin when the browser sends it) carrying the secret as
//   `Authorization: Bearer …`. A cross-site form can set neither that header nor a JSON content
//   type without a CORS preflight, which this server never grants: no CSRF token is needed, and
//   the secret never travels in a URL. Failed secrets are rate-limited.
import type { IncomingMessage } from 'node:http';
import { hostname } from 'node:os';
import { secretDigest, secretMatches } from '../../runtime/secret.ts';

export interface Refusal {
  status: number;
  error: string;
  /** refusal reason, for the metric */
  reason: string;
  headers?: Record<string, string>;
}

/** The authority (host:port) as a browser writes it in Host and Origin. */
function authority(addr: string, port: number): string {
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

export class RequestGuard {
  private readonly secretDigest: Buffer | undefined;
  private failures: number[] = [];

  constructor(
    secret: string | undefined,
    private readonly opts: { maxFailuresPerMinute?: number; now?: () => number } = {},
  ) {
    this.secretDigest = secret === undefined || secret === '' ? undefined : secretDigest(secret);
  }

  get secretConfigured(): boolean {
    return this.secretDigest !== undefined;
  }

  /** A request whose Host is not this server's (DNS rebinding) is refused. */
  checkHost(req: IncomingMessage): Refusal | undefined {
    const host = (req.headers.host ?? '').toLowerCase();
    const port = req.socket.localPort ?? 0;
    const allowed = new Set(
      [req.socket.localAddress ?? '127.0.0.1', '127.0.0.1', '::1', 'localhost', hostname().toLowerCase()].map(
        (a) => authority(a, port),
      ),
    );
    if (allowed.has(host)) return undefined;
    return {
      status: 403,
      reason: 'host',
      error: `Host ${JSON.stringify(host.slice(0, 100))} is not this server; open http://${authority(req.socket.localAddress ?? '127.0.0.1', port)}/`,
    };
  }

  /** Checks a write: same origin, JSON, the secret. Undefined when it may go ahead. */
  checkWrite(req: IncomingMessage): Refusal | undefined {
    const origin = req.headers.origin;
    if (origin === undefined || origin !== `http://${req.headers.host ?? ''}`) {
      return { status: 403, reason: 'origin', error: 'cross-origin request refused' };
    }
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') {
      return { status: 403, reason: 'origin', error: 'cross-site request refused' };
    }
    if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
      return { status: 415, reason: 'content-type', error: 'send JSON (content-type: application/json)' };
    }
    if (!this.secretDigest) {
      return {
        status: 403,
        reason: 'read-only',
        error: 'read-only: no secret is configured, so nobody may pin from the dashboard',
      };
    }
    const now = (this.opts.now ?? Date.now)();
    this.failures = this.failures.filter((t) => now - t < 60_000);
    const max = this.opts.maxFailuresPerMinute ?? 10;
    if (this.failures.length >= max) {
      const wait = Math.ceil((60_000 - (now - this.failures[0]!)) / 1000);
      return {
        status: 429,
        reason: 'rate',
        error: `too many wrong secrets; retry in ${wait} s`,
        headers: { 'retry-after': String(wait) },
      };
    }
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    // both sides hashed to 32 bytes: the comparison's time says nothing of the secret or its length
    if (!m || !secretMatches(this.secretDigest, m[1]!)) {
      this.failures.push(now);
      return {
        status: 401,
        reason: 'auth',
        error: m ? 'wrong secret' : 'the secret is required (Authorization: Bearer …)',
        headers: { 'www-authenticate': 'Bearer realm="virgo"' },
      };
    }
    return undefined;
  }
}
