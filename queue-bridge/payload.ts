// What a request payload may be, for the fronts that do not arrive as text lines.
import { isUtf8 } from 'node:buffer';

/** The payload as text, or why it is refused. */
export function checkPayload(
  raw: Buffer | string,
  maxBytes: number,
): { ok: true; text: string } | { ok: false; error: string } {
  const buf = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
  let end = buf.length;
  // One trailing newline is a line terminator, not content.
  if (end > 0 && buf[end - 1] === 0x0a) end--;
  if (end > 0 && buf[end - 1] === 0x0d) end--;
  const body = buf.subarray(0, end);
  if (body.length === 0) return { ok: false, error: 'empty request' };
  if (body.length > maxBytes) return { ok: false, error: `request longer than ${maxBytes} bytes` };
  if (body.includes(0) || !isUtf8(body)) {
    return { ok: false, error: 'binary data (NUL or invalid UTF-8) is not a request' };
  }
  if (body.includes(0x0a) || body.includes(0x0d)) {
    return { ok: false, error: 'a request is one line (no CR/LF inside)' };
  }
  return { ok: true, text: body.toString('utf8') };
}
