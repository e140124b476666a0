// Reading a whole topic back with kcat (a third-party client, as an operator would) to count what
// came out: by key, with duplicates.
import { spawn } from 'node:child_process';

export interface RawRecord {
  key: string;
  value: Buffer;
}

/** Every record of `topic` from the beginning to its end now. Values are binary: walked by size. */
export function readTopic(brokers: string[], topic: string): Promise<RawRecord[]> {
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

/** How many records beyond the first each key has, summed. */
export function duplicatesByKey(records: { key: string }[]): { distinct: number; duplicates: number } {
  const seen = new Set<string>();
  let duplicates = 0;
  for (const r of records) {
    if (seen.has(r.key)) duplicates++;
    else seen.add(r.key);
  }
  return { distinct: seen.size, duplicates };
}
