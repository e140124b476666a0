// Where devices send replies and telemetry: the VIRGO queue → KingCobra (docs/design.md §6.3).
// A device reads variables synchronously and replies asynchronously (the original's intended
// use), so sending must never hold up a tick: an OrderedSender queues messages in order, bounded,
// and drops routine telemetry (counted) rather than grow without limit when the queue is slow.
import { createLogger } from '../../runtime/log.ts';
import { counter } from '../../runtime/metrics.ts';
import { NodeClient } from '../drivers/node-client.ts';

const log = createLogger('devices.replies');
const sent = counter('virgo_device_replies_total', 'device replies to the VIRGO queue by outcome', [
  'device',
  'outcome',
]);

/** The in-process queue (queue-bridge's QueueService.submit) or a TCP client of :60000. */
export interface ReplySink {
  submit(payload: string, clientAddr: string): Promise<unknown>;
}

export interface SenderStats {
  sent: number;
  failed: number;
  dropped: number;
  pending: number;
}

export class OrderedSender {
  private tail: Promise<void> = Promise.resolve();
  private pendingCount = 0;
  readonly stats: SenderStats = { sent: 0, failed: 0, dropped: 0, pending: 0 };
  private warned = 0;

  constructor(
    private readonly sink: ReplySink,
    private readonly clientAddr: string,
    private readonly device: string,
    /** routine messages queued at most; events may queue up to 4x this */
    private readonly maxPending = 256,
  ) {}

  /**
   * Queues one message; `event`s (arrival, collision, unlock…) get a larger bound than routine
   * telemetry. Returns false when the message was dropped.
   */
  send(payload: string, kind: 'telemetry' | 'event' = 'telemetry'): boolean {
    const bound = kind === 'event' ? this.maxPending * 4 : this.maxPending;
    if (this.pendingCount >= bound) {
      this.stats.dropped++;
      sent.inc({ device: this.device, outcome: 'dropped' });
      if (this.warned++ % 100 === 0)
        log.warn('reply queue full; dropping', { device: this.device, kind, pending: this.pendingCount });
      return false;
    }
    this.pendingCount++;
    this.stats.pending = this.pendingCount;
    this.tail = this.tail.then(async () => {
      try {
        await this.sink.submit(payload, this.clientAddr);
        this.stats.sent++;
        sent.inc({ device: this.device, outcome: 'sent' });
      } catch (err) {
        this.stats.failed++;
        sent.inc({ device: this.device, outcome: 'failed' });
        if (this.stats.failed === 1 || this.stats.failed % 100 === 0) {
          log.warn('reply not accepted by the queue', {
            device: this.device,
            err: (err as Error).message,
            failed: this.stats.failed,
          });
        }
      } finally {
        this.pendingCount--;
        this.stats.pending = this.pendingCount;
      }
    });
    return true;
  }

  /** resolves once everything queued so far was sent or failed */
  idle(): Promise<void> {
    return this.tail;
  }
}

/**
 * The VIRGO queue's text port (:60000) as a ReplySink for a device in another process: one line
 * per payload, one `REPLY#…` line back (after `AUTH <secret>` when the queue has a secret). The
 * queue records the socket's address as the client.
 */
export class TcpQueueSink implements ReplySink {
  private readonly client: NodeClient;

  constructor(host: string, port: number, opts: { timeoutMs?: number; secret?: string } = {}) {
    this.client = new NodeClient(host, port, {
      timeoutMs: opts.timeoutMs ?? 10_000,
      ...(opts.secret ? { secret: opts.secret } : {}),
    });
  }

  async submit(payload: string): Promise<string> {
    const reply = await this.client.request(payload);
    if (!reply.startsWith('REPLY#')) throw new Error(`queue answered ${JSON.stringify(reply.slice(0, 120))}`);
    return reply;
  }

  close(): void {
    this.client.close();
  }
}
