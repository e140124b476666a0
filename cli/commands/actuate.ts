import { existsSync } from 'node:fs';
import { FEEDER_PORT } from '../../kernel-analytics/ports.ts';
import { CONNECTION_OPTIONS, parseHostPort, UsageError } from '../../runtime/config.ts';
import { stateDir } from '../../runtime/paths.ts';
import { defineCommand } from '../command.ts';

export default defineCommand({
  name: 'actuate',
  summary:
    'act on the kernel from the analytics: tc rates, nftables bans, sysctls, under a policy (dry run by default)',
  usage: `virgo actuate --policy POLICY.json [--apply] [--netns NAME] [--feeder HOST:64000 | --redis URL]
       virgo actuate --rollback            (restore what an unfinished run changed, then exit)
       virgo actuate --check --policy POLICY.json`,
  details: `A dry run (the default) prints every command it would run, as an argv array, and changes
nothing. --apply runs them: each is first appended to the audit log (fsync'd JSON lines: variable,
value, why, old and new setting, time), then run, then read back. SIGINT/SIGTERM restores every
changed setting to the original recorded at start. A run that did not end cleanly (SIGKILL, a
crash) is restored by the next --apply or by --rollback, from the audit log, in the network
namespace it ran in. A pinned variable (virgo pin) or one older than its rule's ttlSeconds drives
nothing. The policy may only name sysctls of the actuator's catalogue, interfaces and an nftables
table it lists under "allow"; anything else refuses the start with the policy's line.
Needs CAP_NET_ADMIN (tc, nft, net.* sysctls), CAP_SYS_ADMIN for other sysctls and for --netns.
examples:
  virgo actuate --policy policy.json                                   # what would it do?
  virgo actuate --policy policy.json --apply --redis redis://127.0.0.1:6379
  virgo actuate --rollback`,
  options: {
    policy: { type: 'string', env: 'VIRGO_ACTUATE_POLICY', arg: 'FILE', description: 'the policy (JSON)' },
    apply: { type: 'boolean', default: false, description: 'run the commands (default: print them)' },
    rollback: {
      type: 'boolean',
      default: false,
      description: 'restore the settings of unfinished runs in the audit log, then exit',
    },
    check: { type: 'boolean', default: false, description: 'check the policy and exit' },
    netns: {
      type: 'string',
      arg: 'NAME',
      description: 'run every kernel command inside this network namespace',
    },
    feeder: {
      type: 'string',
      env: 'VIRGO_FEEDER',
      default: `127.0.0.1:${FEEDER_PORT}`,
      arg: 'HOST:PORT',
      description: "read the policy host's variables from this feeder (ignored with --redis)",
    },
    redis: {
      ...CONNECTION_OPTIONS.redis,
      description: "read the policy host's variables from the Redis export instead of a feeder",
    },
    'redis-prefix': {
      type: 'string',
      default: 'virgo:analytics',
      arg: 'PREFIX',
      description: "the Redis exporter's key prefix",
    },
    'state-dir': {
      type: 'string',
      env: 'VIRGO_STATE_DIR',
      arg: 'DIR',
      description: 'pins (pins/) and the audit log (actuate/audit.jsonl); default ./.virgo',
    },
    audit: {
      type: 'string',
      arg: 'FILE',
      description: 'the audit log (default STATE_DIR/actuate/audit.jsonl)',
    },
  },
  async run({ opts, io }) {
    const K = await import('../../actuators/kernel/index.ts');
    const { defaultAuditFile, startActuate } = await import('../topology/actuate.ts');
    const dir = opts['state-dir'] ?? stateDir();
    const auditFile = opts.audit ?? defaultAuditFile(dir);
    const say = (line: string) => void io.stdout.write(`${line}\n`);

    if (opts.rollback) {
      if (opts.apply || opts.check) throw new UsageError('--rollback runs alone (no --apply, no --check)');
      if (!existsSync(auditFile)) {
        say(`nothing to roll back: no audit log at ${auditFile}`);
        return 0;
      }
      const audit = K.AuditLog.open(auditFile);
      try {
        const r = await K.recoverUnfinished(audit, say);
        if (r.sessions === 0) say(`nothing to roll back in ${auditFile}`);
        return r.ok ? 0 : 1;
      } finally {
        audit.close();
      }
    }
    if (!opts.policy) throw new UsageError('--policy FILE is required (or --rollback)');
    try {
      if (opts.check) {
        const p = K.readPolicy(opts.policy);
        if (opts.netns) {
          const problems = K.netnsProblems(p);
          if (problems.length > 0) throw new K.PolicyError(p.file, problems);
        }
        say(
          `${p.file}: ok, host ${p.host}, ${p.rules.length} rule(s): ${p.rules.map((r) => r.name).join(', ')}`,
        );
        return 0;
      }
      // Listen for SIGINT/SIGTERM before anything can change: a signal during the start (or the
      // recovery of an earlier run) stops the actuator as soon as it runs, never mid-command.
      // A second signal takes the default action (the process dies); the audit log keeps the
      // session open for the next run.
      const signalled = new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      const built = await startActuate(
        {
          policyFile: opts.policy,
          apply: opts.apply === true,
          ...(opts.netns ? { netns: opts.netns } : {}),
          stateDir: dir,
          auditFile,
          feeder: parseHostPort(opts.feeder ?? `127.0.0.1:${FEEDER_PORT}`),
          ...(opts.redis
            ? { redis: { url: opts.redis, prefix: opts['redis-prefix'] ?? 'virgo:analytics' } }
            : {}),
        },
        { report: say },
      );
      built.connect?.();
      const sig = await signalled;
      const outcomes = await built.handle.actuator.close(`rolled back on ${sig}`);
      await built.close();
      const failed = outcomes.filter((o) => !o.ok);
      if (failed.length > 0) {
        io.stderr.write(
          `virgo actuate: could not restore ${failed.map((f) => f.target).join(', ')}; run virgo actuate --rollback\n`,
        );
        return 1;
      }
      return 0;
    } catch (err) {
      if (err instanceof K.PolicyError) {
        io.stderr.write(`virgo actuate: policy refused:\n${err.message}\n`);
        return 2;
      }
      if (err instanceof K.AuditLockError) throw new UsageError(err.message);
      throw err;
    }
  },
});
