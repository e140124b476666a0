// One severity scale (syslog 0 emerg … 7 debug) whatever the layout said: a PRI, the kernel's
// `<N>`, journald's PRIORITY, dmesg -x names, BGL levels, printk's KERN_* names.
import { describe, expect, it } from 'vitest';
import { parseLine } from '../../ingest/index.ts';
import { SEVERITY, severityAt, severityOfName } from '../../ingest/severity.ts';

describe('level words', () => {
  it('HPC, syslog and printk names map onto 0-7', () => {
    const table: Array<[string, number]> = [
      ['FAILURE', 1],
      ['FATAL', 2],
      ['ERROR', 3],
      ['SEVERE', 3],
      ['WARNING', 4],
      ['INFO', 6],
      ['emerg', 0],
      ['panic', 0],
      ['alert', 1],
      ['crit', 2],
      ['CRITICAL', 2],
      ['err', 3],
      ['warn', 4],
      ['Warning', 4],
      ['notice', 5],
      ['info', 6],
      ['debug', 7],
      ['KERN_EMERG', 0],
      ['KERN_ALERT', 1],
      ['KERN_CRIT', 2],
      ['KERN_ERR', 3],
      ['KERN_WARNING', 4],
      ['KERN_NOTICE', 5],
      ['KERN_INFO', 6],
      ['KERN_DEBUG', 7],
    ];
    for (const [name, sev] of table) expect(severityOfName(name), name).toBe(sev);
    for (const name of ['KERN_DEFAULT', 'KERN_CONT', 'RAS', 'KERNEL', 'iNFO', '', 'INFOS'])
      expect(severityOfName(name), name).toBe(-1);
    expect(SEVERITY.err).toBe(3);
  });

  it('severityAt reads a word in place, also right after another word', () => {
    const s = 'RAS KERNEL FATAL x INFO FATAL';
    expect(severityAt(s, 11, 16)).toBe(2);
    expect(severityAt(s, 19, 23)).toBe(6);
    expect(severityAt(s, 24, 29)).toBe(2);
    expect(severityAt(s, 0, 3)).toBe(-1);
    expect(severityAt(s, 3, 3)).toBe(-1);
  });
});

describe('every layout lands on the same scale', () => {
  const bgl = (level: string) =>
    `1117838570 2005.06.03 R02-M1-N0 2005-06-03-15.42.50.675872 R02-M1-N0 RAS KERNEL ${level} x`;
  const cases: Array<[string, number | null]> = [
    ['<11>Jan  2 03:04:05 h prog[1]: syslog PRI user.err', 3],
    ['<3>[   12.000000] kernel printk level 3', 3],
    ['<6>[   12.000000] kernel printk level 6', 6],
    ['<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - RFC 5424 local4.notice', 5],
    [JSON.stringify({ MESSAGE: 'journald', PRIORITY: '2', _HOSTNAME: 'h' }), 2],
    ['kern  :err   : [  12.500000] dmesg -x', 3],
    ['kern  :warn  : [  12.500000] dmesg -x', 4],
    [bgl('FAILURE'), 1],
    [bgl('FATAL'), 2],
    [bgl('ERROR'), 3],
    [bgl('SEVERE'), 3],
    [bgl('WARNING'), 4],
    [bgl('INFO'), 6],
    ['Jan  2 03:04:05 h prog[1]: no PRI, no level', null],
    ['[   12.000000] plain dmesg', null],
  ];
  it.each(cases)('%s → %s', (line, sev) => {
    expect(parseLine(line).severity).toBe(sev);
  });

  it('"error or worse" (severity <= 3) is exactly the alarm words of every layout', () => {
    for (const w of ['FATAL', 'SEVERE', 'FAILURE', 'ERROR', 'CRIT', 'ALERT', 'EMERG', 'err', 'KERN_ERR'])
      expect(severityOfName(w), w).toBeLessThanOrEqual(SEVERITY.err);
    for (const w of ['WARNING', 'warn', 'NOTICE', 'INFO', 'DEBUG', 'KERN_WARNING'])
      expect(severityOfName(w), w).toBeGreaterThan(SEVERITY.err);
  });
});
