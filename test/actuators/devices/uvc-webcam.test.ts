import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UvcWebcam } from '../../../actuators/devices/index.ts';
import { hostView } from '../../../actuators/drivers/index.ts';
import { MemoryBus, TOPICS } from '../../../bus/index.ts';
import { VariableTable } from '../../../kernel-analytics/index.ts';
import { loadBackend } from '../../../learners/backend.ts';
import { WebcamLearner } from '../../../learners/webcam.ts';
import { startQueueService } from '../../../queue-bridge/index.ts';
import { codecFor, type WebcamFrame } from '../../../schemas/index.ts';
import { waitFor } from '../../helpers/services.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function cosine(a: number[], b: number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

describe('UVC webcam device', () => {
  it('acts on match=True|False: unlock, or lock and record; trace lines as uvc_video.c printed', () => {
    const table = new VariableTable();
    const cam = new UvcWebcam({ deviceId: 'cam1', variables: hostView(table, 'cam1') });
    expect(cam.locked).toBe(true);
    table.set('match', 'True', { host: 'cam1' });
    expect(cam.actions.map((a) => a.action)).toEqual(['unlock']);
    expect(cam.locked).toBe(false);
    expect(cam.recording).toBe(false);
    expect(cam.traces.at(-1)).toBe(
      'uvcvideo: uvc_video_decode_start(): kernel_analytics variable match=True: face matched, unlocking',
    );
    // the same value again is no new action; another camera's variable is not ours
    table.set('match', 'true', { host: 'cam1' });
    table.set('match', 'False', { host: 'cam2' });
    expect(cam.actions).toHaveLength(1);
    table.set('match', 'False', { host: 'cam1' });
    expect(cam.actions.map((a) => a.action)).toEqual(['unlock', 'record']);
    expect(cam.locked).toBe(true);
    expect(cam.recording).toBe(true);
    expect(cam.traces.at(-1)).toMatch(/match=False: face not matched, locking and recording$/);
    // not a boolean: traced, no action
    table.set('match', 'maybe', { host: 'cam1' });
    expect(cam.actions).toHaveLength(2);
    expect(cam.traces.at(-1)).toMatch(/match=maybe is not True\/False; no action$/);
    // every frame traces the variable as imported now
    cam.capture('owner');
    expect(cam.traces.at(-1)).toBe(
      'uvcvideo: uvc_video_decode_start(): frame 0, kernel_analytics variable match=maybe',
    );
    cam.close();
    table.set('match', 'True', { host: 'cam1' });
    expect(cam.actions).toHaveLength(2);
  });

  it('acts on the value already there when it starts (a restart keeps a lock)', () => {
    const table = new VariableTable();
    table.set('match', 'False', { host: 'cam1' });
    const cam = new UvcWebcam({ deviceId: 'cam1', variables: hostView(table, 'cam1') });
    expect(cam.actions.map((a) => a.action)).toEqual(['record']);
    cam.close();
  });

  it('replies to the VIRGO queue on every action', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'virgo-uvc-queue-'));
    dirs.push(dir);
    const q = await startQueueService({ dir, listen: false });
    try {
      const table = new VariableTable();
      const cam = new UvcWebcam({ deviceId: 'cam9', variables: hostView(table, 'cam9'), replies: q });
      table.set('match', 'True', { host: 'cam9' });
      table.set('match', 'False', { host: 'cam9' });
      await cam.idle();
      const payloads: string[] = [];
      for await (const r of q.log.read()) if (r.message.kind === 'REQUEST') payloads.push(r.message.payload);
      expect(payloads).toEqual([
        'UVC#cam9#event#seq=0#match=True#action=unlock',
        'UVC#cam9#event#seq=0#match=False#action=record',
      ]);
      cam.close();
    } finally {
      await q.close();
    }
  });

  it('captures seeded face embeddings: the owner close to the enrolled one, strangers far', async () => {
    const bus = new MemoryBus();
    const cam = new UvcWebcam({
      deviceId: 'cam1',
      variables: new VariableTable(),
      bus,
      seed: 11,
      now: () => 42,
    });
    const again = new UvcWebcam({
      deviceId: 'cam1',
      variables: new VariableTable(),
      seed: 11,
      now: () => 42,
    });
    const owner = cam.capture('owner');
    expect(owner).toEqual(again.capture('owner'));
    expect(owner.embedding).toHaveLength(128);
    expect(cosine(owner.embedding, cam.owner)).toBeGreaterThan(0.99);
    const stranger = cam.capture('stranger');
    expect(Math.abs(cosine(stranger.embedding, cam.owner))).toBeLessThan(0.4);
    const nobody = cam.capture('nobody');
    expect(nobody).toMatchObject({ faceDetected: false, embedding: [], seq: 2, ts: 42 });
    await cam.idle();
    const offsets = await bus.topicOffsets(TOPICS.webcamFrames);
    expect(offsets.reduce((a, o) => a + Number(o.high), 0)).toBe(3);
    expect(cam.framesPublished).toBe(3);
    await bus.close();
  });

  it('closes the loop with the webcam learner: frames → bus → match → unlock / record', async () => {
    const { tf } = await loadBackend();
    const bus = new MemoryBus();
    const table = new VariableTable();
    const cam = new UvcWebcam({ deviceId: 'door', variables: hostView(table, 'door'), bus, seed: 5 });
    // enrol the owner from a few captures of the same seeded person, as an installer would
    const twin = new UvcWebcam({ deviceId: 'enrol', variables: new VariableTable(), seed: 5 });
    const enrol = Array.from({ length: 6 }, () => twin.capture('owner').embedding);
    const learner = new WebcamLearner(tf, { gallery: { owner: enrol }, threshold: 0.8 });
    const codec = codecFor('WebcamFrame');
    await bus.ensureTopics([{ topic: TOPICS.webcamFrames, partitions: 1 }]);
    const sub = await bus.subscribe({
      topics: [TOPICS.webcamFrames],
      groupId: 'webcam-learner',
      fromBeginning: true,
      onBatch: async (msgs) => {
        const frames: WebcamFrame[] = msgs.map((m) => codec.decode(m.value!));
        for (const p of await learner.onWebcam(frames)) {
          const v = typeof p.value === 'boolean' ? (p.value ? 'True' : 'False') : String(p.value);
          table.set(p.key, v, { host: p.host });
        }
      },
    });
    await sub.ready;
    cam.capture('stranger');
    await waitFor(() => cam.actions.length === 1, 'the stranger to be refused');
    expect(cam.actions[0]).toMatchObject({ match: false, action: 'record' });
    cam.capture('owner');
    await waitFor(() => cam.actions.length === 2, 'the owner to be recognised');
    expect(cam.actions[1]).toMatchObject({ match: true, action: 'unlock' });
    expect(table.get('webcam.identity', 'door')).toBe('owner');
    await sub.close();
    learner.dispose();
    cam.close();
    await bus.close();
  });
});
