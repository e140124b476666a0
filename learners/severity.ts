// The level of a kernel line, as a syslog severity 0 (emerg) … 7 (debug). The parser sets
// KernelEvent.severity from what the line carries (a `<PRI>`, a KERN_* name, an HPC level token
// such as FATAL); most kern.log files carry none (rsyslog's default template drops the PRI), so
// the words printk messages use for their level stand in: an `Oops` or `BUG:` is critical
// whatever the file format kept.
import type { KernelEvent } from '../schemas/index.ts';

export const SEVERITY_NAMES = [
  'emerg',
  'alert',
  'crit',
  'err',
  'warning',
  'notice',
  'info',
  'debug',
] as const;

// `BUG:` ends in a non-word character, so it carries no trailing \b.
const CRIT_WORDS =
  /\bBUG:|\b(?:panic|Oops|fatal|FATAL|EMERG|ALERT|CRIT(?:ICAL)?|[Hh]ard LOCKUP|Machine Check Exception)\b/;
const ERR_WORDS =
  /\b(?:errors?|ERRORS?|Error|failed|FAILED|[Ff]ailure|FAILURE|SEVERE|segfault|Out of memory|timed out|[Cc]all [Tt]race)\b/;
const WARN_WORDS = /\b(?:warn(?:ing)?|WARN(?:ING)?|Warning)\b/;

/** Severity from the words of a message, or null when it names none. */
export function lexicalSeverity(message: string): number | null {
  if (CRIT_WORDS.test(message)) return 2;
  if (ERR_WORDS.test(message)) return 3;
  if (WARN_WORDS.test(message)) return 4;
  return null;
}

/** The parsed severity when the line carried one, else what its words say (null: unknown). */
export function severityOf(e: KernelEvent): number | null {
  if (e.severity !== null && e.severity >= 0 && e.severity <= 7) return e.severity;
  return lexicalSeverity(e.message);
}

/**
 * How much of an alarm a line of this level is by itself, while nothing is known of its template,
 * as a fraction of the learner's threshold: err and worse 1 (an unfamiliar error is an alarm
 * whatever its statistics), warning ½, the rest 0 (only surprise speaks for them). The learner
 * turns it into nats (× threshold + 1) and scales it down as the template proves routine
 * (anomaly.ts), so an error the host logs every day is not an incident for being an error.
 */
export function severityWeight(sev: number | null): number {
  if (sev === null || sev >= 5) return 0;
  if (sev <= 3) return 1;
  return 0.5;
}

export function severityName(sev: number | null): string {
  return sev === null ? 'unknown' : (SEVERITY_NAMES[sev] ?? 'unknown');
}
