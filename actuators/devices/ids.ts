// The device models and their default device ids (the host their variables are addressed to),
// in a module of their own so the CLI's option tables can name them without loading the models.

export const DEVICE_NAMES = ['drone', 'webcam'] as const;
export type DeviceName = (typeof DEVICE_NAMES)[number];

export const DEFAULT_DEVICE_IDS: Readonly<Record<DeviceName, string>> = { drone: 'pxrc-1', webcam: 'uvc-1' };
