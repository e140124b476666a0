// Policies for the kernel actuator tests, built around a namespace's interface name.

export interface PolicyParts {
  dev: string;
  rules: object[];
  nft?: { maxElements?: number; neverBan?: string[] };
  host?: string;
}

export const HOST = 'edge-1';
export const TABLE = 'virgo';

export function policyJson(p: PolicyParts): string {
  return JSON.stringify(
    {
      version: 1,
      host: p.host ?? HOST,
      allow: {
        interfaces: { [p.dev]: { minMbit: 10, maxMbit: 1000 } },
        sysctls: { 'net.core.somaxconn': { min: 1024, max: 16384 } },
        nftables: {
          table: TABLE,
          maxElements: p.nft?.maxElements ?? 16,
          maxTimeoutSeconds: 3600,
          neverBan: p.nft?.neverBan ?? ['10.0.0.0/8'],
        },
      },
      rules: p.rules,
    },
    null,
    2,
  );
}

export function tcRule(
  dev: string,
  o: { minIntervalSeconds?: number; maxStep?: number; ttlSeconds?: number } = {},
) {
  return {
    name: 'bandwidth-cap',
    variable: 'MaxNetworkBandwidth',
    ttlSeconds: o.ttlSeconds ?? 300,
    minIntervalSeconds: o.minIntervalSeconds ?? 0,
    maxStep: o.maxStep ?? 1000,
    tc: { interface: dev, mbitPerUnit: 1, latencyMs: 50 },
  };
}

export function banRule(o: { minIntervalSeconds?: number; above?: number } = {}) {
  return {
    name: 'ban-top-source',
    variable: 'ufw.top_src_ip',
    when: { variable: 'ufw.block_rate', above: o.above ?? 60 },
    ttlSeconds: 300,
    minIntervalSeconds: o.minIntervalSeconds ?? 0,
    nftBan: { set: 'ufw_ban', timeoutSeconds: 600 },
  };
}

export function anomalySysctlRule(o: { maxStep?: number } = {}) {
  return {
    name: 'backlog-under-anomaly',
    variable: 'kernel.anomaly',
    ttlSeconds: 300,
    minIntervalSeconds: 0,
    maxStep: o.maxStep ?? 100000,
    sysctl: { key: 'net.core.somaxconn', ifTrue: 8192, ifFalse: 'original' },
  };
}
