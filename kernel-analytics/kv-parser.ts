// Splits a byte stream into `key=value` lines and validates them on the bytes. The original read
// fixed 1000-byte chunks into an uncleared buffer, so stale bytes leaked into values
// (`k1 = v1\n_ANALYTICS_STREAMING_START`); here a pair is exactly the bytes of one line.
// In `qualified` mode (a feeder's every-host view) a line may be `host/key=value`: the left side is
// split at its first '/'. Lines starting with '#' are a feeder's notices, not pairs or errors.
// Hot path: nothing is allocated per line but the value string: hosts and keys come from a cache
// of the strings made for the same bytes before, compared four bytes at a time; a line of the
// same host as the line before skips that host's byte checks; short values are made without a
// call into C++.
import { isUtf8 } from 'node:buffer';
import { KEY_BYTE, MAX_HOST_BYTES, MAX_KEY_BYTES, MAX_VALUE_BYTES, SLASH } from '../schemas/variable.ts';
import {
  classifyLineBytes,
  type KvRejectReason,
  MAX_LINE_BYTES,
  MAX_QUALIFIED_LINE_BYTES,
  STREAMING_START,
} from './validate.ts';

/** One pair; `host` is set only for a qualified `host/key=value` line. */
export type PairHandler = (key: string, value: string, host: string | undefined) => void;
export type RejectHandler = (reason: KvRejectReason, message: string) => void;
export type NoticeHandler = (text: string) => void;

export interface KvLineParserOptions {
  /** longest line accepted, without newline and optional CR (default: MAX_LINE_BYTES, or MAX_QUALIFIED_LINE_BYTES) */
  maxLineBytes?: number;
  /** whole lines that are not pairs but not errors either (default: KERNEL_ANALYTICS_STREAMING_START) */
  ignore?: string[];
  /** lines may be `host/key=value`: split the left side at its first '/' (default false: it is the key) */
  qualified?: boolean;
  /** called with each '#' line (a feeder's notice); they are counted in `notices` either way */
  onNotice?: NoticeHandler;
}

const NL = 0x0a;
const CR = 0x0d;
const EQ = 0x3d;
const HASH = 0x23;
/** KEY_BYTE with '/' marked 2: the key loop finds the host/key separator without a second pass */
const KEY_CLASS = KEY_BYTE.map((v, c) => (c === SLASH ? 2 : v));
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

/**
 * An ASCII value's string. Values are mostly short (numbers, booleans, names): String.fromCharCode
 * builds those in V8's own code, 2-3x faster than a slice through the C++ binding.
 */
function ascii(b: Buffer, s: number, e: number): string {
  switch (e - s) {
    case 0:
      return '';
    case 1:
      return String.fromCharCode(b[s]!);
    case 2:
      return String.fromCharCode(b[s]!, b[s + 1]!);
    case 3:
      return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!);
    case 4:
      return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!);
    case 5:
      return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!);
    case 6:
      return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!);
    case 7:
      return String.fromCharCode(b[s]!, b[s + 1]!, b[s + 2]!, b[s + 3]!, b[s + 4]!, b[s + 5]!, b[s + 6]!);
    case 8:
      return String.fromCharCode(
        b[s]!,
        b[s + 1]!,
        b[s + 2]!,
        b[s + 3]!,
        b[s + 4]!,
        b[s + 5]!,
        b[s + 6]!,
        b[s + 7]!,
      );
    default:
      return latin1(b, s, e);
  }
}

/** A view of `b` for reading 32-bit words (comparing cached keys word by word). */
const wordsOf = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** `s`'s bytes (latin1, as the parser made it) padded to whole words. */
function wordsOfString(str: string): DataView {
  const v = new DataView(new ArrayBuffer((str.length + 3) & ~3));
  for (let i = 0; i < str.length; i++) v.setUint8(i, str.charCodeAt(i));
  return v;
}

/** True when b[s, s+n) holds the bytes of `w` (n = its string's length), compared by words. */
function sameBytes(w: DataView, b: Buffer, bw: DataView, s: number, n: number): boolean {
  let m = 0;
  for (; m + 4 <= n; m += 4) if (w.getUint32(m) !== bw.getUint32(s + m)) return false;
  for (; m < n; m++) if (w.getUint8(m) !== b[s + m]) return false;
  return true;
}

export class KvLineParser {
  readonly maxLineBytes: number;
  /** empty lines seen (skipped, not errors: people press Enter) */
  blank = 0;
  /** lines in the ignore list seen */
  ignored = 0;
  /** '#' notice lines seen */
  notices = 0;
  readonly qualified: boolean;
  /** longest left side of '=': a key, or host '/' key */
  private readonly maxLeft: number;
  private readonly onNotice: NoticeHandler | undefined;
  private readonly carry: Buffer;
  private carryLen = 0;
  /** inside an overlong line, dropping bytes up to its newline */
  private discarding = false;
  private readonly ignore: Set<string>;
  private readonly keys: (string | undefined)[] = new Array(KEY_CACHE).fill(undefined);
  /** the bytes of `keys[slot]`, as words */
  private readonly keyWords: (DataView | undefined)[] = new Array(KEY_CACHE).fill(undefined);
  /** the host of the last qualified line, and its bytes: the next line is most likely the same host's */
  private lastHost = '';
  /** the cache slot `key()` used last */
  private lastSlot = 0;
  private lastHostWords: DataView | undefined;
  private readonly carryWords: DataView;

  constructor(
    private readonly onPair: PairHandler,
    private readonly onReject: RejectHandler,
    opts: KvLineParserOptions = {},
  ) {
    this.qualified = opts.qualified ?? false;
    this.onNotice = opts.onNotice;
    this.maxLeft = this.qualified ? MAX_HOST_BYTES + 1 + MAX_KEY_BYTES : MAX_KEY_BYTES;
    this.maxLineBytes = opts.maxLineBytes ?? (this.qualified ? MAX_QUALIFIED_LINE_BYTES : MAX_LINE_BYTES);
    // room for the longest line, its CR and its newline
    this.carry = Buffer.allocUnsafe(this.maxLineBytes + 2);
    this.carryWords = wordsOf(this.carry);
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
    const words = buf === this.carry ? this.carryWords : wordsOf(buf);
    let s = from;
    while (s < len) {
      const ls = s;
      let i = s;
      let b = 0;
      // the first '/' of the left side, found in the same pass (KEY_CLASS: 0 other, 1 key byte, 2 '/')
      let sl = -1;
      // The same host as the line before: its bytes were checked then, only the key's are left.
      // Its length is read per line: a line of another host changes it mid-chunk, and a length
      // kept from before would match a prefix (edge-1's line filed under edge-10 after an edge-10
      // line) or read past the shorter host's bytes.
      const hl = this.lastHost.length;
      let host: string | undefined;
      if (
        hl > 0 &&
        ls + hl < len &&
        buf[ls + hl] === SLASH &&
        sameBytes(this.lastHostWords!, buf, words, ls, hl)
      ) {
        host = this.lastHost;
        sl = ls + hl;
        i = sl + 1;
      }
      while (i < len) {
        b = buf[i]!;
        const k = KEY_CLASS[b]!;
        if (k === 0) break;
        if (k === 2 && sl < 0) sl = i;
        i++;
      }
      if (i >= len) return ls;
      if (b !== EQ || i === ls || i - ls > this.maxLeft) {
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
        value = ascii(buf, i + 1, e);
      }
      if (this.qualified) {
        if (sl >= 0) {
          // host/key: a host of 1..128 bytes (no '/' by construction), a key of 1..128 bytes
          if (sl === ls || sl - ls > MAX_HOST_BYTES || sl + 1 === i || i - sl - 1 > MAX_KEY_BYTES) {
            this.slow(buf, ls, e);
            continue;
          }
          if (host === undefined) {
            host = this.key(buf, words, ls, sl);
            this.lastHost = host;
            this.lastHostWords = this.keyWords[this.lastSlot];
          }
          this.onPair(this.key(buf, words, sl + 1, i), value, host);
          continue;
        }
        if (i - ls > MAX_KEY_BYTES) {
          this.slow(buf, ls, e);
          continue;
        }
      }
      this.onPair(this.key(buf, words, ls, i), value, undefined);
    }
    return len;
  }

  /**
   * Keys (and hosts) repeat (a feeder serves a few hundred): reuse the string made for the same
   * bytes last time. One allocation less per line, and the table's Map hashes an already-hashed string.
   */
  private key(buf: Buffer, words: DataView, s: number, e: number): string {
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
    this.lastSlot = slot;
    const k = this.keys[slot];
    if (k !== undefined && k.length === n && sameBytes(this.keyWords[slot]!, buf, words, s, n)) return k;
    const fresh = latin1(buf, s, e);
    this.keys[slot] = fresh;
    this.keyWords[slot] = wordsOfString(fresh);
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
    if (buf[s] === HASH) {
      this.notices++;
      if (this.onNotice) this.onNotice(buf.toString('utf8', s, e));
      return;
    }
    if (e - s <= 64 && this.ignore.size > 0 && this.ignore.has(latin1(buf, s, e))) {
      this.ignored++;
      return;
    }
    const r = classifyLineBytes(buf, s, e, this.qualified);
    this.onReject(r.reason, r.message);
  }
}
