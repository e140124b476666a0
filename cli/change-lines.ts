// `virgo up` piped: one `host/key=value` line per variable change, except the device loop's
// controls (the drone's pxrc.* many times a second, the webcam's verdicts), which would bury the
// kernel analytics: those are summed up once a second (processing time) in one line, e.g.
//   devices: pxrc-1 58 changes (pxrc.brake=0 pxrc.throttle=0.875 pxrc.yaw=-0.3), uvc-1 1 change (match=False)
// --verbose prints every change as it comes.
import { escapeControls } from './escape.ts';

/** A change of a device loop's control: a device host's variable, or a pxrc.* / webcam.* key. */
export function isDeviceControl(host: string, key: string, deviceHosts: readonly string[]): boolean {
  return deviceHosts.includes(host) || key.startsWith('pxrc.') || key.startsWith('webcam.');
}

interface DeviceChanges {
  count: number;
  /** the last value of each key this second */
  last: Map<string, string>;
}

export class ChangeLines {
  private readonly pending = new Map<string, DeviceChanges>();

  constructor(
    private readonly deviceHosts: readonly string[],
    private readonly verbose = false,
  ) {}

  /** The line to print now for this change, or undefined when it waits for the summary. */
  change(host: string, key: string, value: string): string | undefined {
    if (this.verbose || !isDeviceControl(host, key, this.deviceHosts)) {
      return escapeControls(`${host ? `${host}/` : ''}${key}=${value}`);
    }
    let d = this.pending.get(host);
    if (!d) {
      d = { count: 0, last: new Map() };
      this.pending.set(host, d);
    }
    d.count++;
    d.last.set(key, value);
    return undefined;
  }

  /** The summary of the device changes since the last call (undefined when there were none). */
  summary(): string | undefined {
    if (this.pending.size === 0) return undefined;
    const parts = [...this.pending]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([host, d]) => {
        const values = [...d.last]
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([k, v]) => `${k}=${v}`)
          .join(' ');
        return `${host || '(no host)'} ${d.count} change${d.count === 1 ? '' : 's'} (${values})`;
      });
    this.pending.clear();
    return escapeControls(`devices: ${parts.join(', ')}`);
  }
}
