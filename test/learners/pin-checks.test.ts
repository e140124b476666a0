// Pins are checked like the learners' own values: a pin read from the pins topic (anything a
// producer writes there) and a value refused by the feeder's rules are never emitted.
// Regressions the reliability suite found (test/reliability).
import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../../bus/index.ts';
import { checkPin, createLearnerHost, PinValueError } from '../../learners/index.ts';
import { registry } from '../../runtime/metrics.ts';
import { cleanupAfterEach } from '../helpers/cleanup.ts';

describe('pin checks', () => {
  const cleanup = cleanupAfterEach();

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
});
