// The cross-process file lock (runtime/file-lock.ts): one holder at a time, stale locks of dead
// processes broken, live ones waited for and then named, the lock never left behind.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileLockError, withFileLock } from '../../runtime/file-lock.ts';

const dir = mkdtempSync(join(tmpdir(), 'virgo-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** a pid that ran and is gone */
async function deadPid(): Promise<number> {
  const p = spawn(process.execPath, ['-e', '0']);
  await once(p, 'exit');
  return p.pid!;
}

describe('withFileLock', () => {
  it('serialises holders and leaves no lock or temp file behind', async () => {
    const file = join(dir, 'a.conf');
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 8 }, () =>
        withFileLock(file, async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 5));
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(readdirSync(dir).filter((n) => n.startsWith('a.conf'))).toEqual([]);
  });

  it('breaks the lock of a process that died holding it', async () => {
    const file = join(dir, 'b.conf');
    writeFileSync(`${file}.lock`, `${await deadPid()} ${hostname()} ${Date.now()} x\n`);
    expect(await withFileLock(file, async () => 'ran', { timeoutMs: 2_000 })).toBe('ran');
    expect(existsSync(`${file}.lock`)).toBe(false);
  });

  it('waits for a live holder, then names it and the way out', async () => {
    const file = join(dir, 'c.conf');
    writeFileSync(`${file}.lock`, `${process.ppid} ${hostname()} ${Date.now()} x\n`);
    const t0 = Date.now();
    await expect(withFileLock(file, async () => 'ran', { timeoutMs: 300 })).rejects.toThrow(
      new RegExp(`locked by process ${process.ppid} .*remove .*c\\.conf\\.lock if no such process runs`),
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    // the live holder's lock is left alone
    expect(readFileSync(`${file}.lock`, 'utf8')).toMatch(new RegExp(`^${process.ppid} `));
  });

  it('a damaged lock, or one from another host older than staleMs, is stale; a fresh remote one is not', async () => {
    const file = join(dir, 'd.conf');
    writeFileSync(`${file}.lock`, 'garbage');
    expect(await withFileLock(file, async () => 1, { timeoutMs: 1_000 })).toBe(1);
    writeFileSync(`${file}.lock`, `1 other-host ${Date.now() - 120_000} x\n`);
    expect(await withFileLock(file, async () => 2, { timeoutMs: 1_000, staleMs: 60_000 })).toBe(2);
    writeFileSync(`${file}.lock`, `1 other-host ${Date.now()} x\n`);
    await expect(withFileLock(file, async () => 3, { timeoutMs: 200 })).rejects.toBeInstanceOf(FileLockError);
  });

  it('the lock is released when the work throws', async () => {
    const file = join(dir, 'e.conf');
    await expect(
      withFileLock(file, async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(existsSync(`${file}.lock`)).toBe(false);
  });
});
