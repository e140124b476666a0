// Splits a byte stream into `key=value` lines and validates them on the bytes. The original read
// fixed 1000-byte chunks into an uncleared buffer, so stale bytes leaked into values
// (`k1 = v1\n_ANALYTICS_STREAMING_START`); here a pair is exactly the bytes of one line.
// Hot path: no Buffer or array is allocated per line, only the key and value strings themselves.
import { isUtf8 } from 'node:buffer';
import { KEY_BYTE, MAX_KEY_BYTES, MAX_VALUE_BYTES } from '../schemas/variable.ts';
import { classifyLineBytes, type KvRejectReason, MAX_LINE_BYTES, STREAMING_START } from './validate.ts';

export type PairHandler = (key: string, value: string) => void;
export type RejectHandler = (reason: KvRejectReason, message: string) => void;

export interface KvLineParserOptions {
  /** longest line accepted, without newline and optional CR (default key 128 + '=' + value 1000) */
  maxLineBytes?: number;
  /** whole lines that are not pairs but not errors either (default: KERNEL_ANALYTICS_STREAMING_START) */
  ignore?: string[];
}

const NL = 0x0a;
const CR = 0x0d;
const EQ = 0x3d;
const C1_CONTROL = /[\u0080-\u009f]/;
const KEY_CACHE = 4096; // slots, a power of two

// Buffer#toString(enc, s, e) spends more time checking its arguments than copying 20 bytes; the
// per-encoding slicers behind it are on every Buffer (not in the typings). Fall back if absent.
interface Slicers {
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}
const proto = Buffer.prototype as unknown as Partial<Slicers>;
const fast = typeof proto.latin1Slice === 'function' && typeof proto.utf8Slice === 'function';
const latin1 = fast
  ? (b: Buffer, s: number, e: number) => (b as unknown as Slicers).latin1Slice(s, e)
  : (b: Buffer, s: number, e: number) => b.toString('latin1', s, e);
const utf8 = fast
  ? (b: Buffer, s: number, e: number) => (b as unknown as Slicers).utf8Slice(s, e)
  : (b: Buffer, s: number, e: number) => b.toString('utf8', s, e);

export class KvLineParser {
  readonly maxLineBytes: number;
  /** empty lines seen (skipped, not errors: people press Enter) */
  blank = 0;
  /** lines in the ignore list seen */
  ignored = 0;
  private readonly carry: Buffer;
  private carryLen = 0;
  /** inside an overlong line, dropping bytes up to its newline */
  private discarding = false;
  private readonly ignore: Set<string>;
  private readonly keys: (string | undefined)[] = new Array(KEY_CACHE).fill(undefined);

  constructor(
    private readonly onPair: PairHandler,
    private readonly onReject: RejectHandler,
    opts: KvLineParserOptions = {},
  ) {
    this.maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
    // room for the longest line, its CR and its newline
    this.carry = Buffer.allocUnsafe(this.maxLineBytes + 2);
    this.ignore = new Set(opts.ignore ?? [STREAMING_START]);
  }

  /** Bytes of an unfinished line held for the next chunk. */
  get buffered(): number {
    return this.carryLen;
  }

  push(chunk: Buffer): void {
    let start = 0;
    if (this.carryLen > 0 || this.discarding) {
      const nl = chunk.indexOf(NL);
      if (nl < 0) {
        this.hold(chunk, 0);
        return;
      }
      if (this.discarding) {
        this.discarding = false;
      } else if (this.carryLen + nl + 1 > this.carry.length) {
        this.carryLen = 0;
        this.overlong();
      } else {
        chunk.copy(this.carry, this.carryLen, 0, nl + 1);
        const len = this.carryLen + nl + 1;
        this.carryLen = 0;
        this.scan(this.carry, 0, len);
      }
      start = nl + 1;
    }
    const rest = this.scan(chunk, start, chunk.length);
    if (rest < chunk.length) this.hold(chunk, rest);
  }

  /** The stream ended: an unfinished line is rejected as 'partial' (it may be cut anywhere). */
  end(): void {
    if (this.carryLen > 0) {
      const n = this.carryLen;
      this.carryLen = 0;
      this.onReject('partial', `half line of ${n} bytes at disconnect (no newline); dropped`);
    }
    this.discarding = false;
  }

  private hold(chunk: Buffer, from: number): void {
    if (this.discarding) return;
    const n = chunk.length - from;
    // keep room for the newline that completes the line
    if (this.carryLen + n > this.carry.length - 1) {
      this.carryLen = 0;
      this.discarding = true;
      this.overlong();
      return;
    }
    chunk.copy(this.carry, this.carryLen, from);
    this.carryLen += n;
  }

  private overlong(): void {
    this.onReject('overlong', `line longer than ${this.maxLineBytes} bytes; dropped up to its newline`);
  }

  /**
   * Parses the complete lines of buf[from, len) in one pass over the bytes (no indexOf per line):
   * key bytes are checked and hashed, value bytes checked up to the newline. Returns where the
   * unfinished last line starts (len when there is none).
   */
  private scan(buf: Buffer, from: number, len: number): number {
    let s = from;
    while (s < len) {
      const ls = s;
      let i = s;
      let b = 0;
      while (i < len) {
        b = buf[i]!;
        if (KEY_BYTE[b] !== 1) break;
        i++;
      }
      if (i >= len) return ls;
      if (b !== EQ || i === ls || i - ls > MAX_KEY_BYTES) {
        const nl = b === NL ? i : buf.indexOf(NL, i);
        if (nl < 0) return ls;
        this.odd(buf, ls, nl);
        s = nl + 1;
        continue;
      }
      let j = i + 1;
      let control = false;
      let high = false;
      while (j < len) {
        b = buf[j]!;
        if (b === NL) break;
        if (b < 0x20 || b === 0x7f) {
          // A CR right before the newline is telnet's line end; anywhere else it is a control.
          if (b !== CR || j + 1 >= len || buf[j + 1] !== NL) control = true;
        } else if (b >= 0x80) high = true;
        j++;
      }
      if (j >= len) return ls;
      s = j + 1;
      const e = buf[j - 1] === CR && j - 1 > i ? j - 1 : j;
      if (e - ls > this.maxLineBytes) {
        this.overlong();
        continue;
      }
      if (e - i - 1 > MAX_VALUE_BYTES) {
        this.onReject('overlong', `value longer than ${MAX_VALUE_BYTES} bytes`);
        continue;
      }
      if (control) {
        this.slow(buf, ls, e);
        continue;
      }
      let value: string;
      if (high) {
        if (!isUtf8(buf.subarray(i + 1, e))) {
          this.slow(buf, ls, e);
          continue;
        }
        value = utf8(buf, i + 1, e);
        if (C1_CONTROL.test(value)) {
          this.slow(buf, ls, e);
          continue;
        }
      } else {
        value = latin1(buf, i + 1, e);
      }
      this.onPair(this.key(buf, ls, i), value);
    }
    return len;
  }

  /**
   * Keys repeat (a feeder serves a few hundred): reuse the string made for the same bytes last
   * time. One allocation less per line, and the table's Map hashes an already-hashed string.
   */
  private key(buf: Buffer, s: number, e: number): string {
    // Cheap slot choice from the length and the last bytes (where numbered keys differ); a clash
    // only costs a miss, the bytes are compared below.
    const n = e - s;
    const slot =
      (n * 0x9e37 +
        buf[e - 1]! * 0x3b1 +
        (n > 1 ? buf[e - 2]! * 0x1f : 0) +
        (n > 2 ? buf[e - 3]! : 0) +
        buf[s]! * 0x7) &
      (KEY_CACHE - 1);
    const k = this.keys[slot];
    if (k !== undefined && k.length === n) {
      let m = 0;
      while (m < n && k.charCodeAt(m) === buf[s + m]) m++;
      if (m === n) return k;
    }
    const fresh = latin1(buf, s, e);
    this.keys[slot] = fresh;
    return fresh;
  }

  /** A line [s, nl) whose key part is not `key=`: blank, ignorable, or rejected with its reason. */
  private odd(buf: Buffer, s: number, nl: number): void {
    let e = nl;
    if (e > s && buf[e - 1] === CR) e--;
    if (e === s) {
      this.blank++;
      return;
    }
    if (e - s > this.maxLineBytes) {
      this.overlong();
      return;
    }
    this.slow(buf, s, e);
  }

  /** Anything the fast path would not take: find out why, or whether it is an ignorable line. */
  private slow(buf: Buffer, s: number, e: number): void {
    if (e - s <= 64 && this.ignore.size > 0 && this.ignore.has(latin1(buf, s, e))) {
      this.ignored++;
      return;
    }
    const r = classifyLineBytes(buf, s, e);
    this.onReject(r.reason, r.message);
  }
}
