// The policy: what it accepts, and that every refusal names the line of the policy it is about.
import { describe, expect, it } from 'vitest';
import { netnsProblems, PolicyError, parsePolicy } from '../../../actuators/kernel/policy.ts';
import { RateLimiter } from '../../../actuators/kernel/rate-limit.ts';
import { anomalySysctlRule, banRule, policyJson, tcRule } from '../../helpers/kernel-policy.ts';

function refusal(text: string): PolicyError {
  try {
    parsePolicy(text, 'p.json');
  } catch (err) {
    if (err instanceof PolicyError) return err;
    throw err;
  }
  throw new Error('the policy was accepted');
}

/** The 1-based number of the first line holding `needle`. */
function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`${needle} not in the policy`);
  return i + 1;
}

describe('policy', () => {
  it('reads the three kinds of rule with their bounds', () => {
    const p = parsePolicy(
      policyJson({ dev: 'eth0', rules: [tcRule('eth0'), banRule(), anomalySysctlRule()] }),
    );
    expect(p.host).toBe('edge-1');
    expect(p.rules.map((r) => r.kind)).toEqual(['tc', 'nftBan', 'sysctl']);
    expect(p.allow.interfaces.get('eth0')).toMatchObject({ minMbit: 10, maxMbit: 1000 });
    expect(p.allow.nftables?.neverBanList.check('10.9.9.9', 'ipv4')).toBe(true);
    expect(p.allow.nftables?.neverBanList.check('127.0.0.1', 'ipv4')).toBe(true);
    expect(p.allow.nftables?.neverBanList.check('203.0.113.1', 'ipv4')).toBe(false);
    expect(p.rules[0]).toMatchObject({ ttlMs: 300_000, minIntervalMs: 0, maxStep: 1000 });
  });

  it('refuses a sysctl outside the actuator allowlist, at the line that names it', () => {
    const text = policyJson({ dev: 'eth0', rules: [tcRule('eth0')] }).replace(
      '"net.core.somaxconn": {',
      '"kernel.panic": { "min": 0, "max": 1 },\n      "net.core.somaxconn": {',
    );
    const e = refusal(text);
    expect(e.message).toMatch(
      new RegExp(
        `^p\\.json:${lineOf(text, 'kernel.panic')}: sysctl kernel.panic is outside the actuator's allowlist`,
      ),
    );
  });

  it('refuses a rule naming an interface or sysctl the policy does not allow, and bounds wider than the hard ones', () => {
    const rules = [
      tcRule('eth1'),
      {
        ...anomalySysctlRule(),
        sysctl: { key: 'net.ipv4.tcp_fin_timeout', ifTrue: 10, ifFalse: 'original' },
      },
    ];
    const text = policyJson({ dev: 'eth0', rules }).replace('"max": 16384', '"max": 70000');
    const e = refusal(text);
    expect(e.problems).toEqual([
      {
        line: lineOf(text, '"max": 70000'),
        message: 'net.core.somaxconn max must be at least 128 and at most 65535, got 70000',
      },
      {
        line: lineOf(text, '"interface": "eth1"'),
        message: 'interface eth1 is not in allow.interfaces (eth0)',
      },
      {
        line: lineOf(text, '"key": "net.ipv4.tcp_fin_timeout"'),
        message: 'sysctl net.ipv4.tcp_fin_timeout is not in allow.sysctls (none allowed)',
      },
    ]);
  });

  it('refuses unknown fields, two rules on one target, a missing ttl, and syntax errors, each at its line', () => {
    const rules = [
      { ...tcRule('eth0'), minIntervalSecond: 5 },
      { ...tcRule('eth0'), name: 'again' },
      (() => {
        const { ttlSeconds: _t, ...r } = banRule();
        return r;
      })(),
    ];
    const text = policyJson({ dev: 'eth0', rules });
    const e = refusal(text);
    const lines = text.split('\n');
    const secondRule =
      lines.findIndex((l, i) => i > lineOf(text, '"name": "again"') - 4 && l.trim() === '{') + 1;
    expect(e.problems.map((p) => p.line)).toEqual([
      lineOf(text, 'minIntervalSecond"'),
      secondRule,
      lineOf(text, '"name": "ban-top-source"') - 1,
    ]);
    expect(e.problems[0]!.message).toContain('unknown field "minIntervalSecond"');
    const firstRule = lineOf(text, '"name": "bandwidth-cap"') - 1;
    expect(e.problems[1]!.message).toBe(
      `rule "again" drives tc:eth0, which rule "bandwidth-cap" (line ${firstRule}) drives already`,
    );
    expect(e.problems[2]!.message).toContain(
      '"ttlSeconds" (how long a value counts as fresh) must be a number',
    );

    const syntax = refusal('{\n  "version": 1,\n  "host": "a"\n  "rules": []\n}');
    expect(syntax.message).toBe('p.json:4: not JSON: expected , or } in an object (column 3)');
  });

  it('refuses, with --netns, a sysctl that is not per network namespace (it would change the host)', () => {
    const text = policyJson({
      dev: 'eth0',
      rules: [{ ...anomalySysctlRule(), sysctl: { key: 'vm.swappiness', ifTrue: 10, ifFalse: 'original' } }],
    }).replace(
      /"net\.core\.somaxconn": \{\s*"min": 1024,\s*"max": 16384\s*\}/,
      '"vm.swappiness": { "min": 0, "max": 100 }',
    );
    const p = parsePolicy(text);
    expect(netnsProblems(p)).toEqual([
      {
        line: lineOf(text, '"key": "vm.swappiness"'),
        message: "vm.swappiness is not per network namespace: with --netns it would change the host's value",
      },
    ]);
  });
});

describe('rate limiter', () => {
  it('steps by at most maxStep and waits minInterval between changes', () => {
    const r = new RateLimiter(1000, 300);
    expect(r.step(1000, 100)).toBe(700);
    expect(r.step(100, 250)).toBe(250);
    expect(r.waitMs(5)).toBe(0);
    r.record(5);
    expect(r.waitMs(5)).toBe(1000);
    expect(r.waitMs(805)).toBe(200);
    expect(r.waitMs(1005)).toBe(0);
    expect(new RateLimiter(0, undefined).step(0, 1e9)).toBe(1e9);
  });
});
