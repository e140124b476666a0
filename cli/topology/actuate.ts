// The kernel actuator (actuators/kernel/): analytics variables → tc rates, nftables bans and
// sysctls under a policy. Off by default; `virgo up --actuate POLICY` runs it (a dry run unless
// --actuate-apply), `virgo actuate` runs it alone. One configuration and one start function serve:
//   `virgo up`          on the feeder's host-aware table, in this process
//   `virgo up --split`  as `virgo actuate --feeder <the feeder's endpoint> …`
//   `virgo actuate`     alone, on a feeder (one host selected) or the Redis export
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { isNetnsName } from '../../actuators/kernel/allowlist.ts';
import type { AuditLog, KernelActuator, RecoveryReport } from '../../actuators/kernel/index.ts';
import type { VariableTable } from '../../kernel-analytics/index.ts';
import { FEEDER_PORT } from '../../kernel-analytics/ports.ts';
import { parseHostPort, UsageError } from '../../runtime/config.ts';
import { createLogger } from '../../runtime/log.ts';
import { feederStage } from './feeder.ts';
import { type Built, connectHost, type PipelineOptions, type PipelineStage, reach } from './stage.ts';
import { variableInput } from './variables.ts';

const log = createLogger('actuate');

export interface ActuateConfig {
  policyFile: string;
  /** run the commands; false: print them (the default) */
  apply: boolean;
  /** every command inside this network namespace */
  netns?: string;
  /** pins are read from <stateDir>/pins (where `virgo pin` writes them) */
  stateDir: string;
  /** the append-only audit log (default <stateDir>/actuate/audit.jsonl) */
  auditFile: string;
  /** where variables come from when no table is given: a feeder … */
  feeder: { host: string; port: number };
  /** … or the Redis export */
  redis?: { url: string; prefix: string };
}

export function defaultAuditFile(stateDir: string): string {
  return join(stateDir, 'actuate', 'audit.jsonl');
}

export interface ActuateHandle {
  actuator: KernelActuator;
  /** what the start found unfinished in the audit log and restored */
  recovery: RecoveryReport | undefined;
  /** where the variables come from */
  source: string;
}

/**
 * Reads and checks the policy, restores what an unfinished earlier run left (with apply), then
 * starts the actuator on the variables: `table` when given (a table of this process), else a
 * feeder consumer selecting the policy's host, or Redis. Throws PolicyError (file:line: …) for a
 * policy it refuses.
 */
export async function startActuate(
  c: ActuateConfig,
  peers: { table?: VariableTable; report: (line: string) => void },
): Promise<Built<ActuateHandle>> {
  const K = await import('../../actuators/kernel/index.ts');
  const { PinFile, PinStore } = await import('../../learners/pins.ts');
  if (c.netns !== undefined && !isNetnsName(c.netns)) {
    throw new UsageError(`network namespace ${JSON.stringify(c.netns)} is not a name ip netns accepts`);
  }
  const policy = K.readPolicy(c.policyFile);
  if (c.netns) {
    const problems = K.netnsProblems(policy);
    if (problems.length > 0) throw new K.PolicyError(policy.file, problems);
  }
  const closers: (() => Promise<void> | void)[] = [];
  const closeAll = async () => {
    for (const f of closers.splice(0).reverse()) await Promise.resolve(f()).catch(() => {});
  };
  try {
    const runner = new K.CommandRunner(c.netns ? { netns: c.netns } : {});
    let audit: AuditLog | undefined;
    let recovery: RecoveryReport | undefined;
    const closeAudit = () => audit?.close();
    if (c.apply) {
      audit = K.AuditLog.open(c.auditFile);
      closers.push(closeAudit);
      recovery = await K.recoverUnfinished(audit, peers.report);
      if (!recovery.ok) {
        throw new UsageError(
          `an earlier run's settings could not all be restored (see ${c.auditFile}); fix the cause and run virgo actuate --rollback`,
        );
      }
    } else {
      const open = K.unfinished(K.readSessions(c.auditFile));
      if (open.length > 0) {
        peers.report(
          `note: ${c.auditFile} holds an unfinished run (pid ${open.at(-1)!.start.pid}); --apply or --rollback restores its settings first`,
        );
      }
    }

    const { table, source, connect, close } = await variableInput({
      inProcess: peers.table,
      redis: c.redis,
      hosts: [policy.host],
      feeder: async () => {
        // the policy's host only: bare key=value lines, as that machine's kernel module reads them
        const { RingConsumer } = await import('../../kernel-analytics/consumer.ts');
        const consumer = new RingConsumer({
          host: c.feeder.host,
          port: c.feeder.port,
          selectHost: policy.host,
          name: 'actuate',
          autoStart: false,
        });
        return {
          table: consumer.table,
          source: `feeder ${c.feeder.host}:${c.feeder.port} (HOST ${policy.host})`,
          connect: () => void consumer.start(),
          close: () => consumer.close(),
        };
      },
    });
    closers.push(close);

    // Pins as `virgo pin` writes them; a pin or an unpin makes every rule decide again.
    const pins = new PinStore();
    const pinsDir = join(c.stateDir, 'pins');
    mkdirSync(pinsDir, { recursive: true });
    const pinFile = new PinFile(pinsDir);
    pins.setSource('file', pinFile.read());
    let actuator: KernelActuator | undefined;
    const stopWatch = pinFile.watch((m) => {
      pins.setSource('file', m);
      actuator?.reconsider();
    });
    closers.push(stopWatch);

    actuator = await K.KernelActuator.start({
      policy,
      variables: table,
      receivedAt: (key, host) => table.entry(key, host)?.ts,
      apply: c.apply,
      runner,
      ...(audit ? { audit } : {}),
      pins,
      report: peers.report,
      source,
    });
    const a = actuator;
    // The actuator closes (and releases) the audit log itself once it has restored everything.
    if (closers.includes(closeAudit)) closers.splice(closers.indexOf(closeAudit), 1);
    closers.push(async () => {
      await a.close('stopped');
    });
    return {
      handle: { actuator: a, recovery, source },
      health: () => ({
        actuate: {
          apply: c.apply,
          actions: a.stats.actions,
          failed: a.stats.failed,
          skipped: a.stats.skipped,
        },
      }),
      connect,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** The configuration `virgo up` gives this stage. */
export function actuateFromPipeline(
  o: PipelineOptions,
  endpoints: Readonly<Record<string, string>>,
): ActuateConfig {
  const a = o.actuate;
  if (!a) throw new Error('actuate stage started without a policy'); // enabled() said it has one
  const host = o.listenHost ?? '127.0.0.1';
  return {
    policyFile: a.policy,
    apply: a.apply,
    ...(a.netns ? { netns: a.netns } : {}),
    stateDir: o.stateDir,
    auditFile: defaultAuditFile(o.stateDir),
    feeder: parseHostPort(
      endpoints.feeder ? reach(endpoints.feeder) : `${connectHost(host)}:${o.feederPort ?? FEEDER_PORT}`,
    ),
  };
}

/** `virgo actuate` arguments for a configuration (`virgo up --split`). */
export function actuateArgs(c: ActuateConfig): string[] {
  return [
    'actuate',
    '--policy',
    c.policyFile,
    '--feeder',
    `${c.feeder.host}:${c.feeder.port}`,
    '--state-dir',
    c.stateDir,
    '--audit',
    c.auditFile,
    ...(c.redis ? ['--redis', c.redis.url, '--redis-prefix', c.redis.prefix] : []),
    ...(c.netns ? ['--netns', c.netns] : []),
    ...(c.apply ? ['--apply'] : []),
  ];
}

export const actuateStage: PipelineStage<ActuateHandle> = {
  name: 'actuate',
  // it reads the feeder's variables (in one process, its host-aware table)
  after: ['feeder'],
  options: {
    actuate: {
      type: 'string',
      arg: 'POLICY.json',
      description: 'act on the kernel under this policy (off by default; a dry run unless --actuate-apply)',
    },
    'actuate-apply': {
      type: 'boolean',
      default: false,
      description: 'with --actuate: run the tc/nft/sysctl commands instead of printing them',
    },
    'actuate-netns': {
      type: 'string',
      arg: 'NAME',
      description: 'with --actuate: run every kernel command inside this network namespace',
    },
  },
  enabled: (o) => o.actuate !== undefined,
  configure(flags, o) {
    if (flags.actuate === undefined) {
      if (flags['actuate-apply'] === true || flags['actuate-netns'] !== undefined) {
        throw new UsageError('--actuate-apply and --actuate-netns need --actuate POLICY.json');
      }
      return;
    }
    o.actuate = {
      policy: String(flags.actuate),
      apply: flags['actuate-apply'] === true,
      ...(flags['actuate-netns'] !== undefined ? { netns: String(flags['actuate-netns']) } : {}),
    };
  },
  async start(ctx) {
    const feeder = ctx.peer(feederStage);
    return startActuate(actuateFromPipeline(ctx.o, {}), {
      ...(feeder ? { table: feeder.table } : {}),
      report: (line) => log.info(line),
    });
  },
  child(o, endpoints) {
    return { args: actuateArgs(actuateFromPipeline(o, endpoints)) };
  },
};
