// Regression tests for the stage bugs this suite found (each fixed in its stage, committed apart).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CONTENT_TYPES,
  HEADERS,
  KafkaBus,
  MemoryBus,
  namespaced,
  TOPICS,
  topicSpecs,
} from '../../bus/index.ts';
import { startPipeline } from '../../cli/pipeline.ts';
import { startFeeder } from '../../kernel-analytics/feeder.ts';
import { checkPin, createLearnerHost, PinValueError } from '../../learners/index.ts';
import { LineServer } from '../../runtime/line-server.ts';
import { registry } from '../../runtime/metrics.ts';
import { AvroDecodeError, codecFor } from '../../schemas/index.ts';
import { LineConn } from '../helpers/line-client.ts';
import { freePort } from '../helpers/private-kafka.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';

const EMBEDDED = {
  feederPort: 0,
  queuePort: 0,
  zmq: false as const,
  metrics: false as const,
  drivers: [],
  devices: [],
  learners: ['ufw'],
};

describe('stage fixes found by the reliability suite', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it("startPipeline({input: 'none'}) runs without a log source (others publish) and stays healthy", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'virgo-rel-fix-'));
    cleanup.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const p = await startPipeline({ input: 'none', stateDir, ...EMBEDDED });
    cleanup.push(() => p.close());
    expect(p.source).toBe('none');
    // it used to open a file called "none" and report the source as failed
    await new Promise((r) => setImmediate(r));
    expect(p.health()).toMatchObject({ ok: true, source: 'none' });
  });

  it('a (re)started feeder serves nothing older than its topic: clients wait until it has caught up', async () => {
    // The topic holds several rounds of every variable (compaction has not run yet): a feeder that
    // served while still reading it would hand its clients old values as current.
    const ns = unique('rel-feeder-catchup');
    const bus = namespaced(new KafkaBus({ brokers: BROKERS }), ns);
    cleanup.push(() => bus.close());
    await bus.ensureTopics(topicSpecs(2).filter((t) => t.topic === TOPICS.kernelAnalytics));
    const codec = codecFor('AnalyticsVariable');
    const keys = Array.from({ length: 1500 }, (_, i) => `rel.catchup.k${i}`);
    const rounds = 4;
    for (let r = 0; r < rounds; r++) {
      await bus.publish(
        TOPICS.kernelAnalytics,
        keys.map((key) => ({
          key: `h/${key}`,
          value: codec.encode({
            host: 'h',
            key,
            value: `r${r}`,
            why: '',
            learner: 'test',
            model: 'test',
            confidence: 1,
            ts: Date.now(),
            type: 'string',
            unit: null,
          }),
          headers: { [HEADERS.contentType]: CONTENT_TYPES.avro },
        })),
      );
    }
    // One client gets in the moment the port opens (a consumer reconnecting in a loop does),
    // while the feeder is still subscribing; another connects once startFeeder resolved.
    const port = await freePort();
    const early = (async () => {
      for (;;) {
        try {
          return await LineConn.open(port);
        } catch {
          await new Promise((r) => setImmediate(r));
        }
      }
    })();
    const feeder = await startFeeder({ bus, listen: { host: '127.0.0.1', port }, snapshotDelayMs: 0 });
    cleanup.push(() => feeder.close());
    const first = await early;
    const late = await LineConn.open(feeder.port);
    for (const c of [first, late]) {
      cleanup.push(() => c.destroy());
      c.write('KERNEL_ANALYTICS_STREAMING_START\n');
    }
    for (const c of [first, late]) {
      const latest = new Map<string, string>();
      const stale: string[] = [];
      await waitFor(
        async () => {
          for (;;) {
            const l = c.lines.shift();
            if (l === undefined) break;
            const [k, v] = l.split('=') as [string, string];
            if (v !== `r${rounds - 1}`) stale.push(l);
            latest.set(k, v);
          }
          // no HOST line: the every-host view, host-qualified
          return keys.every((k) => latest.get(`h/${k}`) === `r${rounds - 1}`);
        },
        'every variable at its latest value',
        30_000,
      );
      expect(stale.slice(0, 3), c === first ? 'the early client' : 'the late client').toEqual([]);
    }
  }, 60_000);

  it('an Avro message whose array or map claims more items than it has bytes is refused, not decoded out of memory', () => {
    // zigzag varint
    const varint = (n: bigint) => {
      const out: number[] = [];
      let z = n << 1n;
      while (z >= 0x80n) {
        out.push(Number((z & 0x7fn) | 0x80n));
        z >>= 7n;
      }
      out.push(Number(z));
      return Buffer.from(out);
    };
    const drone = codecFor('DroneSensorFrame');
    const good = drone.encode({
      deviceId: 'd',
      seq: 1,
      ts: 1,
      distances: [1, 2],
      speed: 0,
      heading: 0,
      goalBearing: null,
      goalDistance: null,
    });
    // header, deviceId "d", seq, ts, then a block count of 2^28 doubles in a few bytes: avsc
    // allocated the whole array and the process died of heap exhaustion
    const bomb = Buffer.concat([good.subarray(0, 14), varint(1n << 28n)]);
    expect(() => drone.decode(bomb)).toThrow(AvroDecodeError);
    expect(() => drone.decode(bomb)).toThrow(/corrupt/);
    // a map (KernelEvent.fields) with a huge count and no bytes behind it: a CPU spin before
    const ev = codecFor('KernelEvent');
    const okEvent = ev.encode({
      host: 'h',
      ts: 1,
      mono: null,
      program: null,
      pid: null,
      severity: null,
      message: 'm',
      family: 'other',
      fields: {},
      templateId: '',
      template: '',
      params: [],
      flags: [],
    });
    const fieldsAt = okEvent.length - 4; // fields, templateId, template, params, flags: 0 0 0 0 0
    const mapBomb = Buffer.concat([okEvent.subarray(0, fieldsAt - 1), varint(1n << 40n)]);
    const t0 = performance.now();
    expect(() => ev.decode(mapBomb)).toThrow(AvroDecodeError);
    expect(performance.now() - t0).toBeLessThan(1_000);
    // well-formed messages still decode
    expect(drone.decode(good).distances).toEqual([1, 2]);
    expect(ev.decode(okEvent).message).toBe('m');
  });

  it('a pin from the pins topic is checked like one from the API: anything a producer writes there is not emitted', async () => {
    const bus = new MemoryBus();
    await bus.ensureTopics([{ topic: 'pins', partitions: 1 }]);
    const pin = (id: string, value: string) => ({ key: id, value: JSON.stringify({ value, ts: 1 }) });
    await bus.publish('pins', [
      pin('h/ufw.top_src_ip', 'a,b\u0001c'), // not an IP, a comma and a control character
      pin('a host; rm -rf/ufw.block_rate', '1'), // not a host name
      pin('h/ufw.top_dst_port', '99999999'), // out of the declared bounds
      pin('h/ufw.block_rate', '5'), // a good one
    ]);
    const rejected = async () => {
      const m = (await registry.getSingleMetric('virgo_learner_rejected_total')?.get())?.values ?? [];
      return m.find((v) => v.labels.input === 'pins' && v.labels.reason === 'malformed')?.value ?? 0;
    };
    const before = await rejected();
    const emitted: { host: string; key: string; value: string }[] = [];
    const host = await createLearnerHost({
      bus,
      learners: ['ufw'],
      pinsTopic: 'pins',
      onEmit: (v) => emitted.push(v),
    });
    cleanup.push(() => host.close());
    await host.tick();
    expect(emitted.map((v) => `${v.host}/${v.key}=${v.value}`)).toEqual(['h/ufw.block_rate=5']);
    expect((await rejected()) - before).toBe(3);
  });

  it("a learner value follows the feeder's rules: C1 controls and lone surrogates are refused at the gate", async () => {
    const host = await createLearnerHost({ bus: new MemoryBus(), learners: ['ufw'] });
    cleanup.push(() => host.close());
    // both used to pass here and then be refused by the feeder (C1) or turn into U+FFFD in Avro
    for (const bad of ['a\u0085b', '\u009b31m', 'x\udc00', '\ud800']) {
      expect(() => checkPin(host.variables, 'h', 'x.y', bad), JSON.stringify(bad)).toThrow(PinValueError);
    }
    expect(checkPin(host.variables, 'h', 'x.y', 'é 𝄞 ok').value).toBe('é 𝄞 ok');
  });

  it('a client dropped for an overlong line is counted once (overlong), not again as a partial line when it hangs up', async () => {
    const srv = new LineServer({ name: 'rel-once', port: 0, maxLineBytes: 100, onLine: () => {} });
    await srv.listen();
    cleanup.push(() => srv.close());
    const c = await LineConn.open(srv.port);
    c.write('x'.repeat(5_000)); // no newline: caught while buffering
    await c.closed;
    await waitFor(() => srv.clientCount === 0, 'the server to let go of the client');
    expect(Object.fromEntries(srv.rejects)).toEqual({ overlong: 1 });
  });
});
