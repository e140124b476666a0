import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { LogRecord, ReadDamage, SegmentLog } from '../../queue-bridge/index.ts';
import { QUEUE_PORT, QUEUE_ZMQ_ENDPOINT } from '../../queue-bridge/ports.ts';
import { type OptionDefs, parseAllowList, parseHostPort, UsageError } from '../../runtime/config.ts';
import { createLogger } from '../../runtime/log.ts';
import { stateDir } from '../../runtime/paths.ts';
import {
  HANDSHAKE_TIMEOUT_OPTION,
  handshakeTimeoutMs,
  refuseSecretFlag,
  resolveSecret,
  SECRET_FILE_OPTION,
  SECRET_FLAG_REFUSED,
} from '../../runtime/secret.ts';
import { exitOnSignals, onShutdown, shutdown } from '../../runtime/shutdown.ts';
import { defineCommand, type RunContext } from '../command.ts';

const log = createLogger('queue');

const ACTIONS = ['serve', 'cat', 'tail', 'import', 'export', 'check', 'salvage'] as const;
type Action = (typeof ACTIONS)[number];

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new UsageError(`--${name} must be a positive integer, got ${v}`);
  }
  return v;
}

function recordText(r: LogRecord, json: boolean): string {
  const m = r.message;
  if (json) return JSON.stringify({ offset: r.offset, ...m });
  const re = m.inReplyTo ? ` re=${m.inReplyTo}` : '';
  return `${r.offset} ${m.kind} ${m.id} ${m.clientAddr}:${m.ts_sec}:${m.ts_nsec}${re} ${m.payload}`;
}

const OPTIONS = {
  dir: {
    type: 'string',
    env: 'VIRGO_QUEUE_DIR',
    arg: 'DIR',
    description: 'queue directory (default $VIRGO_STATE_DIR/kingcobra)',
  },
  listen: {
    type: 'string',
    env: 'VIRGO_QUEUE_LISTEN',
    default: `127.0.0.1:${QUEUE_PORT}`,
    arg: 'HOST:PORT',
    description: 'serve: the text port (off: none)',
  },
  zmq: {
    type: 'string',
    env: 'VIRGO_QUEUE_ZMQ',
    default: QUEUE_ZMQ_ENDPOINT,
    arg: 'ENDPOINT',
    description: 'serve: the ZeroMQ ROUTER endpoint (off: none)',
  },
  workers: { type: 'number', default: 4, description: 'serve: requests handled at once' },
  'max-queue': {
    type: 'number',
    default: 1024,
    description: 'serve: requests in flight before clients get BUSY',
  },
  'max-line': { type: 'number', default: 4096, arg: 'BYTES', description: 'serve: longest request' },
  'max-clients': { type: 'number', default: 1024, description: 'serve: TCP connections at once' },
  'secret-file': SECRET_FILE_OPTION,
  secret: SECRET_FLAG_REFUSED,
  'handshake-timeout': HANDSHAKE_TIMEOUT_OPTION,
  allow: {
    type: 'string',
    env: 'VIRGO_QUEUE_ALLOW',
    arg: 'IP,…',
    description:
      'serve: only these client addresses may use the text port and ZeroMQ (default: any that reaches --listen)',
  },
  metrics: {
    type: 'string',
    env: 'VIRGO_METRICS',
    arg: 'HOST:PORT',
    description: 'serve the dashboard (/), /metrics and /health',
  },
  follow: {
    type: 'boolean',
    short: 'f',
    default: false,
    description: 'cat/tail: keep printing new records',
  },
  json: {
    type: 'boolean',
    default: false,
    description: 'cat/tail: one JSON object per record; check: the report as JSON',
  },
  lines: { type: 'number', short: 'n', default: 10, description: 'tail: how many records' },
  'from-offset': { type: 'number', arg: 'N', description: 'cat: start at this offset' },
  legacy: { type: 'boolean', default: false, description: 'export: the original text format' },
  pad: {
    type: 'boolean',
    default: false,
    description: 'export: pad records to 256 bytes like the original',
  },
  replies: { type: 'boolean', default: false, description: 'export: include REPLY records' },
  out: { type: 'string', arg: 'FILE', description: 'export: write here instead of stdout' },
} as const satisfies OptionDefs;

export default defineCommand({
  name: 'queue',
  summary: 'the VIRGO queue / KingCobra REQUEST_REPLY log: serve, cat, tail, import, export, check, salvage',
  usage: `virgo queue serve [--dir DIR] [--listen 127.0.0.1:60000] [--zmq tcp://127.0.0.1:60001|off]
       virgo queue cat|tail [--follow] [--json] [--dir DIR]
       virgo queue import <legacy REQUEST_REPLY.queue file> [--dir DIR]
       virgo queue export --legacy [--pad] [--replies] [--out FILE] [--dir DIR]
       virgo queue check [--json] [--dir DIR]
       virgo queue salvage [--dir DIR]
With a secret (--secret-file FILE, VIRGO_QUEUE_SECRET or VIRGO_SECRET), a TCP client's first line
is "AUTH <secret>" (answered "ok") and a ZeroMQ peer authenticates with PLAIN (any user name,
password = the secret).`,
  details: `serve   takes requests on the text port (one per line; telnet and nc work) and on a ZeroMQ
        ROUTER (DEALER clients, many requests in flight). Each request is written to the segment
        log and fdatasync'ed before it is handled; the answer is "REPLY#<id>#<client>:<sec>:<nsec> …",
        in request order per connection. A full queue answers "BUSY …" at once. Prints one
        "listening …" line on stdout when ready.
cat     prints the log (requests and replies) from the oldest record or --from-offset;
tail    the last --lines records; both keep printing new ones with --follow. Damaged bytes are
        read past (every valid record is printed), reported on stderr, and make the exit code 1.
import  appends the records of an original KingCobra queue file (padded 256-byte text records).
export  writes the log in the original text format (requests only unless --replies).
check   reports segments, records, gaps in the offsets (and why), damaged bytes, segments missing
        from MANIFEST.json and quarantined .corrupt files; exit 1 when anything is wrong, each
        problem naming its fix. Read-only: safe while the queue serves.
salvage appends the valid records of the .corrupt files that the log does not hold (by record
        id: never twice) with new offsets. Takes the writer's lock: stop the queue first.
The directory holds segments NNNNNNNNNNNNNNNNNNNN.kclog and MANIFEST.json; one writer at a time
(a LOCK file), any number of readers. A writer opening it recovers: damaged bytes move to
<segment>.at-<byte>.<time>.corrupt files, every valid record keeps its offset. Default:
$VIRGO_STATE_DIR/kingcobra (./.virgo/kingcobra).
examples:
  virgo queue serve &  echo hello | nc -N 127.0.0.1 60000
  VIRGO_QUEUE_SECRET=… virgo queue serve &  printf 'AUTH %s\nhello\n' "$VIRGO_QUEUE_SECRET" | nc -N 127.0.0.1 60000
  virgo queue import /var/log/kingcobra/REQUEST_REPLY.queue    # the original module's queue file
  virgo queue tail --follow
  virgo queue export --legacy --pad > REQUEST_REPLY.queue`,
  options: OPTIONS,
  portFix: (service) =>
    service === 'metrics'
      ? '--metrics HOST:PORT chooses another'
      : /zeromq/i.test(service)
        ? '--zmq ENDPOINT chooses another (off: no ZeroMQ)'
        : '--listen HOST:PORT chooses another (off: no text port)',
  async run(ctx) {
    try {
      return await runQueue(ctx);
    } catch (err) {
      // Expected failures (a locked or damaged log, a port in use) get one line, not a stack.
      const q = await import('../../queue-bridge/index.ts');
      if (err instanceof q.LogError || /cannot (listen|bind)/.test((err as Error).message)) {
        ctx.io.stderr.write(`virgo queue: ${(err as Error).message}\n`);
        return 1;
      }
      throw err;
    }
  },
});

async function runQueue({ opts, args, io }: RunContext<typeof OPTIONS>): Promise<number> {
  const action = args[0] as Action | undefined;
  if (!action || !ACTIONS.includes(action)) {
    throw new UsageError(`which action? one of ${ACTIONS.join(', ')} (virgo queue --help)`);
  }
  refuseSecretFlag(opts.secret, 'queue');
  const q = await import('../../queue-bridge/index.ts');
  const dir = (opts.dir as string | undefined) ?? stateDir('kingcobra');
  const write = async (s: string | Buffer) => {
    if (!io.stdout.write(s)) await once(io.stdout, 'drain');
  };

  if (action === 'serve') {
    const listenOpt = String(opts.listen);
    const listen = listenOpt === 'off' ? false : parseHostPort(listenOpt);
    const zmqOpt = String(opts.zmq);
    if (zmqOpt !== 'off' && !/^(tcp|ipc|inproc):\/\/\S+$/.test(zmqOpt)) {
      throw new UsageError(`--zmq must be an endpoint like tcp://127.0.0.1:60001, or off; got ${zmqOpt}`);
    }
    const allow = parseAllowList(opts.allow);
    const secret = resolveSecret('queue', opts['secret-file'], io.env);
    const svc = await q.startQueueService({
      dir,
      listen,
      zmq: zmqOpt === 'off' ? false : zmqOpt,
      workers: positiveInt('workers', opts.workers),
      maxQueue: positiveInt('max-queue', opts['max-queue']),
      maxLineBytes: positiveInt('max-line', opts['max-line']),
      maxClients: positiveInt('max-clients', opts['max-clients']),
      ...(secret ? { secret: secret.secret } : {}),
      handshakeTimeoutMs: handshakeTimeoutMs(opts['handshake-timeout']),
      ...(allow ? { allow } : {}),
    });
    if (secret) log.info('write ports require the secret', { source: secret.source });
    onShutdown('queue', () => svc.close());
    if (opts.metrics) {
      const { serveStageMetrics } = await import('../dashboard/start.ts');
      await serveStageMetrics(parseHostPort(opts.metrics as string), {
        command: 'virgo queue serve',
        health: () => {
          const s = svc.stats();
          return { ok: s.log.failed === null, ...s };
        },
        handles: { queue: svc },
      });
    }
    const s = svc.stats().log;
    await write(
      `listening tcp=${listen ? `${listen.host}:${svc.port}` : 'off'} zmq=${svc.zmqEndpoint ?? 'off'} dir=${dir} records=${s.records}\n`,
    );
    await exitOnSignals();
    await shutdown();
    return 0;
  }

  if (action === 'import') {
    const file = args[1];
    if (!file) throw new UsageError('import which file? virgo queue import <REQUEST_REPLY.queue file>');
    const { readFile } = await import('node:fs/promises');
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch (err) {
      throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    const parsed = q.parseLegacy(buf);
    if (parsed.records.length === 0) {
      io.stderr.write(`virgo queue import: ${file} holds no REQUEST#…$$ records; nothing imported\n`);
      return 1;
    }
    const segLog = await q.openSegmentLog(dir);
    try {
      const offsets = await Promise.all(parsed.records.map((r) => segLog.append(r)));
      const first = offsets[0]!.offset;
      const last = offsets.at(-1)!.offset;
      await write(
        `imported ${parsed.records.length} records from ${file} into ${dir} (offsets ${first}-${last}; ` +
          `${parsed.paddingBytes} bytes of padding skipped${parsed.skipped ? `, ${parsed.skipped} broken records` : ''})\n`,
      );
    } finally {
      await segLog.close();
    }
    return 0;
  }

  if (action === 'check') {
    const { checkLog, formatCheck } = await import('../../queue-bridge/check.ts');
    const r = await checkLog(dir);
    await write(opts.json ? `${JSON.stringify(r)}\n` : formatCheck(r));
    return r.problems.length > 0 ? 1 : 0;
  }

  if (action === 'salvage') {
    const { salvage } = await import('../../queue-bridge/salvage.ts');
    const r = await salvage(dir);
    for (const f of r.files) {
      await write(
        `${f.file}: ${f.valid} valid records, ${f.alreadyInLog} already in the log, ${f.appended} appended\n`,
      );
    }
    await write(
      r.appended > 0
        ? `salvaged ${r.appended} records into ${dir} (offsets ${r.offsets!.first}-${r.offsets!.last})\n`
        : `nothing to salvage in ${dir} (${r.files.length} quarantined files)\n`,
    );
    return 0;
  }

  const segLog: SegmentLog = new q.SegmentLog(dir, { readOnly: true });
  await segLog.open();
  const ac = new AbortController();
  if (opts.follow) {
    void exitOnSignals().then(() => ac.abort());
  }
  // A reader that goes away (| head) ends the listing quietly.
  const onPipeError = (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') ac.abort();
  };
  io.stdout.on('error', onPipeError);
  // Damage is read past, so every valid record is printed; the exit code says it was there.
  let damaged = 0;
  const onDamage = (d: ReadDamage) => {
    damaged++;
    io.stderr.write(
      `virgo queue: ${dir}/${d.segment} bytes ${d.from}-${d.to} damaged: ${d.detail} (virgo queue check --dir ${dir} tells more)\n`,
    );
  };
  try {
    if (action === 'export') {
      if (!opts.legacy) {
        throw new UsageError(
          'export writes the original format: give --legacy (for JSON: virgo queue cat --json)',
        );
      }
      const out = opts.out ? createWriteStream(opts.out as string) : io.stdout;
      let written = 0;
      let altered = 0;
      for await (const r of segLog.read({ signal: ac.signal, onDamage })) {
        const piece = q.legacyRecord(r.message, { pad: !!opts.pad, replies: !!opts.replies });
        if (!piece) continue;
        written++;
        if (piece.altered) altered++;
        if (!out.write(piece.data)) await once(out, 'drain');
      }
      if (opts.out) {
        const ws = out as ReturnType<typeof createWriteStream>;
        ws.end();
        await once(ws, 'close');
      }
      io.stderr.write(
        `virgo queue export: ${written} records${altered ? ` (${altered} payloads had line breaks or " $$", replaced)` : ''}\n`,
      );
      return damaged > 0 ? 1 : 0;
    }
    const json = !!opts.json;
    let from = segLog.firstOffset;
    if (action === 'tail') from = Math.max(from, segLog.nextOffset - positiveInt('lines', opts.lines));
    else if (opts['from-offset'] !== undefined) from = opts['from-offset'] as number;
    for await (const r of segLog.read({
      fromOffset: from,
      follow: !!opts.follow,
      signal: ac.signal,
      onDamage,
    })) {
      await write(`${recordText(r, json)}\n`);
    }
    return damaged > 0 ? 1 : 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return 0;
    throw err;
  } finally {
    io.stdout.off('error', onPipeError);
    await segLog.close();
  }
}
