import { join } from 'node:path';
import { CONNECTION_OPTIONS, UsageError } from '../../runtime/config.ts';
import { stateDir } from '../../runtime/paths.ts';
import { busFromOptions, defineCommand } from '../command.ts';

export default defineCommand({
  name: 'pin',
  summary: 'freeze an analytics variable at a value: learners stop emitting it until unpinned',
  usage: 'virgo pin [host/key=value] [--state-dir DIR] [--brokers HOST:PORT]',
  details: `The value is checked against the variable's declaration (type, bounds) and published once
as learner "operator". A running \`virgo learn\` with the same --state-dir picks the pin up from
<state-dir>/pins/pins.json within a second; with --brokers the pin also goes to the compacted topic
virgo.learner-pins, which every learner instance follows, and the value to virgo.kernel-analytics.
Without an argument it lists the pins in force here.
examples:
  virgo pin edge-1/MaxNetworkBandwidth=100
  virgo pin drone-7/pxrc.throttle=0 --brokers 127.0.0.1:9092
  virgo unpin edge-1/MaxNetworkBandwidth`,
  options: {
    brokers: CONNECTION_OPTIONS.brokers,
    'state-dir': {
      type: 'string',
      env: 'VIRGO_STATE_DIR',
      arg: 'DIR',
      description: 'where pins live (default ./.virgo)',
    },
    'pins-topic': {
      type: 'string',
      arg: 'TOPIC',
      description: 'with --brokers: the compacted pins topic (default virgo.learner-pins)',
    },
    'analytics-topic': {
      type: 'string',
      arg: 'TOPIC',
      description: 'with --brokers: where the pinned value goes (default virgo.kernel-analytics)',
    },
  },
  async run({ opts, args, io }) {
    const L = await import('../../learners/index.ts');
    const pinsTopic = opts['pins-topic'] ?? L.PINS_TOPIC;
    const dir = join(opts['state-dir'] ?? stateDir(), 'pins');
    const file = new L.PinFile(dir);
    if (args.length === 0) {
      const pins = [...file.read().values()].sort((a, b) => a.ts - b.ts);
      for (const p of pins) {
        io.stdout.write(`${p.host}/${p.key}=${p.value}\t# by ${p.by} at ${new Date(p.ts).toISOString()}\n`);
      }
      if (pins.length === 0) io.stderr.write(`no pins in ${file.path}\n`);
      return 0;
    }
    if (args.length > 1) throw new UsageError('one pin at a time: virgo pin host/key=value');
    const arg = args[0]!;
    const eq = arg.indexOf('=');
    if (eq < 0) throw new UsageError(`expected host/key=value, got ${JSON.stringify(arg)}`);
    let host: string;
    let key: string;
    let checked: ReturnType<typeof L.checkPin>;
    try {
      ({ host, key } = L.splitHostKey(arg.slice(0, eq)));
      checked = L.checkPin(L.declaredVariables(), host, key, arg.slice(eq + 1));
    } catch (err) {
      if (err instanceof L.ValueError || err instanceof L.PinValueError) throw new UsageError(err.message);
      throw err;
    }
    const id = `${host}/${key}`;
    const entry = { host, key, value: checked.value, ts: Date.now(), by: L.whoAmI(), announced: false };
    let failed: Error | undefined;
    if (opts.brokers) {
      // Publish first: the file then says whether the value is already out there.
      const bus = busFromOptions(opts, 'virgo-pin');
      try {
        entry.announced = true;
        const why = `pinned by ${entry.by} at ${new Date(entry.ts).toISOString()}`;
        await L.publishPin(bus, entry, L.operatorVariable(host, key, checked.value, checked, why, entry.ts), {
          pins: pinsTopic,
          ...(opts['analytics-topic'] ? { analytics: opts['analytics-topic'] } : {}),
        });
      } catch (err) {
        entry.announced = false;
        failed = err as Error;
      } finally {
        await bus.close().catch(() => {});
      }
    }
    await file.update((m) => void m.set(id, entry));
    io.stdout.write(`pinned ${id}=${checked.value}\n`);
    if (!checked.learner) io.stderr.write(`note: no learner declares ${key}; pinned as a string anyway\n`);
    if (failed) {
      io.stderr.write(
        `virgo pin: pinned in ${file.path}, but Kafka failed (${failed.message}); a running learner announces it\n`,
      );
      return 1;
    }
    return 0;
  },
});
