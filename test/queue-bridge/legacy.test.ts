// The original KingCobra queue file: the real one from 17 April 2017 imports its 35 records.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  addrToHexIp,
  exportLegacy,
  hexIpToAddr,
  importLegacy,
  legacyRecord,
  openSegmentLog,
  parseLegacy,
} from '../../queue-bridge/index.ts';
import { LEGACY_QUEUE as LEGACY } from '../helpers/fixtures.ts';
import { virgo } from '../helpers/services.ts';
import { cleanupDirs, msg, tempDir } from './lib/queue.ts';

afterAll(cleanupDirs);

describe('legacy REQUEST_REPLY.queue', () => {
  it('imports the 35 records of the real queue file, skipping the binary padding', async () => {
    const records = await importLegacy(LEGACY);
    expect(records).toHaveLength(35);
    expect(records.slice(0, 33).every((r) => r.payload === 'kingcobra_kernelspace_init')).toBe(true);
    expect(records[0]).toEqual({
      id: 'legacy-1000000-1408964032.335925644-0',
      kind: 'REQUEST',
      clientAddr: '1.0.0.0',
      ts_sec: 1408964032,
      ts_nsec: 335925644,
      payload: 'kingcobra_kernelspace_init',
      inReplyTo: null,
    });
    expect(records.slice(33).map((r) => [r.clientAddr, r.ts_sec, r.ts_nsec, r.payload])).toEqual([
      ['1.0.90.90', 1492426582, 21197638, 'virgo_queueing_17April2017'],
      ['1.0.90.90', 1492426637, 157471044, 'virgo_queueing_2_17April2017'],
    ]);
    // 33 identical originals still get distinct, stable ids (replay keys)
    expect(new Set(records.map((r) => r.id)).size).toBe(35);
    expect((await importLegacy(LEGACY)).map((r) => r.id)).toEqual(records.map((r) => r.id));
  });

  it('skips garbage that only looks like a record', () => {
    const junk = Buffer.concat([
      Buffer.from('REQUEST#7f000001#1:2#ok one $$\n'),
      Buffer.from([0, 0x52, 0xff, 0x88]),
      Buffer.from('REQUEST#nohash'),
      Buffer.from([0, 0]),
      Buffer.from('REQUEST#7f000001#x:y#bad ts $$'),
      Buffer.from([0]),
      Buffer.from('REQUEST#7f000001#5:6#'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from(' $$\n'),
      Buffer.from('REQUEST#7f000001#3:4#ok two $$\n'),
    ]);
    const r = parseLegacy(junk);
    expect(r.records.map((m) => [m.clientAddr, m.payload])).toEqual([
      ['127.0.0.1', 'ok one'],
      ['127.0.0.1', 'ok two'],
    ]);
    expect(r.skipped).toBe(3);
  });

  it('converts the hex client address both ways', () => {
    expect(hexIpToAddr('7f000001')).toBe('127.0.0.1');
    expect(hexIpToAddr('1000000')).toBe('1.0.0.0');
    expect(addrToHexIp('127.0.0.1')).toBe('7f000001');
    expect(addrToHexIp('1.0.90.90')).toBe('1005a5a');
    expect(hexIpToAddr('zmq:peer')).toBe('zmq:peer');
    expect(addrToHexIp('zmq:a b#c')).toBe('zmq:a_b_c');
  });

  it('exports in the original text, padded to 256-byte records on request, and reads back the same', async () => {
    const records = await importLegacy(LEGACY);
    const plain = exportLegacy(records);
    expect(plain.toString().split('\n')).toHaveLength(36);
    expect(plain.toString().split('\n')[33]).toBe(
      'REQUEST#1005a5a#1492426582:21197638#virgo_queueing_17April2017 $$',
    );
    const padded = exportLegacy(records, { pad: true });
    // the original file is 35 records of 256 bytes
    expect(padded.length).toBe(readFileSync(LEGACY).length);
    expect(parseLegacy(padded).records).toEqual(records);
    // replies are left out unless asked for; line breaks cannot survive the format
    const ours = [msg(1, { payload: 'two\nlines' }), msg(2, { kind: 'REPLY', inReplyTo: 't-1' })];
    expect(exportLegacy(ours).toString()).toBe('REQUEST#7f000001#1700000001:1000#two lines $$\n');
    expect(legacyRecord(ours[0]!)?.altered).toBe(true);
    expect(exportLegacy(ours, { replies: true }).toString().split('\n')[1]).toBe(
      'REPLY#7f000001#1700000002:2000#payload 2 $$',
    );
  });

  it('virgo queue import / cat / tail / export (the CLI)', async () => {
    const dir = tempDir();
    const imp = await virgo(['queue', 'import', LEGACY, '--dir', dir]);
    expect(imp.stderr).toBe('');
    expect(imp.code).toBe(0);
    expect(imp.stdout).toMatch(/^imported 35 records .* \(offsets 0-34; 6649 bytes of padding skipped\)/);
    const out = join(dir, 'exported.queue');
    const empty = join(dir, 'empty.queue');
    writeFileSync(empty, Buffer.alloc(512));
    // independent runs in parallel: each is a Node start-up
    const [tail, cat, exp, noLegacy, none, missing, bad] = await Promise.all([
      virgo(['queue', 'tail', '-n', '2', '--dir', dir]),
      virgo(['queue', 'cat', '--json', '--dir', dir]),
      virgo(['queue', 'export', '--legacy', '--pad', '--out', out, '--dir', dir]),
      virgo(['queue', 'export', '--dir', dir]),
      virgo(['queue', 'import', empty, '--dir', dir]),
      virgo(['queue', 'import', join(dir, 'nope'), '--dir', dir]),
      virgo(['queue', 'frobnicate']),
    ]);
    expect(tail.stdout.trim().split('\n')).toEqual([
      '33 REQUEST legacy-1005a5a-1492426582.21197638-33 1.0.90.90:1492426582:21197638 virgo_queueing_17April2017',
      '34 REQUEST legacy-1005a5a-1492426637.157471044-34 1.0.90.90:1492426637:157471044 virgo_queueing_2_17April2017',
    ]);
    const rows = cat.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { offset: number; payload: string });
    expect(rows).toHaveLength(35);
    expect(rows[34]).toMatchObject({ offset: 34, payload: 'virgo_queueing_2_17April2017' });
    expect(exp.code).toBe(0);
    expect(parseLegacy(readFileSync(out)).records).toEqual(await importLegacy(LEGACY));
    const log = await openSegmentLog(dir, { readOnly: true });
    expect(log.nextOffset).toBe(35);
    await log.close();
    expect(noLegacy.code).toBe(2);
    expect(noLegacy.stderr).toMatch(/--legacy/);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no REQUEST#…\$\$ records/);
    expect(missing.stderr).toMatch(/cannot read .*nope: ENOENT/);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/one of serve, cat, tail, import, export/);
  });
});
