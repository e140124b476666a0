// One severity scale for every layout: syslog's 0 (emerg) … 7 (debug), the scale of a syslog PRI
// (PRI & 7), of the kernel's `<0-7>` printk prefix and of journald's PRIORITY. Level words of the
// other layouts are mapped onto it here, so a learner asking "error or worse?" asks `severity <= 3`
// whatever the line looked like. The table is ingest/README.md's "Severity" section.

export const SEVERITY = {
  emerg: 0,
  alert: 1,
  crit: 2,
  err: 3,
  warning: 4,
  notice: 5,
  info: 6,
  debug: 7,
} as const;

const NAMES: ReadonlyArray<readonly [number, readonly string[]]> = [
  [SEVERITY.emerg, ['EMERG', 'EMERGENCY', 'PANIC']],
  // Blue Gene/L RAS orders INFO < WARNING < SEVERE < ERROR < FATAL < FAILURE (Liang et al., DSN
  // 2005); FAILURE (hardware gone) sits one step above FATAL (the job died).
  [SEVERITY.alert, ['ALERT', 'FAILURE']],
  [SEVERITY.crit, ['CRIT', 'CRITICAL', 'FATAL']],
  // syslog has no step between warning and err: SEVERE and ERROR both land on err
  [SEVERITY.err, ['ERR', 'ERROR', 'SEVERE']],
  [SEVERITY.warning, ['WARN', 'WARNING']],
  [SEVERITY.notice, ['NOTICE']],
  [SEVERITY.info, ['INFO', 'INFORMATION']],
  [SEVERITY.debug, ['DEBUG', 'TRACE']],
];

const KERNEL_NAMES = ['EMERG', 'ALERT', 'CRIT', 'ERR', 'WARNING', 'NOTICE', 'INFO', 'DEBUG'];

const TABLE = new Map<string, number>();
for (const [sev, names] of NAMES) {
  for (const n of names) {
    // the spellings logs use: INFO, info, Info
    TABLE.set(n, sev);
    TABLE.set(n.toLowerCase(), sev);
    TABLE.set(n[0] + n.slice(1).toLowerCase(), sev);
  }
}
// printk's level macros (include/linux/kern_levels.h), as written in source and some tools' output
KERNEL_NAMES.forEach((n, sev) => {
  TABLE.set(`KERN_${n}`, sev);
});

/** Severity 0-7 of a level word (`FATAL`, `warning`, `KERN_ERR` …), -1 when it is not one. */
export function severityOfName(name: string): number {
  return TABLE.get(name) ?? -1;
}

// A stream repeats few level words: remember the last one, sparing a slice per line.
let lastName = '';
let lastSeverity = -1;

/** severityOfName of s[a, b), without a slice when the word is the same as last time. */
export function severityAt(s: string, a: number, b: number): number {
  if (b - a > 16 || b <= a) return -1;
  if (lastName.length === b - a && s.startsWith(lastName, a)) return lastSeverity;
  lastName = s.slice(a, b);
  lastSeverity = severityOfName(lastName);
  return lastSeverity;
}
