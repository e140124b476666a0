import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../queue-bridge/crc32c.ts';
import { encodeFrame, FRAME_HEADER_BYTES } from '../../queue-bridge/frame.ts';

/** The textbook bit-at-a-time CRC-32C, to check the table-driven one against. */
function slowCrc32c(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('gives the standard check value 0xE3069283 for "123456789"', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('matches the RFC 3720 (iSCSI) test vectors', () => {
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)))).toBe(0x113fdb5c);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it('equals the bitwise definition on any input, and continues across pieces', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (bytes, cut) => {
        const whole = crc32c(bytes);
        expect(whole).toBe(slowCrc32c(bytes));
        const at = bytes.length === 0 ? 0 : cut % bytes.length;
        expect(crc32c(bytes, crc32c(bytes, 0, 0, at), at)).toBe(whole);
      }),
      { numRuns: 300 },
    );
  });

  it('frames carry the length big-endian and a CRC over length and payload', () => {
    const f = encodeFrame(Buffer.from('hello'));
    expect(f.length).toBe(FRAME_HEADER_BYTES + 5);
    expect(f.readUInt32BE(0)).toBe(5);
    const lenAndPayload = Buffer.concat([f.subarray(0, 4), f.subarray(8)]);
    expect(f.readUInt32BE(4)).toBe(crc32c(lenAndPayload));
  });
});
