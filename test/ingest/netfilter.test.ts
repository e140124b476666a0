// The netfilter/UFW field parser (ingest/families.ts): the fields, their order and their values
// exactly as the parser gave them before it read lines by index into a template (the expected
// objects below were printed by that earlier code), for the usual lines and the odd ones
// (missing and repeated keys, odd spacing, an ICMP error's quoted packet, keys it does not know,
// a prefix that changes), each read twice and after other lines (the reused strings).
import { describe, expect, it } from 'vitest';
import { classify } from '../../ingest/families.ts';
import { classifyParsed, parseLine } from '../../ingest/parse.ts';

const CASES: [string, Record<string, string> | null][] = [
  [
    '[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=203.0.113.7 DST=10.0.0.5 LEN=60 TTL=51 ID=1234 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=29200 RES=0x00 SYN URGP=0',
    {
      prefix: '[UFW BLOCK]',
      action: 'BLOCK',
      source: 'ufw',
      IN: 'eth0',
      OUT: '',
      MAC: '52:54:00:12:34:56',
      SRC: '203.0.113.7',
      DST: '10.0.0.5',
      LEN: '60',
      TTL: '51',
      ID: '1234',
      PROTO: 'TCP',
      SPT: '40000',
      DPT: '22',
      WINDOW: '29200',
      RES: '0x00',
      URGP: '0',
      FLAGS: 'DF SYN',
    },
  ],
  [
    '[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=198.51.100.23 DST=10.0.0.5 LEN=60 TTL=44 ID=99 PROTO=UDP SPT=5353 DPT=5900',
    {
      prefix: '[UFW BLOCK]',
      action: 'BLOCK',
      source: 'ufw',
      IN: 'eth0',
      OUT: '',
      MAC: '52:54:00:12:34:56',
      SRC: '198.51.100.23',
      DST: '10.0.0.5',
      LEN: '60',
      TTL: '44',
      ID: '99',
      PROTO: 'UDP',
      SPT: '5353',
      DPT: '5900',
    },
  ],
  [
    'IN=eth0 OUT=  SRC=1.2.3.4   DST=10.0.0.5 SRC=9.9.9.9 LEN=20 DF  ',
    { source: 'netfilter', IN: 'eth0', OUT: '', SRC: '1.2.3.4', DST: '10.0.0.5', LEN: '20', FLAGS: 'DF' },
  ],
  [
    'iptables denied: IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=ICMP TYPE=3 CODE=1 [SRC=5.6.7.8 DST=1.2.3.4 LEN=20 ]',
    {
      prefix: 'iptables denied:',
      source: 'netfilter',
      IN: 'eth0',
      OUT: '',
      SRC: '1.2.3.4',
      DST: '5.6.7.8',
      PROTO: 'ICMP',
      TYPE: '3',
      CODE: '1',
    },
  ],
  [
    'drop IN= OUT=eth1 SRC=1.2.3.4 MARK=0x1 FLAGS=x DF FOO=bar toString=1 SYN',
    {
      prefix: 'drop',
      action: 'DROP',
      source: 'netfilter',
      IN: '',
      OUT: 'eth1',
      SRC: '1.2.3.4',
      MARK: '0x1',
      FLAGS: 'DF SYN',
      FOO: 'bar',
    },
  ],
  [
    '[UFW AUDIT] IN=eth0 OUT= SRC=1.2.3.4 X=Y=Z =x ACK',
    {
      prefix: '[UFW AUDIT]',
      action: 'AUDIT',
      source: 'ufw',
      IN: 'eth0',
      OUT: '',
      SRC: '1.2.3.4',
      X: 'Y=Z',
      FLAGS: '=x ACK',
    },
  ],
];

describe('netfilter fields', () => {
  it('gives the same fields in the same order as before, line after line and again', () => {
    for (let round = 0; round < 3; round++) {
      const order = round === 1 ? [...CASES].reverse() : CASES;
      for (const [msg, fields] of order) {
        const c = classify(msg);
        expect(c?.family).toBe('ufw');
        // JSON text: the key order counts (it is what a saved or printed event shows)
        expect(JSON.stringify(c?.fields)).toBe(JSON.stringify(fields));
      }
    }
  });

  it('gives each line its own object', () => {
    const [msg] = CASES[0]!;
    const a = classify(msg)!.fields;
    const b = classify(msg)!.fields;
    expect(a).not.toBe(b);
    a.SRC = 'changed';
    expect(b.SRC).toBe('203.0.113.7');
  });
});

describe('classify later (the consumer stage: classify: false, then classifyParsed)', () => {
  it('gives the line parseLine would have given, family and fields included', () => {
    const lines = [
      ...CASES.map(([m]) => `Nov 30 08:00:00 edge-1 kernel: [ 12.5] ${m}`),
      'Nov 30 08:00:01 edge-1 kernel: e1000e: eth1 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: None',
      'Nov 30 08:00:02 edge-1 sshd[42]: IN=eth0 OUT= SRC=1.2.3.4 (not a kernel program: no family)',
      '<6>[ 3.1] usb 1-1: new high-speed USB device number 2 using xhci_hcd',
      '{"MESSAGE":"audit: type=1400 apparmor=\\"DENIED\\"","SYSLOG_IDENTIFIER":"kernel","__REALTIME_TIMESTAMP":"1700000000000000"}',
      'no header at all: Out of memory: Killed process 12 (java)',
    ];
    for (const l of lines) {
      const opts = { host: 'k', now: 1_764_000_000_000 };
      const now = parseLine(l, opts);
      const later = parseLine(l, { ...opts, classify: false });
      expect(later.family).toBe('other');
      expect(later.fields).toEqual({});
      classifyParsed(later);
      expect(JSON.stringify(later)).toBe(JSON.stringify(now));
    }
    // and a later parse classifies again (the option does not stick)
    expect(parseLine(lines[0]!).family).toBe('ufw');
  });
});
