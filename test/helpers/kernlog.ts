// A seeded multi-host kern.log, as a central rsyslog writes it (RFC 3164 stamps, hosts interleaved
// in time order), three days long, where the whole-history and the last-window answers differ:
// each host has a persistent attacker that dominates the blocks over the days but went quiet two
// hours before the end, and a burst from another source on another port in the last minutes.
// Every line is unique (kernel stamps and packet ids grow), as in a real kern.log.
import { Rng } from '../../learners/window.ts';

export interface KernLog {
  lines: string[];
  /** the year the RFC 3164 stamps belong to (they carry none) */
  year: number;
  start: number;
  end: number;
  hosts: string[];
}

export interface KernLogOptions {
  seed?: number;
  days?: number;
  /** mean seconds between two background blocks per host (default 150) */
  meanGapSec?: number;
  /** the log's last second (default: yesterday, within one calendar year) */
  end?: number;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function stamp(t: number): string {
  const d = new Date(t);
  const p2 = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
}

interface Rec {
  t: number;
  host: string;
  text: string;
}

export function kernLog(opts: KernLogOptions = {}): KernLog {
  const rng = new Rng(opts.seed ?? 12);
  const days = opts.days ?? 3;
  let end = opts.end ?? Math.floor(Date.now() / 86_400_000) * 86_400_000 - 1_000;
  let start = end - days * 86_400_000;
  // RFC 3164 stamps have no year: keep the log within one (the parser reads the year from the
  // receive time, a December line read in January as last year's).
  if (new Date(start).getUTCFullYear() !== new Date(end).getUTCFullYear()) {
    end = Date.UTC(new Date(end).getUTCFullYear() - 1, 11, 20);
    start = end - days * 86_400_000;
  }
  const meanGap = (opts.meanGapSec ?? 150) * 1000;
  const hosts = ['fw-a', 'fw-b', 'edge-1'];
  const attackers = ['203.0.113.7', '203.0.113.8', '203.0.113.9'];
  const bursts = ['192.0.2.66', '192.0.2.77', '192.0.2.88'];
  const pool = Array.from({ length: 200 }, (_, i) => `198.18.${Math.floor(i / 50)}.${(i % 50) + 10}`);
  const ports = [23, 80, 443, 8080, 3306, 5900, 25];
  const recs: Rec[] = [];
  hosts.forEach((host, h) => {
    let mono = 100_000 + h * 7_919;
    let id = 1000 + h * 100_000;
    const block = (t: number, src: string, dpt: number) => {
      id += 1 + rng.int(50);
      recs.push({
        t,
        host,
        text: `[UFW BLOCK] IN=eth0 OUT= MAC=f2:3c:91:e5:62:0a:84:78:ac:57:aa:c1:08:00 SRC=${src} DST=10.0.${h}.1 LEN=40 TOS=0x00 PREC=0x00 TTL=${40 + rng.int(200)} ID=${id} PROTO=TCP SPT=${1024 + rng.int(60_000)} DPT=${dpt} WINDOW=1024 RES=0x00 SYN URGP=0`,
      });
    };
    // the host's own pace: edge-1 is quieter
    const gap = h === 2 ? meanGap * 3 : meanGap;
    const quietFrom = end - 2 * 3_600_000;
    for (
      let t = start + rng.int(60_000);
      t < end - 11 * 60_000;
      t += Math.max(1000, -Math.log(1 - rng.next()) * gap)
    ) {
      const persistent = t < quietFrom && rng.next() < 0.3;
      const src = persistent ? attackers[h]! : pool[rng.int(pool.length)]!;
      const dpt = rng.next() < 0.4 ? 22 : ports[rng.int(ports.length)]!;
      block(t, src, dpt);
      const r = rng.next();
      if (r < 0.1)
        recs.push({
          t,
          host,
          text: `[UFW AUDIT] IN=eth0 OUT= SRC=10.0.${h}.9 DST=10.0.${h}.1 PROTO=UDP SPT=68 DPT=67`,
        });
      else if (r < 0.15)
        recs.push({ t, host, text: 'e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: None' });
      else if (r < 0.2)
        recs.push({
          t,
          host,
          text: `usb 1-1: new high-speed USB device number ${rng.int(20)} using xhci_hcd`,
        });
    }
    // the last minutes: a burst from one source on one port, and a little background
    for (let i = 0; i < 40 - h * 5; i++)
      block(end - 9 * 60_000 + i * 12_000 + rng.int(5_000), bursts[h]!, 3389);
    for (let i = 0; i < 5; i++)
      block(end - 10 * 60_000 + rng.int(10 * 60_000), pool[rng.int(pool.length)]!, 443);
    // kernel stamps grow with time
    const mine = recs.filter((r) => r.host === host).sort((a, b) => a.t - b.t);
    for (const r of mine) {
      mono += 0.5 + rng.next();
      r.text = `[${mono.toFixed(6).padStart(12)}] ${r.text}`;
    }
  });
  recs.sort((a, b) => a.t - b.t);
  const lines = recs.map((r) => `${stamp(Math.floor(r.t / 1000) * 1000)} ${r.host} kernel: ${r.text}`);
  return { lines, year: new Date(end).getUTCFullYear(), start, end, hosts };
}
