import { once } from 'node:events';
import avro from 'avsc';
import { type BusMessage, HEADERS } from '../../bus/index.ts';
import { CONNECTION_OPTIONS, UsageError } from '../../runtime/config.ts';
import { exitOnSignals } from '../../runtime/shutdown.ts';
import { codecFor, peekFingerprint, recordForFingerprint } from '../../schemas/index.ts';
import { busFromOptions, defineCommand } from '../command.ts';
import { escapeControls } from '../escape.ts';

type Format = 'text' | 'json' | 'avro';

const NL = Buffer.from('\n');

function decoded(m: BusMessage): { record?: string; value: unknown } {
  if (!m.value) return { value: null };
  const fp = peekFingerprint(m.value);
  const record = fp ? recordForFingerprint(fp) : undefined;
  if (record) {
    return {
      record,
      value: codecFor(record).decode(m.value, { topic: m.topic, partition: m.partition, offset: m.offset }),
    };
  }
  return { value: m.value.toString('utf8') };
}

export default defineCommand({
  name: 'subscribe',
  summary: 'print a topic: analytics variables, dead letters, any Avro record of ours',
  usage: 'virgo subscribe TOPIC [--format text|json|avro] [--from-beginning] [--max N] --brokers HOST:PORT',
  details: `formats:
  text  one line a message: host/key=value for analytics, "[reason] line" for dead letters,
        compact JSON for other Avro records, the line otherwise; control bytes shown as
        cat -v does (^@ for NUL, ^[ for ESC, M-… for bytes that are not UTF-8) unless --raw
  json  one JSON object a message: topic, partition, offset, key, headers, record, value
  avro  an Avro object container file of the topic's records (for avro-tools, fastavro, …)
examples:
  virgo subscribe virgo.kernel-analytics --brokers 127.0.0.1:9092 --from-beginning
  virgo subscribe virgo.kernel-logs.dlq --brokers 127.0.0.1:9092 --format json | jq .`,
  options: {
    ...CONNECTION_OPTIONS,
    format: { type: 'string', default: 'text', arg: 'text|json|avro', description: 'output format' },
    'from-beginning': { type: 'boolean', default: false, description: 'start at the oldest message' },
    group: { type: 'string', arg: 'ID', description: 'consumer group (default: a fresh one per run)' },
    max: { type: 'number', arg: 'N', description: 'exit after N messages' },
    raw: {
      type: 'boolean',
      default: false,
      description: 'text: write records byte for byte (control bytes and all)',
    },
    'idle-exit': { type: 'number', arg: 'MS', description: 'exit after MS without a message' },
  },
  async run({ opts, args, io }) {
    const topic = args[0];
    if (!topic) throw new UsageError('which topic? e.g. virgo subscribe virgo.kernel-analytics');
    const format = opts.format as Format;
    if (!['text', 'json', 'avro'].includes(format))
      throw new UsageError(`--format must be text, json or avro`);
    if (!opts.brokers) {
      throw new UsageError(
        'subscribe reads Kafka: give --brokers or VIRGO_BROKERS (the embedded bus lives inside `virgo up`; watch it with `nc 127.0.0.1 64000`)',
      );
    }
    const raw = opts.raw === true;
    const text = (s: string) => (raw ? s : escapeControls(s));
    const bus = busFromOptions(opts, 'virgo-subscribe');
    let seen = 0;
    let encoder: avro.streams.BlockEncoder | undefined;
    let encoderRecord: string | undefined;
    let finish!: () => void;
    const finished = new Promise<void>((r) => {
      finish = r;
    });
    let idleTimer: NodeJS.Timeout | undefined;
    const armIdle = () => {
      if (!opts['idle-exit']) return;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(finish, opts['idle-exit']);
    };
    // A closed pipe (`| head`) ends the command quietly, as any Unix filter does.
    let pipeClosed = false;
    io.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      pipeClosed = true;
      finish();
    });
    const write = async (s: string | Buffer) => {
      if (pipeClosed) return;
      if (!io.stdout.write(s)) await Promise.race([once(io.stdout, 'drain'), finished]);
    };
    const sub = await bus.subscribe({
      topics: [topic],
      groupId: opts.group ?? `virgo-subscribe-${process.pid}-${Date.now()}`,
      fromBeginning: opts['from-beginning'] ?? false,
      onBatch: async (batch) => {
        for (const m of batch) {
          if (pipeClosed || (opts.max !== undefined && seen >= opts.max)) break;
          seen++;
          const d = decoded(m);
          if (format === 'json') {
            await write(
              `${JSON.stringify({
                topic: m.topic,
                partition: m.partition,
                offset: m.offset,
                key: m.key?.toString('utf8') ?? null,
                headers: m.headers,
                ...(d.record ? { record: d.record } : {}),
                value: d.value,
              })}\n`,
            );
          } else if (format === 'avro') {
            if (!d.record) throw new UsageError(`message ${m.topic}/${m.partition}/${m.offset} is not Avro`);
            if (!encoder) {
              encoderRecord = d.record;
              encoder = new avro.streams.BlockEncoder(codecFor(d.record as 'AnalyticsVariable').type);
              encoder.pipe(io.stdout);
            } else if (d.record !== encoderRecord) {
              throw new UsageError(`topic mixes ${encoderRecord} and ${d.record}; use --format json`);
            }
            encoder.write(d.value);
          } else if (d.record === 'AnalyticsVariable') {
            const v = d.value as { host: string; key: string; value: string };
            await write(`${text(`${v.host}/${v.key}=${v.value}`)}\n`);
          } else if (d.record) {
            await write(`${text(JSON.stringify(d.value))}\n`);
          } else {
            // a dead letter holds the bytes as they came (NUL, ESC, invalid UTF-8 …)
            const err = m.headers[HEADERS.error];
            const prefix = err ? `[${text(err)}] ` : '';
            if (raw) await write(Buffer.concat([Buffer.from(prefix), m.value ?? Buffer.alloc(0), NL]));
            else await write(`${prefix}${escapeControls(m.value ?? Buffer.alloc(0))}\n`);
          }
        }
        armIdle();
        if (opts.max !== undefined && seen >= opts.max) finish();
      },
    });
    armIdle();
    void exitOnSignals().then(finish);
    await finished;
    clearTimeout(idleTimer);
    await sub.close();
    await bus.close();
    if (encoder) {
      encoder.end();
      await once(encoder, 'end').catch(() => {});
    }
    return 0;
  },
});
