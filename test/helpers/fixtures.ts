// Real files the tests read, shipped in test/fixtures/ (each folder's SOURCE.md says where from,
// under which licence, what was changed): a bare clone has everything its tests need.
import { fileURLToPath } from 'node:url';

/** Absolute path of a file under test/fixtures/ (file URL → path: survives spaces in the clone's path). */
export function fixture(relative: string): string {
  return fileURLToPath(new URL(`../fixtures/${relative}`, import.meta.url));
}

/** 20 real [UFW BLOCK] kernel lines from four hosts (MPL-2.0 / Apache-2.0). */
export const UFW_SAMPLES = fixture('ufw/ufw_licensed_samples.log');

/** The original KingCobra REQUEST_REPLY queue of 17 April 2017: 35 records in binary padding (GPL-3.0). */
export const LEGACY_QUEUE = fixture('neuronrain/REQUEST_REPLY.queue.routedbyVIRGOQueue.17April2017');
