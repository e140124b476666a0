// What a KingCobra segment log holds after a fault: how many times each request payload was
// stored, to count what was lost (acknowledged, never stored) and duplicated (stored twice).
import { openSegmentLog } from '../../../queue-bridge/index.ts';

/** Each REQUEST payload of the log in `dir` with how many times it was stored (read-only). */
export async function storedRequests(dir: string): Promise<Map<string, number>> {
  const log = await openSegmentLog(dir, { readOnly: true });
  const stored = new Map<string, number>();
  for await (const r of log.read()) {
    if (r.message.kind === 'REQUEST') stored.set(r.message.payload, (stored.get(r.message.payload) ?? 0) + 1);
  }
  await log.close();
  return stored;
}
