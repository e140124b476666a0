import { join } from 'node:path';
import { CONNECTION_OPTIONS, UsageError } from '../../runtime/config.ts';
import { stateDir } from '../../runtime/paths.ts';
import { busFromOptions, defineCommand } from '../command.ts';

export default defineCommand({
  name: 'unpin',
  summary: 'lift an operator pin: the learners emit the variable again',
  usage: 'virgo unpin host/key [--state-dir DIR] [--brokers HOST:PORT]',
  details: `Removes the pin from <state-dir>/pins/pins.json; with --brokers also from the compacted topic
virgo.learner-pins (a tombstone), so every learner instance lifts it. Without --brokers a pin made
with --brokers stays in force on the topic.`,
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
  },
  async run({ opts, args, io }) {
    const L = await import('../../learners/index.ts');
    const pinsTopic = opts['pins-topic'] ?? L.PINS_TOPIC;
    if (args.length !== 1) throw new UsageError('which variable? virgo unpin host/key');
    let id: string;
    try {
      const { host, key } = L.splitHostKey(args[0]!);
      id = `${host}/${key}`;
    } catch (err) {
      if (err instanceof L.ValueError) throw new UsageError(err.message);
      throw err;
    }
    const file = new L.PinFile(join(opts['state-dir'] ?? stateDir(), 'pins'));
    let had = false;
    await file.update((m) => {
      had = m.delete(id);
    });
    if (opts.brokers) {
      const bus = busFromOptions(opts, 'virgo-unpin');
      try {
        await L.publishUnpin(bus, id, pinsTopic);
      } finally {
        await bus.close().catch(() => {});
      }
    }
    io.stdout.write(had || opts.brokers ? `unpinned ${id}\n` : `${id} was not pinned in ${file.path}\n`);
    return 0;
  },
});
