// Bad input on a driver port: every bad line gets a clear error line and the service keeps
// serving (the same client for a bad request, a new client after an overlong or binary line).
import { expect } from 'vitest';
import { LineConn } from '../../../helpers/line-client.ts';

export interface RobustCase {
  line: string;
  /** what the error line must say */
  says: RegExp;
}

export async function expectRobust(
  port: number,
  opts: {
    bad: RobustCase[];
    good: { line: string; reply: RegExp };
    maxLineBytes: number;
    /** sent first on each connection whose requests are checked (state that is per connection) */
    setup?: string[];
  },
): Promise<void> {
  const connect = async () => {
    const t = await LineConn.open(port);
    for (const l of opts.setup ?? []) expect(await t.ask(l), `setup ${l}`).not.toMatch(/^error: /);
    return t;
  };
  const c = await connect();
  for (const b of opts.bad) {
    const r = await c.ask(b.line);
    expect(r, `reply to ${JSON.stringify(b.line.slice(0, 60))}`).toMatch(/^error: /);
    expect(r).toMatch(b.says);
    // same connection still served
    expect(await c.ask(opts.good.line)).toMatch(opts.good.reply);
  }
  // an overlong line: an error line, then that client (only) is closed
  c.write(`${'x'.repeat(opts.maxLineBytes + 10)}\n`);
  expect(await c.next()).toMatch(/^error: line longer than \d+ bytes/);
  expect(await c.next()).toBeUndefined();
  await c.closed;
  // binary
  const b = await LineConn.open(port);
  b.write(Buffer.from([0x66, 0x00, 0xff, 0xfe, 0x0a]));
  expect(await b.next()).toMatch(/^error: binary data/);
  await b.closed;
  // the service is still up for everyone else
  const d = await connect();
  expect(await d.ask(opts.good.line)).toMatch(opts.good.reply);
  d.close();
}
