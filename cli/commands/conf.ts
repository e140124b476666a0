import { UsageError } from '../../runtime/config.ts';
import { defineCommand } from '../command.ts';

const SUBCOMMANDS = ['get', 'set', 'unset', 'list', 'check', 'compact'] as const;
type Sub = (typeof SUBCOMMANDS)[number];

export default defineCommand({
  name: 'conf',
  summary: 'read and write /etc/virgo_kernel_analytics.conf (comma-separated key=value)',
  usage: 'virgo conf get KEY | set KEY=VALUE… | unset KEY… | list | check | compact [--file PATH]',
  details: `subcommands:
  get KEY          print KEY's value (exit 1 when it is not set)
  set K=V [K=V…]   set pairs, keeping the others; the file is replaced atomically
  unset KEY…       remove keys
  list             print every pair, one key=value a line (--format json for an object)
  check            report tokens the reader cannot use (exit 1 when there are any)
  compact          rewrite the file with one pair per key (after ',key=value' appends)
format (as the original kernel module read it): pairs separated by ',', newlines are not
separators, a key may repeat (the later value wins). Keys: A-Z a-z 0-9 _ . : / - (1-128);
values: one printable line of at most 1000 bytes, and no ',' (it would split the value).
examples:
  virgo conf set match=True MaxNetworkBandwidth=255 --file ./virgo_kernel_analytics.conf
  virgo conf get match --file ./virgo_kernel_analytics.conf`,
  options: {
    file: {
      type: 'string',
      env: 'VIRGO_CONF_FILE',
      arg: 'PATH',
      default: '/etc/virgo_kernel_analytics.conf',
      description: 'the conf file',
    },
    format: { type: 'string', default: 'text', arg: 'text|json', description: 'list output' },
  },
  async run({ opts, args, io }) {
    const { ConfFile, ConfFileError, ConfValueError } = await import('../../kernel-analytics/conf-file.ts');
    const [sub, ...rest] = args;
    if (!sub || !(SUBCOMMANDS as readonly string[]).includes(sub)) {
      throw new UsageError(`which subcommand? one of ${SUBCOMMANDS.join(', ')} (see --help)`);
    }
    const file = new ConfFile(opts.file as string);
    const report = (problems: { message: string }[]) => {
      for (const p of problems) io.stderr.write(`virgo conf: ${file.path}: ${p.message}\n`);
    };
    try {
      switch (sub as Sub) {
        case 'get': {
          if (rest.length !== 1) throw new UsageError('get takes one KEY, e.g. virgo conf get match');
          const c = await file.read();
          report(c.problems);
          const v = c.values.get(rest[0]!);
          if (v === undefined) {
            io.stderr.write(`virgo conf: ${rest[0]} is not set in ${file.path}\n`);
            return 1;
          }
          io.stdout.write(`${v}\n`);
          return 0;
        }
        case 'set': {
          if (rest.length === 0)
            throw new UsageError('set takes KEY=VALUE pairs, e.g. virgo conf set match=True');
          // no prototype: a key named __proto__ is a key like any other (a valid one, even)
          const pairs: Record<string, string> = Object.create(null);
          for (const a of rest) {
            const eq = a.indexOf('=');
            if (eq < 0) throw new UsageError(`"${a}" is not KEY=VALUE`);
            pairs[a.slice(0, eq)] = a.slice(eq + 1);
          }
          const problems = await file.set(pairs);
          report(problems);
          // exit 0 means the file holds what was asked for: read it back
          const now = (await file.read()).values;
          const missing = Object.keys(pairs).filter((k) => now.get(k) !== pairs[k]);
          if (missing.length > 0) {
            io.stderr.write(
              `virgo conf: ${missing.join(', ')} not in ${file.path} after writing (changed by another writer meanwhile?)\n`,
            );
            return 1;
          }
          return 0;
        }
        case 'unset': {
          if (rest.length === 0) throw new UsageError('unset takes KEYs');
          const removed = await file.unset(...rest);
          const missing = rest.filter((k) => !removed.includes(k));
          for (const k of missing) io.stderr.write(`virgo conf: ${k} was not set in ${file.path}\n`);
          return 0;
        }
        case 'list': {
          const c = await file.read();
          report(c.problems);
          if (opts.format === 'json') io.stdout.write(`${JSON.stringify(Object.fromEntries(c.values))}\n`);
          else if (opts.format === 'text') for (const [k, v] of c.values) io.stdout.write(`${k}=${v}\n`);
          else throw new UsageError('--format must be text or json');
          return c.problems.length > 0 ? 1 : 0;
        }
        case 'check': {
          const c = await file.read();
          report(c.problems);
          if (!c.exists) io.stderr.write(`virgo conf: ${file.path} does not exist (read as empty)\n`);
          io.stdout.write(`${c.values.size} variables, ${c.problems.length} problems in ${file.path}\n`);
          return c.problems.length > 0 ? 1 : 0;
        }
        case 'compact': {
          report(await file.compact());
          return 0;
        }
      }
    } catch (err) {
      if (err instanceof ConfValueError) throw new UsageError(err.message);
      if (err instanceof ConfFileError) {
        io.stderr.write(`virgo conf: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
    return 2;
  },
});
