// EventNet, :20000: edge and vertex messages of the cloud-wide event graph, appended to two text
// files as the original kernel service did (/var/log/eventnet/EventNetEdges.txt and
// EventNetVertices.txt; AsFer turns them into DOT graphs).
//   eventnet_edgemsg#<from>#<to>#        -> ok     appends "<from> - <to>" to the edges file
//   eventnet_vertexmsg#<id>#<a0>#<a1>    -> ok     appends "<id> - <a0> - <a1>" to the vertices file
// (`eventnet_vertextmsg`, the original's spelling, is accepted too.) `ok` is sent only after the
// line is written; lines are appended whole, in arrival order, gathered into one write while the
// previous write is in flight.
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger } from '../../runtime/log.ts';
import { type CommonServerOptions, DriverError, DriverService, quote } from './driver-server.ts';
import { EVENTNET_PORT } from './ports.ts';

const log = createLogger('drivers.eventnet');

export const EDGES_FILE = 'EventNetEdges.txt';
export const VERTICES_FILE = 'EventNetVertices.txt';
const MAX_FIELD = 1024;

const HELP =
  'eventnet: eventnet_edgemsg#<from>#<to># | eventnet_vertexmsg#<id>#<a0>#<a1>  -> ok; fields are printable text without #';

export interface EventNetOptions extends CommonServerOptions {
  /** where the two files live (the original: /var/log/eventnet) */
  dir: string;
  port?: number;
  /** fsync each append before replying ok (slower; survives power loss) */
  fsync?: boolean;
}

export type EventNetMessage =
  | { kind: 'edge'; from: string; to: string }
  | { kind: 'vertex'; id: string; a0: string; a1: string };

const EDGE_FORMAT = 'eventnet_edgemsg#<from>#<to>#';
const VERTEX_FORMAT = 'eventnet_vertexmsg#<id>#<a0>#<a1>';

export function parseEventNetMessage(line: string): EventNetMessage {
  const parts = line.split('#');
  const head = parts[0];
  if (head === 'eventnet_edgemsg') {
    // the trailing '#' of the contract is optional
    if (parts.length === 4 && parts[3] === '') parts.pop();
    if (parts.length !== 3) {
      throw new DriverError(
        'malformed',
        `edge message has ${parts.length - 1} fields; expected ${EDGE_FORMAT}`,
      );
    }
    const f = (x: string, name: string) => field(x, name, EDGE_FORMAT);
    return { kind: 'edge', from: f(parts[1]!, 'from'), to: f(parts[2]!, 'to') };
  }
  if (head === 'eventnet_vertexmsg' || head === 'eventnet_vertextmsg') {
    if (parts.length === 5 && parts[4] === '') parts.pop();
    if (parts.length !== 4) {
      throw new DriverError(
        'malformed',
        `vertex message has ${parts.length - 1} fields; expected ${VERTEX_FORMAT}`,
      );
    }
    const f = (x: string, name: string) => field(x, name, VERTEX_FORMAT);
    return { kind: 'vertex', id: f(parts[1]!, 'id'), a0: f(parts[2]!, 'a0'), a1: f(parts[3]!, 'a1') };
  }
  throw new DriverError(
    'unknown-command',
    `${quote(line)} is not an eventnet message; expected ${EDGE_FORMAT} or ${VERTEX_FORMAT}`,
  );
}

function field(s: string, name: string, format: string): string {
  const t = s.trim();
  const bad = (why: string) => new DriverError('malformed', `${name} ${why}; expected ${format}`);
  if (t === '') throw bad('is empty');
  if (t.length > MAX_FIELD) throw bad(`is longer than ${MAX_FIELD} characters`);
  // " - " separates fields in the files; inside a field it would make the line ambiguous
  if (t.includes(' - ')) throw bad(`${quote(t)} contains " - ", the files' field separator`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we refuse
  if (/[\u0000-\u001f\u007f]/.test(t)) throw bad('contains a control character');
  return t;
}

export function formatEventNetLine(m: EventNetMessage): string {
  return m.kind === 'edge' ? `${m.from} - ${m.to}\n` : `${m.id} - ${m.a0} - ${m.a1}\n`;
}

interface AppendFile {
  name: string;
  handle: FileHandle;
  pending: { text: string; resolve: (r: string) => void; reject: (e: Error) => void }[];
  writing: boolean;
}

export class EventNet extends DriverService {
  private edges: AppendFile | undefined;
  private vertices: AppendFile | undefined;

  constructor(private readonly opts: EventNetOptions) {
    super({ name: 'eventnet', port: opts.port ?? EVENTNET_PORT, help: HELP }, opts, log);
  }

  get edgesPath(): string {
    return join(this.opts.dir, EDGES_FILE);
  }

  get verticesPath(): string {
    return join(this.opts.dir, VERTICES_FILE);
  }

  async start(): Promise<number> {
    await mkdir(this.opts.dir, { recursive: true });
    this.edges = {
      name: EDGES_FILE,
      handle: await open(this.edgesPath, 'a', 0o644),
      pending: [],
      writing: false,
    };
    this.vertices = {
      name: VERTICES_FILE,
      handle: await open(this.verticesPath, 'a', 0o644),
      pending: [],
      writing: false,
    };
    return this.server.listen();
  }

  protected handle(line: string): Promise<string> {
    const msg = parseEventNetMessage(line);
    const file = msg.kind === 'edge' ? this.edges : this.vertices;
    if (!file) throw new DriverError('unavailable', 'eventnet is not started');
    return new Promise<string>((resolve, reject) => {
      file.pending.push({ text: formatEventNetLine(msg), resolve, reject });
      if (!file.writing) void this.drain(file);
    });
  }

  /**
   * Group append: while one write is in flight the next lines gather, and go in one write (one
   * fsync with --fsync); each `ok` is sent once its line is in the file. Order is arrival order.
   */
  private async drain(file: AppendFile): Promise<void> {
    file.writing = true;
    while (file.pending.length > 0) {
      const batch = file.pending.splice(0);
      try {
        await file.handle.appendFile(batch.map((b) => b.text).join(''));
        if (this.opts.fsync) await file.handle.datasync();
        for (const b of batch) b.resolve('ok');
      } catch (err) {
        const e = new DriverError(
          'io',
          `cannot append to ${file.name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
        for (const b of batch) b.reject(e);
      }
    }
    file.writing = false;
  }

  async close(): Promise<void> {
    await this.server.close();
    for (const f of [this.edges, this.vertices]) {
      if (!f) continue;
      while (f.writing || f.pending.length > 0) await new Promise((r) => setImmediate(r));
      await f.handle.close();
    }
    this.edges = undefined;
    this.vertices = undefined;
  }
}
