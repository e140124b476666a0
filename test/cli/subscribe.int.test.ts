import { describe, expect, it } from 'vitest';
import { KafkaBus } from '../../bus/index.ts';
import { BROKERS, run, unique } from '../helpers/services.ts';

describe('virgo subscribe', () => {
  it('ends quietly when its pipe closes (| head), as a Unix filter does', async () => {
    const bus = new KafkaBus({ brokers: BROKERS });
    const topic = unique('sub-pipe');
    await bus.ensureTopics([{ topic, partitions: 1 }]);
    await bus.publish(
      topic,
      Array.from({ length: 500 }, (_, i) => ({ value: `line ${i}` })),
    );
    // A live topic: the writer learns the pipe is closed only on its next write (as with
    // `tail -f | head`), so lines keep arriving until the command has gone (bounded).
    let live = true;
    const feeding = (async () => {
      for (let i = 0; live && i < 300; i++) {
        await bus.publish(topic, [{ value: `more ${i}` }]);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const r = await run(
      'sh',
      [
        '-c',
        `node bin/virgo.js subscribe ${topic} --brokers ${BROKERS.join(',')} --from-beginning | head -2; echo "rc=$?"`,
      ],
      undefined,
      30_000,
    );
    live = false;
    await feeding;
    await bus.close();
    expect(r.stdout.trim().split('\n')).toEqual(['line 0', 'line 1', 'rc=0']);
    expect(r.stderr).not.toMatch(/EPIPE/);
  });

  it('needs Kafka and says how to watch the embedded pipeline instead', async () => {
    const r = await run(
      process.execPath,
      ['bin/virgo.js', 'subscribe', 'virgo.kernel-analytics'],
      undefined,
      30_000,
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--brokers.*nc 127\.0\.0\.1 64000/);
  });
});
