// What every fault test file needs: a cleanup list run after all its tests (newest first,
// errors from things already gone ignored), temporary directories, and children SIGKILLed at
// the end whatever happened.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { Child } from './child.ts';

export interface TestScope {
  cleanup: (() => Promise<unknown> | unknown)[];
  tempDir(prefix: string): string;
  track(c: Child): Child;
}

export function testScope(hookTimeoutMs = 60_000): TestScope {
  const cleanup: TestScope['cleanup'] = [];
  afterAll(async () => {
    for (const c of cleanup.splice(0).reverse()) {
      try {
        await c();
      } catch {
        // already gone
      }
    }
  }, hookTimeoutMs);
  return {
    cleanup,
    tempDir(prefix) {
      const d = mkdtempSync(join(tmpdir(), `virgo-rel-${prefix}-`));
      cleanup.push(() => rmSync(d, { recursive: true, force: true }));
      return d;
    },
    track(c) {
      cleanup.push(() => c.kill9());
      return c;
    },
  };
}
