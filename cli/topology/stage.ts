// What a stage of the virgo pipeline declares, once, for the three ways it runs:
//   `virgo up`          start(): in one process, next to the others (embedded bus or Kafka)
//   `virgo up --split`  child(): as its own `virgo` process, over Kafka
//   `virgo drivers up`  the actuators stage alone (see actuators.ts)
// and the `virgo up` flags it adds (options + configure). Heavy modules are imported inside
// start(), so `virgo --help` does not load them.

import type { DeviceName } from '../../actuators/devices/ids.ts';
import type { DriverName } from '../../actuators/drivers/ports.ts';
import type { Bus } from '../../bus/index.ts';
import type { Guarantee } from '../../learners/stage.ts';
import type { OptionDefs } from '../../runtime/config.ts';
import type { Endpoints, StageNode, Started } from '../../runtime/topology.ts';
import type { TimeSettings } from '../time-options.ts';

/** The whole pipeline's configuration: every stage reads its part. */
export interface PipelineOptions {
  brokers?: string[];
  /** topic and consumer-group prefix (pipelines sharing a cluster) */
  namespace?: string;
  redisUrl?: string;
  /** Redis key prefix (default virgo:analytics) */
  redisPrefix?: string;
  /** a file, '-' for stdin, 'demo', 'none' (others publish: rsyslog, kcat), or undefined: the
   * host's kernel log if readable, else demo */
  input?: string;
  follow?: boolean;
  /** the log source sends a partial batch this long after its first line (ms, default 200) */
  lingerMs?: number;
  stateDir: string;
  listenHost?: string;
  /**
   * the secrets (resolved from a file or the environment, never a flag): of the write ports (a
   * port without one is open to whoever reaches it), and the dashboard's, which allows pins there
   */
  secrets?: { queue?: string; drivers?: string; dashboard?: string };
  /** with a secret: time a connection has to authenticate (default 5 s) */
  handshakeTimeoutMs?: number;
  /** 0 for any free port */
  feederPort?: number;
  queuePort?: number;
  zmq?: string | false;
  metrics?: { host: string; port: number } | false;
  driverPorts?: Partial<Record<DriverName, number>>;
  drivers?: readonly DriverName[];
  devices?: readonly DeviceName[];
  learners?: string[];
  /** one conf file per host, <confDir>/<host>.conf (default STATE_DIR/conf) */
  confDir?: string;
  /** also one host's variables in one file (e.g. /etc/virgo_kernel_analytics.conf for this machine) */
  confFile?: { path: string; host: string };
  partitions?: number;
  demoRate?: number;
  stdin?: NodeJS.ReadableStream;
  /** the kernel actuator (off when absent): its policy, whether it applies, its namespace */
  actuate?: { policy: string; apply: boolean; netns?: string };
  /** the learners' clock (--clock, --tdf) and allowed lateness (README "Time") */
  time?: TimeSettings;
  /** the learn stage's delivery guarantee on Kafka (default exactly-once; README "Scaling out") */
  guarantee?: Guarantee;
}

/** A file read without --follow: a bounded replay, ended by a final watermark. */
export function boundedInput(o: PipelineOptions): boolean {
  return o.input !== undefined && !['none', '-', 'demo'].includes(o.input) && !o.follow;
}

/** Parsed `virgo up` flags, by flag name. */
export type FlagValues = Readonly<Record<string, string | number | boolean | string[] | undefined>>;

/** What the stages of one process share. */
export interface InProcess {
  readonly o: PipelineOptions;
  readonly bus: Bus;
  readonly distributed: boolean;
  /** the address every port binds */
  readonly listenHost: string;
  /** the handle of a stage started before this one in this process, if it runs here */
  peer<H>(stage: PipelineStage<H>): H | undefined;
  /** the pipeline's /health, as of the call */
  health(): PipelineHealth;
}

export interface PipelineHealth {
  ok: boolean;
  [k: string]: unknown;
}

/** A stage started in this process. */
export interface Built<H> extends Started {
  readonly handle: H;
  /** where it listens, for the ready line and /health */
  readonly endpoints?: Endpoints;
  /** its part of /health; ok false makes the pipeline unhealthy */
  health?(): { ok?: boolean; [k: string]: unknown };
}

/** A stage as its own process: `virgo <args>`. */
export interface ChildArgs {
  args: string[];
  /** added to its environment (secrets: never on a command line, `ps` shows those) */
  env?: Record<string, string>;
  /** it reads `virgo up`'s standard input */
  stdin?: boolean;
  /** its line saying it listens, read for where; undefined for any other line */
  ready?(line: string): Endpoints | undefined;
}

export interface PipelineStage<H = unknown> extends StageNode {
  /** in one process it also takes these stages' handles, so starts after them there */
  readonly uses?: readonly string[];
  /** the `virgo up` flags it adds (parsed, shown in --help) */
  readonly options?: OptionDefs;
  /**
   * The `virgo up` flags that move the ports it binds, printed after "… is in use by another
   * process" in either mode (default: --any-ports, --listen-host).
   */
  readonly portFix?: string;
  /** whether it runs with these options (default: it does) */
  enabled?(o: PipelineOptions): boolean;
  /** its `virgo up` flags, parsed, into the pipeline options */
  configure?(flags: FlagValues, o: PipelineOptions): void;
  /** in one process; absent: it has no part in `virgo up` */
  start?(ctx: InProcess): Promise<Built<H>>;
  /** its `virgo` command line under `--split`, given the endpoints of the stages started
   * before it; absent or undefined: no process */
  child?(o: PipelineOptions, endpoints: Readonly<Endpoints>): ChildArgs | undefined;
}

/** Where a peer on this machine connects to a port bound on `host`. */
export function connectHost(host: string): string {
  return host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}

/** An endpoint `host:port` as a peer on this machine dials it. */
export function reach(endpoint: string): string {
  const i = endpoint.lastIndexOf(':');
  return `${connectHost(endpoint.slice(0, i))}:${endpoint.slice(i + 1)}`;
}

/** Kafka brokers as one flag value; --split runs only with brokers. */
export function brokersArg(o: PipelineOptions): string {
  return (o.brokers ?? []).join(',');
}
