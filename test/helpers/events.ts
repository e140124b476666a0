// KernelEvents for the learner and CLI tests: built directly, or parsed from real lines with ingest's
// parser and miner (what the consumer stage hands the learners).
import { readFileSync } from 'node:fs';
import { kernelEvent, parseLine, TemplateMiner, toKernelEvent } from '../../ingest/index.ts';
import type { KernelEvent } from '../../schemas/index.ts';
import { UFW_SAMPLES } from './fixtures.ts';

/** A KernelEvent built directly (ingest's kernelEvent). */
export const ev = kernelEvent;

export function ufwEvent(host: string, ts: number, src: string, dpt: number, action = 'BLOCK'): KernelEvent {
  return ev(host, ts, `[UFW ${action}] IN=eth0 OUT= SRC=${src} DST=10.0.0.1 PROTO=TCP SPT=4000 DPT=${dpt}`, {
    family: 'ufw',
    fields: { action, SRC: src, DST: '10.0.0.1', PROTO: 'TCP', SPT: '4000', DPT: String(dpt) },
  });
}

/** Lines through ingest's parser and template miner, as the consumer stage does. */
export function parseLines(
  lines: string[],
  now = Date.UTC(2024, 11, 31),
  miner = new TemplateMiner(),
): KernelEvent[] {
  return lines
    .filter((l) => l.trim())
    .map((l) => {
      const p = parseLine(l, { host: 'fallback', now });
      return toKernelEvent(p, miner.add(p.message));
    });
}

export { UFW_SAMPLES } from './fixtures.ts';

export function ufwSampleLines(): string[] {
  return readFileSync(UFW_SAMPLES, 'utf8').split('\n').filter(Boolean);
}
