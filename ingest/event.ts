// ParsedLine + mined template → the KernelEvent record the learners consume (schemas/KernelEvent);
// and one made by hand, for generated worlds, benchmarks and tests.
import type { KernelEvent } from '../schemas/index.ts';
import type { MineResult } from './miner.ts';
import type { ParsedLine } from './types.ts';

export function toKernelEvent(parsed: ParsedLine, mined: MineResult, flags: string[] = []): KernelEvent {
  return {
    host: parsed.host,
    ts: parsed.ts,
    mono: parsed.mono,
    program: parsed.program,
    // Avro int: a pid beyond 32 bits is not a pid
    pid: parsed.pid !== null && parsed.pid <= 0x7fffffff ? parsed.pid : null,
    severity: parsed.severity,
    message: parsed.message,
    family: parsed.family,
    fields: parsed.fields,
    templateId: mined.templateId,
    template: mined.template,
    params: mined.params,
    flags,
  };
}

/**
 * A KernelEvent made by hand (generated worlds, benchmarks, tests), not read from a line: a kernel
 * message with what a parser or the miner would add left empty unless `over` gives it.
 */
export function kernelEvent(
  host: string,
  ts: number,
  message: string,
  over: Partial<KernelEvent> = {},
): KernelEvent {
  return {
    host,
    ts,
    mono: null,
    program: 'kernel',
    pid: null,
    severity: null,
    message,
    family: 'other',
    fields: {},
    templateId: '',
    template: '',
    params: [],
    flags: [],
    ...over,
  };
}
