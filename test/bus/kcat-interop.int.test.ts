// Our Bus and a real third-party client (kcat, librdkafka) see the same topic.
import { describe, expect, it } from 'vitest';
import { KafkaBus } from '../../bus/index.ts';
import { codecFor } from '../../schemas/index.ts';
import { collect } from '../helpers/bus.ts';
import { kcatConsume, kcatProduce, kcatValues } from '../helpers/kcat.ts';
import { BROKERS, unique, waitFor } from '../helpers/services.ts';

describe('kcat interop (real broker)', () => {
  it('a message written by our Bus is read by kcat, keys and headers included', async () => {
    const bus = new KafkaBus({ brokers: BROKERS });
    const topic = unique('interop-out');
    await bus.ensureTopics([{ topic, partitions: 1 }]);
    await bus.publish(topic, [
      {
        key: 'edge-1',
        value: 'Dec 13 12:44:14 edge-1 kernel: [  415.5] eth0: link up',
        headers: { 'content-type': 'text/plain' },
      },
      { key: 'edge-2', value: 'second line' },
    ]);
    const r = await kcatConsume(topic, '%k|%h|%s\n');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      'edge-1|content-type=text/plain|Dec 13 12:44:14 edge-1 kernel: [  415.5] eth0: link up',
      'edge-2||second line',
    ]);
    await bus.close();
  });

  it('an Avro record from our Bus decodes from kcat raw bytes', async () => {
    const bus = new KafkaBus({ brokers: BROKERS });
    const topic = unique('interop-avro');
    await bus.ensureTopics([{ topic, partitions: 1 }]);
    const c = codecFor('AnalyticsVariable');
    const v = {
      host: 'h',
      key: 'match',
      value: 'True',
      why: 'test',
      learner: 'webcam',
      model: 'm1',
      confidence: 1,
      ts: 1,
      type: 'bool',
      unit: null,
    };
    await bus.publish(topic, [{ key: 'h/match', value: c.encode(v) }]);
    // -D '' -f %s writes the raw value bytes with no separator
    const r = await kcatValues(topic);
    expect(c.decode(r)).toEqual(v);
    await bus.close();
  });

  it('a message written by kcat -P is read by our Bus', async () => {
    const bus = new KafkaBus({ brokers: BROKERS });
    const topic = unique('interop-in');
    await bus.ensureTopics([{ topic, partitions: 1 }]);
    const lines = ['host-a:first kernel line', 'host-b:second kernel line'];
    const r = await kcatProduce(topic, `${lines.join('\n')}\n`, ['-K', ':', '-H', 'content-type=text/plain']);
    expect(r.code).toBe(0);
    const sub = await collect(bus, topic);
    const got = sub.got;
    await waitFor(() => got.length === 2, 'two kcat messages');
    expect(got.map((m) => [m.key!.toString(), m.value!.toString(), m.headers['content-type']])).toEqual([
      ['host-a', 'first kernel line', 'text/plain'],
      ['host-b', 'second kernel line', 'text/plain'],
    ]);
    await sub.close();
    await bus.close();
  });
});
