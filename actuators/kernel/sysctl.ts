// Sysctls through procps' `sysctl` (`-n KEY` to read, `-w KEY=VALUE` to write): the same argv
// works on the host and under `ip netns exec`, which remounts /proc/sys/net for the namespace.
// Only single-integer keys of the catalogue (allowlist.ts) come here, written as decimal integers
// the actuator computed, so the `KEY=VALUE` word carries nothing a variable chose verbatim.
import type { CommandRunner } from './commands.ts';

export async function readSysctl(run: CommandRunner, key: string): Promise<number> {
  const out = (await run.run(['sysctl', '-n', key])).trim();
  if (!/^-?\d+$/.test(out)) throw new Error(`sysctl ${key} reads ${JSON.stringify(out)}, not one integer`);
  return Number(out);
}

export function sysctlArgv(key: string, value: number): string[] {
  if (!Number.isSafeInteger(value)) throw new Error(`sysctl ${key}: ${value} is not an integer`);
  return ['sysctl', '-w', `${key}=${value}`];
}
