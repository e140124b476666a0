// A network namespace of the test's own, so kernel actuation runs on a real kernel without
// touching the host: `ip netns add`, a veth pair inside (both ends up, so each has the kernel's
// default root qdisc), deleted again by close() (call it in afterAll/finally: always, also after a
// failure). Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_ADMIN inside) and iproute2 and
// nftables installed (scripts/services.sh up installs them); missing ones fail loudly, never skip.
import { execFile } from 'node:child_process';
import { unique } from './services.ts';

export interface Netns {
  readonly name: string;
  /** the veth ends inside the namespace */
  readonly dev: string;
  readonly peer: string;
  /** runs argv inside the namespace; resolves with stdout */
  exec(argv: readonly string[]): Promise<string>;
  /** runs argv on the host (for comparison) */
  host(argv: readonly string[]): Promise<string>;
  close(): Promise<void>;
}

function sh(argv: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${argv.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

export async function requireKernelTools(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'kernel actuation tests need root (CAP_SYS_ADMIN for ip netns, CAP_NET_ADMIN inside it): run them as root',
    );
  }
  for (const [tool, pkg] of [
    ['ip', 'iproute2'],
    ['tc', 'iproute2'],
    ['nft', 'nftables'],
    ['sysctl', 'procps'],
  ] as const) {
    try {
      await sh(['sh', '-c', `command -v ${tool}`]);
    } catch {
      throw new Error(`the ${tool} command is missing: bash scripts/services.sh up installs ${pkg}`);
    }
  }
}

export async function createNetns(): Promise<Netns> {
  await requireKernelTools();
  const name = unique('virgo-t');
  const dev = 'vt0';
  const peer = 'vt1';
  await sh(['ip', 'netns', 'add', name]);
  const ns = (argv: readonly string[]) => sh(['ip', 'netns', 'exec', name, ...argv]);
  const close = async () => {
    await sh(['ip', 'netns', 'del', name]).catch(() => {});
  };
  try {
    await ns(['ip', 'link', 'add', dev, 'type', 'veth', 'peer', 'name', peer]);
    await ns(['ip', 'link', 'set', dev, 'up']);
    await ns(['ip', 'link', 'set', peer, 'up']);
    await ns(['ip', 'link', 'set', 'lo', 'up']);
  } catch (err) {
    await close();
    throw err;
  }
  return { name, dev, peer, exec: ns, host: sh, close };
}

/** The root qdisc of `dev` as `tc -j qdisc show` reports it. */
export async function rootQdisc(
  n: Netns,
  dev: string,
): Promise<{ kind: string; handle: string; options?: { rate?: number } } | undefined> {
  const list = JSON.parse(await n.exec(['tc', '-j', 'qdisc', 'show', 'dev', dev])) as {
    kind: string;
    handle: string;
    root?: boolean;
    options?: { rate?: number };
  }[];
  return list.find((q) => q.root);
}

export async function sysctlValue(n: Netns, key: string): Promise<number> {
  return Number((await n.exec(['sysctl', '-n', key])).trim());
}

/** Elements of an nftables set inside the namespace; undefined when the set (or table) is absent. */
export async function nftSet(
  n: Netns,
  table: string,
  set: string,
): Promise<{ val: string; timeout?: number; expires?: number }[] | undefined> {
  let out: string;
  try {
    out = await n.exec(['nft', '-j', 'list', 'set', 'inet', table, set]);
  } catch {
    return undefined;
  }
  const doc = JSON.parse(out) as {
    nftables: {
      set?: { elem?: ({ elem: { val: string; timeout?: number; expires?: number } } | string)[] };
    }[];
  };
  const s = doc.nftables.find((x) => x.set)?.set;
  return (s?.elem ?? []).map((e) => (typeof e === 'string' ? { val: e } : e.elem));
}

export async function nftTableExists(n: Netns, table: string): Promise<boolean> {
  try {
    await n.exec(['nft', '-j', 'list', 'table', 'inet', table]);
    return true;
  } catch {
    return false;
  }
}
