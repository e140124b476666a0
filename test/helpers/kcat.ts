// kcat (librdkafka): the third-party client the tests read and write the real broker with, as an
// operator would. One place for its flags, so each test says only what it reads or writes.
import { execFile, spawn } from 'node:child_process';
import { BROKERS, type Ran, run } from './services.ts';

export interface KcatRead {
  /** where to start (default: the beginning) */
  offset?: string;
  partition?: number;
  /** stop after this many records */
  count?: number;
  /** stop at the topic's end as it is now (default); false: wait for `count` records */
  untilEnd?: boolean;
}

function consumeArgs(topic: string, format: string, o: KcatRead): string[] {
  return [
    '-C',
    '-b',
    BROKERS.join(','),
    '-t',
    topic,
    ...(o.partition !== undefined ? ['-p', String(o.partition)] : []),
    '-o',
    o.offset ?? 'beginning',
    ...(o.count !== undefined ? ['-c', String(o.count)] : []),
    ...(o.untilEnd === false ? [] : ['-e']),
    '-q',
    '-f',
    format,
  ];
}

/** `kcat -C`: one `format` line per record of `topic` (kcat's %k, %s, %h, %p, %o …). */
export function kcatConsume(topic: string, format: string, o: KcatRead = {}): Promise<Ran> {
  return run('kcat', consumeArgs(topic, format, o));
}

/** The raw value bytes of the records read (`-f %s`, nothing between them): one record's, with `count: 1`. */
export function kcatValues(topic: string, o: KcatRead = {}): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    execFile('kcat', consumeArgs(topic, '%s', o), { encoding: 'buffer' }, (err, out) =>
      err ? reject(err) : resolve(out),
    ),
  );
}

/** `kcat -P`: `input` into `topic`, a record a line; `flags` adds the key delimiter (-K), headers (-H), -z … */
export function kcatProduce(topic: string, input: string | Buffer, flags: string[] = []): Promise<Ran> {
  return run('kcat', ['-P', '-b', BROKERS.join(','), '-t', topic, ...flags], input);
}

/** `kcat -P -l FILE`: the file's lines into `topic`, a record a line. */
export function kcatProduceFile(topic: string, file: string, flags: string[] = []): Promise<Ran> {
  return run('kcat', ['-P', '-b', BROKERS.join(','), '-t', topic, ...flags, '-l', file]);
}

export interface RawRecord {
  key: string;
  value: Buffer;
}

/** Every record of `topic` from the beginning to its end now, binary values whole (walked by size). */
export function kcatRecords(topic: string, brokers: string[] = BROKERS): Promise<RawRecord[]> {
  return new Promise((resolve, reject) => {
    // "%K %S %k%s": key size, value size, then the raw key and value bytes
    const c = spawn(
      'kcat',
      ['-C', '-b', brokers.join(','), '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%K %S %k%s'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const chunks: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (d: Buffer) => chunks.push(d));
    c.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    c.on('error', reject);
    c.on('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`kcat -C ${topic} exited ${code}: ${err}`));
        return;
      }
      const buf = Buffer.concat(chunks);
      const out: RawRecord[] = [];
      let pos = 0;
      while (pos < buf.length) {
        const sp1 = buf.indexOf(0x20, pos);
        const sp2 = buf.indexOf(0x20, sp1 + 1);
        const klen = Math.max(0, Number(buf.subarray(pos, sp1).toString()));
        const vlen = Math.max(0, Number(buf.subarray(sp1 + 1, sp2).toString()));
        const k = buf.subarray(sp2 + 1, sp2 + 1 + klen).toString();
        const v = buf.subarray(sp2 + 1 + klen, sp2 + 1 + klen + vlen);
        out.push({ key: k, value: v });
        pos = sp2 + 1 + klen + vlen;
      }
      resolve(out);
    });
  });
}
