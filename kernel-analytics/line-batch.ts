// One tick's `key=value\n` (or `host/key=value\n`) lines as bytes, written once and shared by
// every client of the tick: no string per line, no per-client encoding. Hosts and keys are ASCII
// (validated), values mostly so: they are copied with a byte loop; the first non-ASCII character
// hands the rest to the UTF-8 encoder. A variable's `host/key=` bytes can be encoded once
// (`LineBatch.prefix`) and copied on every change (`addPrefixed`): the feeder's hot path.

export class LineBatch {
  private buf: Buffer;
  /** bytes used */
  length = 0;
  /** lines held */
  lines = 0;

  constructor(capacity = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  /** `key=`, or `host/key=` when a host is given, as bytes (hosts and keys are ASCII). */
  static prefix(key: string, host?: string): Uint8Array {
    const hl = host === undefined ? 0 : host.length + 1;
    const p = new Uint8Array(hl + key.length + 1);
    let o = 0;
    if (host !== undefined) {
      for (let i = 0; i < hl - 1; i++) p[o++] = host.charCodeAt(i);
      p[o++] = 0x2f;
    }
    for (let i = 0; i < key.length; i++) p[o++] = key.charCodeAt(i);
    p[o] = 0x3d;
    return p;
  }

  /** Appends `key=value`, or `host/key=value` when a host is given (hosts and keys are ASCII). */
  add(key: string, value: string, host?: string): void {
    const hl = host === undefined ? 0 : host.length + 1;
    const kl = key.length;
    // UTF-8 needs at most 3 bytes per UTF-16 unit.
    const need = hl + kl + value.length * 3 + 2;
    if (this.length + need > this.buf.length) this.grow(need);
    const b = this.buf;
    let o = this.length;
    if (host !== undefined) {
      for (let i = 0; i < hl - 1; i++) b[o++] = host.charCodeAt(i);
      b[o++] = 0x2f;
    }
    for (let i = 0; i < kl; i++) b[o++] = key.charCodeAt(i);
    b[o++] = 0x3d;
    this.finish(o, value);
  }

  /** Appends a `prefix()` (or a tail of one, e.g. the bare `key=` of a `host/key=`) and the value. */
  addPrefixed(prefix: Uint8Array, value: string): void {
    const pl = prefix.length;
    const need = pl + value.length * 3 + 1;
    if (this.length + need > this.buf.length) this.grow(need);
    const b = this.buf;
    const o = this.length;
    b.set(prefix, o);
    this.finish(o + pl, value);
  }

  /** Writes the value and the newline at `o` (room was made for them). */
  private finish(start: number, value: string): void {
    const b = this.buf;
    const vl = value.length;
    let o = start;
    let i = 0;
    for (; i < vl; i++) {
      const c = value.charCodeAt(i);
      if (c >= 0x80) break;
      b[o++] = c;
    }
    if (i < vl) o += b.write(i === 0 ? value : value.slice(i), o, 'utf8');
    b[o++] = 0x0a;
    this.length = o;
    this.lines++;
  }

  private grow(need: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + need));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  /** The bytes from `from` on. The batch must not be added to after this (the socket keeps them). */
  bytes(from = 0): Buffer {
    return this.buf.subarray(from, this.length);
  }
}
