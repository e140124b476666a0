import { BusError, brokerUnreachable, createBus, parseBrokers, TOPICS, topicSpecs } from '../../bus/index.ts';
import { CONNECTION_OPTIONS, UsageError } from '../../runtime/config.ts';
import { setLogLevel } from '../../runtime/log.ts';
import { exitOnSignals, onShutdown } from '../../runtime/shutdown.ts';
import { defineCommand } from '../command.ts';

function human(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export default defineCommand({
  name: 'publish-logs',
  summary: 'publish kernel log lines (kern.log, syslog, dmesg, journalctl) to Kafka',
  usage:
    'virgo publish-logs [FILE|-] [--follow] --brokers HOST:PORT [--topic virgo.kernel-logs] [--host NAME]',
  details: `Each line is one Kafka message, published raw: key = host (--host, else the host the line
names, else this machine's name), value = the line, header content-type: text/plain. rsyslog
omkafka and \`kcat -P -K\` write the same format, so any of them can feed the topic.
FILE is kern.log, syslog, \`dmesg\` / \`journalctl -o short|json\` output; - or no FILE reads stdin.
--follow keeps reading FILE like \`tail -F\`, across rotation and truncation, until Ctrl-C.
Progress and lines/s show on a terminal only. Without a reachable broker it exits 1 after a few
retries.
examples:
  virgo publish-logs /var/log/kern.log --follow --brokers 127.0.0.1:9092
  journalctl -k -o json | virgo publish-logs - --brokers 127.0.0.1:9092 --host edge-7
  dmesg | virgo publish-logs --brokers 127.0.0.1:9092`,
  options: {
    brokers: CONNECTION_OPTIONS.brokers,
    follow: { type: 'boolean', short: 'f', default: false, description: 'follow FILE like tail -F' },
    'from-end': {
      type: 'boolean',
      default: false,
      description: 'with --follow: only lines written from now on',
    },
    topic: { type: 'string', default: TOPICS.kernelLogs, arg: 'TOPIC', description: 'topic to publish to' },
    host: { type: 'string', arg: 'NAME', description: 'key every line with this host' },
    'batch-size': { type: 'number', default: 1000, arg: 'N', description: 'lines per Kafka batch' },
    compression: { type: 'string', default: 'gzip', arg: 'gzip|none', description: 'batch compression' },
    retries: {
      type: 'number',
      default: 3,
      arg: 'N',
      description: 'retries before an unreachable broker ends the run',
    },
    'connect-timeout': {
      type: 'number',
      default: 15,
      arg: 'SECONDS',
      description: 'give up when the broker has not answered within this time',
    },
  },
  async run({ opts, args, io }) {
    if (args.length > 1) throw new UsageError(`one FILE at a time (got ${args.join(' ')})`);
    const source = args[0] ?? '-';
    const brokers = parseBrokers(opts.brokers);
    if (brokers.length === 0) {
      throw new UsageError(
        'publish-logs writes to Kafka: give --brokers HOST:PORT (or VIRGO_BROKERS). ' +
          'Without Kafka, run the whole pipeline on a file instead: virgo up (it reads logs in-process).',
      );
    }
    const compression = opts.compression;
    if (compression !== 'gzip' && compression !== 'none')
      throw new UsageError('--compression must be gzip or none');
    const batchSize = opts['batch-size'] ?? 1000;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new UsageError(`--batch-size must be a whole number >= 1, got ${batchSize}`);
    if (opts.follow && source === '-')
      throw new UsageError('--follow needs a FILE (stdin is read to its end anyway)');
    if (source !== '-') {
      const { stat } = await import('node:fs/promises');
      try {
        const st = await stat(source);
        if (!st.isFile() && !st.isFIFO()) throw new UsageError(`${source} is not a file`);
      } catch (err) {
        if (err instanceof UsageError) throw err;
        if (!opts.follow) throw new UsageError(`cannot read ${source}: ${(err as Error).message}`);
        // --follow waits for the file to appear, as tail -F does
      }
    }
    // The client's own retry warnings are noise next to the one clear error a dead broker ends with.
    if (opts['log-level'] === undefined) setLogLevel('error');
    const { publishLogs } = await import('../../ingest/publish.ts');
    const bus = createBus({ brokers, clientId: 'virgo-publish-logs', retries: opts.retries ?? 3 });
    const tty = io.stderr.isTTY === true;
    const ac = new AbortController();
    let finished: Promise<unknown> = Promise.resolve();
    onShutdown('publish-logs', async () => {
      ac.abort();
      await finished.catch(() => {});
      await bus.close();
    });
    void exitOnSignals();
    const topic = opts.topic ?? TOPICS.kernelLogs;
    // First contact under a deadline: a dead or black-holed broker ends the run in bounded time
    // whatever the client's own retry and request timeouts do.
    const seconds = opts['connect-timeout'] ?? 15;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        bus
          .ensureTopics([topicSpecs().find((t) => t.topic === topic) ?? { topic, partitions: 4 }])
          .catch((err) => {
            // no right to create topics is not fatal; no broker is
            if (brokerUnreachable(err)) throw err;
          }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new BusError(
                  'connect',
                  `Kafka at ${brokers.join(',')} did not answer within ${seconds} s (is the broker running and reachable? \`npm run services:up\` starts a local one)`,
                ),
              ),
            seconds * 1000,
          );
        }),
      ]);
    } catch (err) {
      await bus.close().catch(() => {});
      // The client's connect in progress cannot be cancelled and would hold the process open.
      setTimeout(() => process.exit(1), 1000).unref();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const run = publishLogs({
      bus,
      source,
      follow: opts.follow ?? false,
      fromEnd: opts['from-end'] ?? false,
      ...(opts.host ? { host: opts.host } : {}),
      topic,
      ensureTopic: false,
      batchSize,
      compression,
      signal: ac.signal,
      stdin: io.stdin,
      ...(tty
        ? {
            onProgress: (p) =>
              io.stderr.write(
                `\r\x1b[Kpublished ${human(p.lines)} lines (${mb(p.bytes)}), ${human(p.linesPerSec)} lines/s${p.done ? '\n' : ''}`,
              ),
          }
        : {}),
    });
    finished = run;
    try {
      await run;
    } finally {
      await bus.close();
    }
    return 0;
  },
});
