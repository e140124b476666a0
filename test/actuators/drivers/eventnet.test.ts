import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventNet, parseEventNetMessage } from '../../../actuators/drivers/index.ts';
import { closeAfterEach } from '../../helpers/cleanup.ts';
import { LineConn } from '../../helpers/line-client.ts';
import { run } from '../../helpers/services.ts';
import { expectRobust } from './lib/robust.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const track = closeAfterEach();

async function start(): Promise<EventNet> {
  const dir = mkdtempSync(join(tmpdir(), 'virgo-eventnet-'));
  dirs.push(dir);
  const s = new EventNet({ dir: join(dir, 'eventnet'), port: 0 });
  await s.start();
  track(s);
  return s;
}

describe('eventnet :20000', () => {
  it('appends edge and vertex messages to the two text files, replying ok', async () => {
    const s = await start();
    const c = await LineConn.open(s.port);
    expect(await c.ask('eventnet_edgemsg#e1#e2#')).toBe('ok');
    expect(await c.ask('eventnet_edgemsg#e2#e3')).toBe('ok');
    expect(await c.ask('eventnet_vertexmsg#e1#alice,bob#hello,hi')).toBe('ok');
    // the original's spelling
    expect(await c.ask('eventnet_vertextmsg#e2#carol#bye#')).toBe('ok');
    c.close();
    expect(readFileSync(s.edgesPath, 'utf8')).toBe('e1 - e2\ne2 - e3\n');
    expect(readFileSync(s.verticesPath, 'utf8')).toBe('e1 - alice,bob - hello,hi\ne2 - carol - bye\n');
  });

  it('keeps lines whole and in order with many clients at once', async () => {
    const s = await start();
    const clients = await Promise.all(Array.from({ length: 20 }, () => LineConn.open(s.port)));
    await Promise.all(
      clients.map(async (c, i) => {
        for (let k = 0; k < 25; k++)
          expect(await c.ask(`eventnet_edgemsg#c${i}-${k}#c${i}-${k + 1}#`)).toBe('ok');
        c.close();
      }),
    );
    const lines = readFileSync(s.edgesPath, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(500);
    for (let i = 0; i < 20; i++) {
      const mine = lines.filter((l) => l.startsWith(`c${i}-`));
      expect(mine).toEqual(Array.from({ length: 25 }, (_, k) => `c${i}-${k} - c${i}-${k + 1}`));
    }
  });

  it('answers malformed messages with an error line and keeps serving', async () => {
    const s = await start();
    await expectRobust(s.port, {
      maxLineBytes: 8192,
      good: { line: 'eventnet_edgemsg#a#b#', reply: /^ok$/ },
      bad: [
        { line: 'hello there', says: /is not an eventnet message; expected eventnet_edgemsg#<from>#<to>#/ },
        { line: 'eventnet_edgemsg#a#', says: /to is empty; expected eventnet_edgemsg#<from>#<to>#/ },
        {
          line: 'eventnet_edgemsg#a',
          says: /edge message has 1 fields; expected eventnet_edgemsg#<from>#<to>#/,
        },
        { line: 'eventnet_edgemsg#a#b#c#d', says: /edge message has 4 fields/ },
        { line: 'eventnet_edgemsg##b#', says: /from is empty/ },
        { line: 'eventnet_vertexmsg#v1#x', says: /vertex message has 2 fields/ },
        { line: 'eventnet_vertexmsg#v1#a - b#y', says: /contains " - ", the files' field separator/ },
        { line: `eventnet_edgemsg#${'x'.repeat(2000)}#b#`, says: /from is longer than 1024 characters/ },
        { line: 'eventnet_edgemsg#a\tb#c#', says: /from contains a control character/ },
      ],
    });
    // nothing malformed reached the files
    expect(
      readFileSync(s.edgesPath, 'utf8')
        .split('\n')
        .filter(Boolean)
        .every((l) => l === 'a - b'),
    ).toBe(true);
    expect(readFileSync(s.verticesPath, 'utf8')).toBe('');
  });

  it('parses messages without touching files', () => {
    expect(parseEventNetMessage('eventnet_edgemsg#x#y#')).toEqual({ kind: 'edge', from: 'x', to: 'y' });
    expect(parseEventNetMessage('eventnet_vertexmsg#v#a#b')).toEqual({
      kind: 'vertex',
      id: 'v',
      a0: 'a',
      a1: 'b',
    });
  });

  it('talks to nc', async () => {
    const s = await start();
    const r = await run('nc', ['-N', '127.0.0.1', String(s.port)], 'eventnet_edgemsg#n1#n2#\nbogus\n');
    expect(r.stdout.split('\n')[0]).toBe('ok');
    expect(r.stdout.split('\n')[1]).toMatch(/^error: "bogus" is not an eventnet message/);
    expect(readFileSync(s.edgesPath, 'utf8')).toBe('n1 - n2\n');
  });
});
