// One rejection rule for every input route: what publish-logs counts as "dead-lettered by the
// consumer" (lineRejection, per line) is exactly what the consumer stage's decodeValue rejects.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeValue, lineRejection } from '../../ingest/index.ts';

/** Lines of every kind: text, UTF-8, Latin-1, control bytes, NULs, blanks (no LF inside). */
function* cases(): Generator<Buffer> {
  yield Buffer.from('Jun 14 15:16:01 combo kernel: [ 12.5] eth0: link up');
  yield Buffer.from('caf\u00e9 \u{1f600} \u00fcber');
  yield Buffer.from('caf\xe9 latin-1', 'latin1');
  yield Buffer.from('\x1b[31mcolour\x1b[0m and a tab\tand a CR\r');
  yield Buffer.from('   \t\r');
  yield Buffer.from('\x01\x02\x03 mostly controls');
  yield Buffer.from('a\x00b');
  for (let i = 0; i < 2_000; i++) {
    const h = createHash('sha256').update(String(i)).digest();
    // mixes of printable ASCII with a few bytes of anything (often not UTF-8, sometimes controls)
    const text = Buffer.from(`line ${i} `.repeat(1 + (i % 5)));
    const noise = h.subarray(0, i % 7).filter((b) => b !== 10);
    yield i % 3 === 0 ? Buffer.concat([noise, text]) : Buffer.concat([text, noise]);
  }
}

describe('lineRejection', () => {
  it('rejects a line exactly when decodeValue does, with the same reason', () => {
    let rejected = 0;
    for (const line of cases()) {
      const d = decodeValue(line);
      const r = lineRejection(line);
      expect(r?.reason, JSON.stringify(line.toString('latin1'))).toBe(d.ok ? undefined : d.reason);
      if (r) rejected++;
    }
    // the cases cover both sides
    expect(rejected).toBeGreaterThan(100);
    expect(rejected).toBeLessThan(2_000);
  });

  it('counts characters, not bytes, for the control share of valid UTF-8', () => {
    // 2 controls in 13 characters (> 1 in 8) but in 24 bytes (< 1 in 8): binary by characters
    const line = Buffer.from('\x01\x02ééééééééé\u{1f600}');
    expect(lineRejection(line)?.reason).toBe('binary');
    expect(decodeValue(line)).toMatchObject({ ok: false, reason: 'binary' });
  });
});
