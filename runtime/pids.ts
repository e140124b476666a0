// Whether a process id names a live process, for lock files that record their holder's pid: a
// holder that died (killed, crashed) leaves its lock behind, and the next one may take it over.

/** True when `pid` is a live process (one we may not signal, EPERM, is alive too). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
