// The kernel actuator: analytics variables → tc rates, nftables bans, sysctls, under a policy.
export {
  type ActuatorStats,
  KernelActuator,
  type KernelActuatorOptions,
  type PinLookup,
  SKIP_REASONS,
  type SkipReason,
} from './actuator.ts';
export { SYSCTL_CATALOGUE } from './allowlist.ts';
export { AuditLockError, AuditLog, type AuditRecord, readSessions, unfinished } from './audit.ts';
export { CommandError, CommandRunner, shellQuote } from './commands.ts';
export { netnsProblems, type Policy, PolicyError, parsePolicy, type Rule, readPolicy } from './policy.ts';
export { type RecoveryReport, recoverUnfinished } from './rollback.ts';
