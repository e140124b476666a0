// CRC-64-AVRO (the Rabin fingerprint of the Avro specification), over a schema's
// Parsing Canonical Form. Single-object encoding names a schema by this fingerprint.

const EMPTY = 0xc15d213aa4d7a795n;
const MASK64 = 0xffffffffffffffffn;

const TABLE: bigint[] = (() => {
  const table: bigint[] = [];
  for (let i = 0; i < 256; i++) {
    let fp = BigInt(i);
    for (let j = 0; j < 8; j++) {
      fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n) & MASK64);
    }
    table.push(fp);
  }
  return table;
})();

/** The 64-bit Rabin fingerprint of `data` (usually a canonical schema in UTF-8). */
export function rabin64(data: Uint8Array | string): bigint {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let fp = EMPTY;
  for (const b of bytes) {
    fp = (fp >> 8n) ^ TABLE[Number((fp ^ BigInt(b)) & 0xffn)]!;
  }
  return fp;
}

/** The fingerprint as the 8 little-endian bytes single-object encoding puts on the wire. */
export function rabin64Bytes(data: Uint8Array | string): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(rabin64(data));
  return out;
}
