// cli/: the `virgo` command. Owns argument parsing, help and exit codes; each subcommand is one
// module in cli/commands/ (found at run time, so stages add commands without editing this file).
// Imports: every stage. Nothing imports cli/.
import { readdirSync, readFileSync } from 'node:fs';
import { BusError } from '../bus/index.ts';
import { UsageError } from '../runtime/config.ts';
import { getLogLevel } from '../runtime/log.ts';
import { findPortInUse } from '../runtime/port-in-use.ts';
import { RedisUnreachableError } from '../runtime/redis-probe.ts';
import { stopProcess } from '../runtime/shutdown.ts';
import { AvroDecodeError } from '../schemas/index.ts';
import { type Command, type CommandIO, commandHelp, runCommand } from './command.ts';

const COMMANDS_DIR = new URL('./commands/', import.meta.url);

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function commandFiles(): string[] {
  return readdirSync(COMMANDS_DIR)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.startsWith('_'))
    .map((f) => f.slice(0, -3))
    .sort();
}

async function loadCommand(name: string): Promise<Command | undefined> {
  if (!commandFiles().includes(name)) return undefined;
  const mod = (await import(new URL(`${name}.ts`, COMMANDS_DIR).href)) as { default: Command };
  return mod.default;
}

async function topHelp(): Promise<string> {
  const cmds = await Promise.all(commandFiles().map((n) => loadCommand(n)));
  const rows = cmds.filter((c): c is Command => !!c).map((c) => `  ${c.name.padEnd(14)}${c.summary}`);
  return `virgo ${version()}: kernel logs → Kafka → online learners → key=value analytics on :64000

usage: virgo <command> [options]     (virgo <command> --help for its options)

commands:
${rows.join('\n')}

Embedded by default (in-process bus and table); --brokers / VIRGO_BROKERS and --redis /
VIRGO_REDIS_URL switch to Kafka and Redis. Options resolve flags > env > config file.
`;
}

/**
 * The reader of our output went away (`virgo conf list | head`, a closed terminal): end quietly,
 * as a SIGPIPE'd filter would, with the cleanups a signal runs (offsets committed, logs
 * fsynced), instead of dying of an unhandled EPIPE with a stack. Exit code 0: the reader has what
 * it wanted. Returns whether it happened.
 */
function watchOutput(io: CommandIO): () => boolean {
  let closed = false;
  const onError = (err: NodeJS.ErrnoException) => {
    closed = true;
    // in a test's in-memory streams there is no process to stop
    if (io.stdout === process.stdout) stopProcess(`stdout: ${err.code ?? err.message}`);
  };
  io.stdout.on('error', onError);
  // nothing can be reported once stderr's reader is gone either: never die of it
  if (io.stderr === process.stderr) process.stderr.on('error', () => {});
  return () => closed;
}

const isEpipe = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code === 'EPIPE';

export async function main(argv: string[], io: CommandIO = process): Promise<number> {
  const outputClosed = watchOutput(io);
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    if (name === 'help' && rest[0]) {
      const c = await loadCommand(rest[0]);
      if (c) {
        io.stdout.write(commandHelp(c));
        return 0;
      }
    }
    io.stdout.write(await topHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }
  const cmd = await loadCommand(name);
  if (!cmd) {
    io.stderr.write(`virgo: unknown command "${name}"; commands: ${commandFiles().join(', ')}\n`);
    return 2;
  }
  try {
    return await runCommand(cmd, rest, io);
  } catch (err) {
    // a write that failed because the reader left (once(stdout, 'drain') rejects with it)
    if (outputClosed() || isEpipe(err)) return 0;
    if (err instanceof UsageError) {
      io.stderr.write(`virgo ${name}: ${err.message}\n`);
      return 2;
    }
    const taken = findPortInUse(err);
    if (taken) {
      // `virgo up --split` tells its children which of its own flags moves their ports
      const fix =
        io.env.VIRGO_PORT_FIX ||
        taken.fix ||
        cmd.portFix?.(taken.service) ||
        'stop the process that holds it';
      io.stderr.write(`virgo ${name}: ${taken.message}; ${fix}\n`);
      return 1;
    }
    if (err instanceof BusError || err instanceof AvroDecodeError || err instanceof RedisUnreachableError) {
      io.stderr.write(`virgo ${name}: ${err.message}\n`);
      return 1;
    }
    // An operator needs the message (it names the input and the fix); the stack is for bug reports.
    const e = err as Error;
    const debug = getLogLevel() === 'debug' || getLogLevel() === 'trace';
    io.stderr.write(
      `virgo ${name}: ${debug ? (e.stack ?? String(err)) : (e.message ?? String(err))}${debug ? '' : ' (--log-level debug shows the stack)'}\n`,
    );
    return 1;
  }
}
