// The live status of `virgo up` on a terminal: stage rates, variables changing, queue depth,
// errors, redrawn twice a second (a new log line is counted on screen within 1 s: the source's
// 200 ms linger, ingest, then at most 500 ms to the next frame); log lines are kept in a short
// tail under it instead of scrolling the screen away.
import type { Pipeline } from './topology/index.ts';

interface Change {
  name: string;
  value: string;
  at: number;
}

const CLEAR = '\x1b[H\x1b[2J';

export class StatusView {
  private timer: NodeJS.Timeout | undefined;
  private readonly logs: string[] = [];
  private readonly changes = new Map<string, Change>();
  private last = { t: Date.now(), published: 0, events: 0, vars: 0 };
  private header = '';

  constructor(private readonly out: NodeJS.WritableStream) {}

  log(line: string): void {
    this.logs.push(line.trimEnd());
    if (this.logs.length > 5) this.logs.shift();
  }

  start(p: Pipeline, header: string): void {
    this.header = header.trimEnd();
    p.feeder.table.on('change', (ch: { host: string; key: string; value: string }) => {
      const name = `${ch.host ? `${ch.host}/` : ''}${ch.key}`;
      this.changes.set(name, { name, value: ch.value, at: Date.now() });
    });
    const draw = () => this.draw(p);
    draw();
    this.timer = setInterval(draw, 500);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private draw(p: Pipeline): void {
    const h = p.health() as ReturnType<Pipeline['health']> & {
      ingest: { events: number; deadLettered: number; templates: number } | null;
      learners: { published: number; backend: string };
      feeder: { clients: number };
      queue: { requests: { requests?: number; replies?: number; pending?: number } };
    };
    const now = Date.now();
    const dt = Math.max(0.001, (now - this.last.t) / 1000);
    const published = p.published();
    const events = h.ingest?.events ?? 0;
    const vars = h.learners.published;
    const rate = (a: number, b: number) => Math.max(0, Math.round((a - b) / dt));
    const lines = [
      this.header,
      '',
      `logs published  ${String(published).padStart(9)}  ${String(rate(published, this.last.published)).padStart(6)}/s   source ${p.source}`,
      `events parsed   ${String(events).padStart(9)}  ${String(rate(events, this.last.events)).padStart(6)}/s   dead-lettered ${h.ingest?.deadLettered ?? 0}, templates ${h.ingest?.templates ?? 0}`,
      `variables out   ${String(vars).padStart(9)}  ${String(rate(vars, this.last.vars)).padStart(6)}/s   backend ${h.learners.backend}`,
      `table           ${String(p.table.size).padStart(9)}            feeder clients ${h.feeder.clients}`,
      `queue           ${JSON.stringify(h.queue.requests)}`,
      `flights         ${
        p.actuators.flights
          .map((f) => `#${f.seed} ${f.status} ${(f.tMs / 1000).toFixed(1)}s`)
          .slice(-4)
          .join(', ') || 'in the air'
      }`,
      '',
      'latest variables:',
      ...[...this.changes.values()]
        .sort((a, b) => b.at - a.at)
        .slice(0, 14)
        .map(
          (c) =>
            `  ${c.name.padEnd(44)} ${c.value.slice(0, 40).padEnd(40)} ${((now - c.at) / 1000).toFixed(0)}s ago`,
        ),
      '',
      ...this.logs.map((l) => l.slice(0, 160)),
    ];
    this.last = { t: now, published, events, vars };
    this.out.write(`${CLEAR}${lines.join('\n')}\n`);
  }
}
