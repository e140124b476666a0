// publish-logs' read position per followed file: what the Bus acknowledged, so a restarted
// publisher neither sends a line again nor skips one (the registry of Filebeat, the checkpoints
// of Vector's file source). One small JSON file per (followed path, topic), replaced atomically
// (write a temporary file, rename it over the old one) after every acknowledged batch: a crash
// leaves the previous checkpoint or the new one, never a torn one.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createLogger } from '../runtime/log.ts';
import type { FilePosition } from './follow.ts';

const log = createLogger('ingest.checkpoint');

export const CHECKPOINT_VERSION = 1;

export interface Checkpoint {
  version: typeof CHECKPOINT_VERSION;
  /** the followed name (absolute) */
  source: string;
  /** the topic the lines went to (namespace included) */
  topic: string;
  /** the file and the offset just past the last acknowledged line; `position.path` differs from
   * `source` when that file was a rotated generation */
  position: FilePosition;
  /** processing time of the write (ISO 8601), for people reading the file */
  savedAt: string;
}

/** The topic as the broker names it: with the namespace prefix (VIRGO_NAMESPACE) of bus/namespace.ts. */
export function brokerTopic(topic: string, namespace = process.env.VIRGO_NAMESPACE): string {
  if (!namespace) return topic;
  return `${namespace.endsWith('.') ? namespace : `${namespace}.`}${topic}`;
}

/** `STATE_DIR/publish-logs/NAME-HASH.json`, HASH over the absolute followed path and the topic. */
export function checkpointPath(stateDir: string, source: string, topic: string): string {
  const abs = resolve(source);
  const h = createHash('sha256').update(`${abs}\0${topic}`).digest('hex').slice(0, 12);
  return join(stateDir, 'publish-logs', `${basename(abs)}-${h}.json`);
}

function isPosition(p: unknown): p is FilePosition {
  if (typeof p !== 'object' || p === null) return false;
  const o = p as Record<string, unknown>;
  return (
    typeof o.path === 'string' &&
    Number.isSafeInteger(o.dev) &&
    Number.isSafeInteger(o.ino) &&
    Number.isSafeInteger(o.offset) &&
    (o.offset as number) >= 0 &&
    Number.isSafeInteger(o.fingerprintBytes) &&
    typeof o.fingerprint === 'string'
  );
}

/**
 * The checkpoint in `file` for `source` and `topic`, or undefined when there is none. An unreadable
 * or foreign one is reported and ignored: reading from the start again sends duplicates, never
 * leaves a gap.
 */
export function loadCheckpoint(file: string, source: string, topic: string): Checkpoint | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    log.warn('cannot read the checkpoint; starting without it', { file, err });
    return undefined;
  }
  let cp: Partial<Checkpoint>;
  try {
    cp = JSON.parse(text) as Partial<Checkpoint>;
  } catch (err) {
    log.warn('the checkpoint is not JSON; starting without it', { file, err });
    return undefined;
  }
  if (cp.version !== CHECKPOINT_VERSION || !isPosition(cp.position)) {
    log.warn('the checkpoint has an unknown format; starting without it', { file });
    return undefined;
  }
  if (cp.source !== resolve(source) || cp.topic !== topic) {
    log.warn('the checkpoint is for another file or topic; starting without it', {
      file,
      checkpointFor: { source: cp.source, topic: cp.topic },
    });
    return undefined;
  }
  return cp as Checkpoint;
}

/** Writes the checkpoints of one followed file. */
export class CheckpointWriter {
  private readonly tmp: string;
  private readonly source: string;
  private last = '';
  saved = 0;

  constructor(
    readonly file: string,
    source: string,
    private readonly topic: string,
  ) {
    this.source = resolve(source);
    this.tmp = `${file}.tmp`;
    mkdirSync(dirname(file), { recursive: true });
  }

  /** Synchronous, called in the acknowledgement's callback: the window in which a crash re-sends
   * an acknowledged batch is this write alone. */
  save(position: FilePosition): void {
    const key = `${position.dev}:${position.ino}:${position.offset}:${position.fingerprint}`;
    if (key === this.last) return;
    const cp: Checkpoint = {
      version: CHECKPOINT_VERSION,
      source: this.source,
      topic: this.topic,
      position,
      savedAt: new Date().toISOString(),
    };
    writeFileSync(this.tmp, `${JSON.stringify(cp)}\n`);
    renameSync(this.tmp, this.file);
    this.last = key;
    this.saved++;
  }
}
