// startPipeline in one process (embedded: no Kafka, no Redis); the whole flow over Kafka is
// pipeline.int.test.ts. A regression the reliability suite found (test/reliability).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startPipeline } from '../../cli/pipeline.ts';
import { cleanupAfterEach } from '../helpers/cleanup.ts';

const EMBEDDED = {
  feederPort: 0,
  queuePort: 0,
  zmq: false as const,
  metrics: false as const,
  drivers: [],
  devices: [],
  learners: ['ufw'],
};

describe('startPipeline, embedded', () => {
  const cleanup = cleanupAfterEach();

  it("startPipeline({input: 'none'}) runs without a log source (others publish) and stays healthy", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'virgo-rel-fix-'));
    cleanup.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const p = await startPipeline({ input: 'none', stateDir, ...EMBEDDED });
    cleanup.push(() => p.close());
    expect(p.source).toBe('none');
    // it used to open a file called "none" and report the source as failed
    await new Promise((r) => setImmediate(r));
    expect(p.health()).toMatchObject({ ok: true, source: 'none' });
  });
});
