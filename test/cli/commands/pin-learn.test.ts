// The CLI as users run it (child processes): `virgo pin`/`virgo unpin` change what a separately
// running learner emits, and `virgo learn` learns from a file without a broker.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryBus, TOPICS } from '../../../bus/index.ts';
import { createLearnerHost } from '../../../learners/host.ts';
import { currentSnapshot } from '../../../learners/snapshot.ts';
import { type AnalyticsVariable, codecFor } from '../../../schemas/index.ts';
import { UFW_SAMPLES, ufwEvent } from '../../helpers/events.ts';
import { virgo, waitFor } from '../../helpers/services.ts';

describe('virgo pin / unpin', () => {
  it('pins a variable of a running learner from another process, lists it, and unpins it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virgo-pin-'));
    const bus = new MemoryBus();
    const host = await createLearnerHost({ bus, learners: ['ufw'], stateDir: dir });
    const got: AnalyticsVariable[] = [];
    const codec = codecFor('AnalyticsVariable');
    const sub = await bus.subscribe({
      topics: [TOPICS.kernelAnalytics],
      groupId: 'g',
      fromBeginning: true,
      onBatch: async (b) => void got.push(...b.map((m) => codec.decode(m.value!))),
    });
    try {
      const r = await virgo(['pin', 'edge-1/ufw.top_dst_port=8080', '--state-dir', dir]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('pinned edge-1/ufw.top_dst_port=8080\n');
      expect(r.code).toBe(0);
      await waitFor(() => got.find((v) => v.key === 'ufw.top_dst_port'), 'the announced pin', 10_000);
      expect(got[0]).toMatchObject({
        host: 'edge-1',
        value: '8080',
        learner: 'operator',
        type: 'int',
        unit: 'port',
      });
      await host.handleEvents([ufwEvent('edge-1', Date.now(), '192.0.2.1', 22)]);
      expect(got.filter((v) => v.key === 'ufw.top_dst_port').map((v) => v.value)).toEqual(['8080']);

      const list = await virgo(['pin', '--state-dir', dir]);
      expect(list.stdout).toMatch(/^edge-1\/ufw\.top_dst_port=8080\t# by \S+ at \d{4}-/);

      const bad = await virgo(['pin', 'edge-1/ufw.top_dst_port=99999', '--state-dir', dir]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/must be within \[0, 65535\] port; got 99999/);
      const worse = await virgo(['pin', 'edge-1/ufw.top_src_ip=not-an-ip', '--state-dir', dir]);
      expect(worse.code).toBe(2);
      expect(worse.stderr).toMatch(/IP address/);

      const un = await virgo(['unpin', 'edge-1/ufw.top_dst_port', '--state-dir', dir]);
      expect(un).toMatchObject({ code: 0, stdout: 'unpinned edge-1/ufw.top_dst_port\n' });
      await waitFor(() => host.stats().pins === 0, 'the pin lifted', 10_000);
      await host.handleEvents([ufwEvent('edge-1', Date.now(), '192.0.2.1', 22)]);
      await waitFor(() => got.filter((v) => v.key === 'ufw.top_dst_port').length === 2, 'the learner value');
      expect(got.filter((v) => v.key === 'ufw.top_dst_port').at(-1)).toMatchObject({
        value: '22',
        learner: 'ufw',
      });
    } finally {
      await sub.close();
      await host.close({ save: false });
    }
  });
});

describe('virgo learn (embedded)', () => {
  it('learns from a log file and prints the variables', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virgo-learn-'));
    const r = await virgo([
      'learn',
      '--learners',
      'ufw',
      '--input',
      UFW_SAMPLES,
      '--state-dir',
      dir,
      '--log-level',
      'warn',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toContain('ip-172-30-0-64/ufw.top_src_ip=46.188.26.149');
    expect(lines).toContain('linode/ufw.top_src_ip=91.230.47.38');
    expect(lines).toContain('ip-172-30-0-64/ufw.top_dst_port=23');
    expect(currentSnapshot(join(dir, 'learners'))).toBeDefined();
  });

  it('refuses unknown learners with the list', async () => {
    const r = await virgo(['learn', '--learners', 'ufw,nope', '--input', UFW_SAMPLES]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown learner "nope"; learners: ufw, netbw, anomaly, load, drone, webcam/);
  });
});
