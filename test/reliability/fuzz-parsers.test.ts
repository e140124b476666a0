// Hostile input, in process: property-based fuzzing (fast-check) of every parser that reads
// something from outside: log lines and Kafka values (ingest), Avro single-object messages, k=v
// lines (feeder/consumer), conf files, driver requests, virgo_cloud.conf, queue payloads and the
// original queue-file format, learner pins from Kafka. 10,000 cases per surface at least. No
// parser may throw anything but its own typed error, every reject is counted with its reason,
// and the counts must add up.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { EscapeError } from '../../actuators/drivers/data-escape.ts';
import {
  CloudConfError,
  checkRelativePath,
  DriverError,
  parseCall,
  parseCloneRequest,
  parseEventNetMessage,
  parseVirgoCloudConf,
  unescapeBytes,
} from '../../actuators/drivers/index.ts';
import { HEADERS, MemoryBus, TOPICS } from '../../bus/index.ts';
import {
  decodeValue,
  FAMILIES,
  parseLine,
  startIngestStage,
  TemplateMiner,
  toKernelEvent,
} from '../../ingest/index.ts';
import { parseConf } from '../../kernel-analytics/conf-file.ts';
import { KvLineParser } from '../../kernel-analytics/kv-parser.ts';
import { KV_REJECT_REASONS, parseKvLine } from '../../kernel-analytics/validate.ts';
import {
  checkPin,
  createLearnerHost,
  decodePinMessage,
  PinFileError,
  PinValueError,
} from '../../learners/index.ts';
import { parseLegacy } from '../../queue-bridge/index.ts';
import { checkPayload } from '../../queue-bridge/payload.ts';
import { AvroDecodeError, codecFor, RECORD_NAMES } from '../../schemas/index.ts';
import { isValidKey, isValidValue } from '../../schemas/variable.ts';
import { piecesAt } from '../helpers/pieces.ts';
import { waitFor } from '../helpers/services.ts';
import { callLines, hostileBytes, hostileText, hugeText, SEED, sample, Tally, validKey } from './lib/arb.ts';
import { Report } from './lib/summary.ts';

const N = Number(process.env.VIRGO_FUZZ_CASES ?? 10_000);
const report = new Report(import.meta.url);
const run = { numRuns: N, seed: SEED };

afterAll(() => {
  // the seed reproduces any failure: VIRGO_FUZZ_SEED=<seed> npx vitest run test/reliability
  console.log(`fuzz seed ${SEED}`);
});

function timed<T>(fn: () => T): { value: T; ms: number } {
  const t0 = performance.now();
  const value = fn();
  return { value, ms: Math.round(performance.now() - t0) };
}

describe('hostile input: parsers (fast-check, ≥10k cases each)', () => {
  it('log lines: parseLine → miner → KernelEvent → Avro never throws; the message is where it says', () => {
    const miner = new TemplateMiner();
    const codec = codecFor('KernelEvent');
    const families = new Tally();
    const line = fc.oneof(
      { weight: 4, arbitrary: hostileText(200) },
      {
        // real-looking headers with hostile bodies reach the family parsers
        weight: 4,
        arbitrary: fc
          .tuple(
            fc.constantFrom(
              'Nov 23 19:37:32 host kernel: [ 1.000000] ',
              '<4>1 2024-01-02T03:04:05Z h kernel - - - ',
              '2024-01-02T03:04:05.123+00:00 h kernel: ',
              '[ 1234.567890] ',
              '[Tue Jan  2 03:04:05 2024] ',
              '{"MESSAGE":',
              '<13>Jan  2 03:04:05 h prog[',
              '1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO ',
              '1117838570 2005.06.03 R02 2005-06-03-15.42.50.',
              '1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 ',
              'kern  :info  : ',
            ),
            fc.constantFrom(
              '[UFW BLOCK] ',
              'Out of memory: Killed process ',
              'segfault at ',
              'usb 1-1: ',
              'audit: ',
              'eth0: Link is ',
              'watchdog: ',
              '',
            ),
            hostileText(150),
          )
          .map(([h, f, b]) => h + f + b),
      },
      { weight: 1, arbitrary: hugeText(1_000, 20_000) },
    );
    const { ms } = timed(() =>
      fc.assert(
        fc.property(line, (raw) => {
          const p = parseLine(raw, { host: 'fuzz', now: 1_700_000_000_000 });
          expect(FAMILIES).toContain(p.family);
          expect(Number.isFinite(p.ts)).toBe(true);
          if (p.messageAt >= 0)
            expect(raw.slice(p.messageAt, p.messageAt + p.message.length)).toBe(p.message);
          const mined =
            p.messageAt >= 0
              ? miner.add(raw, p.messageAt, p.messageAt + p.message.length)
              : miner.add(p.message);
          codec.encode(toKernelEvent(p, mined));
          families.add(p.family);
        }),
        run,
      ),
    );
    report.fuzz({
      surface: 'log lines (ingest parseLine, miner, KernelEvent Avro)',
      via: 'parser',
      cases: N,
      crashes: 0,
      accepted: N,
      rejects: {},
      servesAfter: true,
      ms,
    });
  });

  it('Kafka log values: decodeValue says ok or why, and the ingest stage dead-letters exactly those', async () => {
    const reasons = new Tally();
    const value = fc.oneof(
      { weight: 6, arbitrary: hostileBytes(300) },
      { weight: 1, arbitrary: fc.constant(Buffer.alloc(0)) },
      { weight: 1, arbitrary: hugeText(60_000, 70_000).map((s) => Buffer.from(s)) },
    );
    const values = sample(value, N, SEED);
    let truncatedMessages = 0;
    for (const v of values) {
      const d = decodeValue(v);
      if (d.ok) {
        reasons.add('ok');
        if (d.truncated.length > 0) truncatedMessages++;
      } else {
        expect(['empty', 'binary', 'invalid-utf8']).toContain(d.reason);
        reasons.add(d.reason);
      }
    }
    // The same values through the consumer stage: stats and the dead-letter topic must agree.
    const bus = new MemoryBus({ retention: 2 * N });
    const events: number[] = [];
    const t0 = performance.now();
    const stage = await startIngestStage({
      bus,
      fromBeginning: true,
      onEvents: async (e) => {
        events.push(e.length);
      },
    });
    await stage.ready;
    for (let i = 0; i < values.length; i += 1000) {
      await bus.publish(
        TOPICS.kernelLogs,
        values.slice(i, i + 1000).map((v, j) => ({ key: `h${(i + j) % 7}`, value: v })),
      );
    }
    await waitFor(() => stage.stats().messages >= N, 'the stage to read every message', 60_000);
    // a good line afterwards still becomes an event
    const before = stage.stats().events;
    await bus.publish(TOPICS.kernelLogs, [
      { key: 'h', value: 'Nov 23 19:37:32 h kernel: [ 1.0] eth0: Link is Up' },
    ]);
    await waitFor(() => stage.stats().events > before, 'a good line after the fuzzing');
    const s = stage.stats();
    const dlq = (await bus.topicOffsets(TOPICS.kernelLogsDlq)).reduce((n, o) => n + Number(o.high), 0);
    await stage.close();
    const ms = Math.round(performance.now() - t0);
    const rejects = reasons.without('ok');
    report.fuzz({
      surface: 'Kafka log values (ingest decodeValue + consumer stage + dead-letter topic)',
      via: 'parser',
      cases: N,
      crashes: s.byReason['parse-error'] ?? 0,
      accepted: reasons.counts.ok ?? 0,
      rejects: { ...rejects, truncated: s.truncated },
      servesAfter: true,
      ms,
    });
    expect(s.messages).toBe(N + 1);
    expect(s.byReason['parse-error'] ?? 0).toBe(0);
    for (const [r, n] of Object.entries(rejects)) expect(s.byReason[r], r).toBe(n);
    expect(s.deadLettered).toBe(reasons.total - (reasons.counts.ok ?? 0));
    // every rejected message, and the original of every cut one, is on the dead-letter topic
    expect(dlq).toBe(s.deadLettered + truncatedMessages);
  }, 120_000);

  it('Avro single-object messages: random and damaged bytes give AvroDecodeError with a reason, never another error', () => {
    const rejects = new Tally();
    let accepted = 0;
    const samples: Record<string, unknown> = {
      AnalyticsVariable: {
        host: 'h',
        key: 'k',
        value: 'v',
        why: 'w',
        learner: 'l',
        model: 'm',
        confidence: 0.5,
        ts: 1,
        type: 'string',
        unit: null,
      },
      KernelEvent: {
        host: 'h',
        ts: 1,
        mono: 1.5,
        program: 'kernel',
        pid: 3,
        severity: 4,
        message: 'msg',
        family: 'ufw',
        fields: { SRC: '10.0.0.1', DPT: '22' },
        templateId: 't',
        template: 'x <*>',
        params: ['a', 'b'],
        flags: ['truncated'],
      },
      KingCobraMessage: {
        id: 'id',
        kind: 'REQUEST',
        clientAddr: '127.0.0.1',
        ts_sec: 1,
        ts_nsec: 2,
        payload: 'p',
        inReplyTo: null,
      },
      DroneSensorFrame: {
        deviceId: 'd',
        seq: 1,
        ts: 1,
        distances: [1, 2, 3],
        speed: 1,
        heading: 0,
        goalBearing: 0.5,
        goalDistance: null,
      },
      WebcamFrame: { deviceId: 'w', seq: 1, ts: 1, faceDetected: true, embedding: [0.1, 0.2] },
    };
    let ms = 0;
    for (const name of RECORD_NAMES) {
      const codec = codecFor(name as 'AnalyticsVariable');
      const good = codec.encode(samples[name] as never);
      const damaged = fc.oneof(
        hostileBytes(120),
        fc
          .tuple(
            fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
            fc.nat(),
            fc.uint8Array({ maxLength: 12 }),
          )
          .map(([flips, cut, tail]) => {
            const b = Buffer.from(good);
            // the header stays (else it is only a "not single-object"): damage the body
            for (const [at, v] of flips) b[10 + (at % (b.length - 10))] = v;
            return Buffer.concat([b.subarray(0, 10 + (cut % (b.length - 9))), tail]);
          }),
      );
      ms += timed(() =>
        fc.assert(
          fc.property(damaged, (buf) => {
            try {
              codec.decode(buf);
              accepted++;
            } catch (err) {
              if (!(err instanceof AvroDecodeError)) throw err;
              rejects.add(err.reason);
            }
          }),
          run,
        ),
      ).ms;
    }
    report.fuzz({
      surface: 'Avro single-object decode (all 5 records)',
      via: 'parser',
      cases: N * RECORD_NAMES.length,
      crashes: 0,
      accepted,
      rejects: rejects.counts,
      servesAfter: true,
      ms,
    });
    expect(rejects.total + accepted).toBe(N * RECORD_NAMES.length);
    expect(
      Object.keys(rejects.counts).every((r) =>
        ['not-single-object', 'unknown-fingerprint', 'truncated', 'corrupt'].includes(r),
      ),
    ).toBe(true);
  });

  it('k=v lines (feeder wire, ring-buffer consumer): however the bytes are cut, every line is a pair or a counted reject', () => {
    const all = new Tally();
    const kvLine = fc.oneof(
      { weight: 4, arbitrary: fc.tuple(validKey(1, 20), hostileText(60)).map(([k, v]) => `${k}=${v}`) },
      { weight: 3, arbitrary: hostileText(80) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          '',
          'KERNEL_ANALYTICS_STREAMING_START',
          '=v',
          'k=',
          'k=\r',
          'k =v',
          `${'k'.repeat(129)}=v`,
        ),
      },
      {
        weight: 1,
        arbitrary: fc.tuple(fc.constantFrom('k=', '', 'x'), hugeText(1_000, 3_000)).map(([a, b]) => a + b),
      },
    );
    const chunked = fc.tuple(
      fc.array(kvLine, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      fc.boolean(),
    );
    const { ms } = timed(() =>
      fc.assert(
        fc.property(chunked, ([lines, cuts, binary]) => {
          let bytes = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
          if (binary && bytes.length > 2)
            bytes = Buffer.concat([bytes.subarray(0, 1), Buffer.from([0xff, 0x00]), bytes.subarray(1)]);
          const whole = outcome([bytes]);
          // the same bytes in arbitrary pieces (as TCP delivers them) give the same outcome
          expect(outcome(piecesAt(bytes, cuts))).toEqual(whole);
          // every line accounted for, once ('#' lines are a feeder's notices: neither pair nor reject)
          expect(
            whole.pairs.length + whole.rejects.length + whole.blank + whole.ignored + whole.notices,
          ).toBe(bytes.toString('latin1').split('\n').length - 1);
          for (const [k, v] of whole.pairs) {
            expect(isValidKey(k) && isValidValue(v)).toBe(true);
            expect(parseKvLine(`${k}=${v}`)).toEqual({ ok: true, key: k, value: v });
          }
          if (!binary) {
            // valid text: the byte parser agrees with the line parser on what is a pair
            // (as the bytes say: a lone surrogate went out as U+FFFD)
            const agreed = lines
              .map((l) => Buffer.from(l, 'utf8').toString('utf8'))
              .flatMap((l) =>
                l === '' || l === 'KERNEL_ANALYTICS_STREAMING_START' || l.startsWith('#')
                  ? []
                  : [parseKvLine(l)],
              );
            expect(whole.pairs.length).toBe(agreed.filter((r) => r.ok).length);
          }
          for (const r of whole.rejects) all.add(r);
          all.add('pair', whole.pairs.length);
        }),
        run,
      ),
    );
    function outcome(pieces: Buffer[]) {
      const pairs: [string, string][] = [];
      const rejects: string[] = [];
      const p = new KvLineParser(
        (k, v) => pairs.push([k, v]),
        (r) => rejects.push(r),
      );
      for (const b of pieces) p.push(b);
      p.end();
      return { pairs, rejects, blank: p.blank, ignored: p.ignored, notices: p.notices };
    }
    report.fuzz({
      surface: 'k=v lines (KvLineParser, chunked like TCP)',
      via: 'parser',
      cases: N,
      crashes: 0,
      accepted: all.counts.pair ?? 0,
      rejects: all.without('pair'),
      servesAfter: true,
      ms,
    });
    expect(
      Object.keys(all.without('pair')).every((r) => (KV_REJECT_REASONS as readonly string[]).includes(r)),
    ).toBe(true);
  });

  it('conf files: parseConf reads anything, keeps only valid pairs and reports every other token', () => {
    const problems = new Tally();
    let accepted = 0;
    const text = fc.oneof(
      hostileText(300, true),
      fc
        .array(fc.tuple(validKey(0, 12), hostileText(30, true)), { maxLength: 10 })
        .map((ps) => ps.map(([k, v]) => `${k}=${v}`).join(',')),
      fc.constantFrom("a={'x', 'y'}", ',,,', '\r\n', 'k', '=v', 'k=v\nj=w', `${'x'.repeat(2000)}=1`),
    );
    const { ms } = timed(() =>
      fc.assert(
        fc.property(text, (t) => {
          const c = parseConf(t);
          for (const [k, v] of c.values)
            expect(isValidKey(k) && isValidValue(v) && !v.includes(',')).toBe(true);
          const tokens = t.split(',').filter((x) => x.replace(/^[\r\n]+|[\r\n]+$/g, '') !== '').length;
          // each non-empty token is a value (possibly overriding an earlier one) or a problem
          expect(c.problems.length).toBeLessThanOrEqual(tokens);
          expect(c.values.size + c.problems.length).toBeLessThanOrEqual(tokens);
          for (const p of c.problems) {
            expect((KV_REJECT_REASONS as readonly string[]).includes(p.reason)).toBe(true);
            expect(p.message.length).toBeGreaterThan(0);
            problems.add(p.reason);
          }
          accepted += c.values.size;
        }),
        run,
      ),
    );
    report.fuzz({
      surface: 'conf files (parseConf)',
      via: 'parser',
      cases: N,
      crashes: 0,
      accepted,
      rejects: problems.counts,
      servesAfter: true,
      ms,
    });
  });

  it('driver requests: call syntax, clone requests, eventnet messages, escapes, cloudfs paths throw only DriverError', () => {
    const rejects = new Tally();
    let accepted = 0;
    const only = (fn: () => unknown) => {
      try {
        fn();
        accepted++;
      } catch (err) {
        if (err instanceof DriverError) rejects.add(err.code);
        else if (err instanceof EscapeError) rejects.add('bad-escape');
        else throw err;
      }
    };
    const lines = callLines(
      [
        'virgo_clone',
        'virgo_clone_local',
        'virgo_cloud_open',
        'virgo_cloud_read',
        'virgo_cloud_write',
        'fib',
        'eventnet_edgemsg',
      ],
      ['constructor', '__proto__', 'eval', 'require', '/bin/sh'],
    );
    const eventnet = fc.oneof(
      hostileText(80),
      fc
        .tuple(
          fc.constantFrom('eventnet_edgemsg', 'eventnet_vertexmsg', 'eventnet_vertextmsg', 'x'),
          fc.array(hostileText(20), { maxLength: 5 }),
        )
        .map(([h, a]) => [h, ...a].join('#')),
    );
    const { ms } = timed(() =>
      fc.assert(
        fc.property(lines, eventnet, hostileText(60), (line, ev, path) => {
          const c = parseCall(line);
          if (c) expect(line.startsWith(c.name) || line.trimStart().startsWith(c.name)).toBe(true);
          only(() => parseCloneRequest(line));
          only(() => parseEventNetMessage(ev));
          only(() => unescapeBytes(line));
          only(() => {
            const rel = checkRelativePath(path.trim());
            // what passes the lexical check cannot climb out of the root
            expect(rel.startsWith('/')).toBe(false);
            expect(rel.split('/')).not.toContain('..');
          });
        }),
        run,
      ),
    );
    report.fuzz({
      surface:
        'driver requests (parseCall, parseCloneRequest, parseEventNetMessage, unescapeBytes, checkRelativePath)',
      via: 'parser',
      cases: N * 4,
      crashes: 0,
      accepted,
      rejects: rejects.counts,
      servesAfter: true,
      ms,
    });
    expect(accepted + rejects.total).toBe(N * 4);
  });

  it('virgo_cloud.conf: parseVirgoCloudConf gives nodes or a CloudConfError', () => {
    const rejects = new Tally();
    let accepted = 0;
    const text = fc.oneof(
      hostileText(200, true),
      fc
        .array(
          fc.tuple(
            fc.oneof(fc.ipV4(), fc.domain(), hostileText(15)),
            fc.option(fc.integer({ min: -5, max: 70_000 })),
          ),
          { maxLength: 6 },
        )
        .map((ns) =>
          ns
            .map(([h, p]) => (p === null ? h : `${h}:${p}`))
            .join(fc.sample(fc.constantFrom(',', '\n', ', '), 1)[0]),
        ),
    );
    const { ms } = timed(() =>
      fc.assert(
        fc.property(text, (t) => {
          try {
            const nodes = parseVirgoCloudConf(t);
            for (const n of nodes) expect(n.port >= 1 && n.port <= 65535).toBe(true);
            accepted++;
          } catch (err) {
            if (!(err instanceof CloudConfError)) throw err;
            rejects.add('cloud-conf-error');
          }
        }),
        run,
      ),
    );
    report.fuzz({
      surface: 'virgo_cloud.conf (parseVirgoCloudConf)',
      via: 'parser',
      cases: N,
      crashes: 0,
      accepted,
      rejects: rejects.counts,
      servesAfter: true,
      ms,
    });
  });

  it('queue requests and the original queue file: checkPayload and parseLegacy never throw', () => {
    const rejects = new Tally();
    let accepted = 0;
    let records = 0;
    const { ms } = timed(() =>
      fc.assert(
        fc.property(
          hostileBytes(300),
          fc.oneof(
            hostileBytes(600),
            hostileText(400, true).map((s) =>
              Buffer.from(`REQUEST#7f000001#1492406182:123#${s} $$\n`, 'latin1'),
            ),
          ),
          (payload, file) => {
            const r = checkPayload(payload, 256);
            if (r.ok) {
              expect(r.text).not.toMatch(/[\r\n\0]/);
              accepted++;
            } else rejects.add(r.error.replace(/\d+/g, 'N'));
            const l = parseLegacy(file);
            for (const m of l.records) {
              expect(['REQUEST', 'REPLY']).toContain(m.kind);
              codecFor('KingCobraMessage').encode(m);
            }
            records += l.records.length;
          },
        ),
        run,
      ),
    );
    report.fuzz({
      surface: 'queue payloads (checkPayload) and legacy queue files (parseLegacy)',
      via: 'parser',
      cases: N * 2,
      crashes: 0,
      accepted: accepted + records,
      rejects: rejects.counts,
      servesAfter: true,
      ms,
    });
  });

  it('learner pins from Kafka: decodePinMessage + checkPin refuse with PinFileError/PinValueError or a JSON SyntaxError', async () => {
    const host = await createLearnerHost({ bus: new MemoryBus(), learners: ['ufw'] });
    const rejects = new Tally();
    let accepted = 0;
    const id = fc.oneof(
      hostileText(40),
      fc
        .tuple(validKey(1, 8), fc.constantFrom('ufw.top_src_ip', 'ufw.block_rate', 'ufw.top_dst_port', 'x.y'))
        .map(([h, k]) => `${h}/${k}`),
    );
    const body = fc.oneof(
      hostileBytes(80),
      fc
        .record({
          value: fc.oneof(hostileText(30), fc.ipV4(), fc.integer().map(String)),
          ts: fc.oneof(fc.integer(), fc.constant('x')),
        })
        .map((o) => Buffer.from(JSON.stringify(o))),
    );
    const { ms } = timed(() =>
      fc.assert(
        fc.property(id, fc.option(body), (i, v) => {
          try {
            const e = decodePinMessage(i, v);
            if (e) {
              const c = checkPin(host.variables, e.host, e.key, e.value);
              expect(isValidValue(c.value)).toBe(true);
            }
            accepted++;
          } catch (err) {
            if (err instanceof PinFileError || err instanceof PinValueError || err instanceof SyntaxError)
              rejects.add(err.name);
            else throw err;
          }
        }),
        run,
      ),
    );
    await host.close();
    report.fuzz({
      surface: 'learner pins from Kafka (decodePinMessage, checkPin)',
      via: 'parser',
      cases: N,
      crashes: 0,
      accepted,
      rejects: rejects.counts,
      servesAfter: true,
      ms,
    });
    expect(HEADERS.error).toBe('virgo-error');
  });
});
