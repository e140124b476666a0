// Where state lives: model checkpoints, miner state, pins, the KingCobra segment log.
// VIRGO_STATE_DIR, else ./.virgo (git-ignored), so a clone runs without root.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export function stateDir(...sub: string[]): string {
  const base = resolve(process.env.VIRGO_STATE_DIR ?? '.virgo');
  const dir = join(base, ...sub);
  mkdirSync(dir, { recursive: true });
  return dir;
}
