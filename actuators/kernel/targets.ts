// The kernel settings the actuator changes, as data the audit log can hold: a reference to the
// setting (which interface, which sysctl, which table), its state before and after, and how to
// read it and put the recorded original back. Used both when the actuator stops and when a later
// run finds the audit log of one that did not (rollback.ts), so both restore the same way.
import type { CommandRunner } from './commands.ts';
import { deleteTableArgv, tableExists } from './nft.ts';
import { readSysctl, sysctlArgv } from './sysctl.ts';
import { describeRoot, type RootQdisc, readRoot, restoreArgv } from './tc.ts';

export type TargetRef =
  | { kind: 'tc'; dev: string }
  | { kind: 'sysctl'; key: string }
  | { kind: 'nft-table'; table: string }
  /** one ban; rolled back with its table */
  | { kind: 'nft-element'; table: string; set: string; address: string };

export type Setting =
  | RootQdisc
  | { kind: 'sysctl'; value: number }
  | { kind: 'nft-table'; exists: boolean; sets?: string[] }
  | { kind: 'nft-element'; present: boolean; timeoutSeconds?: number };

/** The value of a sysctl setting (a target's state is always of its target's kind). */
export function sysctlOf(s: Setting): number {
  if (s.kind !== 'sysctl') throw new Error(`expected a sysctl value, got ${s.kind}`);
  return s.value;
}

export function rootOf(s: Setting): RootQdisc {
  if (s.kind === 'default' || s.kind === 'tbf' || s.kind === 'foreign') return s;
  throw new Error(`expected a root qdisc, got ${s.kind}`);
}

export function targetId(t: TargetRef): string {
  switch (t.kind) {
    case 'tc':
      return `tc:${t.dev}`;
    case 'sysctl':
      return `sysctl:${t.key}`;
    case 'nft-table':
      return `nft:inet ${t.table}`;
    case 'nft-element':
      return `nft:inet ${t.table} ${t.set} ${t.address}`;
  }
}

export async function readSetting(run: CommandRunner, t: TargetRef): Promise<Setting> {
  switch (t.kind) {
    case 'tc':
      return readRoot(run, t.dev);
    case 'sysctl':
      return { kind: 'sysctl', value: await readSysctl(run, t.key) };
    case 'nft-table':
      return { kind: 'nft-table', exists: await tableExists(run, t.table) };
    case 'nft-element':
      throw new Error('a ban is read with its set (nft.listSet)');
  }
}

export function describeSetting(s: Setting): string {
  switch (s.kind) {
    case 'sysctl':
      return String(s.value);
    case 'nft-table':
      return s.exists ? 'table present' : 'no table';
    case 'nft-element':
      return s.present ? `banned${s.timeoutSeconds ? ` for ${s.timeoutSeconds} s` : ''}` : 'not banned';
    default:
      return describeRoot(s);
  }
}

export interface Restore {
  /** the command that restores it; undefined when it already was the original */
  argv?: string[];
  /** what it is after the restore */
  now: Setting;
}

/**
 * Puts `original` back: reads the current state first, so a restore of something already
 * original runs nothing (a second rollback, a crash before the command ran).
 */
export async function restoreTarget(run: CommandRunner, t: TargetRef, original: Setting): Promise<Restore> {
  if (t.kind === 'tc') {
    let current: RootQdisc;
    try {
      current = await readRoot(run, t.dev);
    } catch (err) {
      // The interface is gone, and with it every qdisc it had: nothing is left to restore.
      if (/Cannot find device/.test(String((err as Error).message))) return { now: original };
      throw err;
    }
    const argv = restoreArgv(t.dev, rootOf(original), current);
    if (argv) await run.run(argv);
    const now = await readRoot(run, t.dev);
    if (argv && restoreArgv(t.dev, rootOf(original), now)) {
      throw new Error(`${t.dev} still has ${describeRoot(now)} after the restore`);
    }
    return { ...(argv ? { argv } : {}), now };
  }
  if (t.kind === 'sysctl') {
    const want = sysctlOf(original);
    const cur = await readSysctl(run, t.key);
    if (cur === want) return { now: { kind: 'sysctl', value: cur } };
    const argv = sysctlArgv(t.key, want);
    await run.run(argv);
    const now = await readSysctl(run, t.key);
    if (now !== want) throw new Error(`${t.key} reads ${now} after writing ${want}`);
    return { argv, now: { kind: 'sysctl', value: now } };
  }
  if (t.kind === 'nft-table') {
    // The actuator only ever creates its table (it refuses to start when the table exists), so
    // the original is always "absent".
    if (!(await tableExists(run, t.table))) return { now: { kind: 'nft-table', exists: false } };
    const argv = deleteTableArgv(t.table);
    await run.run(argv);
    if (await tableExists(run, t.table)) throw new Error(`table inet ${t.table} still exists after delete`);
    return { argv, now: { kind: 'nft-table', exists: false } };
  }
  // A ban goes with its table.
  return { now: original };
}
