// What every device model has besides its own behaviour: an id, replies to the VIRGO queue (an
// OrderedSender), sensor frames on the bus and a wall-clock timer for live runs. Frames leave in
// order, Avro single-object keyed by the device id, and are never awaited by the tick or capture
// that made them: a slow bus must not slow the device down (docs/design.md §6.3).
import { type Bus, CONTENT_TYPES, HEADERS } from '../../bus/index.ts';
import type { Codec } from '../../schemas/codec.ts';
import { OrderedSender, type ReplySink } from './reply-sink.ts';

export interface DeviceOutputs<F> {
  deviceId: string;
  /** the model's name, in the queue's client address (`<kind>:<deviceId>`) */
  kind: string;
  replies?: ReplySink | undefined;
  /** the address the queue records for this device (default `<kind>:<deviceId>`) */
  clientAddr?: string | undefined;
  bus?: Bus | undefined;
  topic: string;
  codec: Codec<F>;
}

export abstract class DeviceModel<F> {
  readonly deviceId: string;
  readonly sender: OrderedSender | undefined;
  private readonly bus: Bus | undefined;
  private readonly topic: string;
  private readonly codec: Codec<F>;
  private pubTail: Promise<void> = Promise.resolve();
  /** frames handed to publishFrame() and not yet published or refused */
  protected framesPending = 0;
  private timer: NodeJS.Timeout | undefined;

  protected constructor(o: DeviceOutputs<F>) {
    this.deviceId = o.deviceId;
    this.bus = o.bus;
    this.topic = o.topic;
    this.codec = o.codec;
    const self = `${o.kind}:${o.deviceId}`;
    if (o.replies) this.sender = new OrderedSender(o.replies, o.clientAddr ?? self, self);
  }

  /** true when frames go to a bus */
  protected get publishes(): boolean {
    return this.bus !== undefined;
  }

  /**
   * Queues `frame` behind the earlier ones (nothing without a bus); `sent` or `failed` learns how
   * it went before the next frame goes.
   */
  protected publishFrame(frame: F, sent: () => void, failed: (err: unknown) => void): void {
    const bus = this.bus;
    if (!bus) return;
    this.framesPending++;
    const value = this.codec.encode(frame);
    this.pubTail = this.pubTail.then(async () => {
      try {
        await bus.publish(this.topic, [
          {
            key: this.deviceId,
            value,
            headers: {
              [HEADERS.contentType]: CONTENT_TYPES.avro,
              [HEADERS.schema]: this.codec.fingerprintHex,
            },
          },
        ]);
        sent();
      } catch (err) {
        failed(err);
      } finally {
        this.framesPending--;
      }
    });
  }

  /** Calls `step` every `ms` of wall time until stop() (the models themselves stay clock-free). */
  protected every(ms: number, step: () => void): void {
    if (this.timer) return;
    this.timer = setInterval(step, ms);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** resolves when every frame and reply queued so far is out */
  async idle(): Promise<void> {
    await this.pubTail;
    await this.sender?.idle();
  }
}
