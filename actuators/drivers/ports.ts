// The drivers' names and well-known ports (the original NeuronRain services'), in a module of
// their own so the CLI's option tables can name them without loading the drivers.

export type DriverName = 'cpupooling' | 'eventnet' | 'memorypooling' | 'cloudfs';
export const DRIVER_NAMES: readonly DriverName[] = ['cpupooling', 'eventnet', 'memorypooling', 'cloudfs'];

export const CPUPOOLING_PORT = 10000;
export const EVENTNET_PORT = 20000;
export const MEMORYPOOLING_PORT = 30000;
export const CLOUDFS_PORT = 50000;

export const DEFAULT_PORTS: Readonly<Record<DriverName, number>> = {
  cpupooling: CPUPOOLING_PORT,
  eventnet: EVENTNET_PORT,
  memorypooling: MEMORYPOOLING_PORT,
  cloudfs: CLOUDFS_PORT,
};
