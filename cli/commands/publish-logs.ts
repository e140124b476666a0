import { resolve } from 'node:path';
import { BusError, brokerUnreachable, createBus, parseBrokers, TOPICS, topicSpecs } from '../../bus/index.ts';
import type { PublishProgress, PublishResult } from '../../ingest/publish.ts';
import { DEFAULT_LINGER_MS, sourceProblem } from '../../ingest/source.ts';
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

// The status of a run, on stderr (stdout carries data, and publish-logs has none to give): a
// progress line redrawn in place on a terminal, one summary line at the end otherwise.
function progressLine(p: PublishProgress): string {
  const bad = p.deadLettered > 0 ? `, ${human(p.deadLettered)} dead-lettered by the consumer` : '';
  return `published ${human(p.lines)} lines (${mb(p.bytes)})${bad}, ${(p.elapsedMs / 1000).toFixed(1)} s, ${human(p.linesPerSec)} lines/s`;
}

function summaryLine(r: PublishResult): string {
  const s = r.elapsedMs / 1000;
  const reasons = Object.entries(r.byReason)
    .map(([k, n]) => `${k} ${human(n)}`)
    .join(', ');
  return [
    `publish-logs: ${human(r.lines)} lines`,
    `${human(r.bytes)} bytes`,
    `${human(r.deadLettered)} dead-lettered by the consumer${reasons ? ` (${reasons})` : ''}`,
    ...(r.skippedEmpty > 0 ? [`${human(r.skippedEmpty)} empty lines skipped`] : []),
    `${s.toFixed(1)} s`,
    `${human(s > 0 ? r.lines / s : 0)} lines/s`,
  ].join(', ');
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
A partial batch goes out --linger-ms after its first line (default 200, processing time), so a
slow source (\`dmesg -w\`, \`journalctl -k -f\`, a quiet file) flows at once.
--follow keeps reading FILE like \`tail -F\`, across rotation (rename + create) and copytruncate,
until Ctrl-C, and keeps a checkpoint (device, inode, first-bytes hash, byte offset of the last line
Kafka acknowledged) in STATE_DIR/publish-logs/: restarted, it continues there, even when FILE was
rotated meanwhile (the older generation is finished first if it is still uncompressed beside FILE).
stderr: a progress line on a terminal, else one summary line at the end (lines, bytes, lines the
consumer dead-letters with their reasons, seconds, rate); stdout stays empty. Without a reachable
broker it exits 1 after a few retries.
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
    'linger-ms': {
      type: 'number',
      default: DEFAULT_LINGER_MS,
      env: 'VIRGO_LINGER_MS',
      arg: 'MS',
      description: 'send a partial batch this long after its first line (0: at once)',
    },
    'state-dir': {
      type: 'string',
      env: 'VIRGO_STATE_DIR',
      arg: 'DIR',
      description: 'with --follow: where the checkpoint lives (default ./.virgo)',
    },
    checkpoint: {
      type: 'string',
      arg: 'FILE|none',
      description: 'with --follow: checkpoint file (default STATE_DIR/publish-logs/NAME-HASH.json)',
    },
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
    const lingerMs = opts['linger-ms'] ?? DEFAULT_LINGER_MS;
    if (!(lingerMs >= 0)) throw new UsageError(`--linger-ms must be >= 0, got ${lingerMs}`);
    if (opts.checkpoint !== undefined && !opts.follow)
      throw new UsageError('--checkpoint goes with --follow (a file read once is read whole)');
    const problem = sourceProblem(source, opts.follow ?? false);
    if (problem) throw new UsageError(problem);
    // --follow waits for a missing file, as tail -F does; said once, so a typo does not look like a hang
    if (source !== '-' && sourceProblem(source) !== undefined)
      io.stderr.write(`publish-logs: ${source} does not exist yet; waiting for it (--follow)\n`);
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
    // The checkpoint is per followed file and per topic as the broker names it (namespace included).
    const { brokerTopic, checkpointPath } = await import('../../ingest/checkpoint.ts');
    const namedTopic = brokerTopic(topic, io.env.VIRGO_NAMESPACE);
    let checkpoint: string | undefined;
    if (opts.follow && opts.checkpoint !== 'none') {
      checkpoint = opts.checkpoint
        ? resolve(opts.checkpoint)
        : checkpointPath(resolve(opts['state-dir'] ?? '.virgo'), source, namedTopic);
    }
    const run = publishLogs({
      bus,
      source,
      follow: opts.follow ?? false,
      fromEnd: opts['from-end'] ?? false,
      ...(opts.host ? { host: opts.host } : {}),
      topic,
      ...(checkpoint ? { checkpoint, checkpointTopic: namedTopic } : {}),
      ensureTopic: false,
      batchSize,
      lingerMs,
      compression,
      signal: ac.signal,
      stdin: io.stdin,
      ...(tty
        ? {
            onProgress: (p: PublishProgress) =>
              io.stderr.write(`\r\x1b[K${progressLine(p)}${p.done ? '\n' : ''}`),
          }
        : {}),
    }).then((r) => {
      // Written here, not after `await run`: on SIGINT/SIGTERM the shutdown hook exits the process
      // right after the run settles.
      if (!tty) io.stderr.write(`${summaryLine(r)}\n`);
      return r;
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
