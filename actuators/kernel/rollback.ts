// Recovery: a run that did not end cleanly (SIGKILL, a crash, power loss, a failed restore) leaves
// its audit session open. Before anything else, `virgo actuate` (and `virgo actuate --rollback`
// alone) restores the originals that session recorded, in the network namespace it ran in, and
// closes it only when every restore succeeded.

import { type RestoreOutcome, restoreAudited } from './actuator.ts';
import { type AuditLog, originalsOf, readSessions, unfinished, now as wallTime } from './audit.ts';
import { CommandRunner } from './commands.ts';
import { targetId } from './targets.ts';

export interface RecoveryReport {
  /** unfinished sessions found */
  sessions: number;
  outcomes: RestoreOutcome[];
  ok: boolean;
}

/** Restores every unfinished session of the (open, locked) log, newest first. */
export async function recoverUnfinished(
  audit: AuditLog,
  report: (line: string) => void,
  opts: { timeoutMs?: number } = {},
): Promise<RecoveryReport> {
  const open = unfinished(readSessions(audit.path)).reverse();
  const outcomes: RestoreOutcome[] = [];
  let ok = true;
  for (const s of open) {
    const originals = originalsOf(s, targetId);
    report(
      `unfinished run found in ${audit.path}: session ${s.start.session} (pid ${s.start.pid}, started ${s.start.time}${s.start.netns ? `, network namespace ${s.start.netns}` : ''}), ${originals.length} setting(s) to restore`,
    );
    const run = new CommandRunner({
      ...(s.start.netns ? { netns: s.start.netns } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    });
    const mine: RestoreOutcome[] = [];
    for (const o of [...originals].reverse()) {
      mine.push(await restoreAudited(run, audit, s.start.session, o.target, o.original, report));
    }
    outcomes.push(...mine);
    if (mine.every((m) => m.ok)) {
      audit.append({
        type: 'end',
        session: s.start.session,
        time: wallTime(),
        reason: `rolled back by pid ${process.pid} after an unfinished run`,
      });
    } else ok = false;
  }
  return { sessions: open.length, outcomes, ok };
}
