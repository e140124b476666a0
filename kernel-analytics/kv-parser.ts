// Splits a byte stream into `key=value` lines and validates them on the bytes. The original read
// fixed 1000-byte chunks into an uncleared buffer, so stale bytes leaked into values
// (`k1 = v1\n_ANALYTICS_STREAMING_START`); here a pair is exactly the bytes of one line.
// Hot path: no Buffer or array is allocated per line, only the key and value strings themselves.
import { isUtf8 } from 'node:buffer';
import {
  classifyLineBytes,
  KEY_BYTE,
  type KvRejectReason,
  MAX_KEY_BYTES,
  MAX_LINE_BYTES,
  MAX_VALUE_BYTES,
  STREAMING_START,
} from './validate.ts';

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

  constructor(
    private readonly onPair: PairHandler,
    private readonly onReject: RejectHandler,
    opts: KvLineParserOptions = {},
  ) {
    this.maxLineBytes = opts.maxLineBytes ?? MAX_LINE_BYTES;
    this.carry = Buffer.allocUnsafe(this.maxLineBytes + 1);
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
      } else if (this.carryLen + nl > this.carry.length) {
        this.carryLen = 0;
        this.overlong();
      } else {
        chunk.copy(this.carry, this.carryLen, 0, nl);
        const len = this.carryLen + nl;
        this.carryLen = 0;
        this.line(this.carry, 0, len);
      }
      start = nl + 1;
    }
    for (;;) {
      const nl = chunk.indexOf(NL, start);
      if (nl < 0) break;
      this.line(chunk, start, nl);
      start = nl + 1;
    }
    if (start < chunk.length) this.hold(chunk, start);
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
    if (this.carryLen + n > this.carry.length) {
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

  private line(buf: Buffer, s: number, end: number): void {
    let e = end;
    if (e > s && buf[e - 1] === CR) e--;
    if (e === s) {
      this.blank++;
      return;
    }
    if (e - s > this.maxLineBytes) {
      this.overlong();
      return;
    }
    let i = s;
    const kmax = Math.min(e, s + MAX_KEY_BYTES);
    while (i < kmax && KEY_BYTE[buf[i]!] === 1) i++;
    if (i === s || i >= e || buf[i] !== EQ) {
      this.slow(buf, s, e);
      return;
    }
    let high = false;
    for (let j = i + 1; j < e; j++) {
      const b = buf[j]!;
      if (b < 0x20 || b === 0x7f) {
        this.slow(buf, s, e);
        return;
      }
      if (b >= 0x80) high = true;
    }
    if (e - i - 1 > MAX_VALUE_BYTES) {
      this.onReject('overlong', `value longer than ${MAX_VALUE_BYTES} bytes`);
      return;
    }
    let value: string;
    if (high) {
      if (!isUtf8(buf.subarray(i + 1, e))) {
        this.slow(buf, s, e);
        return;
      }
      value = buf.toString('utf8', i + 1, e);
      if (C1_CONTROL.test(value)) {
        this.slow(buf, s, e);
        return;
      }
    } else {
      value = buf.toString('latin1', i + 1, e);
    }
    this.onPair(buf.toString('latin1', s, i), value);
  }

  /** Anything the fast path would not take: find out why, or whether it is an ignorable line. */
  private slow(buf: Buffer, s: number, e: number): void {
    if (e - s <= 64 && this.ignore.size > 0 && this.ignore.has(buf.toString('latin1', s, e))) {
      this.ignored++;
      return;
    }
    const r = classifyLineBytes(buf, s, e);
    this.onReject(r.reason, r.message);
  }
}
