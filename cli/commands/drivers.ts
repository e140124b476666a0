import { once } from 'node:events';
import { parseHostPort, UsageError } from '../../runtime/config.ts';
import { stateDir } from '../../runtime/paths.ts';
import { exitOnSignals, onShutdown, shutdown } from '../../runtime/shutdown.ts';
import { startStages } from '../../runtime/topology.ts';
import { busFromOptions, defineCommand } from '../command.ts';
import { type ActuatorsHandle, actuatorsStage } from '../topology/actuators.ts';
import { actuatorsConfig, DRIVERS_UP_OPTIONS } from '../topology/actuators-config.ts';

export default defineCommand({
  name: 'drivers',
  summary: 'run the pooling drivers and the drone/webcam device models on the analytics variables',
  usage: `virgo drivers up [--feeder HOST:64000 | --redis URL] [--listen-base 127.0.0.1]
                  [--ports cpupooling=10000,eventnet=20000,memorypooling=30000,cloudfs=50000]
                  [--only cpupooling,…] [--devices drone,webcam|none] [--queue HOST:60000]`,
  details: `Drivers (telnet-compatible, one request per line; "help" on any port lists its requests):
  cpupooling :10000     virgo_clone(fib,30) | fib 30   -> node=<node> rule=<prg|analytics> result=…
                        runs registered functions only; the node is chosen by cpupooling.balancer
                        (prg: random % N over --nodes; analytics: least cpupooling.predicted_exec_ms,
                        else cpupooling.least_loaded_node)
  eventnet :20000       eventnet_edgemsg#<from>#<to>#, eventnet_vertexmsg#<id>#<a0>#<a1> -> ok
  memorypooling :30000  virgo_cloud_malloc(<size>) set(<vuid>,<data>) get(<vuid>) free(<vuid>)
                        limits memorypooling.max_bytes (one block), memorypooling.pool_bytes and
                        .max_blocks (all), .client_bytes and .client_blocks (one client address)
  cloudfs :50000        virgo_cloud_open(<path>) read(<fd>,none,<count>,<pos>)
                        write(<fd>,<data>,<count>,<pos>) close(<fd>), inside --cloudfs-root only;
                        descriptors per connection (closed with it); writes limited to
                        cloudfs.write_bytes_per_s
Devices: a PXRC drone (flies a seeded course on pxrc.throttle|brake|yaw|max_speed of its own id,
publishes virgo.drone-sensors) and a UVC webcam (acts on match=True|False of its own id,
publishes virgo.webcam-frames); both reply to the VIRGO queue given with --queue.
With a secret (--secret-file FILE, VIRGO_DRIVERS_SECRET or VIRGO_SECRET) a client's first line is
"AUTH <secret>" (answered "ok"); forwarded virgo_clone calls send it, and device replies send the
queue's (VIRGO_QUEUE_SECRET, else the same shared one). virgo_clone functions that compute run in
worker threads, each within cpupooling.timeout_ms (default 10000).
Variables come from a feeder (the ring-buffer consumer; default 127.0.0.1:64000, reconnecting) or,
with --redis, from the hashes virgo:analytics:<host> and their change channels.
Prints one "listening …" line on stdout when ready.
examples:
  virgo drivers up --feeder 127.0.0.1:64000 --queue 127.0.0.1:60000
  virgo drivers up --redis redis://127.0.0.1:6379 --nodes /etc/virgo_cloud.conf --devices none
  echo 'virgo_clone(fib,30)' | nc -N 127.0.0.1 10000`,
  options: DRIVERS_UP_OPTIONS,
  portFix: (service) =>
    service === 'metrics'
      ? '--metrics HOST:PORT chooses another'
      : `--ports ${service || 'NAME'}=PORT moves it (0: any free port), or --only NAME,… starts fewer drivers`,
  async run({ opts, args, io }) {
    if (args[0] !== 'up')
      throw new UsageError('usage: virgo drivers up [options] (see virgo drivers --help)');
    const config = actuatorsConfig(opts, (sub) => stateDir(sub));
    const metricsAddr = opts.metrics ? parseHostPort(String(opts.metrics)) : undefined;
    const { startActuatorsStage } = await import('../topology/actuators.ts');
    // The actuators stage alone: variables from a feeder or Redis, replies to a remote queue.
    // Devices publish frames on the bus (Kafka with --brokers, else in-process).
    const bus = busFromOptions(opts, 'virgo-drivers');
    const running = await startStages([actuatorsStage], () => startActuatorsStage(config, { bus }), {
      closeLast: () => bus.close(),
    });
    onShutdown('actuators', () => running.close());
    try {
      return await serve(running.started.get('actuators')!.handle);
    } catch (err) {
      await shutdown();
      throw err;
    }

    async function serve(actuators: ActuatorsHandle): Promise<number> {
      if (metricsAddr) {
        const { serveStageMetrics } = await import('../dashboard/start.ts');
        await serveStageMetrics(metricsAddr, {
          command: 'virgo drivers up',
          meta: { variables: actuators.source },
          health: () => ({
            ok: true,
            ports: actuators.drivers.ports,
            variables: actuators.table.size,
            source: actuators.source,
          }),
          handles: { actuators },
        });
      }

      const listening = Object.entries(actuators.drivers.ports)
        .map(([n, p]) => `${n}=${config.listenHost}:${p}`)
        .join(' ');
      const devs = config.devices.map((d) => `${d}:${config.deviceIds[d]}`).join(',') || 'none';
      const line = `listening ${listening || 'none'} devices=${devs} variables=${actuators.source}\n`;
      if (!io.stdout.write(line)) await once(io.stdout, 'drain');
      await exitOnSignals();
      await shutdown();
      return 0;
    }
  },
});
