// The parser: header layouts, kernel stamps, CRLF, and each kernel family's typed fields.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isWeekdayAt, monthAt } from '../../ingest/calendar.ts';
import { hostOf, type ParsedLine, parseLine } from '../../ingest/index.ts';

const NOW = Date.UTC(2024, 5, 15, 12, 0, 0); // 15 June 2024
const fixture = readFileSync(new URL('./fixtures/families.txt', import.meta.url), 'utf8').split('\n');
const line = (needle: string): ParsedLine => {
  const l = fixture.find((x) => x.includes(needle));
  if (!l) throw new Error(`fixture has no line with ${needle}`);
  return parseLine(l, { host: 'key-host', now: NOW });
};

describe('calendar names', () => {
  it('months and weekdays, nothing else', () => {
    const months = 'Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec'.split(' ');
    for (const [i, m] of months.entries()) expect(monthAt(`x${m}`, 1)).toBe(i);
    for (const w of ['Jam', 'jan', 'JAN', 'Ju', 'Mon', 'Dex', 'Api']) expect(monthAt(w, 0), w).toBe(-1);
    for (const d of 'Mon Tue Wed Thu Fri Sat Sun'.split(' ')) expect(isWeekdayAt(d, 0), d).toBe(true);
    for (const d of ['Jan', 'Sum', 'Tux', 'mon', 'Sa']) expect(isWeekdayAt(d, 0), d).toBe(false);
  });
});

describe('headers', () => {
  it('RFC 3164 with host, program[pid], CRLF and trailing blanks', () => {
    const p = parseLine('Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown \r\n', {
      now: NOW,
    });
    expect(p).toMatchObject({
      format: 'rfc3164',
      ts: Date.UTC(2024, 5, 14, 15, 16, 1),
      hasTime: true,
      host: 'combo',
      program: 'sshd(pam_unix)',
      pid: 19939,
      message: 'check pass; user unknown',
      family: 'other',
    });
  });

  it('RFC 3164 with PRI, a space-padded day, and a kernel stamp in the message', () => {
    const p = parseLine('<4>Jan  2 03:04:05 edge-1 kernel: [  415.578808] hello', { now: NOW });
    expect(p).toMatchObject({
      ts: Date.UTC(2024, 0, 2, 3, 4, 5),
      facility: 0,
      severity: 4,
      host: 'edge-1',
      program: 'kernel',
      mono: 415.578808,
      message: 'hello',
    });
  });

  it('a December stamp read in January is last year', () => {
    const jan = Date.UTC(2024, 0, 1, 0, 5);
    expect(parseLine('Dec 31 23:59:59 h kernel: x', { now: jan }).ts).toBe(
      Date.UTC(2023, 11, 31, 23, 59, 59),
    );
  });

  it('RFC 5424 with structured data and a BOM', () => {
    const p = parseLine(
      '<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 ID47 [ex@32473 iut="3" x="a\\]b"] \uFEFFAn application event',
    );
    expect(p).toMatchObject({
      format: 'rfc5424',
      ts: Date.UTC(2003, 7, 24, 12, 14, 15),
      host: '192.0.2.1',
      program: 'myproc',
      pid: 8710,
      facility: 20,
      severity: 5,
      message: 'An application event',
    });
  });

  it('ISO-8601 (rsyslog, journalctl -o short-iso), with offsets', () => {
    expect(parseLine('2024-01-02T03:04:05.123456+01:00 edge-7 kernel: hi')).toMatchObject({
      format: 'iso',
      ts: Date.UTC(2024, 0, 2, 2, 4, 5, 123),
      host: 'edge-7',
      program: 'kernel',
      message: 'hi',
    });
    expect(parseLine('2024-01-02T03:04:05+0000 edge-7 systemd[1]: Started x.').pid).toBe(1);
    expect(parseLine('2024-01-02 03:04:05Z h app: m').ts).toBe(Date.UTC(2024, 0, 2, 3, 4, 5));
  });

  it('dmesg, dmesg -T and journalctl -o short-monotonic', () => {
    expect(parseLine('[ 1234.567890] e1000e: eth0 NIC Link is Down', { host: 'k' })).toMatchObject({
      format: 'kernel',
      mono: 1234.56789,
      host: 'k',
      program: 'kernel',
      message: 'e1000e: eth0 NIC Link is Down',
      family: 'link',
    });
    expect(parseLine('[Tue Jan  2 03:04:05 2024] usb 1-1: USB disconnect, device number 2')).toMatchObject({
      ts: Date.UTC(2024, 0, 2, 3, 4, 5),
      hasTime: true,
      family: 'usb',
    });
    // `usb 1-1:` after a stamp is dmesg text, not `host prog:`
    expect(parseLine('[ 13.0] usb 1-1: USB disconnect, device number 4')).toMatchObject({
      program: 'kernel',
      message: 'usb 1-1: USB disconnect, device number 4',
    });
    expect(parseLine('[    5.5] edge-9 systemd[1]: Started x.')).toMatchObject({ host: 'edge-9', pid: 1 });
    expect(parseLine('[    5.123456] edge-9 kernel: booted')).toMatchObject({
      mono: 5.123456,
      host: 'edge-9',
      program: 'kernel',
      message: 'booted',
    });
  });

  it('journalctl -o json', () => {
    const j = JSON.stringify({
      __REALTIME_TIMESTAMP: '1704164645123456',
      _HOSTNAME: 'h1',
      SYSLOG_IDENTIFIER: 'kernel',
      PRIORITY: '3',
      _SOURCE_MONOTONIC_TIMESTAMP: '1234567890',
      MESSAGE: 'e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx',
    });
    expect(parseLine(j)).toMatchObject({
      format: 'journal',
      ts: 1704164645123,
      host: 'h1',
      program: 'kernel',
      severity: 3,
      mono: 1234.56789,
      family: 'link',
      fields: { iface: 'eth0', state: 'up', speedMbps: '1000', duplex: 'full' },
    });
    // binary MESSAGE fields come as byte arrays
    const bytes = JSON.stringify({ MESSAGE: [...Buffer.from('héllo')], _HOSTNAME: 'h2' });
    expect(parseLine(bytes)).toMatchObject({ message: 'héllo', host: 'h2' });
  });

  it('lines without a header: bare text, the fallback host and the receive time', () => {
    expect(parseLine('something odd happened', { host: 'fallback', now: 42 })).toMatchObject({
      format: 'bare',
      host: 'fallback',
      ts: 42,
      hasTime: false,
      program: null,
      message: 'something odd happened',
    });
    expect(parseLine('CRON[123]: (root) CMD (true)')).toMatchObject({ program: 'CRON', pid: 123 });
    expect(parseLine('Jun 19 04:09:11 combo syslogd 1.4.1: restart.')).toMatchObject({
      program: 'syslogd 1.4.1',
      message: 'restart.',
    });
    expect(parseLine('{"not":"a journal"}').format).toBe('bare');
    expect(parseLine('').message).toBe('');
  });

  it('messageAt says where the message sits in the line (journal JSON: -1)', () => {
    const lines = [...fixture.filter(Boolean), '\uFEFFJun 14 15:16:01 combo sshd[1]: x y \r\n', 'bare  \r'];
    for (const l of lines) {
      const p = parseLine(l);
      expect(l.slice(p.messageAt, p.messageAt + p.message.length), l).toBe(p.message);
    }
    expect(parseLine(JSON.stringify({ MESSAGE: 'm', _HOSTNAME: 'h' })).messageAt).toBe(-1);
  });

  it('hostOf() finds the host without a full parse', () => {
    expect(hostOf('Jun 14 15:16:01 combo sshd[1]: x')).toBe('combo');
    expect(hostOf('<34>1 2003-10-11T22:14:15.003Z mymachine su - - - x')).toBe('mymachine');
    expect(hostOf('[ 12.5] e1000e: eth0 NIC Link is Down')).toBeUndefined();
    expect(hostOf('plain text')).toBeUndefined();
  });
});

describe('RFC 3164 §4.3 and RFC 5424 §6: what a header may be, and the bare line otherwise', () => {
  const o = { host: 'relay-in', now: NOW };
  it('§4.3.1 valid PRI and TIMESTAMP: the header is read, whatever blanks and case senders use', () => {
    for (const l of [
      '<13>Feb  5 17:32:18 h1 app: x',
      '  <13> Feb 5 17:32:18 h1 app: x',
      '<13>FEB 05 17:32:18 h1 app: x',
    ])
      expect(parseLine(l, o), l).toMatchObject({
        format: 'rfc3164',
        host: 'h1',
        program: 'app',
        message: 'x',
      });
    expect(parseLine('<13>Feb  5 17:32:18 2019 h1 app: x', o)).toMatchObject({
      host: 'h1',
      ts: Date.UTC(2019, 1, 5, 17, 32, 18),
    });
  });

  it('§4.3.2 valid PRI, no or an impossible TIMESTAMP: the rest is CONTENT, kept whole', () => {
    for (const rest of [
      'Feb 30 17:32:18 h1 app: x',
      'Feb  5 24:00:00 h1 app: x',
      'hello world',
      '2003-09-31T22:14:15Z h1 x',
    ])
      expect(parseLine(`<13>${rest}`, o), rest).toMatchObject({
        format: 'bare',
        hasTime: false,
        host: 'relay-in',
        program: null,
        severity: 5,
        message: rest,
      });
  });

  it('§4.3.3 no PRI or an unidentifiable one: the whole line is CONTENT', () => {
    for (const l of ['<192>Feb  5 17:32:18 h1 app: x', '<013>x y', '<>x', '(13>x'])
      expect(parseLine(l, o), l).toMatchObject({ format: 'bare', severity: null, message: l });
  });

  it('RFC 5424 §6: a header short of the grammar is not RFC 5424, and nothing is taken from it', () => {
    const ok = '<29>1 2016-01-15T01:00:43Z hn S 42 - [m a="\\]"] text';
    expect(parseLine(ok, o)).toMatchObject({
      format: 'rfc5424',
      host: 'hn',
      program: 'S',
      pid: 42,
      message: 'text',
    });
    for (const broken of [
      '<29>1 2016-01-15T01:00:43Z hn S 42 - [m a="]"] text', // unescaped ] in a value
      '<29>1 2016-01-15T01:00:43Z hn S 42 - [m a="x" text', // unbalanced element
      '<29>1 2016-01-15T01:00:43Z hn S 42 - [m][m] text', // the same SD-ID twice
      '<29>1 2016-01-15T01:00:43+07:61 hn S 42 - - text', // no such offset
      '<29>1 2016-01-15T01:00:43 hn S 42 - - text', // TIME-OFFSET is required
      '<29>1 2016-01-15t01:00:43Z hn S 42 - - text', // T upper case
      '<29>1 2016-01-15T01:00:43Z  hn S 42 - - text', // one blank between fields
    ])
      expect(parseLine(broken, o), broken).toMatchObject({
        format: 'bare',
        hasTime: false,
        host: 'relay-in',
        program: null,
        message: broken.slice(4),
      });
  });
});

describe('the kernel layouts, raw lines as the tools print them', () => {
  it('dmesg: `[12345.678901] msg`, the monotonic stamp kept, the text is the message', () => {
    expect(
      parseLine('[12345.678901] EXT4-fs (sda1): mounted filesystem with ordered data mode.', {
        host: 'k',
        now: NOW,
      }),
    ).toMatchObject({
      format: 'kernel',
      ts: NOW,
      hasTime: false,
      mono: 12345.678901,
      host: 'k',
      program: 'kernel',
      severity: null,
      message: 'EXT4-fs (sda1): mounted filesystem with ordered data mode.',
    });
    expect(parseLine('[    0.000000] Linux version 6.1.0-18-amd64').mono).toBe(0);
  });

  it('dmesg -r: `<N>` is the printk level', () => {
    expect(parseLine('<3>[ 4711.000123] ata1.00: failed command: READ FPDMA QUEUED')).toMatchObject({
      format: 'kernel',
      facility: 0,
      severity: 3,
      mono: 4711.000123,
      message: 'ata1.00: failed command: READ FPDMA QUEUED',
    });
  });

  it('dmesg -T: `[Mon Nov 30 10:00:00 2026] msg`, a wall-clock stamp (read as UTC)', () => {
    expect(
      parseLine('[Mon Nov 30 10:00:00 2026] usb 1-1: new high-speed USB device number 2 using xhci_hcd'),
    ).toMatchObject({
      format: 'kernel',
      ts: Date.UTC(2026, 10, 30, 10, 0, 0),
      hasTime: true,
      program: 'kernel',
      message: 'usb 1-1: new high-speed USB device number 2 using xhci_hcd',
      family: 'usb',
    });
    expect(parseLine('[Sun Nov  1 09:08:07 2026] x').ts).toBe(Date.UTC(2026, 10, 1, 9, 8, 7));
  });

  it('dmesg -x: facility and level by name, with either stamp', () => {
    expect(
      parseLine('kern  :warn  : [   12.500000] CPU: 1 PID: 77 at kernel/foo.c:12 bar+0x1/0x2'),
    ).toMatchObject({
      format: 'kernel',
      facility: 0,
      severity: 4,
      mono: 12.5,
      message: 'CPU: 1 PID: 77 at kernel/foo.c:12 bar+0x1/0x2',
    });
    expect(parseLine('daemon:info  : [Mon Nov 30 10:00:00 2026] systemd[1]: Started x.')).toMatchObject({
      facility: 3,
      severity: 6,
      ts: Date.UTC(2026, 10, 30, 10, 0, 0),
      message: 'systemd[1]: Started x.',
    });
    // not a facility, not a level: the line as it is
    for (const l of ['kernel: [ 1.0] x', 'kern  :bogus : [ 1.0] x', 'usb 1-1: x', 'kern:info:[ 1.0] x'])
      expect(parseLine(l).facility, l).toBeNull();
  });

  it('journalctl -o json: a kernel record with the fields journald writes', () => {
    const rec = {
      __CURSOR: 's=0f1e2d3c;i=1a2b;b=5b6c;m=4c3d2e1f;t=61a2b3c4d5e6f;x=1234abcd',
      __REALTIME_TIMESTAMP: '1764496800123456',
      __MONOTONIC_TIMESTAMP: '4711000123',
      _BOOT_ID: '5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e',
      _MACHINE_ID: '0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b',
      _HOSTNAME: 'edge-3',
      _TRANSPORT: 'kernel',
      SYSLOG_FACILITY: '0',
      SYSLOG_IDENTIFIER: 'kernel',
      PRIORITY: '4',
      _SOURCE_MONOTONIC_TIMESTAMP: '4711000100',
      _KERNEL_SUBSYSTEM: 'net',
      _KERNEL_DEVICE: 'n2',
      _UDEV_SYSNAME: 'eth0',
      MESSAGE: 'e1000e 0000:00:19.0 eth0: NIC Link is Down',
    };
    expect(parseLine(JSON.stringify(rec), { host: 'key-host' })).toMatchObject({
      format: 'journal',
      ts: 1764496800123,
      hasTime: true,
      mono: 4711.0001,
      host: 'edge-3',
      program: 'kernel',
      facility: 0,
      severity: 4,
      message: 'e1000e 0000:00:19.0 eth0: NIC Link is Down',
      messageAt: -1,
      family: 'link',
    });
    // a user-space record: _PID when SYSLOG_PID is missing, no PRIORITY → severity unknown
    const user = {
      __REALTIME_TIMESTAMP: '1764496800000000',
      _HOSTNAME: 'edge-3',
      _COMM: 'sshd',
      _PID: '812',
      MESSAGE: 'Accepted publickey for ops',
    };
    expect(parseLine(JSON.stringify(user))).toMatchObject({
      program: 'sshd',
      pid: 812,
      severity: null,
      facility: null,
    });
  });

  it('journalctl -o export is not a line format: its KEY=VALUE lines come out bare, one by one', () => {
    expect(parseLine('__REALTIME_TIMESTAMP=1764496800123456')).toMatchObject({
      format: 'bare',
      hasTime: false,
    });
  });

  it('RFC 5424: the examples of RFC 5424 §6.5', () => {
    expect(
      parseLine(
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \uFEFF'su root' failed for lonvick on /dev/pts/8",
      ),
    ).toMatchObject({
      format: 'rfc5424',
      ts: Date.UTC(2003, 9, 11, 22, 14, 15, 3),
      host: 'mymachine.example.com',
      program: 'su',
      pid: null,
      facility: 4,
      severity: 2,
      message: "'su root' failed for lonvick on /dev/pts/8",
    });
    expect(
      parseLine(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
      ),
    ).toMatchObject({
      ts: Date.UTC(2003, 7, 24, 12, 14, 15),
      pid: 8710,
      message: "%% It's time to make the do-nuts.",
    });
    const sd = '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]';
    expect(
      parseLine(
        `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 ${sd} \uFEFFAn application event log entry...`,
      ),
    ).toMatchObject({
      program: 'evntslog',
      message: 'An application event log entry...',
    });
    expect(
      parseLine(
        `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 ${sd}[examplePriority@32473 class="high"]`,
      ),
    ).toMatchObject({
      program: 'evntslog',
      message: '',
    });
  });
});

describe('kernel families', () => {
  it('UFW: action and every KEY=VALUE, bare flags', () => {
    const p = line('[UFW BLOCK]');
    expect(p.family).toBe('ufw');
    expect(p.mono).toBe(8812.004411);
    expect(p.fields).toMatchObject({
      action: 'BLOCK',
      source: 'ufw',
      IN: 'eth0',
      OUT: '',
      MAC: '52:54:00:12:34:56:52:54:00:65:43:21:08:00',
      SRC: '203.0.113.7',
      DST: '192.0.2.10',
      LEN: '60',
      TTL: '52',
      PROTO: 'TCP',
      SPT: '51515',
      DPT: '22',
      FLAGS: 'DF SYN',
    });
    expect(line('[UFW ALLOW]').fields).toMatchObject({
      action: 'ALLOW',
      PROTO: 'UDP',
      SPT: '123',
      LEN: '76',
    });
    expect(line('[UFW AUDIT]').fields).toMatchObject({ action: 'AUDIT', IN: '', OUT: 'eth0', PROTO: 'ICMP' });
    expect(line('IPTables-Dropped').fields).toMatchObject({
      source: 'netfilter',
      prefix: 'IPTables-Dropped:',
      SRC: '2001:0db8:0000:0000:0000:0000:0000:0001',
      DPT: '443',
    });
  });

  it('OOM killer: victim pid, comm, score and memory', () => {
    expect(line('Killed process 4711').fields).toMatchObject({
      event: 'killed',
      pid: '4711',
      comm: 'postgres',
      totalVmKb: '8812340',
      anonRssKb: '6021116',
      uid: '113',
      oomScoreAdj: '0',
    });
    expect(line('score 917').fields).toMatchObject({
      event: 'kill',
      pid: '2112',
      comm: 'java',
      score: '917',
    });
    expect(line('invoked oom-killer').fields).toMatchObject({
      event: 'invoked',
      comm: 'postgres',
      order: '0',
    });
    expect(line('oom-kill:constraint').fields).toMatchObject({
      event: 'constraint',
      comm: 'postgres',
      pid: '4711',
      uid: '113',
      memcg: '/system.slice/postgresql.service',
    });
    expect(line('oom_reaper').fields).toMatchObject({ event: 'reaped', pid: '4711' });
    for (const n of ['Killed process 4711', 'score 917', 'invoked oom-killer'])
      expect(line(n).family).toBe('oom');
  });

  it('segfaults and traps', () => {
    const p = line('segfault at 18');
    expect(p.family).toBe('segfault');
    expect(p.fields).toEqual({
      kind: 'segfault',
      comm: 'worker',
      pid: '9876',
      addr: '18',
      ip: '00007f3a5c2d1e4f',
      sp: '00007ffe4b1a9c30',
      error: '4',
      object: 'libfoo.so.1',
      base: '7f3a5c2c0000',
      size: '21000',
      cpu: '3',
    });
    expect(line('divide error').fields).toMatchObject({ kind: 'divide-error', comm: 'calc', pid: '1357' });
  });

  it('link up and down, with the interface', () => {
    expect(line('eth1 NIC Link is Up').fields).toEqual({
      state: 'up',
      iface: 'eth1',
      driver: 'e1000e',
      speedMbps: '100',
      duplex: 'full',
    });
    expect(line('eth1 NIC Link is Down').fields).toMatchObject({ state: 'down', iface: 'eth1' });
    expect(line('link becomes ready').fields).toMatchObject({ state: 'up', iface: 'wlan0' });
    expect(line('eno2 NIC Link').fields).toMatchObject({ state: 'up', iface: 'eno2', speedMbps: '10000' });
    expect(
      parseLine('bond0: link status definitely down for interface eth1, disabling it').fields,
    ).toMatchObject({ state: 'down', iface: 'eth1', bond: 'bond0' });
  });

  it('USB connect, identify, disconnect', () => {
    expect(line('new high-speed USB').fields).toEqual({
      port: '2-1.4',
      bus: '2',
      event: 'connect',
      speed: 'high-speed',
      devnum: '7',
      hcd: 'xhci_hcd',
    });
    expect(line('idVendor').fields).toMatchObject({
      event: 'identified',
      idVendor: '046d',
      idProduct: '0825',
    });
    expect(line('Product: Webcam').fields).toMatchObject({ event: 'info', product: 'Webcam C270' });
    expect(line('USB disconnect').fields).toMatchObject({ event: 'disconnect', devnum: '7', port: '2-1.4' });
  });

  it('audit: AppArmor from the kernel and SELinux AVC from auditd', () => {
    const a = line('apparmor="DENIED"');
    expect(a.family).toBe('audit');
    expect(a.fields).toMatchObject({
      kind: 'apparmor',
      type: '1400',
      auditTime: '1709460300.123',
      serial: '88',
      apparmor: 'DENIED',
      operation: 'open',
      profile: '/usr/sbin/nginx',
      name: '/etc/shadow',
      pid: '2024',
      comm: 'nginx',
      requested_mask: 'r',
    });
    const s = line('type=AVC');
    expect(s.format).toBe('bare');
    expect(s.fields).toMatchObject({
      kind: 'selinux',
      type: 'AVC',
      avc: 'denied',
      perms: 'write',
      comm: 'httpd',
      tclass: 'dir',
      serial: '89',
    });
  });

  it('watchdogs: NETDEV transmit timeout, soft lockup, hung task, SYN flood', () => {
    expect(line('NETDEV WATCHDOG').fields).toEqual({
      kind: 'netdev-tx-timeout',
      iface: 'enp1s0',
      driver: 'r8169',
      queue: '0',
      ms: '5120',
    });
    expect(line('soft lockup').fields).toEqual({
      kind: 'soft-lockup',
      cpu: '2',
      seconds: '23',
      comm: 'kworker/2:1',
      pid: '345',
    });
    expect(line('blocked for more than').fields).toMatchObject({ kind: 'hung-task', comm: 'jbd2/sda1-8' });
    expect(line('SYN flooding').fields).toEqual({ kind: 'syn-flood', port: '8080', action: 'cookies' });
    for (const n of ['NETDEV WATCHDOG', 'soft lockup', 'SYN flooding'])
      expect(line(n).family).toBe('watchdog');
  });

  it('every fixture line lands in a family; user programs are not classified', () => {
    for (const l of fixture.filter(Boolean)) expect(parseLine(l).family, l).not.toBe('other');
    // sshd saying "link" is not a link event: only kernel-ish programs are classified
    expect(parseLine('Jun 1 00:00:00 h sshd[1]: eth0: link up').family).toBe('other');
  });
});
