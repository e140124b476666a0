import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudFs, escapeBytes, TokenBucket, unescapeBytes } from '../../../actuators/drivers/index.ts';
import { VariableTable } from '../../../kernel-analytics/index.ts';
import { closeAfterEach } from '../../helpers/cleanup.ts';
import { LineConn } from '../../helpers/line-client.ts';
import { run, waitFor } from '../../helpers/services.ts';
import { expectRobust } from './lib/robust.ts';

let base: string;
let root: string;
let outside: string;
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'virgo-cloudfs-'));
  root = join(base, 'root');
  outside = join(base, 'outside');
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.txt'), 'top secret\n');
  writeFileSync(join(root, 'hello.txt'), 'hello cloud\nline two\n');
  symlinkSync(join(outside, 'secret.txt'), join(root, 'link-out'));
  symlinkSync(outside, join(root, 'dir-out'));
  symlinkSync('hello.txt', join(root, 'link-in'));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

const track = closeAfterEach();

async function start(
  table = new VariableTable(),
  extra: Partial<ConstructorParameters<typeof CloudFs>[0]> = {},
) {
  const s = new CloudFs({ variables: table, root, port: 0, ...extra });
  await s.start();
  track(s);
  return s;
}

describe('cloudfs :50000', () => {
  it('opens (fds from 3), reads, writes and closes inside the root', async () => {
    const s = await start();
    const c = await LineConn.open(s.port);
    expect(await c.ask('virgo_cloud_open(hello.txt)')).toBe('3');
    expect(await c.ask('virgo_cloud_open(sub/new.txt)')).toBe('4');
    expect(await c.ask('virgo_cloud_read(3,none,5,0)')).toBe('hello');
    // newlines come back escaped: one reply is one line
    expect(await c.ask('virgo_cloud_read(3,none,100,6)')).toBe('cloud\\nline two\\n');
    expect(await c.ask('virgo_cloud_read(3,none,10,1000)')).toBe('');
    // data may hold commas; escapes are decoded
    expect(await c.ask('virgo_cloud_write(4,a,b\\tc\\n\\x00\\xff,8,0)')).toBe('8');
    expect(readFileSync(join(root, 'sub/new.txt'))).toEqual(
      Buffer.concat([Buffer.from('a,b\tc\n'), Buffer.from([0, 0xff])]),
    );
    expect(await c.ask('virgo_cloud_read(4,none,64,0)')).toBe('a,b\\tc\\n\\x00\\xff');
    // count below the data length writes a prefix; pos writes in place
    expect(await c.ask('virgo_cloud_write(4,XYZ,2,1)')).toBe('2');
    expect(readFileSync(join(root, 'sub/new.txt')).subarray(0, 4).toString()).toBe('aXY\t');
    expect(await c.ask('virgo_cloud_close(3)')).toBe('ok');
    expect(await c.ask('virgo_cloud_read(3,none,5,0)')).toBe(
      'error: fd 3 is not open; virgo_cloud_open(<path>) returns one',
    );
    // the lowest free descriptor is reused, as POSIX does
    expect(await c.ask('virgo_cloud_open(./hello.txt)')).toBe('3');
    expect(await c.ask('virgo_cloud_open(link-in)')).toMatch(
      /is a symbolic link; cloudfs does not follow links/,
    );
    c.close();
    expect(s.openFiles).toBe(2);
  });

  it("descriptors belong to their connection: numbered per connection, closed with it, never another's", async () => {
    const s = await start();
    const a = await LineConn.open(s.port);
    const b = await LineConn.open(s.port);
    expect(await a.ask('virgo_cloud_open(hello.txt)')).toBe('3');
    expect(await b.ask('virgo_cloud_read(3,none,5,0)')).toBe(
      'error: fd 3 is not open; virgo_cloud_open(<path>) returns one',
    );
    // each connection numbers its own from 3, as processes do
    expect(await b.ask('virgo_cloud_open(sub/b.txt)')).toBe('3');
    expect(await a.ask('virgo_cloud_read(3,none,5,0)')).toBe('hello');
    expect(s.openFiles).toBe(2);
    a.close();
    await a.closed;
    await waitFor(() => s.openFiles === 1, "a's descriptor closed with its connection");
    b.close();
  });

  it.each([
    ['../outside/secret.txt', /contains '\.\.'; paths may not leave the cloudfs root/],
    ['sub/../../outside/secret.txt', /contains '\.\.'/],
    ['..', /contains '\.\.'/],
    ['/tmp/outside/secret.txt', /is absolute; paths are relative to the cloudfs root/],
    ['/etc/passwd', /is absolute/],
    ['link-out', /is a symbolic link; cloudfs does not follow links/],
    ['dir-out/secret.txt', /resolves outside the cloudfs root/],
    ['dir-out/new.txt', /resolves outside the cloudfs root/],
    ['nowhere/x.txt', /directory "nowhere" does not exist in the cloudfs root/],
    ['sub', /is a directory/],
    ['.', /names the root directory, not a file/],
    ['', /expected virgo_cloud_open\(<path>\)/],
  ])('refuses %j', async (path, says) => {
    const s = await start();
    const c = await LineConn.open(s.port);
    const r = await c.ask(`virgo_cloud_open(${path})`);
    expect(r).toMatch(/^error: /);
    expect(r).toMatch(says);
    c.close();
    expect(s.openFiles).toBe(0);
  });

  it('created nothing outside the root while refusing', () => {
    expect(() => readFileSync(join(outside, 'new.txt'))).toThrow(/ENOENT/);
    expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('top secret\n');
  });

  it('a FIFO does not hang the server', async () => {
    const fifo = join(root, 'pipe');
    const mk = await run('mkfifo', [fifo]);
    expect(mk.code).toBe(0);
    const s = await start();
    const c = await LineConn.open(s.port);
    expect(await c.ask('virgo_cloud_open(pipe)')).toMatch(/is not a regular file/);
    expect(await c.ask('virgo_cloud_open(hello.txt)')).toBe('3');
    c.close();
    rmSync(fifo);
  });

  it('limits open descriptors per connection and in all', async () => {
    const s = await start(new VariableTable(), { maxOpenFilesPerClient: 2, maxOpenFiles: 3 });
    const c = await LineConn.open(s.port);
    expect(await c.ask('virgo_cloud_open(hello.txt)')).toBe('3');
    expect(await c.ask('virgo_cloud_open(hello.txt)')).toBe('4');
    expect(await c.ask('virgo_cloud_open(hello.txt)')).toBe(
      'error: too many open files on this connection (2); virgo_cloud_close(<fd>) some first',
    );
    const d = await LineConn.open(s.port);
    expect(await d.ask('virgo_cloud_open(hello.txt)')).toBe('3');
    expect(await d.ask('virgo_cloud_open(hello.txt)')).toBe(
      'error: too many open files on this server (3); try again later',
    );
    c.close();
    d.close();
  });

  it('follows cloudfs.write_bytes_per_s: refuses, delays, then lets through as the variable changes', async () => {
    const table = new VariableTable();
    const s = await start(table, { maxWriteWaitMs: 1_000 });
    const c = await LineConn.open(s.port);
    const fd = await c.ask('virgo_cloud_open(sub/rate.txt)');
    const data = 'x'.repeat(2000);
    // unlimited by default
    expect(await c.ask(`virgo_cloud_write(${fd},${data},2000,0)`)).toBe('2000');
    table.set('cloudfs.write_bytes_per_s', '100');
    // 2000 bytes at 100 B/s with a 100-byte bucket: ~19 s, more than the 1 s the server will wait
    expect(await c.ask(`virgo_cloud_write(${fd},${data},2000,0)`)).toMatch(
      /^error: virgo_cloud_write: 2000 bytes would wait \d+\.\d s at cloudfs\.write_bytes_per_s=100; retry later or write less$/,
    );
    // 20 kB/s: three 2000-byte writes must take about 0.3 s between them
    table.set('cloudfs.write_bytes_per_s', '20000');
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) expect(await c.ask(`virgo_cloud_write(${fd},${data},2000,0)`)).toBe('2000');
    expect(performance.now() - t0).toBeGreaterThan(250);
    table.delete('cloudfs.write_bytes_per_s');
    const t1 = performance.now();
    for (let i = 0; i < 5; i++) expect(await c.ask(`virgo_cloud_write(${fd},${data},2000,0)`)).toBe('2000');
    // unlimited again: at 20 kB/s these 10 kB would have taken 0.5 s
    expect(performance.now() - t1).toBeLessThan(400);
    c.close();
  });

  it('answers malformed requests with an error line and keeps serving', async () => {
    const s = await start();
    await expectRobust(s.port, {
      maxLineBytes: 65_536 + 256,
      // descriptors are per connection: each checked connection opens its fd 3
      setup: ['virgo_cloud_open(hello.txt)'],
      good: { line: 'virgo_cloud_read(3,none,5,0)', reply: /^hello$/ },
      bad: [
        { line: 'cat /etc/passwd', says: /is not a request; expected one of virgo_cloud_open\(…\)/ },
        { line: 'virgo_cloud_open(../../etc/shadow)', says: /contains '\.\.'/ },
        { line: 'virgo_cloud_read(3,5,0)', says: /expected virgo_cloud_read\(<fd>,none,<count>,<pos>\)/ },
        { line: 'virgo_cloud_read(3,buf,5,0)', says: /buffer placeholder, send none/ },
        {
          line: 'virgo_cloud_read(3,none,999999999,0)',
          says: /count 999999999 is more than the limit of 65536/,
        },
        { line: 'virgo_cloud_read(x,none,1,0)', says: /fd must be a non-negative integer/ },
        {
          line: 'virgo_cloud_read(1,none,1,0)',
          says: /fd 1 is not a cloudfs descriptor \(they start at 3\)/,
        },
        { line: 'virgo_cloud_read(99,none,1,0)', says: /fd 99 is not open/ },
        { line: 'virgo_cloud_write(3,abc)', says: /expected virgo_cloud_write\(<fd>,<data>,<count>,<pos>\)/ },
        { line: 'virgo_cloud_write(3,abc,9,0)', says: /count 9 is more than the 3 bytes of data/ },
        { line: 'virgo_cloud_write(3,a\\qb,3,0)', says: /bad escape "\\\\qb" at character 1/ },
        { line: 'virgo_cloud_write(3,abc,3,9999999999999)', says: /past the 1073741824-byte file limit/ },
        { line: 'virgo_cloud_close(abc)', says: /fd must be a non-negative integer/ },
        { line: 'virgo_cloud_unlink(3)', says: /unknown command "virgo_cloud_unlink"/ },
      ],
    });
    // a read-only cloudfs refuses writes
    const ro = await start(new VariableTable(), { readOnly: true });
    const r = await LineConn.open(ro.port);
    expect(await r.ask('virgo_cloud_open(hello.txt)')).toBe('3');
    expect(await r.ask('virgo_cloud_write(3,abc,3,0)')).toBe(
      'error: virgo_cloud_write: cloudfs is read-only',
    );
    expect(await r.ask('virgo_cloud_open(brand-new.txt)')).toMatch(/does not exist/);
    r.close();
  });

  it('talks to nc', async () => {
    const s = await start();
    const r = await run(
      'nc',
      ['-N', '127.0.0.1', String(s.port)],
      'virgo_cloud_open(hello.txt)\nvirgo_cloud_read(3,none,11,0)\nvirgo_cloud_close(3)\nvirgo_cloud_open(../x)\n',
    );
    expect(r.stdout.split('\n')).toEqual([
      '3',
      'hello cloud',
      'ok',
      `error: virgo_cloud_open: "../x" contains '..'; paths may not leave the cloudfs root`,
      '',
    ]);
  });
});

describe('escapes and the token bucket', () => {
  it('escape/unescape round-trips any bytes and yields one printable line', () => {
    // plain boolean properties: vitest's deep equality on Buffers is slow for hundreds of runs
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const s = escapeBytes(bytes);
        return (
          // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters must not appear
          !/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(s) && unescapeBytes(s).equals(Buffer.from(bytes))
        );
      }),
    );
    fc.assert(
      // any text (code points, lone surrogates excluded: they have no UTF-8 form)
      fc.property(
        fc
          .array(fc.integer({ min: 0, max: 0x10ffff }), { maxLength: 60 })
          .map((cps) =>
            String.fromCodePoint(...cps.map((c) => (c >= 0xd800 && c <= 0xdfff ? c - 0x800 : c))),
          ),
        (t) => unescapeBytes(escapeBytes(Buffer.from(t))).toString() === t,
      ),
    );
    expect(escapeBytes(Buffer.from('a\\b\u2028\u0085é\n'))).toBe('a\\\\b\\xe2\\x80\\xa8\\xc2\\x85é\\n');
  });

  it('TokenBucket: bursts up to the rate, then borrows; refuses waits that are too long', () => {
    let now = 0;
    const b = new TokenBucket(1000, 2_000, () => now);
    expect(b.reserve(1000)).toEqual({ waitMs: 0 });
    expect(b.reserve(500)).toEqual({ waitMs: 500 });
    expect(b.reserve(1000)).toEqual({ waitMs: 1500 });
    expect(b.reserve(1000)).toBeUndefined(); // would be 2.5 s
    now = 1500;
    expect(b.reserve(1000)).toEqual({ waitMs: 1000 });
    b.setRate(0);
    expect(b.reserve(1e9)).toEqual({ waitMs: 0 });
    b.setRate(10);
    now += 10_000;
    expect(b.reserve(10)).toEqual({ waitMs: 0 });
  });
});
