// The original KingCobra queue file: fixed 256-byte records
// `REQUEST#<hex ip>#<sec>:<nsec>#<payload> $$\n` padded with kernel stack garbage
// (/var/log/kingcobra/REQUEST_REPLY.queue). Import pulls the text records out of the padding;
// export writes our records back in that shape.
import { isUtf8 } from 'node:buffer';
import { readFile } from 'node:fs/promises';
import type { KingCobraMessage } from '../schemas/index.ts';

export const LEGACY_RECORD_BYTES = 256;

// Latin-1 keeps one character per byte, so match positions are byte positions in the file.
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is the padding records are cut from
const RECORD = /(REQUEST|REPLY)#([^#\s\x00]{1,64})#(\d{1,19}):(\d{1,10})#([^\x00\n]{0,65536}?) \$\$/g;
const START = /REQUEST#|REPLY#/g;

export interface LegacyParse {
  records: KingCobraMessage[];
  /** `REQUEST#`/`REPLY#` starts that were not a whole record (padding that looks like one) */
  skipped: number;
  /** bytes that were padding or garbage */
  paddingBytes: number;
}

/**
 * The original logged the client address after ntohl() with %x: the hex is the address in host
 * order, most significant byte first (0x7f000001 is 127.0.0.1). Anything else is kept as is.
 */
export function hexIpToAddr(hex: string): string {
  if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) return hex;
  const n = Number.parseInt(hex, 16);
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** The inverse of hexIpToAddr for IPv4 addresses; other addresses go out as is, minus `#`/spaces. */
export function addrToHexIp(addr: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(addr);
  if (m?.slice(1).every((o) => Number(o) <= 255)) {
    const n = m.slice(1).reduce((acc, o) => acc * 256 + Number(o), 0);
    return n.toString(16);
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a NUL would read as padding
  return addr.replace(/[#\s\x00]/g, '_') || '0';
}

/** Extracts the text records of an original queue file, skipping padding and garbage. */
export function parseLegacy(buf: Buffer): LegacyParse {
  const text = buf.toString('latin1');
  const records: KingCobraMessage[] = [];
  let matchedBytes = 0;
  let starts = 0;
  for (const _ of text.matchAll(START)) starts++;
  for (const m of text.matchAll(RECORD)) {
    const [whole, kind, hexIp, sec, nsec, payloadLatin1] = m as unknown as [
      string,
      'REQUEST' | 'REPLY',
      string,
      string,
      string,
      string,
    ];
    const payloadBytes = Buffer.from(payloadLatin1, 'latin1');
    const tsSec = Number(sec);
    const tsNsec = Number(nsec);
    if (!isUtf8(payloadBytes) || tsNsec >= 1e9 || !Number.isSafeInteger(tsSec)) continue;
    matchedBytes += whole.length;
    // Ids must be stable (a re-import replays to the same Kafka keys) and distinct: the original
    // wrote the same init request 33 times with one timestamp, so the record's ordinal is in it.
    records.push({
      id: `legacy-${hexIp}-${sec}.${nsec}-${records.length}`,
      kind,
      clientAddr: hexIpToAddr(hexIp),
      ts_sec: tsSec,
      ts_nsec: tsNsec,
      payload: payloadBytes.toString('utf8'),
      inReplyTo: null,
    });
  }
  return { records, skipped: starts - records.length, paddingBytes: buf.length - matchedBytes };
}

/** Reads an original queue file; see parseLegacy. */
export async function importLegacy(file: string): Promise<KingCobraMessage[]> {
  return parseLegacy(await readFile(file)).records;
}

export interface ExportOptions {
  /** pad each record with NULs to a multiple of 256 bytes, like the original's fixed records */
  pad?: boolean;
  /** write REPLY records too (the original stored requests only) */
  replies?: boolean;
}

/**
 * Our records in the original text. Lossy where the original format cannot say more: a
 * non-IPv4 client address is written as is, and line breaks or ` $$` in a payload, which would
 * end the record early, are replaced (legacyRecord says which records were altered).
 */
export function exportLegacy(records: Iterable<KingCobraMessage>, opts: ExportOptions = {}): Buffer {
  const parts: Buffer[] = [];
  for (const r of records) {
    const piece = legacyRecord(r, opts);
    if (piece) parts.push(piece.data);
  }
  return Buffer.concat(parts);
}

/** One record in the original text, or undefined when `opts` leaves it out. */
export function legacyRecord(
  r: KingCobraMessage,
  opts: ExportOptions = {},
): { data: Buffer; altered: boolean } | undefined {
  if (r.kind === 'REPLY' && !opts.replies) return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a NUL would read as padding
  const payload = r.payload.replace(/[\r\n\x00]/g, ' ').replace(/ \$\$/g, ' $ $');
  const line = Buffer.from(`${r.kind}#${addrToHexIp(r.clientAddr)}#${r.ts_sec}:${r.ts_nsec}#${payload} $$\n`);
  const data = opts.pad
    ? Buffer.concat([
        line,
        Buffer.alloc((LEGACY_RECORD_BYTES - (line.length % LEGACY_RECORD_BYTES)) % LEGACY_RECORD_BYTES),
      ])
    : line;
  return { data, altered: payload !== r.payload };
}
