// Helpers of the queue-bridge tests: temp queue dirs, messages.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KingCobraMessage } from '../../../schemas/index.ts';

const dirs: string[] = [];

/** A fresh directory, removed by cleanupDirs(). */
export function tempDir(prefix = 'kc'): string {
  const d = mkdtempSync(join(tmpdir(), `virgo-${prefix}-`));
  dirs.push(d);
  return d;
}

export function cleanupDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export function msg(n: number, over: Partial<KingCobraMessage> = {}): KingCobraMessage {
  return {
    id: `t-${n}`,
    kind: 'REQUEST',
    clientAddr: '127.0.0.1',
    ts_sec: 1_700_000_000 + n,
    ts_nsec: n * 1000,
    payload: `payload ${n}`,
    inReplyTo: null,
    ...over,
  };
}
