// Ingest and the online learners: virgo.kernel-logs (and the device topics) in, analytics out.
import { join } from 'node:path';
import type { LearnStage } from '../../learners/index.ts';
import { brokersArg, type PipelineStage } from './stage.ts';

export const learnStage: PipelineStage<LearnStage> = {
  name: 'learn',
  options: {
    learners: { type: 'string', arg: 'NAME,…', description: 'learners to run (default all)' },
  },
  configure(flags, o) {
    if (flags.learners !== undefined) o.learners = String(flags.learners).split(',');
  },
  async start(ctx) {
    const { startLearnStage } = await import('../../learners/index.ts');
    const learn = startLearnStage({
      bus: ctx.bus,
      stateDir: join(ctx.o.stateDir, 'learners'),
      // a first run (no committed offsets) learns from what was published before it started
      fromBeginning: true,
      ...(ctx.o.learners ? { learners: ctx.o.learners } : {}),
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
          learners: { published: ls.published, backend: ls.backend, pins: ls.pins },
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
      ],
    };
  },
};
