// A bundled kernel-log stream for machines where no kernel log can be read (containers, CI,
// a laptop without root): realistic syslog lines of the families the learners act on, from a
// seeded generator, so `npm start` shows analytics within seconds anywhere.
import { Readable } from 'node:stream';
import { seededRandom } from '../runtime/rng.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function syslogTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export interface DemoOptions {
  seed?: number;
  /** lines per second (default 200) */
  rate?: number;
  hosts?: string[];
  /** stop after this many lines (default: endless) */
  limit?: number;
  /** wall clock for the syslog stamps (tests pass a fixed one) */
  now?: () => number;
}

/** Generates demo lines; `next()` is pure given the seed and the clock. */
export class DemoLog {
  private readonly rnd: () => number;
  private readonly hosts: string[];
  private readonly boot: number;
  private n = 0;
  private linkDown = new Set<string>();

  constructor(private readonly opts: DemoOptions = {}) {
    this.rnd = seededRandom(opts.seed ?? 64000);
    this.hosts = opts.hosts ?? ['edge-1', 'edge-2'];
    this.boot = (opts.now ?? Date.now)() - 3_600_000;
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rnd() * xs.length)]!;
  }

  /** An attacker that dominates, a second one, and background scanners. */
  private srcIp(): string {
    const r = this.rnd();
    if (r < 0.45) return '203.0.113.7';
    if (r < 0.65) return '198.51.100.23';
    return `192.0.2.${1 + Math.floor(this.rnd() * 250)}`;
  }

  next(): string {
    const now = (this.opts.now ?? Date.now)();
    const host = this.pick(this.hosts);
    const mono = ((now - this.boot) / 1000).toFixed(6).padStart(12, ' ');
    const head = `${syslogTime(now)} ${host} kernel: [${mono}]`;
    this.n++;
    const r = this.rnd();
    if (r < 0.7) {
      const dpt = this.pick([22, 22, 22, 23, 80, 443, 3389, 5900]);
      const proto = dpt === 5900 ? 'UDP' : 'TCP';
      return `${head} [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=${this.srcIp()} DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=${40 + Math.floor(this.rnd() * 20)} ID=${Math.floor(this.rnd() * 65535)} DF PROTO=${proto} SPT=${1024 + Math.floor(this.rnd() * 60000)} DPT=${dpt} WINDOW=29200 RES=0x00 SYN URGP=0`;
    }
    if (r < 0.85) {
      const node = this.pick(['node-a', 'node-b', 'node-c']);
      const base = node === 'node-a' ? 0.3 : node === 'node-b' ? 0.9 : 0.55;
      const load = Math.max(0, base + (this.rnd() - 0.5) * 0.2);
      return `${head} virgo_load: node=${node} load=${load.toFixed(2)} runq=${Math.round(load * 4)} exec_ms=${Math.round(40 + load * 200)}`;
    }
    if (r < 0.9) {
      const iface = 'eth1';
      if (this.linkDown.has(host)) {
        this.linkDown.delete(host);
        return `${head} e1000e: ${iface} NIC Link is Up 1000 Mbps Full Duplex, Flow Control: None`;
      }
      this.linkDown.add(host);
      return `${head} e1000e: ${iface} NIC Link is Down`;
    }
    if (r < 0.93) return `${head} NETDEV WATCHDOG: eth1 (e1000e): transmit queue 0 timed out`;
    if (r < 0.96) {
      const dev = 2 + Math.floor(this.rnd() * 8);
      return this.rnd() < 0.5
        ? `${head} usb 1-1: new high-speed USB device number ${dev} using xhci_hcd`
        : `${head} usb 1-1: USB disconnect, device number ${dev}`;
    }
    if (r < 0.98) {
      const pid = 1000 + Math.floor(this.rnd() * 30000);
      return `${head} Out of memory: Killed process ${pid} (java) total-vm:8215648kB, anon-rss:6211220kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:12872kB oom_score_adj:0`;
    }
    return `${head} audit: type=1400 audit(${(now / 1000).toFixed(3)}:${this.n}): apparmor="DENIED" operation="open" profile="/usr/sbin/cupsd" name="/etc/shadow" pid=${1000 + Math.floor(this.rnd() * 9000)} comm="cupsd" requested_mask="r" denied_mask="r" fsuid=0 ouid=0`;
  }
}

/** The demo lines as a readable text stream, paced at `rate` lines/s. */
export function demoStream(opts: DemoOptions = {}): Readable {
  const gen = new DemoLog(opts);
  const rate = opts.rate ?? 200;
  const tickMs = 50;
  const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
  let sent = 0;
  async function* lines(): AsyncGenerator<string> {
    for (;;) {
      const chunk: string[] = [];
      for (let i = 0; i < perTick; i++) {
        if (opts.limit !== undefined && sent >= opts.limit) break;
        chunk.push(gen.next());
        sent++;
      }
      if (chunk.length > 0) yield `${chunk.join('\n')}\n`;
      if (opts.limit !== undefined && sent >= opts.limit) return;
      await new Promise((r) => setTimeout(r, tickMs));
    }
  }
  return Readable.from(lines(), { objectMode: false });
}
