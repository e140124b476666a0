// The parser against test vectors taken from established syslog parsers' own test suites
// (go-syslog, syslog-ng, rsyslog, syslog_loose/Vector, fluentd, EasyPost's RFC 5424 parser,
// Logstash's grok patterns, rmesg, util-linux dmesg) and the RFCs' examples: one row per line in
// test/fixtures/syslog-conformance/conformance.jsonl, each with its source. Where the peers disagree the row carries a
// `note` and the rule ingest/README.md ("Header rules") picked.
//
// A valid row states host (null: the line names none, so the fallback host), the event time (null:
// none, so the receive time), program, pid, severity and message. An invalid row must come out
// bare: nothing taken from a header it does not have, the text after a valid PRI kept whole.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type ParsedLine, parseLine } from '../../ingest/index.ts';
import { fixture } from '../helpers/fixtures.ts';

interface Row {
  class: 'rfc3164' | 'rfc5424' | 'kernel' | 'invalid';
  in: string;
  host?: string | null;
  ts?: string | null;
  program?: string | null;
  pid?: number | null;
  severity?: number | null;
  message: string;
  source: string;
  note?: string;
}

const rows: Row[] = readFileSync(fixture('syslog-conformance/conformance.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim().length > 0)
  .map((l) => JSON.parse(l) as Row);

const FALLBACK = 'fallback.example';
// Year-less stamps take the year of `now`.
const NOW = Date.UTC(2025, 11, 31, 12);

/** What differs between the parse and the row (empty: the row passes). */
function mismatches(r: Row, p: ParsedLine): string[] {
  const out: string[] = [];
  const eq = (what: string, got: unknown, want: unknown) => {
    if (got !== want) out.push(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  };
  if (r.class === 'invalid') {
    eq('format', p.format, 'bare');
    eq('hasTime', p.hasTime, false);
    eq('host', p.host, FALLBACK);
    eq('program', p.program, null);
    eq('pid', p.pid, null);
    eq('message', p.message, r.message);
    return out;
  }
  eq('host', p.host, r.host ?? FALLBACK);
  if (r.ts === null) eq('hasTime', p.hasTime, false);
  else eq('ts', p.hasTime ? new Date(p.ts).toISOString() : 'none', r.ts);
  eq('program', p.program, r.program);
  eq('pid', p.pid, r.pid);
  eq('severity', p.severity, r.severity);
  eq('message', p.message, r.message);
  return out;
}

describe('conformance with peer parsers and the RFCs', () => {
  it(`${rows.length} vectors: every valid line read right, every invalid line bare`, () => {
    const byClass = new Map<string, { pass: number; fail: number }>();
    const failed: string[] = [];
    for (const r of rows) {
      let why: string[];
      try {
        why = mismatches(r, parseLine(r.in, { host: FALLBACK, now: NOW }));
      } catch (e) {
        why = [`threw ${(e as Error).message}`];
      }
      const c = byClass.get(r.class) ?? { pass: 0, fail: 0 };
      if (why.length === 0) c.pass++;
      else {
        c.fail++;
        failed.push(
          `${r.class} ${JSON.stringify(r.in.slice(0, 120))} (${r.source})\n    ${why.join('\n    ')}`,
        );
      }
      byClass.set(r.class, c);
    }
    const table = [...byClass]
      .map(
        ([k, c]) => `  ${k.padEnd(8)} ${String(c.pass).padStart(4)} pass ${String(c.fail).padStart(4)} fail`,
      )
      .join('\n');
    console.log(`conformance (${rows.length} vectors, test/fixtures/syslog-conformance)\n${table}`);
    if (failed.length) console.log(`failed:\n  ${failed.join('\n  ')}`);
    expect(failed).toEqual([]);
  });

  it('every row names its source', () => {
    for (const r of rows) expect(r.source.length, r.in).toBeGreaterThan(10);
    expect(rows.length).toBeGreaterThanOrEqual(150);
  });
});
