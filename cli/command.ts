// What a `virgo` subcommand is: one module in cli/commands/ whose default export is a Command.
import { type Bus, createBus, parseBrokers } from '../bus/index.ts';
import {
  COMMON_OPTIONS,
  type OptionDefs,
  type OptionValues,
  optionsHelp,
  parseOptions,
  UsageError,
} from '../runtime/config.ts';
import { LEVELS, type Level, setLogLevel } from '../runtime/log.ts';

export interface CommandIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

export interface RunContext<D extends OptionDefs> {
  opts: OptionValues<D & typeof COMMON_OPTIONS>;
  args: string[];
  io: CommandIO;
}

export interface Command<D extends OptionDefs = OptionDefs> {
  name: string;
  summary: string;
  /** e.g. "virgo subscribe TOPIC [--format text|json|avro]" */
  usage: string;
  /** free text after the options: examples, notes */
  details?: string;
  options: D;
  /**
   * The flag of this command that moves a port it binds, given the service the error names (a
   * LineServer's name, "metrics", "kingcobra ZeroMQ"); printed after "… is in use by another
   * process" (runtime/port-in-use.ts).
   */
  portFix?(service: string): string;
  run(ctx: RunContext<D>): Promise<number>;
}

export function defineCommand<D extends OptionDefs>(c: Command<D>): Command<D> {
  return c;
}

export function commandHelp(c: Command): string {
  const defs = { ...c.options, ...COMMON_OPTIONS };
  return `${c.summary}\n\nusage: ${c.usage}\n\noptions:\n${optionsHelp(defs)}\n${c.details ? `\n${c.details.trim()}\n` : ''}`;
}

export async function runCommand(c: Command, argv: string[], io: CommandIO): Promise<number> {
  const defs = { ...c.options, ...COMMON_OPTIONS };
  const { values, positionals } = parseOptions(defs, argv, io.env);
  if (values.help) {
    io.stdout.write(commandHelp(c));
    return 0;
  }
  const lvl = values['log-level'];
  if (lvl !== undefined) {
    if (!(LEVELS as readonly string[]).includes(String(lvl))) {
      throw new UsageError(`--log-level must be one of ${LEVELS.join(', ')}, got ${lvl}`);
    }
    setLogLevel(lvl as Level);
  }
  return c.run({ opts: values as OptionValues<OptionDefs & typeof COMMON_OPTIONS>, args: positionals, io });
}

/** The Bus a command asked for: Kafka with --brokers/VIRGO_BROKERS, else in-process. */
export function busFromOptions(opts: { brokers?: string | undefined }, clientId: string): Bus {
  return createBus({ brokers: parseBrokers(opts.brokers), clientId });
}
