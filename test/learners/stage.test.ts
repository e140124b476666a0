// The learn stage on the in-process bus: raw log lines through ingest into the learners, Avro
// device records into the drone and webcam learners, bad device records counted and skipped, and a
// snapshot (with the template miner) written on close.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryBus, TOPICS } from '../../bus/index.ts';
import { currentSnapshot } from '../../learners/snapshot.ts';
import { startLearnStage } from '../../learners/stage.ts';
import { type AnalyticsVariable, codecFor } from '../../schemas/index.ts';
import { ufwSampleLines } from '../helpers/events.ts';
import { waitFor } from '../helpers/services.ts';

describe('learn stage (in-process bus)', () => {
  it('turns log lines and device records into variables, and snapshots on close', async () => {
    const bus = new MemoryBus();
    const dir = mkdtempSync(join(tmpdir(), 'virgo-stage-'));
    const seen: AnalyticsVariable[] = [];
    const stage = startLearnStage({
      bus,
      stateDir: dir,
      learners: ['ufw', 'drone', 'webcam'],
      fromBeginning: true,
      learnerOptions: { webcam: { threshold: 0.9, gallery: { alice: [[1, 0, 0]] } } },
      onEmit: (v) => void seen.push(v),
    });
    expect(() => stage.host).toThrow(/not ready/);
    await stage.ready;
    await bus.publish(
      TOPICS.kernelLogs,
      ufwSampleLines().map((l) => ({ key: 'fallback', value: l })),
    );
    const drone = codecFor('DroneSensorFrame');
    const cam = codecFor('WebcamFrame');
    await bus.publish(TOPICS.droneSensors, [
      {
        key: 'drone-7',
        value: drone.encode({
          deviceId: 'drone-7',
          seq: 1,
          ts: 1,
          distances: [1, 30, 30, 30, 30, 30, 30, 30],
          speed: 3,
          heading: 0,
          goalBearing: 0,
          goalDistance: 40,
        }),
      },
      { key: 'drone-7', value: Buffer.from('not avro') },
      { key: 'drone-7', value: null },
    ]);
    await bus.publish(TOPICS.webcamFrames, [
      {
        key: 'cam-1',
        value: cam.encode({
          deviceId: 'cam-1',
          seq: 1,
          ts: 1,
          faceDetected: true,
          embedding: [0.99, 0.05, 0],
        }),
      },
    ]);
    const get = (host: string, key: string) => seen.find((v) => v.host === host && v.key === key)?.value;
    await waitFor(
      () => get('ip-172-30-0-64', 'ufw.top_src_ip') && get('drone-7', 'pxrc.brake') && get('cam-1', 'match'),
      'variables',
    );
    expect(get('ip-172-30-0-64', 'ufw.top_src_ip')).toBe('46.188.26.149');
    expect(get('drone-7', 'pxrc.brake')).toBe('1');
    expect(get('cam-1', 'match')).toBe('True');
    await waitFor(() => stage.stats().devices.rejected === 2, 'two rejected device records');
    const s = stage.stats();
    // the sample file repeats three linode lines verbatim (same host, time and text): counted once
    expect(s.ingest).toMatchObject({ lines: 20, events: 17, duplicates: 3, late: 0 });
    expect(s.inputs).toEqual({ kernel: 17, drone: 1, webcam: 1 });
    await stage.close();
    const snap = currentSnapshot(join(dir, 'learners'))!;
    expect(existsSync(join(snap, 'miner.json'))).toBe(true);
    expect(existsSync(join(snap, 'ufw', 'state.json'))).toBe(true);
    await bus.close();
  });

  it('keeps the template miner in its snapshot: restored at start, a damaged one is not fatal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virgo-stage-'));
    const run = async (lines: string[]) => {
      const bus = new MemoryBus();
      const stage = startLearnStage({ bus, stateDir: dir, learners: ['ufw'], fromBeginning: true });
      await stage.ready;
      const restored = stage.stats().ingest!.templates;
      await bus.publish(
        TOPICS.kernelLogs,
        lines.map((value) => ({ key: 'h', value })),
      );
      await waitFor(() => stage.stats().ingest!.events === lines.length, `${lines.length} events`);
      const templates = stage.stats().ingest!.templates;
      await stage.close();
      await bus.close();
      return { restored, templates };
    };
    const first = await run(['kernel: eth0: link up', 'kernel: session closed for user root']);
    expect(first).toEqual({ restored: 0, templates: 2 });
    expect(await run([])).toEqual({ restored: 2, templates: 2 });
    writeFileSync(join(currentSnapshot(join(dir, 'learners'))!, 'miner.json'), '{ not json');
    expect(await run(['kernel: eth0: link up'])).toEqual({ restored: 0, templates: 1 });
  });
});
