// The live screen fits the terminal: a frame is a pure function of what it shows and the size;
// every line within the width (cut with an ellipsis), never more lines than rows, control bytes of
// variables and log lines spelled out. Piped, the device loop's controls come once a second.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChangeLines, isDeviceControl } from '../../cli/change-lines.ts';
import { cells, clip, frameBytes, renderStatus, type StatusSnapshot } from '../../cli/status-view.ts';

function snapshot(over: Partial<StatusSnapshot> = {}): StatusSnapshot {
  return {
    title: 'virgo up · embedded · source demo · Ctrl-C stops',
    endpoints: {
      feeder: '127.0.0.1:64000',
      queue: '127.0.0.1:60000',
      zmq: 'tcp://127.0.0.1:60001',
      cpupooling: '127.0.0.1:10000',
      eventnet: '127.0.0.1:20000',
      memorypooling: '127.0.0.1:30000',
      cloudfs: '127.0.0.1:50000',
      dashboard: 'http://127.0.0.1:9464/',
      metrics: 'http://127.0.0.1:9464/metrics',
    },
    stages: [
      {
        label: 'logs in',
        total: 123_456,
        perSec: 180,
        detail: 'source demo · parsed 123450 · dead-lettered 6 · templates 12',
      },
      { label: 'variables', total: 333, perSec: 11, detail: 'learners on wasm · pins 1 · held by dwell 5' },
      { label: 'feeder', total: 18, detail: 'variables · 3 clients · ring 43/500' },
      { label: 'queue', total: 24, detail: 'requests · 24 replied · 0 in flight · log 48 records' },
      {
        label: 'devices',
        total: 4_200,
        perSec: 58,
        detail: 'pxrc-1 flight 3 flying 21.3s, 2 done (last landed) · uvc-1 4 actions, last unlock',
      },
    ],
    variables: Array.from({ length: 30 }, (_, i) => ({
      name: i === 0 ? `edge-1/${'very.long.key.'.repeat(8)}` : `edge-${i % 3}/ufw.block_rate.${i}`,
      value: i === 1 ? `${'値'.repeat(60)}` : i === 2 ? 'evil\x1b[2J\x07value' : String(100 + i),
      ageMs: i * 1500,
    })),
    logs: ['12:00:01 INFO learners ready', '12:00:02 WARN a \x1b]0;title\x07 log line', 'x'.repeat(300)],
    ...over,
  };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters must not reach the screen
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function expectFits(lines: string[], columns: number, rows: number): void {
  expect(lines.length).toBeLessThanOrEqual(rows);
  for (const l of lines) {
    expect(cells(l), l).toBeLessThanOrEqual(columns - 1);
    expect(l).not.toMatch(CONTROL);
  }
}

describe('the live screen', () => {
  it('fits 80×24: stages, the device loop in one row, the kernel analytics, a log tail', () => {
    const lines = renderStatus(snapshot(), { columns: 80, rows: 24 });
    expectFits(lines, 80, 24);
    expect(lines).toHaveLength(24);
    expect(lines[0]).toBe('virgo up · embedded · source demo · Ctrl-C stops');
    expect(lines[1]).toMatch(/^dashboard http:\/\/127\.0\.0\.1:9464\/ · feeder :64000 · queue :60000/);
    expect(lines.filter((l) => l.startsWith('devices'))).toHaveLength(1);
    expect(lines.find((l) => l.startsWith('queue'))).toMatch(/^queue\s+24\s+requests · 24 replied/);
    const head = lines.findIndex((l) => l.startsWith('kernel analytics'));
    expect(head).toBeGreaterThan(lines.findIndex((l) => l.startsWith('devices')));
    // long names and values are cut, not wrapped; the rows left say where the rest is
    expect(lines[head + 1]).toMatch(/^ {2}edge-1\/very\.long\.key.*… /);
    expect(lines[head + 2]).toMatch(/値…/);
    expect(lines[head + 3]).toContain('evil^[[2J^Gvalue');
    expect(lines.find((l) => /^ {2}… \d+ more on http:\/\/127\.0\.0\.1:9464\/$/.test(l))).toBeDefined();
    expect(lines.at(-1)).toMatch(/^x+…$/);
    expect(lines).toContain('12:00:02 WARN a ^[]0;title^G log line');
  });

  it('fits 120×40, showing more of each line and more variables', () => {
    const lines = renderStatus(snapshot(), { columns: 120, rows: 40 });
    expectFits(lines, 120, 40);
    const small = renderStatus(snapshot(), { columns: 80, rows: 24 });
    const vars = (ls: string[]) => ls.filter((l) => /^ {2}edge-/.test(l)).length;
    expect(vars(lines)).toBeGreaterThan(vars(small));
    expect(lines.find((l) => l.startsWith('devices'))).toContain('uvc-1 4 actions, last unlock');
  });

  it('fits any size and any text', () => {
    const text = fc.string({ unit: 'binary', maxLength: 200 });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 100 }),
        fc.array(fc.record({ name: text, value: text, ageMs: fc.nat() }), { maxLength: 60 }),
        fc.array(text, { maxLength: 5 }),
        text,
        (columns, rows, variables, logs, title) => {
          const lines = renderStatus(snapshot({ variables, logs, title }), { columns, rows });
          expect(lines.length).toBeLessThanOrEqual(rows);
          for (const l of lines) {
            expect(cells(l)).toBeLessThanOrEqual(Math.max(1, columns - 1));
            expect(l).not.toMatch(CONTROL);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('draws a frame in place: home, each line cleared then written, the rest cleared', () => {
    const bytes = frameBytes(['a', 'b']);
    expect(bytes).toBe('\x1b[H\x1b[Ka\r\n\x1b[Kb\x1b[J');
    // never the whole-screen clear that flickers
    expect(frameBytes(renderStatus(snapshot(), { columns: 80, rows: 24 }))).not.toContain('\x1b[2J');
  });

  it('cuts by terminal columns: wide characters take two, the ellipsis one', () => {
    expect(cells('値値')).toBe(4);
    expect(clip('値値値', 4)).toBe('値…');
    expect(clip('abcdef', 4)).toBe('abc…');
    expect(clip('abcd', 4)).toBe('abcd');
  });
});

describe('virgo up piped', () => {
  const deviceHosts = ['pxrc-1', 'uvc-1'];

  it('prints kernel analytics at once and sums the device controls up once a second', () => {
    const lines = new ChangeLines(deviceHosts);
    expect(lines.change('edge-1', 'ufw.block_rate', '12.5')).toBe('edge-1/ufw.block_rate=12.5');
    for (let i = 0; i < 40; i++) expect(lines.change('pxrc-1', 'pxrc.yaw', String(i / 100))).toBeUndefined();
    expect(lines.change('pxrc-1', 'pxrc.brake', '0')).toBeUndefined();
    expect(lines.change('uvc-1', 'match', 'False')).toBeUndefined();
    expect(lines.summary()).toBe(
      'devices: pxrc-1 41 changes (pxrc.brake=0 pxrc.yaw=0.39), uvc-1 1 change (match=False)',
    );
    expect(lines.summary()).toBeUndefined();
    expect(lines.change('edge-1', 'k', 'a\x1b[2Jb')).toBe('edge-1/k=a^[[2Jb');
  });

  it('--verbose prints every change', () => {
    const lines = new ChangeLines(deviceHosts, true);
    expect(lines.change('pxrc-1', 'pxrc.yaw', '0.1')).toBe('pxrc-1/pxrc.yaw=0.1');
    expect(lines.summary()).toBeUndefined();
  });

  it('knows a device control by its host or its key', () => {
    expect(isDeviceControl('drone-7', 'pxrc.throttle', deviceHosts)).toBe(true);
    expect(isDeviceControl('cam', 'webcam.identity', deviceHosts)).toBe(true);
    expect(isDeviceControl('uvc-1', 'match', deviceHosts)).toBe(true);
    expect(isDeviceControl('edge-1', 'match', deviceHosts)).toBe(false);
  });
});
