// A seeded kern.log of a fleet (many hosts, as a central rsyslog writes it: RFC 3164 stamps, hosts
// interleaved in time order) that feeds the kernel-log learners at once: UFW blocks (a persistent
// attacker per host, a background pool, an occasional burst), network trouble in spells (link
// down/up, NETDEV watchdog, drops: netbw's evidence) and `virgo_load:` samples with execution
// times (load's). Every line is unique (kernel stamps and packet ids grow). For the scale-out
// tests and `npm run bench -- scale`.
import { Rng } from '../../learners/window.ts';

export interface FleetLog {
  lines: string[];
  hosts: string[];
  /** the year of the RFC 3164 stamps */
  year: number;
  start: number;
  end: number;
}

export interface FleetLogOptions {
  seed?: number;
  hosts?: number;
  /** hours of event time (default 2) */
  hours?: number;
  /** mean seconds between two lines of one host (default 4) */
  meanGapSec?: number;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function stamp(t: number): string {
  const d = new Date(t);
  const p2 = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())}`;
}

export function fleetLog(opts: FleetLogOptions = {}): FleetLog {
  const rng = new Rng(opts.seed ?? 17);
  const n = opts.hosts ?? 50;
  const hours = opts.hours ?? 2;
  const gap = (opts.meanGapSec ?? 4) * 1000;
  // a few days back, within one calendar year (the stamps carry none)
  let end = Math.floor(Date.now() / 86_400_000) * 86_400_000 - 3 * 86_400_000;
  if (new Date(end).getUTCMonth() === 0 && new Date(end).getUTCDate() < 3)
    end = Date.UTC(new Date(end).getUTCFullYear() - 1, 11, 20);
  const start = end - hours * 3_600_000;
  const hosts = Array.from({ length: n }, (_, i) => `node-${String(i).padStart(3, '0')}`);
  const pool = Array.from({ length: 120 }, (_, i) => `198.18.${Math.floor(i / 60)}.${(i % 60) + 10}`);
  const ports = [22, 23, 80, 443, 3306, 3389, 5900];
  const recs: { t: number; host: string; text: string }[] = [];
  hosts.forEach((host, h) => {
    const attacker = `203.0.${113 + (h % 3)}.${(h % 200) + 1}`;
    let mono = 50_000 + h * 7_919;
    let id = 1_000 + h * 1_000_000;
    let trouble = false;
    let load = 0.5 + rng.next() * 2;
    const speed = 0.7 + rng.next() * 0.8; // a node's hardware: how slow its jobs run for its load
    for (let t = start + rng.int(gap); t < end; t += Math.max(200, -Math.log(1 - rng.next()) * gap)) {
      mono += 0.2 + rng.next();
      const k = `[${mono.toFixed(6).padStart(12)}]`;
      // network trouble comes in spells
      if (rng.next() < (trouble ? 0.02 : 0.004)) trouble = !trouble;
      const r = rng.next();
      let text: string;
      if (r < 0.55) {
        id += 1 + rng.int(40);
        const src = rng.next() < 0.35 ? attacker : pool[rng.int(pool.length)]!;
        const dpt = rng.next() < 0.4 ? 22 : ports[rng.int(ports.length)]!;
        text = `${k} [UFW BLOCK] IN=eth0 OUT= SRC=${src} DST=10.1.${h}.1 LEN=40 TTL=${40 + rng.int(200)} ID=${id} PROTO=TCP SPT=${1024 + rng.int(60_000)} DPT=${dpt} WINDOW=1024 RES=0x00 SYN URGP=0`;
      } else if (r < 0.7) {
        load = Math.max(0.05, load + (rng.next() - 0.5) * 0.6);
        const runq = Math.max(0, Math.round(load * 2 + rng.int(3) - 1));
        const exec = (80 + 60 * load + 5 * runq) * speed * (0.9 + rng.next() * 0.2);
        text = `${k} virgo_load: load=${load.toFixed(2)} runq=${runq} exec_ms=${exec.toFixed(1)}`;
      } else if (trouble && r < 0.8) {
        const what = rng.int(4);
        text =
          what === 0
            ? `${k} e1000e: eth0 NIC Link is Down`
            : what === 1
              ? `${k} NETDEV WATCHDOG: eth0 (e1000e): transmit queue ${rng.int(4)} timed out`
              : what === 2
                ? `${k} nf_conntrack: table full, dropping packet`
                : `${k} e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: None`;
      } else {
        text = `${k} usb 1-${1 + rng.int(4)}: new high-speed USB device number ${rng.int(100)} using xhci_hcd`;
      }
      recs.push({ t, host, text });
    }
  });
  recs.sort((a, b) => a.t - b.t);
  return {
    lines: recs.map((r) => `${stamp(Math.floor(r.t / 1000) * 1000)} ${r.host} kernel: ${r.text}`),
    hosts,
    year: new Date(end).getUTCFullYear(),
    start,
    end,
  };
}
