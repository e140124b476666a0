// `virgo up` on a real terminal: tmux (a private server) gives it an 80×24 pseudo-terminal; the
// screen it draws fits (no line wraps, nothing scrolls off: each frame is redrawn in place), keeps
// fitting when the terminal grows to 120×40, and Ctrl-C stops the pipeline cleanly.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testScope } from '../../helpers/scope.ts';
import { unique, waitFor } from '../../helpers/services.ts';

const { tempDir, cleanup } = testScope();
const REPO = new URL('../../../', import.meta.url).pathname;
const SOCKET = unique('virgo-screen');

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', SOCKET, '-f', '/dev/null', ...args], { encoding: 'utf8' });
}

function pane(joinWrapped = false): string[] {
  const text = tmux('capture-pane', '-p', ...(joinWrapped ? ['-J'] : []), '-t', 'up');
  return text.replace(/\n$/, '').split('\n');
}

function expectFits(columns: number, rows: number): string[] {
  const lines = pane();
  expect(lines.length).toBe(rows);
  for (const l of lines) expect([...l].length, l).toBeLessThanOrEqual(columns);
  // a wrapped line is one line joined: as many lines as without joining means nothing wrapped
  expect(pane(true).length).toBe(rows);
  // redrawn in place: nothing has scrolled into the history
  expect(tmux('display-message', '-p', '-t', 'up', '#{history_size}').trim()).toBe('0');
  return lines;
}

describe('virgo up on a terminal', () => {
  it('fits 80×24 and 120×40, redraws in place, and stops on Ctrl-C', async () => {
    const stateDir = tempDir('screen');
    cleanup.push(() => tmux('kill-server'));
    const cmd = `cd '${REPO}' && exec '${process.execPath}' bin/virgo.js up --input demo --any-ports --drivers none --state-dir '${stateDir}'`;
    tmux('new-session', '-d', '-s', 'up', '-x', '80', '-y', '24', cmd);
    // the demo's kernel analytics reach the screen
    await waitFor(
      () => pane().some((l) => /^ {2}edge-\d\/ufw\./.test(l)),
      'kernel analytics on screen',
      90_000,
      250,
    );
    const small = expectFits(80, 24);
    expect(small[0]).toBe('virgo up · embedded · source demo · Ctrl-C stops');
    expect(small.filter((l) => l.startsWith('devices'))).toHaveLength(1);
    expect(small.some((l) => /^queue\s+\d+\s+requests/.test(l))).toBe(true);
    // the device loop's controls are in that one row, not among the analytics
    expect(small.some((l) => /^ {2}(pxrc|uvc)-1\//.test(l))).toBe(false);

    tmux('resize-window', '-t', 'up', '-x', '120', '-y', '40');
    // the next frame uses the new width: lines cut at 79 columns before are longer now
    await waitFor(
      () => pane().length === 40 && pane().some((l) => [...l].length > 80),
      'a frame at 120×40',
      10_000,
      250,
    );
    const big = expectFits(120, 40);
    expect(big.some((l) => l.startsWith('kernel analytics'))).toBe(true);

    tmux('send-keys', '-t', 'up', 'C-c');
    await waitFor(
      () => {
        try {
          tmux('has-session', '-t', 'up');
          return false;
        } catch {
          return true;
        }
      },
      'virgo up to exit on Ctrl-C',
      60_000,
      250,
    );
    // a clean stop: the learners' state was saved on the way out
    expect(existsSync(join(stateDir, 'learners', 'learners', 'CURRENT'))).toBe(true);
  });
});
