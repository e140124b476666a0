// virgo_cloud.conf: the cloud's node list, "comma separated list of ip addresses" in the original
// (port fixed at 10000). We also accept host:port (several nodes on one machine, tests on port 0),
// hostnames, [v6]:port, newlines as separators and `#` comment lines; anything else is an error that
// names the entry and its position, never a silently skipped node.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { CPUPOOLING_PORT } from './ports.ts';

export interface CloudNode {
  host: string;
  port: number;
  /** `host:port` (`[v6]:port`), how replies and variables name the node */
  id: string;
}

export class CloudConfError extends Error {
  override readonly name = 'CloudConfError';
}

const HOSTNAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function nodeId(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** One entry: `host`, `host:port`, `v6`, `[v6]` or `[v6]:port`. */
export function parseNodeEntry(entry: string, defaultPort = CPUPOOLING_PORT): CloudNode {
  let host = entry;
  let port = defaultPort;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2] !== undefined) port = Number(bracket[2]);
    if (isIP(host) !== 6) throw new Error(`${JSON.stringify(entry)}: only IPv6 addresses go in brackets`);
  } else if (isIP(entry) === 6) {
    host = entry;
  } else {
    const m = /^([^:]+)(?::(\d*))?$/.exec(entry);
    if (!m) throw new Error(`${JSON.stringify(entry)} is not host, host:port or [ipv6]:port`);
    host = m[1]!;
    if (m[2] !== undefined) {
      if (m[2] === '') throw new Error(`${JSON.stringify(entry)} has a ':' but no port`);
      port = Number(m[2]);
    }
    if (isIP(host) === 0 && (!HOSTNAME.test(host) || /^[\d.]+$/.test(host))) {
      throw new Error(`${JSON.stringify(host)} is neither an IP address nor a host name`);
    }
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${JSON.stringify(entry)}: port must be 1-65535`);
  }
  return { host, port, id: nodeId(host, port) };
}

/** The nodes of a virgo_cloud.conf text, in file order (the PRG rule indexes them). */
export function parseVirgoCloudConf(
  text: string,
  opts: { defaultPort?: number; source?: string } = {},
): CloudNode[] {
  const source = opts.source ?? 'virgo_cloud.conf';
  const nodes: CloudNode[] = [];
  const seen = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  let position = 0;
  for (let ln = 0; ln < lines.length; ln++) {
    const line = lines[ln]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const entries = line.split(',');
    for (let i = 0; i < entries.length; i++) {
      position++;
      const entry = entries[i]!.trim();
      const where = `${source} line ${ln + 1}, entry ${position}`;
      if (entry === '') {
        const why = i === entries.length - 1 ? 'a trailing comma' : 'two commas in a row';
        throw new CloudConfError(`${where} is empty (${why}?); expected host or host:port`);
      }
      let node: CloudNode;
      try {
        node = parseNodeEntry(entry, opts.defaultPort);
      } catch (err) {
        throw new CloudConfError(`${where}: ${(err as Error).message}`);
      }
      const dup = seen.get(node.id);
      if (dup !== undefined) {
        throw new CloudConfError(`${where}: ${node.id} is listed twice (also entry ${dup})`);
      }
      seen.set(node.id, position);
      nodes.push(node);
    }
  }
  if (nodes.length === 0) {
    throw new CloudConfError(`${source} lists no nodes; expected e.g. 10.0.0.1,10.0.0.2:10000`);
  }
  return nodes;
}

export function readVirgoCloudConf(path: string, opts: { defaultPort?: number } = {}): CloudNode[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CloudConfError(
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return parseVirgoCloudConf(text, { ...opts, source: path });
}
