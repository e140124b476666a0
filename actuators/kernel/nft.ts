// Bans that expire, with nftables: the actuator owns one table (family inet) holding, per ban rule,
// a set of IPv4 and a set of IPv6 addresses with timeouts and an input-hook chain that drops their
// traffic. Everything goes through libnftables' JSON (`nft -j`): the command is one JSON document
// in one argv word, built with JSON.stringify from an address node:net's isIP accepted, so no value
// can become nft syntax. Rollback deletes the whole table, which removes every ban with it.
import { isIP } from 'node:net';
import { CommandError, type CommandRunner } from './commands.ts';

const FAMILY = 'inet';

export function setNames(base: string): { v4: string; v6: string } {
  return { v4: `${base}_v4`, v6: `${base}_v6` };
}

/** The set an address goes into; throws for anything isIP does not accept. */
export function setFor(base: string, ip: string): string {
  const v = isIP(ip);
  if (v === 0) throw new Error(`${JSON.stringify(ip)} is not an IP address`);
  return v === 4 ? setNames(base).v4 : setNames(base).v6;
}

function nftArgv(commands: unknown[]): string[] {
  return ['nft', '-j', JSON.stringify({ nftables: commands })];
}

export async function tableExists(run: CommandRunner, table: string): Promise<boolean> {
  try {
    await run.run(['nft', '-j', 'list', 'table', FAMILY, table]);
    return true;
  } catch (err) {
    if (err instanceof CommandError && /No such file or directory/.test(err.stderr)) return false;
    throw err;
  }
}

/** Creates the table, its sets (at most `size` elements each, with timeouts) and the drop chain. */
export function createTableArgv(table: string, sets: readonly string[], size: number): string[] {
  const cmds: unknown[] = [{ add: { table: { family: FAMILY, name: table } } }];
  cmds.push({
    add: {
      chain: {
        family: FAMILY,
        table,
        name: 'input',
        type: 'filter',
        hook: 'input',
        prio: 0,
        policy: 'accept',
      },
    },
  });
  for (const base of sets) {
    const n = setNames(base);
    for (const [name, type, proto] of [
      [n.v4, 'ipv4_addr', 'ip'],
      [n.v6, 'ipv6_addr', 'ip6'],
    ] as const) {
      cmds.push({ add: { set: { family: FAMILY, table, name, type, flags: ['timeout'], size } } });
      cmds.push({
        add: {
          rule: {
            family: FAMILY,
            table,
            chain: 'input',
            expr: [
              {
                match: {
                  op: '==',
                  left: { payload: { protocol: proto, field: 'saddr' } },
                  right: `@${name}`,
                },
              },
              { drop: null },
            ],
          },
        },
      });
    }
  }
  return nftArgv(cmds);
}

export function banArgv(table: string, base: string, ip: string, timeoutSeconds: number): string[] {
  const name = setFor(base, ip);
  return nftArgv([
    {
      add: {
        element: { family: FAMILY, table, name, elem: [{ elem: { val: ip, timeout: timeoutSeconds } }] },
      },
    },
  ]);
}

export function deleteTableArgv(table: string): string[] {
  return nftArgv([{ delete: { table: { family: FAMILY, name: table } } }]);
}

export interface SetElement {
  address: string;
  /** seconds the ban was given */
  timeout?: number;
  /** seconds left */
  expires?: number;
}

interface NftListJson {
  nftables?: {
    set?: { elem?: (string | { elem?: { val?: string; timeout?: number; expires?: number } })[] };
  }[];
}

export async function listSet(run: CommandRunner, table: string, set: string): Promise<SetElement[]> {
  const out = await run.run(['nft', '-j', 'list', 'set', FAMILY, table, set]);
  return elementsFromJson(out);
}

export function elementsFromJson(out: string): SetElement[] {
  const doc = JSON.parse(out) as NftListJson;
  const s = (doc.nftables ?? []).find((x) => x.set)?.set;
  return (s?.elem ?? []).map((e) => {
    if (typeof e === 'string') return { address: e };
    const el = e.elem ?? {};
    return {
      address: String(el.val),
      ...(typeof el.timeout === 'number' ? { timeout: el.timeout } : {}),
      ...(typeof el.expires === 'number' ? { expires: el.expires } : {}),
    };
  });
}
