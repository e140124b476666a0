// Strict JSON (RFC 8259) that remembers where each value came from, so a configuration checked
// after parsing (the kernel actuator's policy) can name the line of the offending entry, not only
// of a syntax error. JSON.parse gives the value but no positions; this parser gives both and is
// checked against JSON.parse by a property test. Duplicate object keys are an error here (JSON.parse
// keeps the last silently; in a policy the first would be ignored without a word).

/** A JSON pointer (RFC 6901) to a value: '' is the document, '/rules/0/name' a nested one. */
export type Pointer = string;

export interface Position {
  /** 1-based line */
  line: number;
  /** 1-based column, in UTF-16 units */
  column: number;
}

export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
  constructor(
    readonly reason: string,
    readonly position: Position,
  ) {
    super(`line ${position.line}, column ${position.column}: ${reason}`);
  }
}

export interface PositionedJson {
  value: unknown;
  /** where the value at `pointer` starts; for an object member, where its key starts */
  positions: ReadonlyMap<Pointer, Position>;
  /** the line of `pointer`, else of its nearest ancestor that has one (the document: line 1) */
  lineOf(pointer: Pointer): number;
}

export function pointerChild(parent: Pointer, token: string | number): Pointer {
  return `${parent}/${String(token).replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

export function parseJsonWithPositions(text: string): PositionedJson {
  const p = new Parser(text);
  const value = p.document();
  const positions = p.positions;
  return {
    value,
    positions,
    lineOf(pointer) {
      let ptr = pointer;
      for (;;) {
        const pos = positions.get(ptr);
        if (pos) return pos.line;
        if (ptr === '') return 1;
        ptr = ptr.slice(0, ptr.lastIndexOf('/'));
      }
    },
  };
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
// Nesting this deep is no configuration; the limit keeps a hostile file from exhausting the stack.
const MAX_DEPTH = 256;

class Parser {
  readonly positions = new Map<Pointer, Position>();
  private i = 0;
  private line = 1;
  private lineStart = 0;

  constructor(private readonly s: string) {}

  document(): unknown {
    // A byte order mark is not JSON, but editors write one; skipping it costs nothing.
    if (this.s.charCodeAt(0) === 0xfeff) {
      this.i = 1;
      this.lineStart = 1;
    }
    this.ws();
    const v = this.value('', 0);
    this.ws();
    if (this.i < this.s.length) this.fail('unexpected text after the JSON value');
    return v;
  }

  private pos(): Position {
    return { line: this.line, column: this.i - this.lineStart + 1 };
  }

  private fail(reason: string): never {
    throw new JsonSyntaxError(reason, this.pos());
  }

  private ws(): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s.charCodeAt(this.i);
      if (!WS.has(c)) break;
      this.i++;
      if (c === 0x0a) {
        this.line++;
        this.lineStart = this.i;
      }
    }
  }

  private value(ptr: Pointer, depth: number): unknown {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    if (!this.positions.has(ptr)) this.positions.set(ptr, this.pos());
    const c = this.s[this.i];
    switch (c) {
      case '{':
        return this.object(ptr, depth);
      case '[':
        return this.array(ptr, depth);
      case '"':
        return this.string();
      case 't':
        return this.word('true', true);
      case 'f':
        return this.word('false', false);
      case 'n':
        return this.word('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        this.fail(c === undefined ? 'unexpected end of input' : `unexpected ${JSON.stringify(c)}`);
    }
  }

  private word<T>(w: string, v: T): T {
    if (this.s.startsWith(w, this.i)) {
      this.i += w.length;
      return v;
    }
    this.fail(`unexpected ${JSON.stringify(this.s.slice(this.i, this.i + w.length))}`);
  }

  private number(): number {
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.s);
    if (!m) this.fail('malformed number');
    this.i += m[0].length;
    return Number(m[0]);
  }

  private string(): string {
    const s = this.s;
    this.i++; // opening quote
    let out = '';
    let from = this.i;
    for (;;) {
      if (this.i >= s.length) this.fail('unterminated string');
      const c = s.charCodeAt(this.i);
      if (c === 0x22) {
        out += s.slice(from, this.i);
        this.i++;
        return out;
      }
      if (c < 0x20) this.fail('control character in a string (escape it)');
      if (c !== 0x5c) {
        this.i++;
        continue;
      }
      out += s.slice(from, this.i);
      const e = s[this.i + 1];
      if (e === 'u') {
        const hex = s.slice(this.i + 2, this.i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('malformed \\u escape');
        out += String.fromCharCode(Number.parseInt(hex, 16));
        this.i += 6;
      } else if (e !== undefined && e in ESCAPES) {
        out += ESCAPES[e];
        this.i += 2;
      } else {
        this.fail(`unknown escape \\${e ?? ''}`);
      }
      from = this.i;
    }
  }

  private array(ptr: Pointer, depth: number): unknown[] {
    this.i++;
    const out: unknown[] = [];
    this.ws();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(pointerChild(ptr, out.length), depth + 1));
      this.ws();
      const c = this.s[this.i];
      this.i++;
      if (c === ']') return out;
      if (c !== ',') {
        this.i--;
        this.fail(`expected , or ] in an array`);
      }
    }
  }

  private object(ptr: Pointer, depth: number): Record<string, unknown> {
    this.i++;
    // A null-prototype object: a key "__proto__" is data, as with JSON.parse.
    const out = Object.create(null) as Record<string, unknown>;
    this.ws();
    if (this.s[this.i] === '}') {
      this.i++;
      return Object.setPrototypeOf(out, Object.prototype) as Record<string, unknown>;
    }
    for (;;) {
      this.ws();
      if (this.s[this.i] !== '"') this.fail('expected a "key" in an object');
      const at = this.pos();
      const key = this.string();
      if (Object.hasOwn(out, key)) {
        throw new JsonSyntaxError(`duplicate key ${JSON.stringify(key)}`, at);
      }
      const child = pointerChild(ptr, key);
      this.positions.set(child, at);
      this.ws();
      if (this.s[this.i] !== ':') this.fail('expected : after an object key');
      this.i++;
      this.ws();
      out[key] = this.value(child, depth + 1);
      this.ws();
      const c = this.s[this.i];
      this.i++;
      if (c === '}') return Object.setPrototypeOf(out, Object.prototype) as Record<string, unknown>;
      if (c !== ',') {
        this.i--;
        this.fail('expected , or } in an object');
      }
    }
  }
}
