// What the parser gives back for one line.

/** Kernel families with typed fields (KernelEvent.family). */
export type Family = 'ufw' | 'oom' | 'segfault' | 'link' | 'usb' | 'audit' | 'watchdog' | 'other';

export const FAMILIES: readonly Family[] = [
  'ufw',
  'oom',
  'segfault',
  'link',
  'usb',
  'audit',
  'watchdog',
  'other',
] as const;

/** Which layout the line had. */
export type LineFormat =
  /** `<PRI>1 2024-01-02T03:04:05Z host app procid msgid [sd] msg` */
  | 'rfc5424'
  /** `<PRI>Jan  2 03:04:05 host prog[pid]: msg`, kern.log, syslog, `journalctl -o short` */
  | 'rfc3164'
  /** `2024-01-02T03:04:05.123+00:00 host prog[pid]: msg` (rsyslog, `journalctl -o short-iso`) */
  | 'iso'
  /** `[ 1234.567890] msg` or `[Tue Jan  2 03:04:05 2024] msg` (dmesg, dmesg -T) */
  | 'kernel'
  /** one `journalctl -o json` object */
  | 'journal'
  /** Loghub BGL (Blue Gene/L RAS): `1117838570 2005.06.03 NODE 2005-06-03-15.42.50.675872 NODE RAS KERNEL INFO msg` */
  | 'bgl'
  /** Loghub Thunderbird: `1131566461 2005.11.09 NODE Nov 9 12:01:01 SOURCE prog[pid]: msg` */
  | 'thunderbird'
  /** none of the above: the whole line is the message */
  | 'bare';

export interface ParsedLine {
  format: LineFormat;
  /** epoch ms: the line's own time, else the receive time (opts.now or Date.now()) */
  ts: number;
  /** false when ts is the receive time */
  hasTime: boolean;
  /** kernel monotonic stamp in seconds (`[ 1234.567890]`) */
  mono: number | null;
  /** the line's host, else opts.host, else '' */
  host: string;
  program: string | null;
  pid: number | null;
  facility: number | null;
  /**
   * syslog severity 0 (emerg) … 7 (debug) when the line says: the PRI, journald's PRIORITY, or a
   * level word (BGL's INFO … FAILURE) mapped by severity.ts; `<= 3` is "error or worse"
   */
  severity: number | null;
  /** the text after the header (and after the kernel stamp) */
  message: string;
  /**
   * where message starts in the line given to parseLine (it runs to the line's trimmed end), or
   * -1 when it is not part of the line (journal JSON): lets the miner read it in place
   */
  messageAt: number;
  family: Family;
  /** typed fields of the family, as text */
  fields: Record<string, string>;
}

export interface ParseOptions {
  /** host when the line names none (the Kafka key, --host, os.hostname()) */
  host?: string;
  /** receive time (epoch ms): the ts of lines without one, and the year of `Jan  2` stamps */
  now?: number;
  /**
   * false: leave `family` 'other' and `fields` empty; `classifyParsed` adds them later, as this
   * would have (the consumer stage classifies only the lines it hands over, after the event-time
   * wait, so the lines waiting there do not hold their fields). Default true.
   */
  classify?: boolean;
}
