// Where a stage that acts on the variables (actuators, actuate) reads them, first found: the table
// of this process's consumer stage, Redis (the exporter's hashes and change channel), or a feeder
// read by consumers of the stage's own, which connect on connect(), once every port is bound.
import type { VariableTable } from '../../kernel-analytics/table.ts';
import { redactRedisUrl } from '../../runtime/redis-probe.ts';

export interface VariableInput {
  table: VariableTable;
  /** where from, for the ready line and /health (a Redis password never shown) */
  source: string;
  connect: () => void;
  close: () => Promise<void> | void;
}

export async function variableInput(o: {
  inProcess: VariableTable | undefined;
  redis: { url: string; prefix: string } | undefined;
  /** from Redis, these hosts only (named in `source`); default every host */
  hosts?: string[];
  feeder: () => VariableInput | Promise<VariableInput>;
}): Promise<VariableInput> {
  if (o.inProcess) return { table: o.inProcess, source: 'in-process', connect: () => {}, close: () => {} };
  if (o.redis) {
    const { RedisVariables } = await import('../../actuators/drivers/redis-variables.ts');
    const { url, prefix } = o.redis;
    const rv = await RedisVariables.connect({ url, prefix, ...(o.hosts ? { hosts: o.hosts } : {}) });
    const only = o.hosts ? ` ${prefix}:${o.hosts.join(',')}` : '';
    return {
      table: rv.table,
      source: `redis ${redactRedisUrl(url)}${only}`,
      connect: () => {},
      close: () => rv.close(),
    };
  }
  return o.feeder();
}
