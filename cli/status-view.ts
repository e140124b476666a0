// The live screen of `virgo up` on a terminal: the stages' counts and rates, the device loop in one
// row, then the kernel analytics as they change (newest first), and a short tail of log lines. It
// fits the terminal (columns × rows, redrawn on resize): every line is cut to the width with an
// ellipsis, never wrapped, and rows are given to the variables last. Each frame is drawn in place
// (cursor home, each line cleared and rewritten, the rest of the screen cleared): no flicker, no
// scrolling. Twice a second (processing time): a new log line is counted on screen within 1 s
// (the source's 200 ms linger, ingest, then at most 500 ms to the next frame).
import { isDeviceControl } from './change-lines.ts';
import { escapeControls } from './escape.ts';
import { deviceLoop } from './figures.ts';
import type { Pipeline } from './topology/index.ts';

/** One row of the stages: a count, its rate, and a few words more. */
export interface StageRow {
  label: string;
  total?: number;
  perSec?: number;
  detail: string;
}

/** Everything a frame shows; rendering it is a pure function of this and the screen size. */
export interface StatusSnapshot {
  title: string;
  endpoints: Record<string, string>;
  stages: StageRow[];
  /** kernel analytics, newest change first */
  variables: { name: string; value: string; ageMs: number }[];
  logs: string[];
}

// ---------- width ----------

const WIDE =
  /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]/u;
const ZERO = /[\p{Mn}\p{Me}\u200b-\u200f]/u;

function charCells(ch: string): number {
  if (ZERO.test(ch)) return 0;
  return WIDE.test(ch) ? 2 : 1;
}

/** Columns `s` takes on a terminal (wide CJK and emoji take two, combining marks none). */
export function cells(s: string): number {
  let n = 0;
  for (const ch of s) n += charCells(ch);
  return n;
}

/** `s` cut to `width` columns, with an ellipsis when it was longer. */
export function clip(s: string, width: number): string {
  if (width <= 0) return '';
  if (cells(s) <= width) return s;
  let out = '';
  let n = 0;
  for (const ch of s) {
    const c = charCells(ch);
    if (n + c > width - 1) break;
    out += ch;
    n += c;
  }
  return `${out}…`;
}

function pad(s: string, width: number): string {
  const f = clip(s, width);
  return f + ' '.repeat(Math.max(0, width - cells(f)));
}

function padStart(s: string, width: number): string {
  const f = clip(s, width);
  return ' '.repeat(Math.max(0, width - cells(f))) + f;
}

// ---------- render ----------

/** Text as the screen shows it: control bytes spelled out, a tab one space (it would take up to 8). */
function screen(s: string): string {
  return escapeControls(s).replace(/\t/g, ' ');
}

function human(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e5) return `${(n / 1e3).toFixed(0)}k`;
  return String(Math.round(n));
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

/** Endpoints in few columns: the dashboard's URL first, then NAME :PORT (HOST:PORT off 127.0.0.1). */
function endpointsLine(e: Record<string, string>): string {
  const parts: string[] = [];
  if (e.dashboard) parts.push(`dashboard ${e.dashboard}`);
  for (const [k, v] of Object.entries(e)) {
    if (k === 'dashboard' || k === 'metrics') continue;
    parts.push(`${k} ${v.replace(/^(tcp:\/\/)?127\.0\.0\.1:/, ':')}`);
  }
  return parts.join(' · ');
}

/**
 * The lines of one frame: at most `rows` lines, none wider than `columns - 1` (the last column
 * stays empty: a character there leaves the cursor in the terminal's pending-wrap state, where
 * clearing the line would erase that character).
 */
export function renderStatus(s: StatusSnapshot, size: { columns: number; rows: number }): string[] {
  const W = Math.max(1, size.columns - 1);
  const H = Math.max(1, size.rows);
  const out: string[] = [screen(s.title)];
  const roomy = H >= 18;
  if (H >= 10) out.push(endpointsLine(s.endpoints));
  if (roomy) out.push('');
  for (const r of s.stages) {
    const nums =
      r.total === undefined
        ? ' '.repeat(18)
        : `${padStart(human(r.total), 9)}${padStart(r.perSec === undefined ? '' : `${human(r.perSec)}/s`, 9)}`;
    out.push(`${pad(r.label, 10)}${nums}  ${screen(r.detail)}`);
  }
  if (roomy) out.push('');
  const keepLogs = H >= 22 ? 3 : H >= 14 ? 1 : 0;
  const logs = keepLogs > 0 ? s.logs.slice(-keepLogs) : [];
  const room = H - out.length - logs.length - 1;
  if (room >= 1) {
    const n = s.variables.length;
    out.push(`kernel analytics${n > 0 ? `, newest first (${n})` : ': none yet'}`);
    const shown = n > room ? room - 1 : n;
    const ageW = 5;
    const nameW = Math.min(
      Math.max(12, ...s.variables.slice(0, shown).map((v) => cells(screen(v.name)))),
      Math.floor((W - 2 - ageW) * 0.55),
    );
    const valueW = Math.max(1, W - 2 - nameW - 1 - ageW);
    for (const v of s.variables.slice(0, shown)) {
      out.push(
        `  ${pad(screen(v.name), nameW)} ${pad(screen(v.value), valueW)}${padStart(age(v.ageMs), ageW)}`,
      );
    }
    if (n > shown)
      out.push(`  … ${n - shown} more${s.endpoints.dashboard ? ` on ${s.endpoints.dashboard}` : ''}`);
  }
  if (out.length + logs.length <= H) out.push(...logs.map((l) => screen(l)));
  return out.slice(0, H).map((l) => clip(l, W));
}

/** One frame as terminal output: home, then each line cleared before it is written, then the rest. */
export function frameBytes(lines: readonly string[]): string {
  return `\x1b[H${lines.map((l) => `\x1b[K${l}`).join('\r\n')}\x1b[J`;
}

// ---------- the live view ----------

interface Change {
  name: string;
  value: string;
  at: number;
}

/** At most this many variables are remembered for the screen (newest kept). */
const MAX_CHANGES = 1000;

type TtyOut = NodeJS.WritableStream & {
  columns?: number;
  rows?: number;
  on(ev: 'resize', fn: () => void): unknown;
  off?(ev: 'resize', fn: () => void): unknown;
};

export class StatusView {
  private timer: NodeJS.Timeout | undefined;
  private readonly logs: string[] = [];
  private readonly changes = new Map<string, Change>();
  private deviceChanges = 0;
  private last = { t: Date.now(), published: 0, vars: 0, devices: 0 };
  private rates = { published: 0, vars: 0, devices: 0 };
  private header = '';
  private draw: (() => void) | undefined;

  constructor(private readonly out: TtyOut) {}

  log(line: string): void {
    this.logs.push(line.trimEnd());
    if (this.logs.length > 5) this.logs.shift();
  }

  start(p: Pipeline, header: string): void {
    this.header = header.trim();
    const deviceHosts = [p.actuators.deviceIds.drone, p.actuators.deviceIds.webcam];
    p.feeder.table.on('change', (ch: { host: string; key: string; value: string }) => {
      if (isDeviceControl(ch.host, ch.key, deviceHosts)) {
        this.deviceChanges++;
        return;
      }
      const name = `${ch.host ? `${ch.host}/` : ''}${ch.key}`;
      this.changes.delete(name);
      this.changes.set(name, { name, value: ch.value, at: Date.now() });
      if (this.changes.size > MAX_CHANGES) this.changes.delete(this.changes.keys().next().value!);
    });
    this.draw = () => this.frame(p);
    // the cursor hidden while the screen is ours
    this.out.write('\x1b[?25l\x1b[2J');
    this.draw();
    this.timer = setInterval(this.draw, 500);
    this.out.on('resize', this.draw);
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.draw) this.out.off?.('resize', this.draw);
    this.out.write('\r\n\x1b[?25h');
  }

  /** What the screen shows now (for tests as for the frame). */
  snapshot(p: Pipeline, now = Date.now()): StatusSnapshot {
    const h = p.health() as ReturnType<Pipeline['health']> & {
      ingest: { events: number; deadLettered: number; templates: number } | null;
      learners: { published: number; backend: string; pins: number };
      feeder: { clients: number; variables: number };
    };
    const published = p.published();
    const vars = h.learners.published;
    const dt = (now - this.last.t) / 1000;
    if (dt >= 0.25) {
      const rate = (a: number, b: number) => Math.max(0, (a - b) / dt);
      this.rates = {
        published: rate(published, this.last.published),
        vars: rate(vars, this.last.vars),
        devices: rate(this.deviceChanges, this.last.devices),
      };
      this.last = { t: now, published, vars, devices: this.deviceChanges };
    }
    const q = p.queue.stats();
    const ring = p.consumers[0]?.stats().ring;
    const held = p.learn.host.variableStates().filter((s) => s.held).length;
    const devices = deviceLoop(p.actuators);
    return {
      title: this.header,
      endpoints: p.endpoints,
      stages: [
        {
          label: 'logs in',
          total: published,
          perSec: this.rates.published,
          detail: `source ${p.source} · parsed ${h.ingest?.events ?? 0} · dead-lettered ${h.ingest?.deadLettered ?? 0} · templates ${h.ingest?.templates ?? 0}`,
        },
        {
          label: 'variables',
          total: vars,
          perSec: this.rates.vars,
          detail: `learners on ${h.learners.backend} · pins ${h.learners.pins} · held by dwell ${held}`,
        },
        {
          label: 'feeder',
          total: h.feeder.variables,
          detail: `variables · ${h.feeder.clients} clients${ring ? ` · ring ${ring.length}/${ring.size}` : ''}`,
        },
        {
          label: 'queue',
          total: q.kingcobra.accepted,
          detail: `requests · ${q.kingcobra.replied} replied · ${q.kingcobra.inflight} in flight · log ${q.log.records} records`,
        },
        {
          label: 'devices',
          perSec: this.rates.devices,
          total: this.deviceChanges,
          detail: devices
            ? Object.entries(devices)
                .map(([k, v]) => `${k} ${v}`)
                .join(' · ')
            : 'none',
        },
      ],
      variables: [...this.changes.values()]
        .reverse()
        .map((c) => ({ name: c.name, value: c.value, ageMs: now - c.at })),
      logs: [...this.logs],
    };
  }

  private frame(p: Pipeline): void {
    const size = { columns: this.out.columns ?? 80, rows: this.out.rows ?? 24 };
    this.out.write(frameBytes(renderStatus(this.snapshot(p), size)));
  }
}
