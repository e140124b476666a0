// The kernel actuator's policy: a JSON file that says which analytics variables may change which
// kernel settings, inside which bounds, how fast, and for how long a value counts as fresh.
// Everything is checked before anything runs; each problem names the policy's line. A policy that
// names something outside its allowlist (or the actuator's catalogue, allowlist.ts) is refused as a
// whole: there is no partial start.
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import {
  JsonSyntaxError,
  type Pointer,
  type PositionedJson,
  parseJsonWithPositions,
  pointerChild,
} from '../../runtime/json-positions.ts';
import { isValidHost, isValidKey } from '../../schemas/variable.ts';
import { isInterfaceName, isNftName, SYSCTL_CATALOGUE } from './allowlist.ts';

export const POLICY_VERSION = 1;

export interface Problem {
  line: number;
  message: string;
}

export class PolicyError extends Error {
  override readonly name = 'PolicyError';
  constructor(
    readonly file: string,
    readonly problems: readonly Problem[],
  ) {
    super(problems.map((p) => `${file}:${p.line}: ${p.message}`).join('\n'));
  }
}

export interface InterfaceAllow {
  name: string;
  minMbit: number;
  maxMbit: number;
  line: number;
}

export interface SysctlAllow {
  key: string;
  min: number;
  max: number;
  line: number;
}

export interface NftAllow {
  /** a table of family inet that the actuator creates and owns (rollback deletes it) */
  table: string;
  /** elements at most, over every set of the table */
  maxElements: number;
  maxTimeoutSeconds: number;
  /** addresses never banned (CIDR), in addition to loopback */
  neverBan: string[];
  neverBanList: BlockList;
  line: number;
}

export interface Condition {
  variable: string;
  above?: number;
  below?: number;
  is?: boolean;
  line: number;
}

interface RuleBase {
  name: string;
  /** the variable that drives the action */
  variable: string;
  /** a second variable that must hold for the action (e.g. a rate over a threshold) */
  when?: Condition;
  /** a value older than this (processing time since it was received) drives nothing */
  ttlMs: number;
  /** at least this long between two changes of the target (processing time) */
  minIntervalMs: number;
  line: number;
}

export interface TcRule extends RuleBase {
  kind: 'tc';
  interface: string;
  /** Mbit/s per unit of the variable (MaxNetworkBandwidth is in Mbps: 1) */
  mbitPerUnit: number;
  /** tbf bucket size; absent: 10 ms at the rate, at least 32 KiB */
  burstBytes?: number;
  latencyMs: number;
  /** Mbit/s changed per step at most */
  maxStep: number;
}

/** 'original' = the value recorded when the actuator started. */
export type SysctlTarget = number | 'original';

export interface SysctlRule extends RuleBase {
  kind: 'sysctl';
  key: string;
  /** boolean variable: the value while it is true / false */
  ifTrue?: SysctlTarget;
  ifFalse?: SysctlTarget;
  /** numeric variable: round(value * scale + offset) */
  scale?: number;
  offset?: number;
  maxStep: number;
}

export interface BanRule extends RuleBase {
  kind: 'nftBan';
  /** base name: the sets are <set>_v4 (ipv4_addr) and <set>_v6 (ipv6_addr) */
  set: string;
  timeoutSeconds: number;
}

export type Rule = TcRule | SysctlRule | BanRule;

export interface Policy {
  file: string;
  host: string;
  allow: {
    interfaces: ReadonlyMap<string, InterfaceAllow>;
    sysctls: ReadonlyMap<string, SysctlAllow>;
    nftables?: NftAllow;
  };
  rules: readonly Rule[];
  /** the policy line of a JSON pointer (for errors found later, e.g. at start) */
  lineOf(pointer: Pointer): number;
}

/** The kernel setting a rule drives: one rule per target. */
export function targetOf(r: Rule, allow: Policy['allow']): string {
  switch (r.kind) {
    case 'tc':
      return `tc:${r.interface}`;
    case 'sysctl':
      return `sysctl:${r.key}`;
    case 'nftBan':
      return `nft:inet ${allow.nftables?.table ?? '?'} ${r.set}`;
  }
}

/** The variables a rule reads. */
export function variablesOf(r: Rule): string[] {
  return r.when ? [r.variable, r.when.variable] : [r.variable];
}

export function readPolicy(file: string): Policy {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PolicyError(file, [{ line: 0, message: `cannot read the policy: ${(err as Error).message}` }]);
  }
  return parsePolicy(text, file);
}

export function parsePolicy(text: string, file = 'policy.json'): Policy {
  let doc: PositionedJson;
  try {
    doc = parseJsonWithPositions(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) {
      throw new PolicyError(file, [
        { line: err.position.line, message: `not JSON: ${err.reason} (column ${err.position.column})` },
      ]);
    }
    throw err;
  }
  const c = new Checker(doc);
  const policy = c.policy(file);
  if (c.problems.length > 0 || !policy) {
    throw new PolicyError(
      file,
      [...c.problems].sort((a, b) => a.line - b.line),
    );
  }
  return policy;
}

/**
 * Problems of a policy run inside a network namespace: a sysctl that is not per namespace would
 * change the host's value from inside it.
 */
export function netnsProblems(p: Policy): Problem[] {
  const out: Problem[] = [];
  p.rules.forEach((r, i) => {
    if (r.kind !== 'sysctl') return;
    if (SYSCTL_CATALOGUE[r.key]?.perNetns) return;
    out.push({
      line: p.lineOf(`/rules/${i}/sysctl/key`),
      message: `${r.key} is not per network namespace: with --netns it would change the host's value`,
    });
  });
  return out;
}

type Obj = Record<string, unknown>;

const RULE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_TTL_S = 7 * 86_400;
const MAX_MBIT = 100_000;

class Checker {
  readonly problems: Problem[] = [];

  constructor(private readonly doc: PositionedJson) {}

  private fail(ptr: Pointer, message: string): undefined {
    this.problems.push({ line: this.doc.lineOf(ptr), message });
    return undefined;
  }

  private object(ptr: Pointer, v: unknown, what: string, known: readonly string[]): Obj | undefined {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      return this.fail(ptr, `${what} must be an object`);
    const o = v as Obj;
    for (const k of Object.keys(o)) {
      if (!known.includes(k))
        this.fail(pointerChild(ptr, k), `unknown field "${k}" in ${what} (known: ${known.join(', ')})`);
    }
    return o;
  }

  private number(
    ptr: Pointer,
    v: unknown,
    what: string,
    o: { min: number; max: number; integer?: boolean; exclusiveMin?: boolean },
  ): number | undefined {
    if (typeof v !== 'number' || !Number.isFinite(v)) return this.fail(ptr, `${what} must be a number`);
    if (o.integer && !Number.isInteger(v)) return this.fail(ptr, `${what} must be a whole number, got ${v}`);
    if ((o.exclusiveMin ? v <= o.min : v < o.min) || v > o.max) {
      return this.fail(
        ptr,
        `${what} must be ${o.exclusiveMin ? 'above' : 'at least'} ${o.min} and at most ${o.max}, got ${v}`,
      );
    }
    return v;
  }

  private string(
    ptr: Pointer,
    v: unknown,
    what: string,
    ok: (s: string) => boolean,
    rule: string,
  ): string | undefined {
    if (typeof v !== 'string') return this.fail(ptr, `${what} must be a string`);
    if (!ok(v)) return this.fail(ptr, `${what} ${JSON.stringify(v)} is not ${rule}`);
    return v;
  }

  policy(file: string): Policy | undefined {
    const root = this.object('', this.doc.value, 'the policy', ['version', 'host', 'note', 'allow', 'rules']);
    if (!root) return undefined;
    if (root.version !== POLICY_VERSION) {
      this.fail(root.version === undefined ? '' : '/version', `"version": ${POLICY_VERSION} is required`);
    }
    const host = this.string(
      '/host',
      root.host,
      '"host" (whose variables drive this machine)',
      isValidHost,
      'a host name (A-Z a-z 0-9 _ . : -)',
    );
    if (root.note !== undefined && typeof root.note !== 'string')
      this.fail('/note', '"note" must be a string');
    const allow = this.allow(root.allow);
    const rules: Rule[] = [];
    if (!Array.isArray(root.rules))
      this.fail(root.rules === undefined ? '' : '/rules', '"rules" must be an array of rules');
    else {
      const names = new Map<string, number>();
      const targets = new Map<string, { name: string; line: number }>();
      root.rules.forEach((raw, i) => {
        const ptr = `/rules/${i}`;
        const r = this.rule(ptr, raw, allow);
        if (!r) return;
        const prevName = names.get(r.name);
        if (prevName !== undefined)
          this.fail(`${ptr}/name`, `rule name "${r.name}" is used twice (also line ${prevName})`);
        names.set(r.name, r.line);
        const t = targetOf(r, allow);
        const prev = targets.get(t);
        if (prev)
          this.fail(
            ptr,
            `rule "${r.name}" drives ${t}, which rule "${prev.name}" (line ${prev.line}) drives already`,
          );
        else targets.set(t, { name: r.name, line: r.line });
        rules.push(r);
      });
      if (root.rules.length === 0) this.fail('/rules', 'the policy has no rules');
    }
    if (host === undefined) return undefined;
    return { file, host, allow, rules, lineOf: (p) => this.doc.lineOf(p) };
  }

  private allow(v: unknown): Policy['allow'] {
    const interfaces = new Map<string, InterfaceAllow>();
    const sysctls = new Map<string, SysctlAllow>();
    const out: Policy['allow'] = { interfaces, sysctls };
    if (v === undefined) {
      this.fail('', '"allow" is required: the interfaces, sysctls and nftables table the rules may change');
      return out;
    }
    const a = this.object('/allow', v, '"allow"', ['interfaces', 'sysctls', 'nftables']);
    if (!a) return out;
    if (a.interfaces !== undefined) {
      const o = this.object(
        '/allow/interfaces',
        a.interfaces,
        '"allow.interfaces"',
        Object.keys(a.interfaces ?? {}),
      );
      for (const [name, spec] of Object.entries(o ?? {})) {
        const ptr = pointerChild('/allow/interfaces', name);
        if (!isInterfaceName(name)) {
          this.fail(
            ptr,
            `interface name ${JSON.stringify(name)} is not a Linux interface name (1-15 of A-Z a-z 0-9 _ . : @ -)`,
          );
          continue;
        }
        const s = this.object(ptr, spec, `allow.interfaces.${name}`, ['minMbit', 'maxMbit']);
        if (!s) continue;
        const min = this.number(`${ptr}/minMbit`, s.minMbit, 'minMbit', {
          min: 1,
          max: MAX_MBIT,
          integer: true,
        });
        const max = this.number(`${ptr}/maxMbit`, s.maxMbit, 'maxMbit', {
          min: 1,
          max: MAX_MBIT,
          integer: true,
        });
        if (min === undefined || max === undefined) continue;
        if (min > max) this.fail(ptr, `minMbit ${min} is above maxMbit ${max}`);
        else interfaces.set(name, { name, minMbit: min, maxMbit: max, line: this.doc.lineOf(ptr) });
      }
    }
    if (a.sysctls !== undefined) {
      const o = this.object('/allow/sysctls', a.sysctls, '"allow.sysctls"', Object.keys(a.sysctls ?? {}));
      for (const [key, spec] of Object.entries(o ?? {})) {
        const ptr = pointerChild('/allow/sysctls', key);
        const cat = SYSCTL_CATALOGUE[key];
        if (!cat) {
          this.fail(
            ptr,
            `sysctl ${key} is outside the actuator's allowlist (${Object.keys(SYSCTL_CATALOGUE).join(', ')})`,
          );
          continue;
        }
        const s = this.object(ptr, spec, `allow.sysctls.${key}`, ['min', 'max']);
        if (!s) continue;
        const b = { min: cat.min, max: cat.max, integer: true };
        const min = this.number(`${ptr}/min`, s.min, `${key} min`, b);
        const max = this.number(`${ptr}/max`, s.max, `${key} max`, b);
        if (min === undefined || max === undefined) continue;
        if (min > max) this.fail(ptr, `${key}: min ${min} is above max ${max}`);
        else sysctls.set(key, { key, min, max, line: this.doc.lineOf(ptr) });
      }
    }
    if (a.nftables !== undefined) {
      const ptr = '/allow/nftables';
      const n = this.object(ptr, a.nftables, '"allow.nftables"', [
        'table',
        'maxElements',
        'maxTimeoutSeconds',
        'neverBan',
      ]);
      if (n) {
        const table = this.string(
          `${ptr}/table`,
          n.table,
          'table',
          isNftName,
          'an nftables identifier (a letter, then up to 28 of A-Z a-z 0-9 _)',
        );
        const maxElements = this.number(`${ptr}/maxElements`, n.maxElements, 'maxElements', {
          min: 1,
          max: 65536,
          integer: true,
        });
        const maxTimeoutSeconds = this.number(
          `${ptr}/maxTimeoutSeconds`,
          n.maxTimeoutSeconds,
          'maxTimeoutSeconds',
          { min: 1, max: MAX_TTL_S, integer: true },
        );
        const list = new BlockList();
        // Never lock the machine out of itself.
        list.addSubnet('127.0.0.0', 8, 'ipv4');
        list.addAddress('::1', 'ipv6');
        const neverBan: string[] = [];
        if (n.neverBan !== undefined && !Array.isArray(n.neverBan))
          this.fail(`${ptr}/neverBan`, 'neverBan must be an array of CIDR strings');
        (Array.isArray(n.neverBan) ? n.neverBan : []).forEach((cidr, i) => {
          const at = `${ptr}/neverBan/${i}`;
          const parsed = typeof cidr === 'string' ? parseCidr(cidr) : undefined;
          if (!parsed) {
            this.fail(
              at,
              `neverBan entry ${JSON.stringify(cidr)} is not an address or CIDR (10.0.0.0/8, 2001:db8::/32)`,
            );
            return;
          }
          list.addSubnet(parsed.address, parsed.prefix, parsed.family);
          neverBan.push(cidr as string);
        });
        if (table !== undefined && maxElements !== undefined && maxTimeoutSeconds !== undefined) {
          out.nftables = {
            table,
            maxElements,
            maxTimeoutSeconds,
            neverBan,
            neverBanList: list,
            line: this.doc.lineOf(ptr),
          };
        }
      }
    }
    return out;
  }

  private rule(ptr: Pointer, raw: unknown, allow: Policy['allow']): Rule | undefined {
    const r = this.object(ptr, raw, 'a rule', [
      'name',
      'note',
      'variable',
      'when',
      'ttlSeconds',
      'minIntervalSeconds',
      'maxStep',
      'tc',
      'sysctl',
      'nftBan',
    ]);
    if (!r) return undefined;
    const name = this.string(
      `${ptr}/name`,
      r.name,
      'rule "name"',
      (s) => RULE_NAME.test(s),
      '1-64 of A-Z a-z 0-9 _ . -',
    );
    const variable = this.string(`${ptr}/variable`, r.variable, '"variable"', isValidKey, 'a variable key');
    const ttl = this.number(
      `${ptr}/ttlSeconds`,
      r.ttlSeconds,
      '"ttlSeconds" (how long a value counts as fresh)',
      { min: 0, max: MAX_TTL_S, exclusiveMin: true },
    );
    const interval = this.number(
      `${ptr}/minIntervalSeconds`,
      r.minIntervalSeconds,
      '"minIntervalSeconds" (least time between two changes)',
      { min: 0, max: MAX_TTL_S },
    );
    if (r.note !== undefined && typeof r.note !== 'string')
      this.fail(`${ptr}/note`, '"note" must be a string');
    const when = r.when === undefined ? undefined : this.condition(`${ptr}/when`, r.when);
    const actions = (['tc', 'sysctl', 'nftBan'] as const).filter((k) => r[k] !== undefined);
    if (actions.length !== 1) {
      this.fail(
        ptr,
        `a rule has exactly one action: "tc", "sysctl" or "nftBan" (found ${actions.length === 0 ? 'none' : actions.join(', ')})`,
      );
      return undefined;
    }
    const kind = actions[0]!;
    const step = (unit: string) =>
      this.number(`${ptr}/maxStep`, r.maxStep, `"maxStep" (largest change per step, ${unit})`, {
        min: 0,
        max: 1e9,
        exclusiveMin: true,
      });
    if (name === undefined || variable === undefined || ttl === undefined || interval === undefined)
      return undefined;
    if (r.when !== undefined && when === undefined) return undefined;
    const base = {
      name,
      variable,
      ...(when ? { when } : {}),
      ttlMs: ttl * 1000,
      minIntervalMs: interval * 1000,
      line: this.doc.lineOf(ptr),
    };
    if (kind === 'tc') {
      const a = this.object(`${ptr}/tc`, r.tc, '"tc"', [
        'interface',
        'mbitPerUnit',
        'burstBytes',
        'latencyMs',
      ]);
      const maxStep = step('Mbit/s');
      if (!a || maxStep === undefined) return undefined;
      const dev = this.string(
        `${ptr}/tc/interface`,
        a.interface,
        'tc "interface"',
        isInterfaceName,
        'a Linux interface name',
      );
      if (dev !== undefined && !allow.interfaces.has(dev)) {
        return this.fail(
          `${ptr}/tc/interface`,
          `interface ${dev} is not in allow.interfaces (${[...allow.interfaces.keys()].join(', ') || 'none allowed'})`,
        );
      }
      const mbitPerUnit =
        a.mbitPerUnit === undefined
          ? 1
          : this.number(`${ptr}/tc/mbitPerUnit`, a.mbitPerUnit, 'mbitPerUnit', {
              min: 0,
              max: 1e6,
              exclusiveMin: true,
            });
      const burst =
        a.burstBytes === undefined
          ? undefined
          : this.number(`${ptr}/tc/burstBytes`, a.burstBytes, 'burstBytes', {
              min: 1600,
              max: 64 * 1024 * 1024,
              integer: true,
            });
      const latencyMs =
        a.latencyMs === undefined
          ? 50
          : this.number(`${ptr}/tc/latencyMs`, a.latencyMs, 'latencyMs', {
              min: 1,
              max: 10_000,
              integer: true,
            });
      if (dev === undefined || mbitPerUnit === undefined || latencyMs === undefined) return undefined;
      if (a.burstBytes !== undefined && burst === undefined) return undefined;
      return {
        ...base,
        kind,
        interface: dev,
        mbitPerUnit,
        ...(burst !== undefined ? { burstBytes: burst } : {}),
        latencyMs,
        maxStep,
      };
    }
    if (kind === 'sysctl') {
      const a = this.object(`${ptr}/sysctl`, r.sysctl, '"sysctl"', [
        'key',
        'ifTrue',
        'ifFalse',
        'scale',
        'offset',
      ]);
      const maxStep = step("in the sysctl's unit");
      if (!a || maxStep === undefined) return undefined;
      const kp = `${ptr}/sysctl/key`;
      if (typeof a.key !== 'string') return this.fail(kp, 'sysctl "key" must be a string');
      if (!SYSCTL_CATALOGUE[a.key])
        return this.fail(
          kp,
          `sysctl ${a.key} is outside the actuator's allowlist (${Object.keys(SYSCTL_CATALOGUE).join(', ')})`,
        );
      const bounds = allow.sysctls.get(a.key);
      if (!bounds)
        return this.fail(
          kp,
          `sysctl ${a.key} is not in allow.sysctls (${[...allow.sysctls.keys()].join(', ') || 'none allowed'})`,
        );
      const boolMap = a.ifTrue !== undefined || a.ifFalse !== undefined;
      const linear = a.scale !== undefined || a.offset !== undefined;
      if (boolMap === linear) {
        return this.fail(
          `${ptr}/sysctl`,
          'a sysctl action maps a boolean variable (ifTrue and ifFalse) or a number (scale, offset), one of the two',
        );
      }
      const target = (field: 'ifTrue' | 'ifFalse'): SysctlTarget | undefined => {
        const v = a[field];
        const at = `${ptr}/sysctl/${field}`;
        if (v === 'original') return v;
        if (v === undefined)
          return this.fail(
            `${ptr}/sysctl`,
            `${field} is required with a boolean mapping (a number or "original")`,
          );
        return this.number(at, v, `${field}`, { min: bounds.min, max: bounds.max, integer: true });
      };
      if (boolMap) {
        const ifTrue = target('ifTrue');
        const ifFalse = target('ifFalse');
        if (ifTrue === undefined || ifFalse === undefined) return undefined;
        return { ...base, kind, key: a.key, ifTrue, ifFalse, maxStep };
      }
      const scale =
        a.scale === undefined
          ? 1
          : this.number(`${ptr}/sysctl/scale`, a.scale, 'scale', { min: -1e9, max: 1e9 });
      const offset =
        a.offset === undefined
          ? 0
          : this.number(`${ptr}/sysctl/offset`, a.offset, 'offset', { min: -1e12, max: 1e12 });
      if (scale === undefined || offset === undefined) return undefined;
      return { ...base, kind, key: a.key, scale, offset, maxStep };
    }
    const a = this.object(`${ptr}/nftBan`, r.nftBan, '"nftBan"', ['set', 'timeoutSeconds']);
    if (!a) return undefined;
    if (r.maxStep !== undefined)
      this.fail(
        `${ptr}/maxStep`,
        'a ban has no steps; its rate is limited by minIntervalSeconds and allow.nftables.maxElements',
      );
    const nft = allow.nftables;
    if (!nft)
      return this.fail(
        `${ptr}/nftBan`,
        'an nftBan rule needs allow.nftables (the table the actuator owns, its limits)',
      );
    const set = this.string(
      `${ptr}/nftBan/set`,
      a.set,
      'nftBan "set"',
      isNftName,
      'an nftables identifier (a letter, then up to 28 of A-Z a-z 0-9 _)',
    );
    const timeout = this.number(
      `${ptr}/nftBan/timeoutSeconds`,
      a.timeoutSeconds,
      'timeoutSeconds (how long a ban lasts)',
      { min: 1, max: nft.maxTimeoutSeconds, integer: true },
    );
    if (set === undefined || timeout === undefined) return undefined;
    return { ...base, kind, set, timeoutSeconds: timeout };
  }

  private condition(ptr: Pointer, v: unknown): Condition | undefined {
    const w = this.object(ptr, v, '"when"', ['variable', 'above', 'below', 'is']);
    if (!w) return undefined;
    const variable = this.string(
      `${ptr}/variable`,
      w.variable,
      'when "variable"',
      isValidKey,
      'a variable key',
    );
    const tests = (['above', 'below', 'is'] as const).filter((k) => w[k] !== undefined);
    if (tests.length !== 1)
      return this.fail(ptr, '"when" has exactly one test: "above": N, "below": N or "is": true|false');
    const t = tests[0]!;
    if (t === 'is') {
      if (typeof w.is !== 'boolean') return this.fail(`${ptr}/is`, '"is" must be true or false');
    } else if (this.number(`${ptr}/${t}`, w[t], `"${t}"`, { min: -1e15, max: 1e15 }) === undefined)
      return undefined;
    if (variable === undefined) return undefined;
    return { variable, [t]: w[t] as number | boolean, line: this.doc.lineOf(ptr) };
  }
}

/** `a.b.c.d/n`, `x::/n` or a bare address. */
export function parseCidr(
  s: string,
): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = s.indexOf('/');
  const address = slash < 0 ? s : s.slice(0, slash);
  const v = isIP(address);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefix = slash < 0 ? max : Number(s.slice(slash + 1));
  if (slash >= 0 && !/^\d{1,3}$/.test(s.slice(slash + 1))) return undefined;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}
