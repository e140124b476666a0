// The Loghub supercomputer layouts (BGL, Thunderbird) on real lines: the message is Loghub's
// Content column, the header gives host, event time, program and severity; labelled raw lines and
// look-alikes are not taken for them.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { hpcLabel } from '../../ingest/hpc.ts';
import { hostOf, parseLine } from '../../ingest/index.ts';

const dir = new URL('../fixtures/loghub-hpc/', import.meta.url);
const read = (name: string): string[] => readFileSync(new URL(name, dir), 'utf8').split('\n').slice(0, -1);
/** the raw Loghub line without its label (the first field) */
const unlabelled = (l: string): string => l.slice(l.indexOf(' ') + 1);

const bgl = read('BGL_sample.log');
const bglContent = read('BGL_sample.content.txt');
const tbird = read('Thunderbird_sample.log');
const tbirdContent = read('Thunderbird_sample.content.txt');

describe('BGL (Blue Gene/L RAS)', () => {
  it('the fixture pairs up with its Content column', () => {
    expect(bgl.length).toBe(22);
    expect(bglContent.length).toBe(bgl.length);
  });

  it('every unlabelled line: format bgl, message = Loghub Content', () => {
    bgl.forEach((l, i) => {
      const p = parseLine(unlabelled(l), { host: 'key-host' });
      expect(p.format, l).toBe('bgl');
      expect(p.message, l).toBe(bglContent[i]);
      expect(p.hasTime).toBe(true);
    });
  });

  it('header fields: node as host, unix seconds + the µs stamp fraction as ts, component, level', () => {
    const p = parseLine(unlabelled(bgl[0]!), { host: 'key-host', now: 0 });
    expect(p).toMatchObject({
      format: 'bgl',
      host: 'R02-M1-N0-C:J12-U11',
      // 1117838570 = 2005-06-03T22:42:50Z; the stamp's 15.42.50 is Livermore's local time
      ts: 1117838570_675,
      hasTime: true,
      mono: null,
      program: 'KERNEL',
      pid: null,
      facility: null,
      severity: 6,
      message: 'instruction cache parity error corrected',
      family: 'other',
    });
    const app = parseLine(unlabelled(bgl.find((l) => l.includes(' APP FATAL '))!));
    expect(app).toMatchObject({ program: 'APP', severity: 2 });
    expect(app.message.startsWith('ciod: ')).toBe(true);
  });

  it('levels: INFO 6, WARNING 4, SEVERE 3, FATAL 2; NULL type and odd node names', () => {
    const by = (needle: string) => parseLine(unlabelled(bgl.find((l) => l.includes(needle))!));
    expect(by('DISCOVERY WARNING')).toMatchObject({ host: 'R02-M1-NE', program: 'DISCOVERY', severity: 4 });
    expect(by('DISCOVERY SEVERE')).toMatchObject({ host: 'R37-M1-N4', severity: 3 });
    expect(by('UNKNOWN_LOCATION')).toMatchObject({ host: 'UNKNOWN_LOCATION', severity: 6 });
    expect(by('rts panic')).toMatchObject({ severity: 2, message: 'rts panic! - stopping execution' });
    const failure = parseLine(
      '1117838570 2005.06.03 R02-M1-N0 2005-06-03-15.42.50.675872 R02-M1-N0 RAS MONITOR FAILURE fan module failed',
    );
    expect(failure).toMatchObject({ format: 'bgl', program: 'MONITOR', severity: 1 });
    // a word that is no level leaves the severity unknown, the line is still BGL
    const odd = parseLine(
      '1117838570 2005.06.03 R02-M1-N0 2005-06-03-15.42.50.675872 R02-M1-N0 RAS KERNEL CHATTY hello',
    );
    expect(odd).toMatchObject({ format: 'bgl', severity: null, message: 'hello' });
  });

  it('a stamp fraction of another second is not added; a line may end at the level', () => {
    const p = parseLine('1117838570 2005.06.03 N 2005-06-03-15.42.51.900000 N RAS KERNEL INFO');
    expect(p).toMatchObject({ format: 'bgl', ts: 1117838570_000, message: '' });
    expect(parseLine('1117838570 2005.06.03 N 2005-06-03-15.42.50.5 N RAS KERNEL INFO x').ts).toBe(
      1117838570_500,
    );
    const tooFine = '1117838570 2005.06.03 N 2005-06-03-15.42.50.1234567890 N RAS KERNEL INFO x';
    expect(parseLine(tooFine).format).toBe('bare');
  });

  it('hostOf() reads the node', () => {
    expect(hostOf(unlabelled(bgl[0]!))).toBe('R02-M1-N0-C:J12-U11');
  });
});

describe('Thunderbird', () => {
  it('the fixture pairs up with its Content column', () => {
    expect(tbird.length).toBe(20);
    expect(tbirdContent.length).toBe(tbird.length);
  });

  // Loghub's Content is whatever follows the first `: `, even after several words; for us a tag is
  // one token, so these two keep their words (a constant prefix: grouping is the same).
  const wordsBeforeColon = ['- User ID: ', 'checking TSC synchronization across 4 CPUs: '];

  it('every unlabelled line: format thunderbird, message = Loghub Content (but two, on purpose)', () => {
    tbird.forEach((l, i) => {
      const p = parseLine(unlabelled(l), { host: 'key-host' });
      expect(p.format, l).toBe('thunderbird');
      const prefix = wordsBeforeColon.find((w) => l.includes(w));
      expect(p.message, l).toBe(prefix ? prefix + tbirdContent[i] : tbirdContent[i]);
    });
  });

  it('header fields: the node as host, unix seconds as ts, tag as program and pid', () => {
    expect(parseLine(unlabelled(tbird[0]!), { host: 'key-host', now: 0 })).toMatchObject({
      format: 'thunderbird',
      host: 'dn228',
      // the BSD stamp (Nov 9 12:01:01) is Sandia's local time without a year: the unix seconds rule
      ts: 1131566461_000,
      hasTime: true,
      program: 'crond(pam_unix)',
      pid: 2915,
      severity: null,
      message: 'session closed for user root',
    });
    const gmetad = parseLine(unlabelled(tbird.find((l) => l.includes('gmetad'))!));
    expect(gmetad).toMatchObject({
      host: 'tbird-admin1',
      program: '/apps/x86_64/system/ganglia-3.0.1/sbin/gmetad',
      pid: 1682,
    });
    expect(parseLine(unlabelled(tbird.find((l) => l.includes('#8#'))!)).host).toBe('#8#');
    // kernel text without a `kernel:` tag (syslog-ng's local source): the subsystem is the tag
    expect(parseLine(unlabelled(tbird.find((l) => l.includes('CPU: L2'))!))).toMatchObject({
      program: 'CPU',
      message: 'L2 cache: 2048K',
    });
  });

  it('kernel families still apply to untagged and kernel-tagged Thunderbird lines', () => {
    const link = parseLine(
      '1131566461 2005.11.09 cn1 Nov 9 12:01:01 cn1/cn1 kernel: e1000: eth0: e1000_watchdog: NIC Link is Up 1000 Mbps Full Duplex',
    );
    expect(link).toMatchObject({ format: 'thunderbird', program: 'kernel', family: 'link' });
  });

  it('hostOf() reads the node', () => {
    expect(hostOf(unlabelled(tbird[0]!))).toBe('dn228');
  });
});

describe('labelled raw Loghub lines and look-alikes are not HPC lines', () => {
  it('a labelled line stays bare, whole, and hpcLabel() names the label', () => {
    for (const l of [...bgl, ...tbird]) {
      const p = parseLine(l, { host: 'key-host' });
      // not silently read as something else: no header fields, the label stays in the message
      expect(p, l).toMatchObject({ format: 'bare', host: 'key-host', program: null, message: l });
      expect(hpcLabel(l), l).toBe(l.slice(0, l.indexOf(' ')));
      expect(hpcLabel(unlabelled(l)), l).toBeUndefined();
    }
    expect(bgl.map(hpcLabel).filter((x) => x !== '-')).toEqual([
      'APPREAD',
      'KERNDTLB',
      'KERNSTOR',
      'APPCHILD',
      'KERNRTSP',
    ]);
  });

  it('hpcLabel() is undefined for other layouts', () => {
    for (const l of [
      'Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown',
      '- just a dash',
      'KERNDTLB',
      '',
    ])
      expect(hpcLabel(l), l).toBeUndefined();
  });

  it('numbers first, wrong shapes: bare (or the layout they are)', () => {
    const bare = [
      '1234567890 bytes transferred in 3 s',
      '1117838570 2005.06.03',
      '1117838570 2005.06.03 ',
      '1117838570 2005.13.03 R02 2005-06-03-15.42.50.675872 R02 RAS KERNEL INFO x', // month 13
      '1117838570 2005.06.32 R02 2005-06-03-15.42.50.675872 R02 RAS KERNEL INFO x', // day 32
      '1117838570 2005-06-03 R02 2005-06-03-15.42.50.675872 R02 RAS KERNEL INFO x', // dashed date
      '1117838570 2005.06.03 R02 2005-06-03 15:42:50 R02 RAS KERNEL INFO x', // ISO-ish stamp
      '1117838570 2005.06.03 R02 2005-06-03-15.42.50.675872 R02 RAS KERNEL', // no level
      '11178385 2005.06.03 R02 2005-06-03-15.42.50.675872 R02 RAS KERNEL INFO x', // 8 digits
      '111783857000 2005.06.03 R02 2005-06-03-15.42.50.675872 R02 RAS KERNEL INFO x', // 12 digits
      '1131566461 2005.11.09 dn228 Now 9 12:01:01 dn228/dn228 crond[1]: x', // no month
      '1131566461 2005.11.09 dn228 Nov 9 12:01 dn228/dn228 crond[1]: x', // short time
      '1131566461 2005.11.09 dn228 Nov 9 12:01:01', // no source
      '1131566461 2005.11.09 dn228 Nov 123 12:01:01 dn228/dn228 crond[1]: x', // day 123
    ];
    for (const l of bare) expect(parseLine(l).format, l).toBe('bare');
    expect(parseLine('2024-01-02T03:04:05Z h kernel: x').format).toBe('iso');
    expect(parseLine('[ 1117838570.000000] 2005.06.03 x').format).toBe('kernel');
  });
});
