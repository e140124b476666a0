// The generic topology: the start order derived from the stages' declarations, and the
// build-then-connect lifecycle with its newest-first cleanup.
import { describe, expect, it } from 'vitest';
import { type StageNode, startOrder, startStages } from '../../runtime/topology.ts';

const names = (s: readonly StageNode[]) => s.map((x) => x.name);

describe('startOrder', () => {
  it('starts a stage after those it names, listeners before the others, else in declared order', () => {
    const order = startOrder([
      { name: 'source', after: ['learn'] },
      { name: 'learn' },
      { name: 'feeder', listens: true },
      { name: 'consumer', after: ['feeder'] },
      { name: 'queue', listens: true },
      { name: 'drivers', listens: true, after: ['feeder', 'queue'] },
    ]);
    expect(names(order)).toEqual(['feeder', 'queue', 'drivers', 'learn', 'source', 'consumer']);
  });

  it('starts what a waiting listener needs before the other non-listeners', () => {
    const order = startOrder([
      { name: 'learn' },
      { name: 'table' },
      { name: 'drivers', listens: true, after: ['table'] },
      { name: 'metrics', listens: true, after: ['*'] },
    ]);
    // metrics waits for everything, which pulls nothing forward
    expect(names(order)).toEqual(['table', 'drivers', 'learn', 'metrics']);
  });

  it("puts after: ['*'] last and ignores names that are not in this set of stages", () => {
    const order = startOrder([
      { name: 'metrics', listens: true, after: ['*'] },
      { name: 'a', after: ['not-here'] },
      { name: 'b', listens: true },
    ]);
    expect(names(order)).toEqual(['b', 'a', 'metrics']);
  });

  it('refuses a cycle and a name used twice', () => {
    expect(() =>
      startOrder([
        { name: 'a', after: ['b'] },
        { name: 'b', after: ['a'] },
      ]),
    ).toThrow(/wait for each other: a, b/);
    expect(() => startOrder([{ name: 'a' }, { name: 'a' }])).toThrow(/share a name/);
  });
});

describe('startStages', () => {
  it('builds every stage, then connects each, and closes them newest first with the shared part last', async () => {
    const events: string[] = [];
    const stage = (name: string) => ({
      connect: () => void events.push(`connect ${name}`),
      close: async () => void events.push(`close ${name}`),
    });
    const running = await startStages(
      [
        { name: 'consumer', after: ['feeder'] },
        { name: 'feeder', listens: true },
      ],
      async (s) => {
        events.push(`build ${s.name}`);
        return stage(s.name);
      },
      { closeLast: async () => void events.push('close bus') },
    );
    expect([...running.started.keys()]).toEqual(['feeder', 'consumer']);
    await running.close();
    await running.close(); // idempotent
    expect(events).toEqual([
      'build feeder',
      'build consumer',
      'connect feeder',
      'connect consumer',
      'close consumer',
      'close feeder',
      'close bus',
    ]);
  });

  it('a failing build closes what started, newest first, and throws its error', async () => {
    const closed: string[] = [];
    const err = await startStages([{ name: 'a' }, { name: 'b' }, { name: 'c' }], async (s) => {
      if (s.name === 'c') throw new Error('c cannot bind');
      return { close: async () => void closed.push(s.name) };
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('c cannot bind');
    expect(closed).toEqual(['b', 'a']);
  });
});
