// What a cpupooling worker thread runs (runtime/worker-pool.ts loads this module in each worker):
// the built-in clone functions, looked up by name in the same registry the driver validates
// against. A DriverError thrown here reaches the driver with its name, code and message.
import { defaultRegistry } from './clone-functions.ts';

const registry = defaultRegistry();
const never = new AbortController().signal;

export interface CloneTask {
  fn: string;
  args: string[];
}

export async function handle(task: CloneTask): Promise<string> {
  return String(await registry.require(task.fn).run(task.args, { signal: never }));
}
