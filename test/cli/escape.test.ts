// Records shown on a terminal cannot drive it: control bytes come out in cat -v notation.
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { escapeControls } from '../../cli/escape.ts';

describe('escapeControls', () => {
  it('spells control bytes as cat -v does', () => {
    const bytes = Buffer.from([0x61, 0x00, 0x1b, 0x5b, 0x32, 0x4a, 0x0d, 0x0a, 0x7f, 0x09, 0x62]);
    expect(escapeControls(bytes)).toBe('a^@^[[2J^M^J^?\tb');
    // the same bytes through the real cat -v (GNU coreutils)
    expect(execFileSync('cat', ['-v'], { input: bytes }).toString()).toBe('a^@^[[2J^M\n^?\tb');
  });

  it('shows bytes that are not UTF-8 as M-…, like cat -v, and keeps printable UTF-8', () => {
    const bytes = Buffer.concat([Buffer.from('é→'), Buffer.from([0xff, 0xc3, 0x28, 0x80, 0xe2, 0x82])]);
    expect(escapeControls(bytes)).toBe('é→M-^?M-C(M-^@M-bM-^B');
    expect(execFileSync('cat', ['-v'], { input: Buffer.from([0xff, 0x80]) }).toString()).toBe('M-^?M-^@');
    // C1 controls (a terminal takes U+009B as CSI) and bidirectional overrides
    expect(escapeControls('x\u009b2Jy\u202ez')).toBe('xM-^[2Jy<U+202E>z');
    expect(escapeControls('kernel: [UFW BLOCK] IN=eth0 SRC=203.0.113.7')).toBe(
      'kernel: [UFW BLOCK] IN=eth0 SRC=203.0.113.7',
    );
  });

  it('never lets a control byte through, whatever the input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const out = escapeControls(bytes);
        // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must not pass
        expect(out).not.toMatch(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
        // clean input is left as it is
        const clean = Buffer.from(bytes).toString('utf8');
        // biome-ignore lint/suspicious/noControlCharactersInRegex: see above
        if (!/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\ufffd]/.test(clean))
          expect(out).toBe(clean);
      }),
    );
  });
});
