import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { HEADERS, KafkaBus } from '../../../bus/index.ts';
import { BROKERS, run, unique } from '../../helpers/services.ts';

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

  it('escapes control bytes of dead letters as cat -v does, and writes them byte for byte with --raw', async () => {
    const bus = new KafkaBus({ brokers: BROKERS });
    const topic = unique('sub-dlq');
    await bus.ensureTopics([{ topic, partitions: 1 }]);
    // what the DLQ holds: the bytes as they came, NUL, an escape sequence and invalid UTF-8 included
    const line = Buffer.from([0x6b, 0x00, 0x1b, 0x5b, 0x32, 0x4a, 0x0d, 0xff, 0x21]);
    await bus.publish(topic, [{ key: 'edge-1', value: line, headers: { [HEADERS.error]: 'binary' } }]);
    await bus.close();
    const args = ['bin/virgo.js', 'subscribe', topic, '--brokers', BROKERS.join(','), '--from-beginning'];
    const text = await run(process.execPath, [...args, '--max', '1'], undefined, 30_000);
    expect(text.code).toBe(0);
    expect(text.stdout).toBe('[binary] k^@^[[2J^MM-^?!\n');
    const raw = await runBytes(process.execPath, [...args, '--max', '1', '--raw']);
    expect(raw).toEqual(Buffer.concat([Buffer.from('[binary] '), line, Buffer.from('\n')]));
  });
});

function runBytes(cmd: string, args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.on('error', reject);
    p.on('close', () => resolve(Buffer.concat(out)));
  });
}
