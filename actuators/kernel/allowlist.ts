// What the kernel actuator may touch at all, whatever a policy says: the sysctls it knows (each
// with hard bounds and whether it belongs to a network namespace), and the shapes of the names it
// passes to tc, nft and ip. A policy's own allowlist must fit inside this one; the names are
// checked here before they ever reach an argument vector.

export interface SysctlSpec {
  /** hard bounds: a policy may narrow them, never widen them */
  min: number;
  max: number;
  /**
   * true when each network namespace has its own value. Only those may be set with --netns: any
   * other would change the host's value from inside the namespace.
   */
  perNetns: boolean;
  description: string;
}

/**
 * Single-integer sysctls with a known safe range. Bounds follow the kernel's own limits where
 * it has them (somaxconn is an int but the accept queue length is a u16 before 5.4-era kernels
 * widened it; 65535 stays meaningful everywhere) and otherwise a range an operator would use.
 */
export const SYSCTL_CATALOGUE: Readonly<Record<string, SysctlSpec>> = {
  'net.core.somaxconn': {
    min: 128,
    max: 65535,
    perNetns: true,
    description: 'accept queue length of a listening socket',
  },
  'net.ipv4.tcp_max_syn_backlog': {
    min: 128,
    max: 262144,
    perNetns: true,
    description: 'half-open TCP connections remembered per listener',
  },
  'net.ipv4.tcp_syncookies': {
    min: 0,
    max: 2,
    perNetns: true,
    description: 'SYN cookies: 0 off, 1 when the backlog overflows, 2 always',
  },
  'net.ipv4.tcp_fin_timeout': {
    min: 5,
    max: 120,
    perNetns: true,
    description: 'seconds an orphaned connection stays in FIN-WAIT-2',
  },
  'net.ipv4.tcp_keepalive_time': {
    min: 60,
    max: 7200,
    perNetns: true,
    description: 'seconds of idleness before TCP keepalive probes start',
  },
  'net.core.netdev_max_backlog': {
    min: 1000,
    max: 250000,
    perNetns: false,
    description:
      'packets queued on the input side when the interface receives faster than the kernel processes',
  },
  'vm.swappiness': {
    min: 0,
    max: 200,
    perNetns: false,
    description: 'how eagerly the kernel swaps anonymous memory',
  },
};

/** A network interface name as the kernel takes it: at most 15 bytes, no '/', no whitespace. */
export function isInterfaceName(s: string): boolean {
  return /^[A-Za-z0-9_.:@-]{1,15}$/.test(s) && s !== '.' && s !== '..';
}

/** A network namespace name `ip netns` accepts (a file under /run/netns). */
export function isNetnsName(s: string): boolean {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(s) && s !== '.' && s !== '..';
}

/** An nftables table or set name we create: an identifier, short enough for a suffix. */
export function isNftName(s: string): boolean {
  return /^[A-Za-z][A-Za-z0-9_]{0,28}$/.test(s);
}

/** A sysctl key: dotted words (what `sysctl` reads and /proc/sys holds). */
export function isSysctlKey(s: string): boolean {
  return /^[a-z0-9_]+(\.[a-z0-9_-]+)+$/.test(s);
}
