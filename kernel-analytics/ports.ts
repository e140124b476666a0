/** The feeder's port, the original kernel module's (`nc 127.0.0.1 64000` reads it). */
export const FEEDER_PORT = 64000;
