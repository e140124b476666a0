// `virgo drivers up` as the tests start it: the chosen drivers on port 0 (each reports where it
// listens), no devices unless asked, and the variables read from a feeder nobody listens on (the
// drivers act on their defaults) unless a Redis URL is given.
import { freePort } from './ports.ts';

export interface DriversUp {
  /** --only: the drivers to start, comma-separated ('none' for devices alone) */
  only: string;
  /** --devices; none by default */
  devices?: string;
  /** --ports; by default each started driver on port 0 */
  ports?: string;
  /** read the variables from this Redis URL instead of a feeder */
  redis?: string;
  /** the remaining arguments */
  extra?: string[];
}

export async function driversUpArgs(o: DriversUp): Promise<string[]> {
  const source = o.redis !== undefined ? ['--redis', o.redis] : ['--feeder', `127.0.0.1:${await freePort()}`];
  const ports =
    o.ports ??
    (o.only === 'none'
      ? undefined
      : o.only
          .split(',')
          .map((d) => `${d}=0`)
          .join(','));
  return [
    'drivers',
    'up',
    ...source,
    '--only',
    o.only,
    '--devices',
    o.devices ?? 'none',
    ...(ports !== undefined ? ['--ports', ports] : []),
    ...(o.extra ?? []),
  ];
}
