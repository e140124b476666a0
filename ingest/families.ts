// Kernel message families and their typed fields: netfilter/UFW packet logs, the OOM killer,
// segfaults and traps, link up/down, USB connect/disconnect, audit/AppArmor/SELinux, and the
// watchdogs (NETDEV transmit timeouts, soft/hard lockups, hung tasks, TCP SYN floods).
// classify() first picks a family with a few substring tests; only a picked line meets the
// family's regular expressions.
import type { Family } from './types.ts';

export interface Classified {
  family: Family;
  fields: Record<string, string>;
}

type Rule = readonly [RegExp, (m: RegExpExecArray, f: Record<string, string>) => void];

/** Applies the first rule whose expression matches; false when none does. */
function firstRule(msg: string, rules: readonly Rule[], f: Record<string, string>): boolean {
  for (const [re, apply] of rules) {
    const m = re.exec(msg);
    if (m) {
      apply(m, f);
      return true;
    }
  }
  return false;
}

export function classify(msg: string): Classified | undefined {
  if (msg.length === 0) return undefined;
  const c0 = msg.charCodeAt(0);
  if (msg.includes(' OUT=') && msg.includes('IN=')) return netfilter(msg);
  if (c0 === 97 /* a */ && msg.startsWith('audit')) return audit(msg);
  if (c0 === 116 /* t */ && msg.startsWith('type=')) return audit(msg);
  if (msg.includes('apparmor=')) return audit(msg);
  if (c0 === 117 /* u */ && (msg.startsWith('usb ') || msg.startsWith('usb-storage '))) return usb(msg);
  if (c0 === 84 /* T */ && msg.startsWith('TCP: ')) return tcp(msg);
  if (msg.includes('segfault at ') || msg.startsWith('traps: ')) return segfault(msg);
  if (msg.includes('oom') || msg.includes('of memory') || msg.startsWith('Killed process')) return oom(msg);
  if (
    msg.includes('atchdog') ||
    msg.includes('WATCHDOG') ||
    msg.includes('lockup') ||
    msg.includes('blocked for more than')
  )
    return watchdog(msg);
  if (msg.includes('ink')) return link(msg);
  if (msg.includes('stall')) return watchdog(msg);
  return undefined;
}

// ---- netfilter / UFW -------------------------------------------------------------------------

const UFW_PREFIX = /\[UFW ([A-Z ]+)\]/;
const ACTION_WORD = /\b(BLOCK|ALLOW|AUDIT|LIMIT|DROP|REJECT|ACCEPT|DENY|LOG)\b/i;

/**
 * The keys iptables' LOG target writes, shared: a line's keys are these strings, not slices of it
 * (a UFW line has some twenty; slicing each was most of the parser's garbage).
 */
const NF_KEYS: readonly string[] = [
  'IN',
  'OUT',
  'MAC',
  'SRC',
  'DST',
  'LEN',
  'TOS',
  'PREC',
  'TTL',
  'ID',
  'PROTO',
  'SPT',
  'DPT',
  'WINDOW',
  'RES',
  'URGP',
  'TYPE',
  'CODE',
  'SEQ',
  'MARK',
  'TC',
  'HOPLIMIT',
  'FLOWLBL',
  'MTU',
  'PHYSIN',
  'PHYSOUT',
  'UID',
  'GID',
];
/** The key `msg[a, b)`: a shared string when it is one of NF_KEYS, else a slice. */
function nfKey(msg: string, a: number, b: number): string {
  const id = nfKeyIdAt(msg, a, b);
  return id >= 0 ? NF_KEYS[id]! : msg.slice(a, b);
}

/**
 * NF_KEYS' indexes by length and first two characters (unique among them), for nfKeyIdAt: a
 * table lookup and a compare instead of a Map lookup per token.
 */
const NF_ID_TABLE = new Int8Array(16 * 1024).fill(-1);
const nfShape = (len: number, c0: number, c1: number): number => (len << 10) | ((c0 & 31) << 5) | (c1 & 31);
// netfilterFast marks the keys a line has seen in one 32-bit mask (1 << id), and the table holds
// keys of 2-15 characters: a key list outgrowing either must fail here, not misread lines
if (NF_KEYS.length > 31) throw new Error(`${NF_KEYS.length} netfilter keys: the seen-mask holds 31`);
for (let id = 0; id < NF_KEYS.length; id++) {
  const k = NF_KEYS[id]!;
  if (k.length < 2 || k.length > 15) throw new Error(`netfilter key ${k}: the table holds 2-15 characters`);
  const at = nfShape(k.length, k.charCodeAt(0), k.charCodeAt(1));
  if (NF_ID_TABLE[at] !== -1)
    throw new Error(`netfilter keys ${NF_KEYS[NF_ID_TABLE[at]!]} and ${k} share a shape`);
  NF_ID_TABLE[at] = id;
}

/** The index in NF_KEYS of the key `msg[a, b)`, or -1. */
function nfKeyIdAt(msg: string, a: number, b: number): number {
  const len = b - a;
  if (len < 2 || len > 15) return -1;
  const id = NF_ID_TABLE[nfShape(len, msg.charCodeAt(a), msg.charCodeAt(a + 1))]!;
  if (id < 0) return -1;
  const k = NF_KEYS[id]!;
  for (let j = 0; j < len; j++) if (msg.charCodeAt(a + j) !== k.charCodeAt(j)) return -1;
  return id;
}

/**
 * `[UFW BLOCK] IN=eth0 OUT= MAC=… SRC=… DST=… LEN=40 … PROTO=TCP SPT=43861 DPT=23 … SYN URGP=0`:
 * every KEY=VALUE as written, bare flags (SYN, ACK, DF, …) in FLAGS, the prefix and its action.
 */
function netfilter(msg: string): Classified | undefined {
  const inAt = msg.startsWith('IN=') ? 0 : msg.indexOf(' IN=') + 1;
  if (inAt < 0) return undefined;
  return netfilterFast(msg, inAt) ?? netfilterAnyKeys(msg, inAt);
}

/** The prefix's fields (`prefix`, `action`, `source`), as netfilter sets them. */
function nfPrefix(msg: string, inAt: number, fields: Record<string, string>): void {
  const prefix = msg.slice(0, inAt).trim();
  if (prefix) fields.prefix = prefix;
  const ufw = UFW_PREFIX.exec(prefix);
  if (ufw) {
    fields.action = ufw[1]!;
    fields.source = 'ufw';
  } else {
    const a = ACTION_WORD.exec(prefix);
    if (a) fields.action = a[1]!.toUpperCase();
    fields.source = 'netfilter';
  }
}

/** Any line: keys outside NF_KEYS too, made as they come (first wins, as `in` finds them). */
function netfilterAnyKeys(msg: string, inAt: number): Classified {
  const fields: Record<string, string> = {};
  nfPrefix(msg, inAt, fields);
  let flags = '';
  let i = inAt;
  const n = msg.length;
  while (i < n) {
    while (i < n && msg.charCodeAt(i) === 32) i++;
    if (i >= n) break;
    // the quoted packet of an ICMP error (`[SRC=… DST=… ]`) repeats keys: stop there
    if (msg.charCodeAt(i) === 91) break;
    let e = msg.indexOf(' ', i);
    if (e < 0) e = n;
    const eq = msg.indexOf('=', i);
    if (eq > i && eq < e) {
      const k = nfKey(msg, i, eq);
      if (!(k in fields)) fields[k] = msg.slice(eq + 1, e);
    } else flags = flags ? `${flags} ${msg.slice(i, e)}` : msg.slice(i, e);
    i = e;
  }
  if (flags) fields.FLAGS = flags;
  return { family: 'ufw', fields };
}

// The same fields for a line whose keys are all NF_KEYS (every iptables LOG line), with less work
// and garbage per line (most of the consumer stage's lines are these): the tokens are read into
// scratch arrays (each token's end by indexOf, the next `=` looked for once per `=`, not once per
// token, and the key by a table, not a Map; a loop over the characters was slower), then
// the object is a copy of a template with the line's keys in the line's order (the same key order
// as netfilterAnyKeys: prefix, action, source, keys, FLAGS), so it is made at its full size at
// once instead of growing key by key; flags equal to the previous line's are that line's string,
// and so are the prefix and what it says (a compare instead of a trim and two regular
// expressions). Comparing each value with the previous line's cost more than slicing it.

const NF_MAX = 64;
/** key ids of the line's first occurrences, in order, and their values' bounds */
const nfIds = new Int32Array(NF_MAX);
const nfValA = new Int32Array(NF_MAX);
const nfValB = new Int32Array(NF_MAX);
/** the bare flags' bounds */
const nfFlagA = new Int32Array(NF_MAX);
const nfFlagB = new Int32Array(NF_MAX);
let nfLastFlags = '';
/** the last line's prefix as written (up to IN=), and the fields it gave */
let nfLastRawPrefix: string | undefined;
let nfLastPrefix: Record<string, string> = {};

interface NfTemplate {
  ids: Int32Array;
  shape: number;
  object: Record<string, string>;
}
/** templates by their signature's hash */
const nfTemplates = new Map<number, NfTemplate[]>();
let nfTemplateCount = 0;
/** templates kept at most (a stream has a handful of key sequences; odd ones just take the slow way) */
const NF_MAX_TEMPLATES = 256;

function netfilterFast(msg: string, inAt: number): Classified | undefined {
  let count = 0;
  let flagCount = 0;
  let seen = 0;
  let i = inAt;
  const n = msg.length;
  // the first `=` at or after i as the former code's indexOf gave it (-1: none left); -2: not looked
  let eqAt = -2;
  while (i < n) {
    while (i < n && msg.charCodeAt(i) === 32) i++;
    if (i >= n) break;
    if (msg.charCodeAt(i) === 91) break;
    let e = msg.indexOf(' ', i);
    if (e < 0) e = n;
    // the next `=` from i: found once, it serves every token up to it
    if (eqAt < i && eqAt !== -1) eqAt = msg.indexOf('=', i);
    const eq = eqAt;
    if (eq > i && eq < e) {
      const id = nfKeyIdAt(msg, i, eq);
      if (id < 0) return undefined;
      if ((seen & (1 << id)) === 0) {
        if (count === NF_MAX) return undefined;
        seen |= 1 << id;
        nfIds[count] = id;
        nfValA[count] = eq + 1;
        nfValB[count] = e;
        count++;
      }
    } else {
      if (flagCount === NF_MAX) return undefined;
      nfFlagA[flagCount] = i;
      nfFlagB[flagCount] = e;
      flagCount++;
    }
    i = e;
  }
  let pre = nfLastPrefix;
  if (nfLastRawPrefix === undefined || nfLastRawPrefix.length !== inAt || !msg.startsWith(nfLastRawPrefix)) {
    pre = {};
    nfPrefix(msg, inAt, pre);
    nfLastRawPrefix = msg.slice(0, inAt);
    nfLastPrefix = pre;
  }
  const hasPrefix = pre.prefix !== undefined;
  const hasAction = pre.action !== undefined;
  const shape = (hasPrefix ? 1 : 0) | (hasAction ? 2 : 0) | (flagCount > 0 ? 4 : 0);
  const t = nfTemplate(shape, count);
  if (!t) return undefined;
  const fields = { ...t.object };
  if (hasPrefix) fields.prefix = pre.prefix!;
  if (hasAction) fields.action = pre.action!;
  fields.source = pre.source!;
  for (let k = 0; k < count; k++) {
    const id = nfIds[k]!;
    fields[NF_KEYS[id]!] = msg.slice(nfValA[k]!, nfValB[k]!);
  }
  if (flagCount > 0) fields.FLAGS = nfFlags(msg, flagCount);
  return { family: 'ufw', fields };
}

/** The flags joined by one blank, the previous line's string when it is the same text. */
function nfFlags(msg: string, flagCount: number): string {
  let same = true;
  let at = 0;
  const last = nfLastFlags;
  for (let k = 0; k < flagCount && same; k++) {
    const a = nfFlagA[k]!;
    const len = nfFlagB[k]! - a;
    if (k > 0) {
      if (last.charCodeAt(at) !== 32) same = false;
      at++;
    }
    if (same && (at + len > last.length || !sameChars(last, at, msg, a, len))) same = false;
    at += len;
  }
  if (same && at === last.length) return last;
  let flags = '';
  for (let k = 0; k < flagCount; k++) {
    const f = msg.slice(nfFlagA[k]!, nfFlagB[k]!);
    flags = flags ? `${flags} ${f}` : f;
  }
  nfLastFlags = flags;
  return flags;
}

function sameChars(x: string, xi: number, y: string, yi: number, len: number): boolean {
  for (let k = 0; k < len; k++) if (x.charCodeAt(xi + k) !== y.charCodeAt(yi + k)) return false;
  return true;
}

/** The template for this shape and the key ids in nfIds[0, count). */
function nfTemplate(shape: number, count: number): NfTemplate | undefined {
  let h = shape;
  for (let k = 0; k < count; k++) h = Math.imul(h ^ (nfIds[k]! + 1), 0x01000193);
  const list = nfTemplates.get(h);
  if (list) {
    for (const t of list) {
      if (t.shape !== shape || t.ids.length !== count) continue;
      let k = 0;
      while (k < count && t.ids[k] === nfIds[k]) k++;
      if (k === count) return t;
    }
  }
  if (nfTemplateCount >= NF_MAX_TEMPLATES) return undefined;
  // JSON.parse makes the object with fast properties in this order, whatever their number
  const keys: string[] = [];
  if (shape & 1) keys.push('prefix');
  if (shape & 2) keys.push('action');
  keys.push('source');
  for (let k = 0; k < count; k++) keys.push(NF_KEYS[nfIds[k]!]!);
  if (shape & 4) keys.push('FLAGS');
  const object = JSON.parse(`{${keys.map((k) => `${JSON.stringify(k)}:""`).join(',')}}`) as Record<
    string,
    string
  >;
  const t: NfTemplate = { ids: nfIds.slice(0, count), shape, object };
  if (list) list.push(t);
  else nfTemplates.set(h, [t]);
  nfTemplateCount++;
  return t;
}

// ---- OOM killer ------------------------------------------------------------------------------

const OOM_KILLED = /(Kill(?:ed)?) process (\d+) \(([^)]*)\)(?: score (-?\d+))?/;
const OOM_MEM =
  /total-vm:(\d+)kB, anon-rss:(\d+)kB, file-rss:(\d+)kB(?:, shmem-rss:(\d+)kB)?(?:,? UID:(\d+))?(?:,? pgtables:(\d+)kB)?(?:,? oom_score_adj:(-?\d+))?/;
const OOM_INVOKED =
  /^(\S+) invoked oom-killer: gfp_mask=(\S+?),(?:.*?order=(-?\d+))?(?:.*?oom_score_adj=(-?\d+))?/;
const OOM_REAPED = /oom_reaper: reaped process (\d+) \(([^)]*)\)/;

const OOM_CONSTRAINT = /^oom-kill:(.*)/;
const OUT_OF_MEMORY = /\b[Oo]ut of memory\b/;

const OOM_RULES: readonly Rule[] = [
  [
    OOM_INVOKED,
    (m, f) => {
      f.event = 'invoked';
      f.comm = m[1]!;
      f.gfpMask = m[2]!;
      if (m[3] !== undefined) f.order = m[3];
      if (m[4] !== undefined) f.oomScoreAdj = m[4];
    },
  ],
  [
    OOM_CONSTRAINT,
    (m, f) => {
      f.event = 'constraint';
      for (const part of m[1]!.split(',')) {
        const eq = part.indexOf('=');
        if (eq <= 0) continue;
        const k = part.slice(0, eq);
        const v = part.slice(eq + 1);
        if (k === 'task') f.comm = v;
        else if (k === 'task_memcg') f.memcg = v;
        else if (k === 'pid' || k === 'uid' || k === 'constraint' || k === 'cpuset' || k === 'oom_memcg')
          f[k] = v;
      }
    },
  ],
  [
    OOM_REAPED,
    (m, f) => {
      f.event = 'reaped';
      f.pid = m[1]!;
      f.comm = m[2]!;
    },
  ],
  [
    OOM_KILLED,
    (m, f) => {
      f.event = m[1] === 'Kill' ? 'kill' : 'killed';
      f.pid = m[2]!;
      f.comm = m[3]!;
      if (m[4] !== undefined) f.score = m[4];
    },
  ],
  [
    OUT_OF_MEMORY,
    (_m, f) => {
      f.event = 'out-of-memory';
    },
  ],
];

function oom(msg: string): Classified | undefined {
  const f: Record<string, string> = {};
  if (msg.startsWith('Memory cgroup out of memory')) f.cgroup = 'true';
  if (!firstRule(msg, OOM_RULES, f)) return undefined;
  const mem = OOM_MEM.exec(msg);
  if (mem) {
    f.totalVmKb = mem[1]!;
    f.anonRssKb = mem[2]!;
    f.fileRssKb = mem[3]!;
    if (mem[4] !== undefined) f.shmemRssKb = mem[4];
    if (mem[5] !== undefined) f.uid = mem[5];
    if (mem[6] !== undefined) f.pgtablesKb = mem[6];
    if (mem[7] !== undefined) f.oomScoreAdj = mem[7];
  }
  return { family: 'oom', fields: f };
}

// ---- segfaults and traps ---------------------------------------------------------------------

const SEGFAULT =
  /(?:^|\s)([^\s[]+)\[(\d+)\]: segfault at ([0-9a-fA-Fx]+) ip ([0-9a-fA-Fx]+) sp ([0-9a-fA-Fx]+) error (\d+)(?: in ([^[\s]+)\[([0-9a-fA-Fx]+)\+([0-9a-fA-Fx]+)\])?/;
const TRAP =
  /^traps: ([^\s[]+)\[(\d+)\] (?:trap )?(.+?) ip:([0-9a-fA-F]+) sp:([0-9a-fA-F]+) error:([0-9a-fA-F]+)(?: in ([^[\s]+)\[)?/;
const CPU = /likely on CPU (\d+)/;

const SEGFAULT_RULES: readonly Rule[] = [
  [
    SEGFAULT,
    (m, f) => {
      f.kind = 'segfault';
      f.comm = m[1]!;
      f.pid = m[2]!;
      f.addr = m[3]!;
      f.ip = m[4]!;
      f.sp = m[5]!;
      f.error = m[6]!;
      if (m[7] !== undefined) {
        f.object = m[7];
        f.base = m[8]!;
        f.size = m[9]!;
      }
    },
  ],
  [
    TRAP,
    (m, f) => {
      f.comm = m[1]!;
      f.pid = m[2]!;
      f.kind = m[3]!.trim().toLowerCase().replace(/\s+/g, '-');
      f.ip = m[4]!;
      f.sp = m[5]!;
      f.error = m[6]!;
      if (m[7] !== undefined) f.object = m[7];
    },
  ],
];

function segfault(msg: string): Classified | undefined {
  const f: Record<string, string> = {};
  if (!firstRule(msg, SEGFAULT_RULES, f)) return undefined;
  const cpu = CPU.exec(msg);
  if (cpu) f.cpu = cpu[1]!;
  return { family: 'segfault', fields: f };
}

// ---- link up/down ----------------------------------------------------------------------------

const LINK_STATE =
  /\b[Ll]ink(?: is)? (up|down|Up|Down|UP|DOWN)\b|\blink becomes ready\b|\blink is not ready\b|\blink status definitely (up|down) for interface ([^\s,]+)|\bcarrier (lost|acquired)\b/;
const IFACE = /^[A-Za-z][\w.@-]{0,15}$/;
const SPEED = /(\d+) ?([MG])b(?:ps|\/s)/;
const DUPLEX = /\b(full|half)[ -]?duplex\b|\/(Full|Half)\b/i;
const PCI_ADDR = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]$/;
const NOT_IFACE = new Set(['NIC', 'IPv6', 'IPv4', 'Link', 'link', 'the']);

function link(msg: string): Classified | undefined {
  const m = LINK_STATE.exec(msg);
  if (!m) return undefined;
  const f: Record<string, string> = {};
  const word = m[0];
  if (m[1]) f.state = m[1].toLowerCase();
  else if (m[2]) {
    f.state = m[2];
    f.iface = m[3]!;
    const bond = /^(\S+?): link status/.exec(msg);
    if (bond) f.bond = bond[1]!;
  } else if (m[4]) f.state = m[4] === 'lost' ? 'down' : 'up';
  else f.state = word === 'link becomes ready' ? 'up' : 'down';
  if (!f.iface) {
    // the nearest interface-like token before the words: `e1000e: eth0 NIC Link is Up`
    const before = msg.slice(0, m.index).trim().split(/\s+/);
    for (let k = before.length - 1; k >= 0; k--) {
      const t = before[k]!.replace(/:$/, '');
      if (!NOT_IFACE.has(t) && IFACE.test(t) && !t.includes('(')) {
        f.iface = t;
        break;
      }
    }
  }
  const tokens = msg.split(' ', 3);
  if (tokens[1] && PCI_ADDR.test(tokens[1])) {
    f.driver = tokens[0]!;
    f.pci = tokens[1];
  } else if (!f.bond && tokens[0]?.endsWith(':') && tokens[0].slice(0, -1) !== f.iface) {
    const d = tokens[0].slice(0, -1);
    if (IFACE.test(d) && !NOT_IFACE.has(d)) f.driver = d;
  }
  if (f.state === 'up') {
    const sp = SPEED.exec(msg);
    if (sp) f.speedMbps = String(Number(sp[1]) * (sp[2] === 'G' ? 1000 : 1));
    const du = DUPLEX.exec(msg);
    if (du) f.duplex = (du[1] ?? du[2]!).toLowerCase();
  }
  if (!f.iface) return undefined;
  return { family: 'link', fields: f };
}

// ---- USB -------------------------------------------------------------------------------------

const USB_NEW = /^new (\S+(?: Gen \S+)?) USB device number (\d+) using (\S+)/;
const USB_RESET = /^reset (\S+(?: Gen \S+)?) USB device number (\d+) using (\S+)/;
const USB_GONE = /^USB disconnect, device number (\d+)/;
const USB_IDS = /idVendor=([0-9a-fA-F]+), idProduct=([0-9a-fA-F]+)(?:, bcdDevice= ?([\d.]+))?/;

const USB_RULES: readonly Rule[] = [
  [
    USB_NEW,
    (m, f) => {
      f.event = 'connect';
      f.speed = m[1]!;
      f.devnum = m[2]!;
      f.hcd = m[3]!;
    },
  ],
  [
    USB_GONE,
    (m, f) => {
      f.event = 'disconnect';
      f.devnum = m[1]!;
    },
  ],
  [
    USB_RESET,
    (m, f) => {
      f.event = 'reset';
      f.speed = m[1]!;
      f.devnum = m[2]!;
      f.hcd = m[3]!;
    },
  ],
  [
    USB_IDS,
    (m, f) => {
      f.event = 'identified';
      f.idVendor = m[1]!;
      f.idProduct = m[2]!;
      if (m[3] !== undefined) f.bcdDevice = m[3];
    },
  ],
  [
    /^(Product|Manufacturer|SerialNumber): (.*)/,
    (m, f) => {
      f.event = 'info';
      f[m[1] === 'SerialNumber' ? 'serial' : m[1]!.toLowerCase()] = m[2]!;
    },
  ],
];

/** `usb 1-1: new high-speed USB device number 2 using ehci-pci`, `usb 1-1: USB disconnect, …` */
function usb(msg: string): Classified | undefined {
  const sp = msg.indexOf(' ');
  const colon = msg.indexOf(': ', sp + 1);
  if (colon < 0) return undefined;
  const f: Record<string, string> = {};
  const port = msg.slice(sp + 1, colon);
  f.port = port;
  const bus = /^(\d+)-/.exec(port);
  if (bus) f.bus = bus[1]!;
  if (msg.startsWith('usb-storage')) {
    f.event = 'storage';
    return { family: 'usb', fields: f };
  }
  const rest = msg.slice(colon + 2);
  if (!firstRule(rest, USB_RULES, f)) f.event = 'other';
  return { family: 'usb', fields: f };
}

// ---- audit / AppArmor / SELinux --------------------------------------------------------------

const AUDIT_STAMP = /audit\((\d+(?:\.\d+)?):(\d+)\)/;
const AVC = /avc: {1,2}(denied|granted) {1,2}\{ ([^}]*) \}/;

/**
 * `audit: type=1400 audit(1700000000.123:45): apparmor="DENIED" operation="open" …` (kernel) and
 * `type=AVC msg=audit(…): avc:  denied  { read } for pid=…` (auditd): type, stamp, serial, and
 * every key=value with its quotes removed.
 */
function audit(msg: string): Classified | undefined {
  const f: Record<string, string> = {};
  const st = AUDIT_STAMP.exec(msg);
  if (st) {
    f.auditTime = st[1]!;
    f.serial = st[2]!;
  }
  kv(msg, f);
  delete f.msg;
  const avc = AVC.exec(msg);
  if (avc) {
    f.avc = avc[1]!;
    f.perms = avc[2]!.trim();
  }
  if (f.apparmor) f.kind = 'apparmor';
  else if (avc) f.kind = 'selinux';
  else if (f.type === '1326' || f.type === 'SECCOMP') f.kind = 'seccomp';
  else f.kind = 'audit';
  return { family: 'audit', fields: f };
}

/** key=value, key="quoted value", key='quoted value' pairs into f (first wins). */
export function kv(msg: string, f: Record<string, string>): void {
  const n = msg.length;
  let i = 0;
  while (i < n) {
    const eq = msg.indexOf('=', i);
    if (eq < 0) break;
    // key: the word just before '='
    let k = eq;
    while (k > i) {
      const c = msg.charCodeAt(k - 1);
      if (c === 32 || c === 44 || c === 40 || c === 123 || c === 58) break;
      k--;
    }
    const key = msg.slice(k, eq);
    let v: string;
    let e: number;
    const q = msg.charCodeAt(eq + 1);
    if (q === 34 || q === 39) {
      const close = msg.indexOf(q === 34 ? '"' : "'", eq + 2);
      e = close < 0 ? n : close + 1;
      v = msg.slice(eq + 2, close < 0 ? n : close);
    } else {
      e = eq + 1;
      while (e < n && msg.charCodeAt(e) !== 32) e++;
      v = msg.slice(eq + 1, e);
      if (v.endsWith(',')) v = v.slice(0, -1);
    }
    if (key && !(key in f)) f[key] = v;
    i = e;
  }
}

// ---- watchdogs and TCP -----------------------------------------------------------------------

const NETDEV_WD = /NETDEV WATCHDOG: (\S+) \(([^)]*)\): transmit queue (\d+) timed out(?: (\d+) ms)?/;
const SOFT_LOCKUP = /soft lockup - CPU#(\d+) stuck for (\d+)s! \[(.+):(\d+)\]/;
const HARD_LOCKUP = /[Hh]ard LOCKUP on cpu (\d+)/;
const HUNG = /task (.+):(\d+) blocked for more than (\d+) seconds/;
const RCU = /rcu_\w+ (?:self-)?detected stalls? on CPUs?/;

const WATCHDOG_RULES: readonly Rule[] = [
  [
    NETDEV_WD,
    (m, f) => {
      f.kind = 'netdev-tx-timeout';
      f.iface = m[1]!;
      f.driver = m[2]!;
      f.queue = m[3]!;
      if (m[4] !== undefined) f.ms = m[4];
    },
  ],
  [
    SOFT_LOCKUP,
    (m, f) => {
      f.kind = 'soft-lockup';
      f.cpu = m[1]!;
      f.seconds = m[2]!;
      f.comm = m[3]!;
      f.pid = m[4]!;
    },
  ],
  [
    HARD_LOCKUP,
    (m, f) => {
      f.kind = 'hard-lockup';
      f.cpu = m[1]!;
    },
  ],
  [
    HUNG,
    (m, f) => {
      f.kind = 'hung-task';
      f.comm = m[1]!;
      f.pid = m[2]!;
      f.seconds = m[3]!;
    },
  ],
  [
    RCU,
    (_m, f) => {
      f.kind = 'rcu-stall';
    },
  ],
  [
    /[Ww]atchdog.*(?:timeout|timed out|did not stop|BUG)/,
    (_m, f) => {
      f.kind = 'watchdog';
    },
  ],
];

function watchdog(msg: string): Classified | undefined {
  const f: Record<string, string> = {};
  if (firstRule(msg, WATCHDOG_RULES, f)) return { family: 'watchdog', fields: f };
  return msg.includes('ink') ? link(msg) : undefined;
}

const SYN_FLOOD = /Possible SYN flooding on port (?:\[?[^\]\s]*\]?:)?(\d+)/;

/** `TCP: request_sock_TCP: Possible SYN flooding on port 80. Sending cookies.` and kin. */
function tcp(msg: string): Classified | undefined {
  const f: Record<string, string> = {};
  const m = SYN_FLOOD.exec(msg);
  if (m) {
    f.kind = 'syn-flood';
    f.port = m[1]!;
    f.action = msg.includes('Sending cookies') ? 'cookies' : msg.includes('Dropping') ? 'drop' : 'unknown';
  } else if (msg.includes('out of memory')) f.kind = 'tcp-oom';
  else if (msg.includes('too many orphaned sockets')) f.kind = 'tcp-orphans';
  else return undefined;
  return { family: 'watchdog', fields: f };
}
