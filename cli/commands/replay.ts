import { TOPICS } from '../../bus/index.ts';
import type { ReplayProgress } from '../../queue-bridge/index.ts';
import { CONNECTION_OPTIONS, UsageError } from '../../runtime/config.ts';
import { stateDir } from '../../runtime/paths.ts';
import { exitOnSignals } from '../../runtime/shutdown.ts';
import { busFromOptions, defineCommand } from '../command.ts';

/** ISO 8601, or epoch seconds. */
function parseTime(s: string): Date {
  const d = /^\d+(\.\d+)?$/.test(s) ? new Date(Number(s) * 1000) : new Date(s);
  if (Number.isNaN(d.getTime())) {
    throw new UsageError(`--since must be a time (2017-04-17T10:56:22Z, or epoch seconds), got ${s}`);
  }
  return d;
}

export default defineCommand({
  name: 'replay',
  summary: 'replay the KingCobra REQUEST_REPLY log into Kafka, in order, resumable, idempotent by id',
  usage:
    'virgo replay [--queue DIR] [--from-offset N|--since TIME] [--tdf FACTOR] --brokers HOST:PORT [--topic virgo.kingcobra-requests]',
  details: `Publishes the log's records (requests and replies; --only REQUEST for requests) in offset order,
keyed by record id, value Avro single-object KingCobraMessage (headers content-type: avro/binary,
virgo-schema: <fingerprint>). A checkpoint in the queue directory remembers how far a replay to
this topic and these brokers got; the next run goes on from there. Re-sent records keep their
keys, so a consumer that dedupes by key never sees a record twice.
--tdf F   replays in virtual time: the recorded gaps between records divided by F
          (--tdf 1 in real time, --tdf 3600 an hour a second), counted from the first record.
Progress and rates go to stderr on a terminal.
examples:
  virgo replay --brokers 127.0.0.1:9092
  virgo replay --brokers 127.0.0.1:9092 --since 2017-04-17T00:00:00Z --tdf 1000
  kcat -C -b 127.0.0.1:9092 -t virgo.kingcobra-requests -o beginning -e -f '%k\\n'`,
  options: {
    brokers: CONNECTION_OPTIONS.brokers,
    queue: {
      type: 'string',
      env: 'VIRGO_QUEUE_DIR',
      arg: 'DIR',
      description: 'queue directory (default $VIRGO_STATE_DIR/kingcobra)',
    },
    topic: { type: 'string', default: TOPICS.kingcobraRequests, arg: 'TOPIC', description: 'target topic' },
    'from-offset': { type: 'number', arg: 'N', description: 'start at this log offset (not the checkpoint)' },
    since: {
      type: 'string',
      arg: 'TIME',
      description: 'start at the first record at/after TIME (not the checkpoint)',
    },
    tdf: {
      type: 'number',
      arg: 'FACTOR',
      description: 'time-dilation factor: replay recorded gaps divided by it',
    },
    only: { type: 'string', arg: 'REQUEST|REPLY', description: 'replay one kind of record only' },
    'batch-size': { type: 'number', default: 5000, description: 'records per publish (and per checkpoint)' },
    'no-checkpoint': {
      type: 'boolean',
      default: false,
      description: 'neither read nor write the checkpoint',
    },
  },
  async run({ opts, io }) {
    if (!opts.brokers) {
      throw new UsageError(
        'replay writes to Kafka: give --brokers or VIRGO_BROKERS (the embedded bus would vanish with this process)',
      );
    }
    if (opts['from-offset'] !== undefined && opts.since !== undefined) {
      throw new UsageError('give --from-offset or --since, not both');
    }
    const fromOffset = opts['from-offset'] as number | undefined;
    if (fromOffset !== undefined && (!Number.isSafeInteger(fromOffset) || fromOffset < 0)) {
      throw new UsageError(`--from-offset must be a whole number ≥ 0, got ${fromOffset}`);
    }
    const tdf = opts.tdf as number | undefined;
    if (tdf !== undefined && !(tdf > 0)) throw new UsageError(`--tdf must be a positive number, got ${tdf}`);
    const only = opts.only as string | undefined;
    if (only !== undefined && only !== 'REQUEST' && only !== 'REPLY') {
      throw new UsageError(`--only must be REQUEST or REPLY, got ${only}`);
    }
    const batchSize = opts['batch-size'] as number;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new UsageError('--batch-size must be a positive integer');
    const { replay, ReplayError } = await import('../../queue-bridge/index.ts');
    const dir = (opts.queue as string | undefined) ?? stateDir('kingcobra');
    const bus = busFromOptions(opts, 'virgo-replay');
    const ac = new AbortController();
    void exitOnSignals().then(() => ac.abort());
    const tty = !!io.stderr.isTTY;
    let lastDraw = 0;
    const draw = (p: ReplayProgress, final = false) => {
      const now = Date.now();
      if (!final && now - lastDraw < 200) return;
      lastDraw = now;
      const vt = p.virtualTime ? ` virtual ${p.virtualTime.toISOString()}` : '';
      io.stderr.write(
        `\r\x1b[Kreplay: ${p.published} published, offset ${p.nextOffset}/${p.endOffset}, ${Math.round(p.rate)} rec/s${vt}${final ? '\n' : ''}`,
      );
    };
    let last: ReplayProgress | undefined;
    try {
      const r = await replay({
        log: dir,
        bus,
        topic: opts.topic as string,
        target: `${opts.topic}@${opts.brokers}`,
        ...(fromOffset !== undefined ? { fromOffset } : {}),
        ...(opts.since !== undefined ? { since: parseTime(opts.since as string) } : {}),
        ...(tdf !== undefined ? { tdf } : {}),
        ...(only ? { kinds: [only as 'REQUEST' | 'REPLY'] } : {}),
        batchSize,
        checkpoint: !opts['no-checkpoint'],
        signal: ac.signal,
        onProgress: (p) => {
          last = p;
          if (tty) draw(p);
        },
      });
      if (tty && last) draw(last, true);
      const range =
        r.nextOffset > r.startOffset ? `offsets ${r.startOffset}-${r.nextOffset - 1}` : 'nothing new';
      io.stdout.write(
        `replayed ${r.published} records to ${opts.topic} (${range}, ${r.skipped} skipped) ` +
          `in ${r.seconds.toFixed(2)} s, ${Math.round(r.published / Math.max(r.seconds, 1e-3))} rec/s` +
          `${ac.signal.aborted ? ' (interrupted; run again to resume)' : ''}\n`,
      );
      return 0;
    } catch (err) {
      if (err instanceof ReplayError) {
        io.stderr.write(`virgo replay: ${err.message}\n`);
        return 1;
      }
      throw err;
    } finally {
      await bus.close();
    }
  },
});
