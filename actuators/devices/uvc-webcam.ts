// The UVC webcam device model. The original instrumented uvc_video.c with uvc_trace() lines that
// printed the imported analytics variable `match` (True when userspace face recognition matched);
// here `match` is acted on:
//   match=True   unlock   (a recognised face: the door/screen unlocks, recording stops)
//   match=False  record   (an unrecognised face: lock, and record the scene as evidence)
// Each action is a trace line in the original's style and an asynchronous reply to the VIRGO
// queue. The camera side produces WebcamFrames (face embeddings, not pixels) on
// virgo.webcam-frames for the webcam learner, from seeded identities: the enrolled owner and
// strangers, so a run is reproducible.
import { type Bus, TOPICS } from '../../bus/index.ts';
import { createLogger } from '../../runtime/log.ts';
import { counter } from '../../runtime/metrics.ts';
import { gaussian, seededRandom } from '../../runtime/rng.ts';
import { codecFor, type WebcamFrame } from '../../schemas/index.ts';
import { parseBool } from '../../schemas/variable.ts';
import type { SourceChange, VariableSource } from '../drivers/variables.ts';
import { DeviceModel } from './device.ts';
import type { ReplySink } from './reply-sink.ts';

const log = createLogger('devices.uvcvideo');
const actionsTotal = counter('virgo_uvc_actions_total', 'webcam actions taken on the match variable', [
  'device',
  'action',
]);

export const UVC_VARS = { match: 'match' } as const;

export type WebcamAction = 'unlock' | 'record';

export interface WebcamActionEvent {
  seq: number;
  match: boolean;
  action: WebcamAction;
  trace: string;
}

export interface UvcWebcamOptions {
  deviceId: string;
  /** this camera's variables (hostView(table, deviceId) for a shared table) */
  variables: VariableSource;
  bus?: Bus;
  /** default virgo.webcam-frames */
  topic?: string;
  replies?: ReplySink;
  clientAddr?: string;
  /** seeds the identities and the noise */
  seed?: number;
  /** embedding length (default 128) */
  dim?: number;
  /** per-component noise of a capture relative to the identity (default 0.05) */
  noise?: number;
  /** trace lines kept for `traces` (default 200) */
  keepTraces?: number;
  /** frame timestamps (default Date.now) */
  now?: () => number;
  /** called for each action (the unlock/record hook of a real installation) */
  onAction?: (e: WebcamActionEvent) => void;
}

export type Subject = 'owner' | 'stranger' | 'nobody';

function normalise(v: number[]): number[] {
  const n = Math.hypot(...v) || 1;
  return v.map((x) => x / n);
}

export class UvcWebcam extends DeviceModel<WebcamFrame> {
  /** the enrolled identity's embedding (unit length) */
  readonly owner: number[];
  readonly actions: WebcamActionEvent[] = [];
  readonly traces: string[] = [];
  locked = true;
  recording = false;
  framesPublished = 0;
  private seq = 0;
  private lastMatch: boolean | undefined;
  private readonly rand: () => number;
  private readonly dim: number;
  private readonly listener: (c: SourceChange) => void;

  constructor(private readonly opts: UvcWebcamOptions) {
    super({
      deviceId: opts.deviceId,
      kind: 'uvc',
      replies: opts.replies,
      clientAddr: opts.clientAddr,
      bus: opts.bus,
      topic: opts.topic ?? TOPICS.webcamFrames,
      codec: codecFor('WebcamFrame'),
    });
    this.rand = seededRandom(opts.seed ?? 7);
    this.dim = opts.dim ?? 128;
    this.owner = this.identity();
    this.listener = (c) => {
      if (c.key === UVC_VARS.match) this.onMatch(c.value);
    };
    opts.variables.on('change', this.listener);
    // act on the value already there (a restart must not forget a lock)
    const now = opts.variables.get(UVC_VARS.match);
    if (now !== undefined) this.onMatch(now);
  }

  private identity(): number[] {
    return normalise(Array.from({ length: this.dim }, () => gaussian(this.rand)));
  }

  private trace(line: string): string {
    const t = `uvcvideo: ${line}`;
    this.traces.push(t);
    if (this.traces.length > (this.opts.keepTraces ?? 200)) this.traces.shift();
    log.debug(t, { device: this.deviceId });
    return t;
  }

  private onMatch(raw: string | undefined): void {
    const match = parseBool(raw);
    if (match === undefined) {
      this.trace(
        `uvc_video_decode_start(): kernel_analytics variable match=${raw ?? '(removed)'} is not True/False; no action`,
      );
      return;
    }
    if (match === this.lastMatch) return;
    this.lastMatch = match;
    const action: WebcamAction = match ? 'unlock' : 'record';
    this.locked = !match;
    this.recording = !match;
    const trace = this.trace(
      `uvc_video_decode_start(): kernel_analytics variable match=${match ? 'True' : 'False'}: ${action === 'unlock' ? 'face matched, unlocking' : 'face not matched, locking and recording'}`,
    );
    log.info(`webcam ${action}`, { device: this.deviceId, match });
    const e: WebcamActionEvent = { seq: this.seq, match, action, trace };
    this.actions.push(e);
    if (this.actions.length > 1000) this.actions.shift();
    actionsTotal.inc({ device: this.deviceId, action });
    this.sender?.send(
      `UVC#${this.deviceId}#event#seq=${this.seq}#match=${match ? 'True' : 'False'}#action=${action}`,
      'event',
    );
    this.opts.onAction?.(e);
  }

  /** One captured frame of `who`; published when a bus is given. */
  capture(who: Subject = 'owner'): WebcamFrame {
    const seq = this.seq++;
    let embedding: number[] = [];
    if (who !== 'nobody') {
      const base = who === 'owner' ? this.owner : this.identity();
      const sigma = this.opts.noise ?? 0.05;
      embedding = normalise(base.map((x) => x + (sigma / Math.sqrt(this.dim)) * gaussian(this.rand)));
    }
    const frame: WebcamFrame = {
      deviceId: this.deviceId,
      seq,
      ts: (this.opts.now ?? Date.now)(),
      faceDetected: who !== 'nobody',
      embedding,
    };
    // what uvc_video.c printed on every frame: the variable as imported now
    this.trace(
      `uvc_video_decode_start(): frame ${seq}, kernel_analytics variable match=${this.opts.variables.get(UVC_VARS.match) ?? '(unset)'}`,
    );
    this.publishFrame(
      frame,
      () => {
        this.framesPublished++;
      },
      (err) => log.warn('webcam frame not published', { device: this.deviceId, err: (err as Error).message }),
    );
    return frame;
  }

  /** Captures on a timer: the owner, then now and then a stranger (seeded), for live runs. */
  start(intervalMs = 500, strangerEvery = 10): void {
    this.every(intervalMs, () => {
      const n = this.seq;
      this.capture(n % strangerEvery === strangerEvery - 1 ? 'stranger' : 'owner');
    });
  }

  close(): void {
    this.stop();
    this.opts.variables.off?.('change', this.listener);
  }
}
