// A log source as the CLI's option parsing sees it, before anything starts (no heavy imports):
// whether it can be read, so a wrong path ends a command at once with the path in its message
// (not a pipeline that runs on with a failed source), and the linger default.
import { accessSync, constants, statSync } from 'node:fs';

/** A partial batch waits at most this long (ms, processing time) for more lines. */
export const DEFAULT_LINGER_MS = 200;

/**
 * Why `source` cannot be read, or undefined when it can (or will: with `follow` a missing file is
 * awaited, as `tail -F` does). '-' is stdin.
 */
export function sourceProblem(source: string, follow = false): string | undefined {
  if (source === '-') return undefined;
  try {
    const st = statSync(source);
    if (!st.isFile() && !st.isFIFO() && !st.isCharacterDevice())
      return `${source} is not a file (give a log file, or - for stdin)`;
    accessSync(source, constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && follow) return undefined;
    if (code === 'ENOENT') return `${source}: no such file (give an existing log file, or - for stdin)`;
    if (code === 'EACCES') return `${source}: permission denied (run as a user that can read it)`;
    return `cannot read ${source}: ${(err as Error).message}`;
  }
}
