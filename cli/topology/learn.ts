// Ingest and the online learners: virgo.kernel-logs (and the device topics) in, analytics out.
import { join } from 'node:path';
import type { LearnStage } from '../../learners/index.ts';
import { TIME_OPTIONS, type TimeSettings, timeFromOptions } from '../time-options.ts';
import { boundedInput, brokersArg, type PipelineStage } from './stage.ts';

export const learnStage: PipelineStage<LearnStage> = {
  name: 'learn',
  options: {
    learners: { type: 'string', arg: 'NAME,…', description: 'learners to run (default all)' },
    ...TIME_OPTIONS,
  },
  configure(flags, o) {
    if (flags.learners !== undefined) o.learners = String(flags.learners).split(',');
    o.time = timeFromOptions({
      clock: flags.clock as string | undefined,
      tdf: flags.tdf as number | undefined,
      'allowed-lateness': flags['allowed-lateness'] as number | undefined,
    });
  },
  async start(ctx) {
    const { startLearnStage } = await import('../../learners/index.ts');
    const learn = startLearnStage({
      bus: ctx.bus,
      stateDir: join(ctx.o.stateDir, 'learners'),
      // a first run (no committed offsets) learns from what was published before it started
      fromBeginning: true,
      // a file read to its end is a bounded replay: event time drives the dwell until the source
      // stage calls finish() (a final watermark)
      bounded: boundedInput(ctx.o),
      ...(ctx.o.time ? { clock: ctx.o.time.clock, order: ctx.o.time.order } : {}),
      ...(ctx.o.learners ? { learners: ctx.o.learners } : {}),
      ...(ctx.o.guarantee ? { guarantee: ctx.o.guarantee } : {}),
    });
    try {
      await learn.ready;
    } catch (err) {
      await learn.close().catch(() => {});
      throw err;
    }
    return {
      handle: learn,
      health: () => {
        const ls = learn.stats();
        return {
          ingest: ls.ingest,
          learners: {
            published: ls.published,
            backend: ls.backend,
            pins: ls.pins,
            held: ls.held,
            clock: ls.clock,
          },
        };
      },
      close: () => learn.close(),
    };
  },
  child(o) {
    return {
      args: [
        'learn',
        '--brokers',
        brokersArg(o),
        '--state-dir',
        join(o.stateDir, 'learners'),
        // a first run (no committed offsets) must read what was published before it joined
        '--from-beginning',
        ...(o.learners ? ['--learners', o.learners.join(',')] : []),
        ...(o.guarantee ? ['--guarantee', o.guarantee] : []),
        ...(o.time ? timeArgs(o.time) : []),
      ],
    };
  },
};

/** The time flags of a `virgo learn` child, where they differ from its defaults. */
function timeArgs(t: TimeSettings): string[] {
  return [
    ...(t.clock.mode !== 'auto' ? ['--clock', t.clock.mode] : []),
    ...(t.clock.tdf !== undefined ? ['--tdf', String(t.clock.tdf)] : []),
    ...(t.order.allowedLatenessMs !== 300_000
      ? ['--allowed-lateness', String(t.order.allowedLatenessMs / 1000)]
      : []),
  ];
}
