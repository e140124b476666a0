// The kernel actuator (docs/design.md §12): follows the analytics variables a policy names and
// turns them into kernel settings (a tc rate, an nftables ban, a sysctl), one decision at a time.
//
// A value drives an action only when it is present, not pinned by an operator (`virgo pin`), and
// fresh (received within the rule's ttl); the wish is clamped to the policy's bounds, then rate
// limited (a minimum interval between changes, a maximum change per step: a large move is made in
// steps, one per interval, while the value stays fresh). Without `apply` every command is printed
// and nothing runs; with it, each command is first recorded (fsync'd) in the audit log with the
// old and new setting, then run, then read back. close() puts every changed setting back to the
// original read at start.
//
// Clocks: freshness, intervals and retries run on processing time, a monotonic clock
// (performance.now) started from when this process saw each update; a value present at start
// counts from when its table received it (wall clock, converted once). Audit times are wall clock.
import { randomUUID } from 'node:crypto';
import { type BlockList, isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createLogger } from '../../runtime/log.ts';
import { counter } from '../../runtime/metrics.ts';
import { parseBool, parseNumber } from '../../schemas/variable.ts';
import type { SourceChange, VariableSource } from '../drivers/variables.ts';
import { type ActionRecord, type AuditLog, machine, now as wallTime } from './audit.ts';
import { CommandError, type CommandRunner, shellQuote } from './commands.ts';
import { banArgv, createTableArgv, deleteTableArgv, listSet, setFor } from './nft.ts';
import {
  type BanRule,
  type Policy,
  PolicyError,
  type Problem,
  type Rule,
  type SysctlRule,
  type TcRule,
  variablesOf,
} from './policy.ts';
import { RateLimiter } from './rate-limit.ts';
import { readSysctl, sysctlArgv } from './sysctl.ts';
import {
  describeSetting,
  readSetting,
  restoreTarget,
  rootOf,
  type Setting,
  sysctlOf,
  type TargetRef,
  targetId,
} from './targets.ts';
import { cappedMbit, defaultBurst, readRoot, restoreArgv, sameRate, tbfArgv } from './tc.ts';

const log = createLogger('actuators.kernel');

export const SKIP_REASONS = [
  'missing',
  'pinned',
  'stale',
  'invalid-value',
  'condition',
  'unchanged',
  'rate-limited',
  'never-ban',
  'set-full',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

const decisions = counter('virgo_actuate_decisions_total', 'kernel actuator decisions, by rule and outcome', [
  'rule',
  'outcome',
]);
const commandsRun = counter('virgo_actuate_commands_total', 'kernel commands, by rule and result', [
  'rule',
  'result',
]);

/** An operator's pin of a variable (learners/pins.ts PinStore satisfies it). */
export interface PinLookup {
  get(host: string, key: string): { value: string; by: string } | undefined;
}

export interface KernelActuatorOptions {
  policy: Policy;
  variables: VariableSource;
  /** epoch ms at which the source received a value it holds (VariableTable.entry().ts); without
   * it, values present at start count as stale until they next change */
  receivedAt?: (key: string, host: string) => number | undefined;
  /** run the commands (default false: print them) */
  apply?: boolean;
  runner: CommandRunner;
  /** required with apply */
  audit?: AuditLog;
  pins?: PinLookup;
  /** one line per action, skip and restore, for the operator (stdout of `virgo actuate`) */
  report?: (line: string) => void;
  /** monotonic ms (default performance.now) */
  clock?: () => number;
  /** where the variables come from, for the first line of the report */
  source?: string;
}

interface TargetState {
  ref: TargetRef;
  id: string;
  original: Setting;
  current: Setting;
  /** this run changed it (or, dry, would have): close() restores it */
  changed: boolean;
}

interface RuleState {
  rule: Rule;
  target: TargetState;
  limiter: RateLimiter;
  timer?: NodeJS.Timeout;
  timerAt?: number;
  lastSkip?: string;
  /** bans this run placed: address → monotonic ms it expires */
  bans: Map<string, number>;
}

interface Step {
  target: TargetState;
  ref: TargetRef;
  old: Setting;
  new: Setting;
  argv: string[];
  /** reads the setting back; throws when it is not `new` */
  verify(): Promise<Setting>;
}

type Decision =
  | { act: true; steps: Step[]; variable: string; value: string; why: string; retryMs?: number }
  | { act: false; reason: SkipReason; detail: string; retryMs?: number };

export interface ActuatorStats {
  actions: number;
  failed: number;
  skipped: Record<SkipReason, number>;
}

export interface RestoreOutcome {
  target: string;
  argv?: string[];
  ok: boolean;
  error?: string;
}

export class KernelActuator {
  readonly session = randomUUID();
  readonly apply: boolean;
  private readonly policy: Policy;
  private readonly run: CommandRunner;
  private readonly clock: () => number;
  private readonly report: (line: string) => void;
  private readonly targets = new Map<string, TargetState>();
  private readonly rules: RuleState[] = [];
  /** host/key → monotonic ms it was last received */
  private readonly seenAt = new Map<string, number>();
  private readonly byVariable = new Map<string, RuleState[]>();
  private chain: Promise<void> = Promise.resolve();
  private readonly queued = new Set<RuleState>();
  private listener: ((c: SourceChange) => void) | undefined;
  private seq = 0;
  private closed = false;
  private closing: Promise<RestoreOutcome[]> | undefined;
  private readonly neverBan: BlockList | undefined;
  readonly stats: ActuatorStats = {
    actions: 0,
    failed: 0,
    skipped: Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>,
  };

  private constructor(private readonly o: KernelActuatorOptions) {
    this.policy = o.policy;
    this.apply = o.apply ?? false;
    this.run = o.runner;
    this.clock = o.clock ?? (() => performance.now());
    this.report = o.report ?? ((line) => log.info(line));
    this.neverBan = o.policy.allow.nftables?.neverBanList;
    if (this.apply && !o.audit) throw new Error('applying needs an audit log');
  }

  /**
   * Reads every target's current setting (refusing a policy whose targets it could not restore),
   * starts following the variables and makes the first decisions.
   */
  static async start(o: KernelActuatorOptions): Promise<KernelActuator> {
    const a = new KernelActuator(o);
    await a.readTargets();
    a.o.audit?.append({
      type: 'start',
      session: a.session,
      time: wallTime(),
      pid: process.pid,
      machine: machine(),
      netns: a.run.netns ?? null,
      policy: a.policy.file,
      host: a.policy.host,
    });
    a.follow();
    a.report(
      `${a.apply ? 'applying' : 'dry run (nothing changes; --apply to act)'}: policy ${a.policy.file}, variables of host ${a.policy.host}${o.source ? ` from ${o.source}` : ''}${a.run.netns ? `, commands in network namespace ${a.run.netns}` : ''}`,
    );
    for (const t of a.targets.values()) a.report(`  ${t.id} is ${describeSetting(t.original)}`);
    for (const r of a.rules) a.schedule(r);
    return a;
  }

  private async readTargets(): Promise<void> {
    const problems: Problem[] = [];
    const p = this.policy;
    for (const [i, rule] of p.rules.entries()) {
      let ref: TargetRef;
      let line: number;
      if (rule.kind === 'tc') {
        ref = { kind: 'tc', dev: rule.interface };
        line = p.lineOf(`/rules/${i}/tc/interface`);
      } else if (rule.kind === 'sysctl') {
        ref = { kind: 'sysctl', key: rule.key };
        line = p.lineOf(`/rules/${i}/sysctl/key`);
      } else {
        ref = { kind: 'nft-table', table: p.allow.nftables!.table };
        line = p.lineOf('/allow/nftables/table');
      }
      const id = targetId(ref);
      let t = this.targets.get(id);
      if (!t) {
        let current: Setting;
        try {
          current = await readSetting(this.run, ref);
        } catch (err) {
          problems.push({ line, message: `cannot read ${id}: ${(err as Error).message}` });
          continue;
        }
        if (current.kind === 'foreign') {
          problems.push({
            line,
            message: `${rule.kind === 'tc' ? rule.interface : id} has a ${current.qdisc} root qdisc (handle ${current.handle}) that the actuator did not set and could not restore; it replaces only the kernel default or a tbf`,
          });
          continue;
        }
        if (current.kind === 'nft-table' && current.exists) {
          problems.push({
            line,
            message: `nftables table inet ${ref.kind === 'nft-table' ? ref.table : id} exists already; the actuator creates and owns its table (rollback deletes it): name another, or delete that one`,
          });
          continue;
        }
        t = { ref, id, original: current, current, changed: false };
        this.targets.set(id, t);
      }
      const rs: RuleState = {
        rule,
        target: t,
        limiter: new RateLimiter(rule.minIntervalMs, rule.kind === 'nftBan' ? undefined : rule.maxStep),
        bans: new Map(),
      };
      this.rules.push(rs);
      for (const v of variablesOf(rule)) {
        const list = this.byVariable.get(v) ?? [];
        list.push(rs);
        this.byVariable.set(v, list);
      }
    }
    if (problems.length > 0) throw new PolicyError(p.file, problems);
  }

  private follow(): void {
    const host = this.policy.host;
    const now = this.clock();
    const wall = Date.now();
    for (const key of this.byVariable.keys()) {
      const at = this.o.receivedAt?.(key, host);
      if (at !== undefined) this.seenAt.set(key, now - Math.max(0, wall - at));
    }
    this.listener = (c) => {
      if (this.closed || (c.host !== undefined && c.host !== host)) return;
      const rules = this.byVariable.get(c.key);
      if (!rules) return;
      this.seenAt.set(c.key, this.clock());
      for (const r of rules) this.schedule(r);
    };
    this.o.variables.on('change', this.listener);
  }

  /** Decide again for every rule: after a pin or unpin. */
  reconsider(): void {
    for (const r of this.rules) this.schedule(r);
  }

  /** Resolves once every decision queued so far is made (and its commands ran). */
  idle(): Promise<void> {
    return this.chain;
  }

  private schedule(r: RuleState): void {
    if (this.closed || this.queued.has(r)) return;
    this.queued.add(r);
    this.chain = this.chain.then(async () => {
      this.queued.delete(r);
      if (this.closed) return;
      try {
        await this.decideAndAct(r);
      } catch (err) {
        log.error('kernel actuator decision failed', { rule: r.rule.name, err });
      }
    });
  }

  private retryIn(r: RuleState, ms: number): void {
    const at = this.clock() + ms;
    if (r.timer && r.timerAt !== undefined && r.timerAt <= at) return;
    clearTimeout(r.timer);
    r.timerAt = at;
    r.timer = setTimeout(() => {
      r.timer = undefined;
      r.timerAt = undefined;
      this.schedule(r);
    }, Math.ceil(ms));
    r.timer.unref?.();
  }

  private async decideAndAct(r: RuleState): Promise<void> {
    const d = this.decide(r);
    if (!d.act) {
      this.stats.skipped[d.reason]++;
      decisions.inc({ rule: r.rule.name, outcome: d.reason });
      const line = `skip ${r.rule.name}: ${d.reason}: ${d.detail}`;
      // Say it when the reason changes; the counter has every one.
      if (r.lastSkip !== d.reason && d.reason !== 'unchanged') this.report(line);
      else log.debug(line);
      r.lastSkip = d.reason;
      if (d.retryMs !== undefined) this.retryIn(r, d.retryMs);
      return;
    }
    r.lastSkip = undefined;
    const ok = await this.act(r, d);
    if (ok && d.retryMs !== undefined) this.retryIn(r, d.retryMs);
  }

  /** What the rule would do now; pure apart from reading the clock, the variables and the pins. */
  private decide(r: RuleState): Decision {
    const rule = r.rule;
    const host = this.policy.host;
    const now = this.clock();
    const values = new Map<string, string>();
    for (const key of variablesOf(rule)) {
      const v = this.o.variables.get(key, host);
      if (v === undefined) return { act: false, reason: 'missing', detail: `no value of ${host}/${key} yet` };
      const pin = this.o.pins?.get(host, key);
      if (pin)
        return {
          act: false,
          reason: 'pinned',
          detail: `${host}/${key} is pinned to ${pin.value} by ${pin.by}`,
        };
      const seen = this.seenAt.get(key);
      if (seen === undefined || now - seen > rule.ttlMs) {
        const age = seen === undefined ? 'of unknown age' : `${fmtS(now - seen)} old`;
        return {
          act: false,
          reason: 'stale',
          detail: `${host}/${key}=${v} is ${age}, ttl ${fmtS(rule.ttlMs)}`,
        };
      }
      values.set(key, v);
    }
    const value = values.get(rule.variable)!;
    const variable = `${host}/${rule.variable}`;
    let why = `${variable}=${value} (${fmtS(now - this.seenAt.get(rule.variable)!)} old)`;
    if (rule.when) {
      const w = rule.when;
      const raw = values.get(w.variable)!;
      const held = conditionHolds(w, raw);
      if (held === undefined) {
        return invalidValue(`${host}/${w.variable}`, raw, `a ${w.is === undefined ? 'number' : 'boolean'}`);
      }
      const test =
        w.is !== undefined ? `is ${w.is}` : w.above !== undefined ? `above ${w.above}` : `below ${w.below}`;
      if (!held)
        return { act: false, reason: 'condition', detail: `${host}/${w.variable}=${raw} is not ${test}` };
      why += ` and ${host}/${w.variable}=${raw} ${test}`;
    }
    const wait = r.limiter.waitMs(now);
    switch (rule.kind) {
      case 'tc':
        return this.decideTc(r, rule, value, variable, why, wait);
      case 'sysctl':
        return this.decideSysctl(r, rule, value, variable, why, wait);
      case 'nftBan':
        return this.decideBan(r, rule, value, variable, why, wait, now);
    }
  }

  private decideTc(
    r: RuleState,
    rule: TcRule,
    value: string,
    variable: string,
    why: string,
    wait: number,
  ): Decision {
    const n = parseNumber(value);
    if (n === undefined) return invalidValue(variable, value, 'a number');
    const bounds = this.policy.allow.interfaces.get(rule.interface)!;
    const wanted = Math.round(n * rule.mbitPerUnit);
    const desired = clamp(wanted, bounds.minMbit, bounds.maxMbit);
    if (desired !== wanted)
      why += `; ${wanted} Mbit/s clamped to ${desired} (allowed ${bounds.minMbit}-${bounds.maxMbit})`;
    // An unshaped interface counts as its maximum: shaping starts from there, in steps.
    const cur = cappedMbit(rootOf(r.target.current)) ?? bounds.maxMbit;
    const m = moveToward(r, rule.interface, cur, desired, wait, ' Mbit/s');
    if ('skip' in m) return m.skip;
    const next = m.next;
    why += m.note;
    const burst = rule.burstBytes ?? defaultBurst(next);
    const newSetting: Setting = {
      kind: 'tbf',
      rateBytes: (next * 1e6) / 8,
      burstBytes: burst,
      latencyUs: rule.latencyMs * 1000,
    };
    const dev = rule.interface;
    const step: Step = {
      target: r.target,
      ref: r.target.ref,
      old: r.target.current,
      new: newSetting,
      argv: tbfArgv(dev, next, burst, rule.latencyMs),
      verify: async () => {
        const seen = await readRoot(this.run, dev);
        if (seen.kind !== 'tbf' || !sameRate(seen.rateBytes, (next * 1e6) / 8)) {
          throw new Error(`${dev} reads ${describeSetting(seen)} after setting tbf ${next} Mbit/s`);
        }
        return seen;
      },
    };
    return oneStep(step, variable, value, why, next !== desired ? rule.minIntervalMs : undefined);
  }

  private decideSysctl(
    r: RuleState,
    rule: SysctlRule,
    value: string,
    variable: string,
    why: string,
    wait: number,
  ): Decision {
    const bounds = this.policy.allow.sysctls.get(rule.key)!;
    const original = sysctlOf(r.target.original);
    let desired: number;
    if (rule.ifTrue !== undefined) {
      const b = parseBool(value);
      if (b === undefined) return invalidValue(variable, value, 'a boolean');
      const t = b ? rule.ifTrue : rule.ifFalse!;
      desired = t === 'original' ? original : t;
      if (t === 'original') why += ` → the original ${original}`;
    } else {
      const n = parseNumber(value);
      if (n === undefined) return invalidValue(variable, value, 'a number');
      const wanted = Math.round(n * (rule.scale ?? 1) + (rule.offset ?? 0));
      desired = clamp(wanted, bounds.min, bounds.max);
      if (desired !== wanted)
        why += `; ${wanted} clamped to ${desired} (allowed ${bounds.min}-${bounds.max})`;
    }
    const m = moveToward(r, rule.key, sysctlOf(r.target.current), desired, wait, '');
    if ('skip' in m) return m.skip;
    const next = m.next;
    why += m.note;
    const key = rule.key;
    const step: Step = {
      target: r.target,
      ref: r.target.ref,
      old: r.target.current,
      new: { kind: 'sysctl', value: next },
      argv: sysctlArgv(key, next),
      verify: async () => {
        const seen = await readSysctl(this.run, key);
        if (seen !== next) throw new Error(`${key} reads ${seen} after writing ${next}`);
        return { kind: 'sysctl', value: seen };
      },
    };
    return oneStep(step, variable, value, why, next !== desired ? rule.minIntervalMs : undefined);
  }

  private decideBan(
    r: RuleState,
    rule: BanRule,
    value: string,
    variable: string,
    why: string,
    wait: number,
    now: number,
  ): Decision {
    const ip = value.trim();
    const v = isIP(ip);
    if (v === 0) return invalidValue(variable, value, 'an IP address');
    if (this.neverBan?.check(ip, v === 4 ? 'ipv4' : 'ipv6')) {
      return { act: false, reason: 'never-ban', detail: `${ip} is loopback or in allow.nftables.neverBan` };
    }
    for (const [a, until] of r.bans) if (until <= now) r.bans.delete(a);
    const until = r.bans.get(ip);
    if (until !== undefined)
      return { act: false, reason: 'unchanged', detail: `${ip} is banned for ${fmtS(until - now)} more` };
    const nft = this.policy.allow.nftables!;
    const set = setFor(rule.set, ip);
    const inSet = [...r.bans.keys()].filter((a) => setFor(rule.set, a) === set).length;
    if (inSet >= nft.maxElements) {
      return {
        act: false,
        reason: 'set-full',
        detail: `${set} holds ${inSet} bans, allow.nftables.maxElements is ${nft.maxElements}`,
      };
    }
    if (wait > 0)
      return {
        act: false,
        reason: 'rate-limited',
        detail: `next ban allowed in ${fmtS(wait)}`,
        retryMs: wait,
      };
    const table = nft.table;
    const steps: Step[] = [];
    const t = r.target;
    if (t.current.kind === 'nft-table' && !t.current.exists) {
      const sets = [
        ...new Set(this.policy.rules.filter((x): x is BanRule => x.kind === 'nftBan').map((x) => x.set)),
      ];
      steps.push({
        target: t,
        ref: t.ref,
        old: t.current,
        new: { kind: 'nft-table', exists: true, sets },
        argv: createTableArgv(table, sets, nft.maxElements),
        verify: async () => {
          const s = await readSetting(this.run, t.ref);
          if (s.kind !== 'nft-table' || !s.exists)
            throw new Error(`table inet ${table} is missing after creating it`);
          return { kind: 'nft-table', exists: true, sets };
        },
      });
    }
    const timeout = rule.timeoutSeconds;
    steps.push({
      target: t,
      ref: { kind: 'nft-element', table, set, address: ip },
      old: { kind: 'nft-element', present: false },
      new: { kind: 'nft-element', present: true, timeoutSeconds: timeout },
      argv: banArgv(table, rule.set, ip, timeout),
      verify: async () => {
        const els = await listSet(this.run, table, set);
        const e = els.find((x) => x.address === ip);
        if (!e) throw new Error(`${ip} is not in ${set} after adding it`);
        return {
          kind: 'nft-element',
          present: true,
          ...(e.timeout !== undefined ? { timeoutSeconds: e.timeout } : {}),
        };
      },
    });
    return { act: true, steps, variable, value: ip, why };
  }

  /** Runs (or prints) the steps of a decision; false when a command failed. */
  private async act(r: RuleState, d: Decision & { act: true }): Promise<boolean> {
    const rule = r.rule;
    for (const s of d.steps) {
      const argv = this.run.argv(s.argv);
      const head = `${this.apply ? 'run' : 'would run'} ${rule.name}: ${targetId(s.ref)} ${describeSetting(s.old)} → ${describeSetting(s.new)}; because ${d.why}`;
      if (!this.apply) {
        this.report(`${head}\n${showArgv(argv)}`);
        this.commit(r, s);
        decisions.inc({ rule: rule.name, outcome: 'dry-run' });
        continue;
      }
      const seq = ++this.seq;
      const rec: ActionRecord = {
        type: 'action',
        session: this.session,
        seq,
        time: wallTime(),
        rule: rule.name,
        variable: d.variable,
        value: d.value,
        why: d.why,
        target: s.ref,
        old: s.old,
        new: s.new,
        argv,
      };
      // Recorded before it runs: after a crash at any point the log names this target's original.
      this.o.audit!.append(rec);
      // The change counts for the rollback from here on, whether or not the command completes.
      s.target.changed = true;
      this.report(`${head}\n${showArgv(argv)}`);
      try {
        await this.run.run(s.argv);
        const seen = await s.verify();
        this.o.audit!.append({
          type: 'result',
          session: this.session,
          seq,
          time: wallTime(),
          ok: true,
          seen,
        });
        this.commit(r, s);
        commandsRun.inc({ rule: rule.name, result: 'ok' });
        decisions.inc({ rule: rule.name, outcome: 'applied' });
      } catch (err) {
        const msg = err instanceof CommandError ? err.message : (err as Error).message;
        this.o.audit!.append({
          type: 'result',
          session: this.session,
          seq,
          time: wallTime(),
          ok: false,
          error: msg,
        });
        this.stats.failed++;
        commandsRun.inc({ rule: rule.name, result: 'failed' });
        decisions.inc({ rule: rule.name, outcome: 'failed' });
        log.error('kernel command failed', { rule: rule.name, argv: shellQuote(argv), err: msg });
        this.report(`failed ${rule.name}: ${msg}`);
        // Know what the kernel holds now rather than what was meant.
        if (s.ref.kind !== 'nft-element') {
          try {
            s.target.current = await readSetting(this.run, s.ref);
          } catch {
            // unreadable: keep what we had; the rollback reads again before restoring
          }
        }
        r.limiter.record(this.clock());
        return false;
      }
    }
    return true;
  }

  private commit(r: RuleState, s: Step): void {
    this.stats.actions++;
    s.target.changed = true;
    if (s.ref.kind === 'nft-element') {
      r.bans.set(
        s.ref.address,
        this.clock() + ((s.new.kind === 'nft-element' ? s.new.timeoutSeconds : undefined) ?? 0) * 1000,
      );
    } else {
      s.target.current = s.new;
    }
    r.limiter.record(this.clock());
  }

  /**
   * Stops deciding and puts every changed setting back to its original, in reverse order of first
   * change. With apply the restores are audited and the session is ended only when every one
   * succeeded; in a dry run the restoring commands are printed.
   */
  close(reason = 'stopped'): Promise<RestoreOutcome[]> {
    this.closing ??= this.doClose(reason);
    return this.closing;
  }

  private async doClose(reason: string): Promise<RestoreOutcome[]> {
    this.closed = true;
    if (this.listener) this.o.variables.off?.('change', this.listener);
    for (const r of this.rules) clearTimeout(r.timer);
    await this.chain;
    const changed = [...this.targets.values()].filter((t) => t.changed).reverse();
    const out: RestoreOutcome[] = [];
    for (const t of changed) {
      if (!this.apply) {
        const argv = dryRestoreArgv(t);
        if (argv)
          this.report(
            `would restore ${t.id} to ${describeSetting(t.original)}\n${showArgv(this.run.argv(argv))}`,
          );
        out.push({ target: t.id, ok: true, ...(argv ? { argv: this.run.argv(argv) } : {}) });
        continue;
      }
      out.push(await restoreAudited(this.run, this.o.audit!, this.session, t.ref, t.original, this.report));
    }
    if (this.apply) {
      const failed = out.filter((o) => !o.ok);
      if (failed.length === 0) {
        this.o.audit!.append({ type: 'end', session: this.session, time: wallTime(), reason });
      } else {
        this.report(
          `rollback incomplete (${failed.map((f) => f.target).join(', ')}); the audit log keeps the session open: run virgo actuate --rollback`,
        );
      }
      this.o.audit!.close();
    }
    return out;
  }
}

/** Restores one target, recording the outcome in the audit log. */
export async function restoreAudited(
  run: CommandRunner,
  audit: AuditLog,
  session: string,
  ref: TargetRef,
  original: Setting,
  report: (line: string) => void,
): Promise<RestoreOutcome> {
  const id = targetId(ref);
  const record = (argv: string[] | null, outcome: { ok: true } | { ok: false; error: string }) =>
    audit.append({
      type: 'rollback',
      session,
      time: wallTime(),
      target: ref,
      original,
      argv,
      ...outcome,
      by: process.pid,
    });
  try {
    const r = await restoreTarget(run, ref, original);
    const argv = r.argv ? run.argv(r.argv) : null;
    record(argv, { ok: true });
    report(
      argv
        ? `restored ${id} to ${describeSetting(original)}\n${showArgv(argv)}`
        : `${id} already is ${describeSetting(original)}`,
    );
    return { target: id, ok: true, ...(argv ? { argv } : {}) };
  } catch (err) {
    const msg = (err as Error).message;
    record(null, { ok: false, error: msg });
    log.error('restoring a kernel setting failed', { target: id, err: msg });
    report(`cannot restore ${id}: ${msg}`);
    return { target: id, ok: false, error: msg };
  }
}

/**
 * The shared path of a numeric setting at `cur` that should be `desired`: unchanged, rate-limited
 * (retried when the interval ends), or the next step, at most maxStep away.
 */
/** A value the rule cannot read: nothing is done, and the detail says what it should have been. */
function invalidValue(variable: string, value: string, what: string): Decision {
  return {
    act: false,
    reason: 'invalid-value',
    detail: `${variable}=${JSON.stringify(value)} is not ${what}`,
  };
}

/** One step; `retryMs` when it stops short of the wanted setting (the rule's bounded step), to go on. */
function oneStep(
  step: Step,
  variable: string,
  value: string,
  why: string,
  retryMs: number | undefined,
): Decision {
  return { act: true, steps: [step], variable, value, why, ...(retryMs !== undefined ? { retryMs } : {}) };
}

function moveToward(
  r: RuleState,
  what: string,
  cur: number,
  desired: number,
  wait: number,
  unit: string,
): { skip: Decision } | { next: number; note: string } {
  if (Math.abs(cur - desired) < 0.5) {
    return { skip: { act: false, reason: 'unchanged', detail: `${what} is at ${desired}${unit} already` } };
  }
  if (wait > 0) {
    return {
      skip: {
        act: false,
        reason: 'rate-limited',
        detail: `next change of ${what} allowed in ${fmtS(wait)}`,
        retryMs: wait,
      },
    };
  }
  const next = Math.round(r.limiter.step(cur, desired));
  const note =
    next === desired
      ? ''
      : `; stepped ${Math.round(cur)} → ${next} (max ${r.limiter.maxStep} per ${fmtS(r.limiter.minIntervalMs)}) toward ${desired}`;
  return { next, note };
}

/** What a dry run would run to restore (it changed nothing, so from its simulated state). */
function dryRestoreArgv(t: TargetState): string[] | undefined {
  const ref = t.ref;
  if (ref.kind === 'tc') return restoreArgv(ref.dev, rootOf(t.original), rootOf(t.current));
  if (ref.kind === 'sysctl') return sysctlArgv(ref.key, sysctlOf(t.original));
  if (ref.kind === 'nft-table') return deleteTableArgv(ref.table);
  return undefined;
}

/** A command for the operator: the shell line to paste, then the exact argv. */
export function showArgv(argv: readonly string[]): string {
  return `  $ ${shellQuote(argv)}\n  argv ${JSON.stringify(argv)}`;
}

function conditionHolds(w: NonNullable<Rule['when']>, raw: string): boolean | undefined {
  if (w.is !== undefined) {
    const b = parseBool(raw);
    return b === undefined ? undefined : b === w.is;
  }
  const n = parseNumber(raw);
  if (n === undefined) return undefined;
  return w.above !== undefined ? n > w.above : n < w.below!;
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

function fmtS(ms: number): string {
  const s = ms / 1000;
  return `${s < 10 ? Math.round(s * 10) / 10 : Math.round(s)} s`;
}
