// A labelled kernel log from a stated model, for the anomaly evaluation (a second opinion beside
// real labelled data, with a mix no learner was fitted to).
//
//   npx tsx bench/gen-anomaly.ts --out FILE [--seed N] [--hosts N] [--hours N]
//
// The model (all draws from one seeded RNG):
//  - H hosts; each writes one of three formats: RFC 5424 with <PRI>, RFC 3164 with <PRI>, or a
//    plain kern.log line without PRI (the level is then only in the words, if anywhere);
//  - each host logs on average r lines a minute (r log-uniform in 0.5..15), Poisson per minute,
//    times uniform within the minute; each line's template drawn from the host's own Zipf mix
//    over 14 of the 24 ordinary templates (with random parameters);
//  - levels are the ones the kernel prints them at: iptables LOG (UFW) at warning, `hrtimer:
//    interrupt took` warning, ACPI errors err, EDAC corrected errors warning, thermal throttling
//    KERN_CRIT (therm_throt.c), `EXT4-fs error` KERN_CRIT, buffer I/O errors and OOM kills err,
//    `BUG:` KERN_ALERT, an oops' register dump and trace KERN_DEFAULT (warning);
//  - routine high-severity lines that are NOT incidents: every host logs an ACPI error about
//    every 20 min; half the hosts an EDAC corrected-memory warning about every 40 min; two hosts
//    a critical CPU-throttling line about every 30 min from the start ("hot rack"), each followed
//    by the info line that the temperature is back to normal; the last host starts throttling
//    likewise somewhere in the second quarter of the log and keeps on ("a hot afternoon"); one
//    host logs a driver's WARN_ON trace (a `WARNING: CPU: …` line, its register dump and call
//    trace: context lines) about every 3 hours;
//  - incidents, each on one host at a random time after the first 10% and the first two hours
//    of the log (the fleet's usual state comes first), at least two hours apart on a host; every
//    line an incident adds carries its kind as label, everything else `-`:
//      SEVERE  3-10 new err lines (ext4 errors, buffer I/O errors) over 2-5 minutes
//      PANIC   one window: BUG/Oops/Call Trace (alert, warning, warning)
//      OOPS    a whole x86-64 oops within a second: the event (`BUG: kernel NULL pointer
//              dereference`, its `#PF:` lines, `Oops: …`) labelled, then its context lines (CPU/
//              Hardware name, RIP, Code bytes, registers, Call Trace frames, end marker) left `-`;
//              a window holding the event is anomalous, one holding only its tail is not
//      OOM     2-4 OOM kills (err, new) over 1-3 minutes
//      NOVEL   new templates at INFO level, 3-6 lines over 10 minutes (a NIC going promiscuous,
//              a USB mass-storage device appearing)
//      BURST   one of the host's own ordinary templates at 30-80 extra lines a minute for
//              2-5 minutes (a port scan's UFW blocks, a link flapping)
//      SURGE   the host's routine EDAC/ACPI line once a minute or more for 15-30 minutes
//              (hardware degrading)
//      FAULT   a fault that keeps recurring: an XFS metadata I/O error (KERN_ALERT) every 6
//              minutes on average (exponential gaps) for 2-4 hours, every line labelled (as
//              Loghub labels each of a BGL node's recurring FATAL TLB errors)
// The first field of each line is the label (Loghub style): strip it before parsing
// (`npm run eval -- anomaly --log FILE --strip-label`).
import { utimesSync, writeFileSync } from 'node:fs';
import { Rng } from '../learners/window.ts';

export const INCIDENT_KINDS = ['SEVERE', 'PANIC', 'OOPS', 'OOM', 'NOVEL', 'BURST', 'SURGE', 'FAULT'] as const;
export type IncidentKind = (typeof INCIDENT_KINDS)[number];

export interface GenOptions {
  seed?: number;
  hosts?: number;
  hours?: number;
  /** incidents of each kind */
  perKind?: number;
  /** epoch ms of the first line */
  start?: number;
}

export interface Incident {
  kind: IncidentKind;
  host: string;
  /** epoch ms */
  start: number;
  lines: number;
}

export interface GeneratedLog {
  /** label field, a space, then the raw line */
  lines: string[];
  /** epoch ms of the last line */
  end: number;
  incidents: Incident[];
}

type Fill = (r: Rng) => string;
interface Template {
  prog: string;
  sev: number;
  make: Fill;
}

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.int(xs.length)]!;
const ip = (r: Rng) => `10.${r.int(4)}.${r.int(256)}.${1 + r.int(254)}`;
const hex = (r: Rng, n: number) => Array.from({ length: n }, () => '0123456789abcdef'[r.int(16)]).join('');
const USERS = ['alice', 'bob', 'deploy', 'backup', 'root'];
const COMMS = ['nginx', 'python3', 'java', 'postgres', 'node'];

const ORDINARY: Template[] = [
  {
    prog: 'kernel',
    sev: 4,
    make: (r) =>
      `[UFW BLOCK] IN=eth0 OUT= MAC=${hex(r, 12)} SRC=${ip(r)} DST=10.0.0.1 LEN=${40 + r.int(1400)} TOS=0x00 PREC=0x00 TTL=${32 + r.int(200)} ID=${r.int(65535)} PROTO=TCP SPT=${1024 + r.int(60000)} DPT=${pick(r, [22, 23, 80, 443, 3389, 8080])} WINDOW=1024 RES=0x00 SYN URGP=0`,
  },
  {
    prog: 'kernel',
    sev: 4,
    make: (r) =>
      `[UFW ALLOW] IN=eth0 OUT= SRC=${ip(r)} DST=10.0.0.1 PROTO=TCP SPT=${1024 + r.int(60000)} DPT=443`,
  },
  {
    prog: 'kernel',
    sev: 6,
    make: (r) => `usb 1-${1 + r.int(4)}: new high-speed USB device number ${2 + r.int(40)} using xhci_hcd`,
  },
  {
    prog: 'kernel',
    sev: 6,
    make: (r) => `IPv6: ADDRCONF(NETDEV_CHANGE): eth${r.int(2)}: link becomes ready`,
  },
  {
    prog: 'kernel',
    sev: 5,
    make: (r) =>
      `audit: type=1400 audit(${1700000000 + r.int(99999)}.${r.int(999)}:${r.int(9999)}): apparmor="STATUS" operation="profile_replace" name="/usr/sbin/${pick(r, COMMS)}" pid=${r.int(32768)} comm="apparmor_parser"`,
  },
  {
    prog: 'kernel',
    sev: 6,
    make: (r) => `EXT4-fs (sda${1 + r.int(3)}): mounted filesystem with ordered data mode. Opts: (null)`,
  },
  {
    prog: 'kernel',
    sev: 6,
    make: (r) =>
      `e1000e 0000:00:1f.6 eth0: NIC Link is Up ${pick(r, [100, 1000])} Mbps Full Duplex, Flow Control: Rx/Tx`,
  },
  {
    prog: 'kernel',
    sev: 6,
    make: (r) =>
      `TCP: ${pick(r, ['eth0', 'eth1'])}: Driver has suspect GRO implementation, TCP performance may be compromised.`,
  },
  {
    prog: 'kernel',
    sev: 6,
    make: (r) =>
      `nf_conntrack: default automatic helper assignment has been turned off for security reasons (${r.int(9)})`,
  },
  {
    prog: 'kernel',
    sev: 6,
    make: (r) =>
      `perf: interrupt took too long (${2500 + r.int(5000)} > ${2500 + r.int(2000)}), lowering kernel.perf_event_max_sample_rate to ${10000 + r.int(70000)}`,
  },
  { prog: 'kernel', sev: 4, make: (r) => `hrtimer: interrupt took ${10000 + r.int(900000)} ns` },
  { prog: 'kernel', sev: 6, make: (r) => `device-mapper: uevent: version 1.0.${r.int(4)}` },
  {
    prog: 'kernel',
    sev: 6,
    make: (r) =>
      `docker0: port ${1 + r.int(6)}(veth${hex(r, 7)}) entered ${pick(r, ['blocking', 'forwarding', 'disabled'])} state`,
  },
  { prog: 'kernel', sev: 6, make: (r) => `IPVS: Creating netns size=${2000 + r.int(200)} id=${r.int(500)}` },
  { prog: 'systemd', sev: 6, make: (r) => `Started Session ${r.int(9999)} of user ${pick(r, USERS)}.` },
  {
    prog: 'systemd',
    sev: 6,
    make: (r) =>
      `Starting ${pick(r, ['Daily apt upgrade', 'Cleanup of Temporary Directories', 'Rotate log files'])}...`,
  },
  {
    prog: 'CRON',
    sev: 6,
    make: (r) => `(${pick(r, USERS)}) CMD (run-parts /etc/cron.${pick(r, ['hourly', 'daily'])})`,
  },
  {
    prog: 'sshd',
    sev: 6,
    make: (r) => `Accepted publickey for ${pick(r, USERS)} from ${ip(r)} port ${1024 + r.int(60000)} ssh2`,
  },
  { prog: 'sshd', sev: 6, make: (r) => `pam_unix(sshd:session): session closed for user ${pick(r, USERS)}` },
  { prog: 'dhclient', sev: 6, make: (r) => `DHCPACK of ${ip(r)} from 10.0.0.1` },
  { prog: 'ntpd', sev: 5, make: (r) => `adjusting local clock by ${(r.next() * 0.1).toFixed(6)}s` },
  {
    prog: 'rsyslogd',
    sev: 6,
    make: () => `[origin software="rsyslogd" swVersion="8.2112.0" x-pid="812"] rsyslogd was HUPed`,
  },
  {
    prog: 'kernel',
    sev: 6,
    make: (r) => `ata${1 + r.int(2)}: SATA link up 6.0 Gbps (SStatus 133 SControl 300)`,
  },
  { prog: 'kernel', sev: 5, make: (r) => `random: crng reseeded on system resumption (${r.int(99)})` },
];

const ACPI: Template = {
  prog: 'kernel',
  sev: 3,
  make: (r) => `ACPI Error: AE_NOT_FOUND, Evaluating _DSM (20230331/nsprepkg-${90 + r.int(10)})`,
};
const EDAC: Template = {
  prog: 'kernel',
  sev: 4,
  make: (r) =>
    `EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#${r.int(4)}_DIMM#0 (channel:${r.int(4)} slot:0 page:0x${hex(r, 5)} offset:0x0 grain:32 syndrome:0x0)`,
};
const THROTTLE: Template = {
  prog: 'kernel',
  sev: 2,
  make: (r) =>
    `CPU${r.int(16)}: Core temperature above threshold, cpu clock throttled (total events = ${r.int(99999)})`,
};

const THROTTLE_END: Template = {
  prog: 'kernel',
  sev: 6,
  make: (r) => `CPU${r.int(16)}: Core temperature/speed normal`,
};

const SEVERE: Template[] = [
  {
    prog: 'kernel',
    sev: 2,
    make: (r) =>
      `EXT4-fs error (device sda${1 + r.int(3)}): ext4_find_entry:1455: inode #${r.int(99999)}: comm ${pick(r, COMMS)}: reading directory lblock 0`,
  },
  {
    prog: 'kernel',
    sev: 3,
    make: (r) =>
      `Buffer I/O error on dev sda${1 + r.int(3)}, logical block ${r.int(9999999)}, lost async page write`,
  },
];
const PANIC: Template[] = [
  {
    prog: 'kernel',
    sev: 1,
    make: (r) => `BUG: unable to handle kernel NULL pointer dereference at 00000000000000${hex(r, 2)}`,
  },
  { prog: 'kernel', sev: 4, make: (r) => `Oops: 000${r.int(3)} [#1] SMP PTI` },
  { prog: 'kernel', sev: 4, make: () => 'Call Trace:' },
];
const FUNCS = [
  ['nvme_irq', 'nvme'],
  ['ext4_mb_release_inode_pa', 'ext4'],
  ['mlx5e_napi_poll', 'mlx5_core'],
  ['tcp_v4_rcv', ''],
  ['dm_softirq_done', 'dm_mod'],
] as const;
const word = (r: Rng) => hex(r, 16);
const t = (sev: number, make: Fill): Template => ({ prog: 'kernel', sev, make });

/** An x86-64 oops as printed: [the event's lines, the context lines]. */
function oops(r: Rng): [Template[], Template[]] {
  const [fn, mod] = pick(r, FUNCS);
  const at = `${fn}+0x${(16 + r.int(400)).toString(16)}/0x${(500 + r.int(900)).toString(16)}${mod ? ` [${mod}]` : ''}`;
  const comm = pick(r, ['kworker/3:1', 'swapper/0', 'java', 'nginx', 'ksoftirqd/2']);
  const regs = (names: string[]) => names.map((n) => `${n}: ${word(r)}`).join(' ');
  const frames = [
    '__handle_irq_event_percpu',
    'handle_irq_event',
    'handle_edge_irq',
    '__common_interrupt',
    'common_interrupt',
    'asm_common_interrupt',
    'process_one_work',
    'worker_thread',
    'kthread',
    'ret_from_fork',
  ]
    .slice(r.int(4))
    .map((f) =>
      t(
        4,
        () =>
          ` ${r.next() < 0.3 ? '? ' : ''}${f}+0x${(16 + r.int(300)).toString(16)}/0x${(300 + r.int(600)).toString(16)}`,
      ),
    );
  const event = [
    t(1, () => `BUG: kernel NULL pointer dereference, address: 00000000000000${hex(r, 2)}`),
    t(1, () => '#PF: supervisor read access in kernel mode'),
    t(1, () => '#PF: error_code(0x0000) - not-present page'),
    t(4, () => `Oops: 0000 [#1] PREEMPT SMP NOPTI`),
  ];
  const context = [
    t(6, () => 'PGD 0 P4D 0'),
    t(
      4,
      () =>
        `CPU: ${r.int(16)} PID: ${r.int(32768)} Comm: ${comm} Not tainted 5.15.0-${80 + r.int(20)}-generic #${90 + r.int(20)}-Ubuntu`,
    ),
    t(4, () => 'Hardware name: Dell Inc. PowerEdge R640/0X45NX, BIOS 2.11.2 004/21/2021'),
    t(4, () => `RIP: 0010:${at}`),
    t(
      4,
      () =>
        `Code: ${Array.from({ length: 42 }, (_, i) => (i === 21 ? `<${hex(r, 2)}>` : hex(r, 2))).join(' ')}`,
    ),
    t(4, () => `RSP: 0018:ffffb1a7${hex(r, 8)} EFLAGS: 00010246`),
    t(4, () => regs(['RAX', 'RBX', 'RCX'])),
    t(4, () => regs(['RDX', 'RSI', 'RDI'])),
    t(4, () => regs(['RBP', 'R08', 'R09'])),
    t(4, () => regs(['R10', 'R11', 'R12'])),
    t(4, () => regs(['R13', 'R14', 'R15'])),
    t(4, () => `FS:  0000000000000000(0000) GS:ffff8e7d${hex(r, 8)}(0000) knlGS:0000000000000000`),
    t(4, () => 'CS:  0010 DS: 0000 ES: 0000 CR0: 0000000080050033'),
    t(4, () => `CR2: 00000000000000${hex(r, 2)} CR3: 000000010${hex(r, 7)} CR4: 00000000003706e0`),
    t(4, () => 'Call Trace:'),
    t(4, () => ' <IRQ>'),
    ...frames,
    t(4, () => ' </IRQ>'),
    t(
      4,
      () =>
        `Modules linked in: ${mod || 'xt_conntrack'} nf_tables nfnetlink ip6table_filter ip6_tables bridge stp llc`,
    ),
    t(4, () => `CR2: 00000000000000${hex(r, 2)}`),
    t(4, () => `---[ end trace ${hex(r, 16)} ]---`),
  ];
  return [event, context];
}

/** A driver's WARN_ON as printed (routine on the host that has it): the WARNING line, then context. */
function warnTrace(r: Rng): Template[] {
  return [
    t(
      4,
      () =>
        `WARNING: CPU: ${r.int(16)} PID: ${r.int(32768)} at drivers/gpu/drm/i915/display/intel_dp.c:${1200 + r.int(9)} intel_dp_compute_link_config+0x${(32 + r.int(60)).toString(16)}/0x290 [i915]`,
    ),
    t(
      4,
      () =>
        `CPU: ${r.int(16)} PID: ${r.int(32768)} Comm: Xorg Tainted: G        W         5.15.0-91-generic #101-Ubuntu`,
    ),
    t(4, () => `RIP: 0010:intel_dp_compute_link_config+0x${(32 + r.int(60)).toString(16)}/0x290 [i915]`),
    t(4, () => `RSP: 0018:ffffb1a7${hex(r, 8)} EFLAGS: 00010282`),
    t(4, () => `RAX: ${word(r)} RBX: ${word(r)} RCX: ${word(r)}`),
    t(4, () => 'Call Trace:'),
    t(4, () => ' <TASK>'),
    t(4, () => ` intel_atomic_check+0x${(100 + r.int(900)).toString(16)}/0x1a40 [i915]`),
    t(4, () => ` drm_atomic_check_only+0x${(100 + r.int(400)).toString(16)}/0x7a0 [drm]`),
    t(4, () => ` drm_mode_atomic_ioctl+0x${(100 + r.int(900)).toString(16)}/0xb40 [drm]`),
    t(4, () => ' </TASK>'),
    t(4, () => `---[ end trace ${hex(r, 16)} ]---`),
  ];
}

const XFS: Template = {
  prog: 'kernel',
  sev: 1,
  make: (r) =>
    `XFS (sdb1): metadata I/O error in "xfs_btree_read_buf_block.constprop.0+0x95/0xd0 [xfs]" at daddr 0x${hex(r, 6)} len 8 error 5`,
};

const OOM: Template = {
  prog: 'kernel',
  sev: 3,
  make: (r) =>
    `Out of memory: Killed process ${r.int(32768)} (${pick(r, COMMS)}) total-vm:${r.int(9_000_000)}kB, anon-rss:${r.int(4_000_000)}kB, file-rss:0kB`,
};
const NOVEL: Template[][] = [
  [{ prog: 'kernel', sev: 6, make: (r) => `device eth${r.int(2)} entered promiscuous mode` }],
  [
    {
      prog: 'kernel',
      sev: 6,
      make: (r) => `usb-storage 1-${1 + r.int(4)}:1.0: USB Mass Storage device detected`,
    },
    { prog: 'kernel', sev: 6, make: (r) => `scsi host${6 + r.int(4)}: usb-storage 1-${1 + r.int(4)}:1.0` },
  ],
];

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
type Format = 'rfc5424' | 'rfc3164' | 'plain';

function render(
  fmt: Format,
  ts: number,
  host: string,
  t: Template,
  msg: string,
  boot: number,
  r: Rng,
): string {
  const d = new Date(ts);
  const facility = t.prog === 'kernel' ? 0 : 3;
  const pid = t.prog === 'kernel' ? '' : `[${100 + r.int(30000)}]`;
  if (fmt === 'rfc5424') {
    return `<${facility * 8 + t.sev}>1 ${d.toISOString()} ${host} ${t.prog} ${pid ? pid.slice(1, -1) : '-'} - - ${msg}`;
  }
  const stamp = `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${d.toISOString().slice(11, 19)}`;
  const mono = t.prog === 'kernel' ? `[${((ts - boot) / 1000).toFixed(6).padStart(12, ' ')}] ` : '';
  const body = `${stamp} ${host} ${t.prog}${pid}: ${mono}${msg}`;
  return fmt === 'rfc3164' ? `<${facility * 8 + t.sev}>${body}` : body;
}

interface Line {
  ts: number;
  label: string;
  text: string;
}

export function generateAnomalyLog(o: GenOptions = {}): GeneratedLog {
  const r = new Rng(o.seed ?? 1);
  const H = o.hosts ?? 8;
  const hours = o.hours ?? 24;
  const perKind = o.perKind ?? Math.max(1, Math.round((2 * hours) / 24));
  const t0 = o.start ?? Date.UTC(2024, 2, 1);
  const minutes = hours * 60;
  const out: Line[] = [];
  const hosts = Array.from({ length: H }, (_, i) => {
    const name = `node-${String(i + 1).padStart(2, '0')}`;
    const fmt: Format = (['rfc5424', 'rfc3164', 'plain'] as const)[i % 3]!;
    const rate = 0.5 * 30 ** r.next(); // 0.5..15 lines a minute, log-uniform
    const own = [...ORDINARY].sort(() => r.next() - 0.5).slice(0, 14);
    const weights = own.map((_, k) => 1 / (k + 1));
    const sum = weights.reduce((a, b) => a + b, 0);
    return {
      name,
      fmt,
      rate,
      own,
      cdf: weights.map((_, k) => weights.slice(0, k + 1).reduce((a, b) => a + b, 0) / sum),
      boot: t0 - r.int(86_400_000),
      edac: i % 2 === 0,
      hot: i < 2,
      // the last host (of three or more) starts throttling somewhere in the log's second quarter
      hotFrom:
        H > 2 && i === H - 1 ? Math.floor(minutes / 4) + r.int(Math.max(1, Math.floor(minutes / 4))) : null,
      warns: i === 3,
    };
  });
  const emit = (h: (typeof hosts)[number], ts: number, t: Template, label: string) =>
    out.push({ ts, label, text: render(h.fmt, ts, h.name, t, t.make(r), h.boot, r) });
  for (const h of hosts) {
    for (let m = 0; m < minutes; m++) {
      const base = t0 + m * 60_000;
      for (let i = 0, n = r.poisson(h.rate); i < n; i++) {
        const x = r.next();
        const t = h.own[h.cdf.findIndex((c) => x <= c)] ?? h.own[0]!;
        emit(h, base + r.int(60_000), t, '-');
      }
      if (r.next() < 1 / 20) emit(h, base + r.int(60_000), ACPI, '-');
      if (h.edac && r.next() < 1 / 40) emit(h, base + r.int(60_000), EDAC, '-');
      if ((h.hot || (h.hotFrom !== null && m >= h.hotFrom)) && r.next() < 1 / 30) {
        const ts = base + r.int(60_000);
        emit(h, ts, THROTTLE, '-');
        if (r.next() < 0.8) emit(h, ts + 1000 + r.int(20_000), THROTTLE_END, '-');
      }
      if (h.warns && r.next() < 1 / 180) {
        const ts = base + r.int(60_000);
        for (const [k, x] of warnTrace(r).entries()) emit(h, ts + k, x, '-');
      }
    }
  }
  // Incidents: a random host and start, at least 2 hours from the last one on that host.
  const incidents: Incident[] = [];
  const busy = new Map<string, number[]>();
  const kinds = INCIDENT_KINDS.flatMap((k) => Array.from({ length: perKind }, () => k));
  for (const kind of kinds) {
    let h = pick(r, hosts);
    let startMin = 0;
    for (let tries = 0; tries < 100; tries++) {
      h = pick(r, hosts);
      // after the first 10% of the log, and after its first two hours: the learner has seen each
      // host in its usual state by then (its baseline)
      const from = Math.min(Math.max(Math.floor(minutes * 0.1), 120), Math.floor(minutes / 2));
      startMin = from + r.int(Math.max(1, Math.floor(minutes * 0.95) - from));
      if ((busy.get(h.name) ?? []).every((s) => Math.abs(s - startMin) > 120)) break;
    }
    busy.set(h.name, [...(busy.get(h.name) ?? []), startMin]);
    const at = (min: number) => t0 + min * 60_000 + r.int(60_000);
    const before = out.length;
    switch (kind) {
      case 'SEVERE': {
        const span = 2 + r.int(4);
        for (let i = 0, n = 3 + r.int(8); i < n; i++)
          emit(h, at(startMin + r.int(span)), pick(r, SEVERE), kind);
        break;
      }
      case 'PANIC': {
        const ts = at(startMin);
        PANIC.forEach((t, i) => {
          emit(h, Math.min(ts + i, t0 + (startMin + 1) * 60_000 - 1), t, kind);
        });
        break;
      }
      case 'OOPS': {
        // printed within a second, from any moment of the minute: its tail may fall in the next
        const [event, context] = oops(r);
        let ts = at(startMin);
        for (const [x, label, gap] of [
          ...event.map((x) => [x, kind, 5] as const),
          ...context.map((x) => [x, '-', 40] as const),
        ]) {
          ts += r.int(gap);
          emit(h, ts, x, label);
        }
        break;
      }
      case 'OOM': {
        const span = 1 + r.int(3);
        for (let i = 0, n = 2 + r.int(3); i < n; i++) emit(h, at(startMin + r.int(span)), OOM, kind);
        break;
      }
      case 'NOVEL': {
        const set = pick(r, NOVEL);
        for (let i = 0, n = 3 + r.int(4); i < n; i++) emit(h, at(startMin + r.int(10)), pick(r, set), kind);
        break;
      }
      case 'BURST': {
        const t = h.own[r.int(4)]!; // one of its four most common
        const span = 2 + r.int(4);
        for (let m = 0; m < span; m++) {
          for (let i = 0, n = 30 + r.int(51); i < n; i++) emit(h, at(startMin + m), t, kind);
        }
        break;
      }
      case 'FAULT': {
        const end = startMin + 120 + r.int(121);
        for (let m = startMin; m < end && m < minutes; m += 1 + Math.floor(-Math.log(1 - r.next()) * 6))
          emit(h, at(m), XFS, kind);
        break;
      }
      case 'SURGE': {
        const t = h.edac ? EDAC : ACPI;
        const span = 15 + r.int(16);
        for (let m = 0; m < span; m++)
          for (let i = 0, n = 1 + r.int(2); i < n; i++) emit(h, at(startMin + m), t, kind);
        break;
      }
    }
    incidents.push({ kind, host: h.name, start: t0 + startMin * 60_000, lines: out.length - before });
  }
  out.sort((a, b) => a.ts - b.ts);
  return {
    lines: out.map((l) => `${l.label} ${l.text}`),
    end: out[out.length - 1]?.ts ?? t0,
    incidents: incidents.sort((a, b) => a.start - b.start),
  };
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const args = process.argv.slice(2);
  const outPath = flag(args, '--out');
  if (!outPath) {
    console.error('usage: npx tsx bench/gen-anomaly.ts --out FILE [--seed N] [--hosts N] [--hours N]');
    process.exit(2);
  }
  const num = (n: string, d: number) => {
    const v = flag(args, n);
    return v === undefined ? d : Number(v);
  };
  const g = generateAnomalyLog({
    seed: num('--seed', 1),
    hosts: num('--hosts', 8),
    hours: num('--hours', 24),
  });
  writeFileSync(outPath, `${g.lines.join('\n')}\n`);
  // Year-less stamps are read against the file's mtime: make it the end of the log.
  const end = (g.end + 60_000) / 1000;
  utimesSync(outPath, end, end);
  const labelled = g.lines.filter((l) => !l.startsWith('- ')).length;
  process.stderr.write(
    `${outPath}: ${g.lines.length} lines, ${labelled} labelled anomalous, ${g.incidents.length} incidents (${g.incidents.map((i) => `${i.kind}@${i.host}`).join(', ')})\n`,
  );
}
