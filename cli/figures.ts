// The figures of the stages running in this process, grouped the way the dashboard's panels and
// the terminal screen show them: the ring-buffer consumers, the feeder, the queue, the learners,
// the device loop. Each group only when its stage runs here.
import type { Actuators } from '../actuators/stage.ts';
import type { Feeder, RingConsumer } from '../kernel-analytics/index.ts';
import type { LearnStage } from '../learners/index.ts';
import type { QueueService } from '../queue-bridge/index.ts';

export type Figures = Record<string, Record<string, string | number | boolean | null>>;

export interface StageHandles {
  learn?: LearnStage | undefined;
  feeder?: Feeder | undefined;
  consumers?: readonly RingConsumer[] | undefined;
  queue?: QueueService | undefined;
  actuators?: Actuators | undefined;
}

export function stageFigures(h: StageHandles): Figures {
  const out: Figures = {};
  const rings = h.consumers ?? [];
  if (rings.length > 0) {
    const st = rings.map((r) => r.stats());
    const main = st[0]!;
    out['ring buffer'] = {
      'slots used': `${main.ring.length}/${main.ring.size}`,
      written: st.reduce((n, s) => n + s.ring.written, 0),
      consumers: `${st.filter((s) => s.connected).length}/${st.length} connected`,
      rejected: st.reduce((n, s) => n + Object.values(s.rejects).reduce((a, b) => a + b, 0), 0),
    };
  }
  if (h.feeder) {
    const f = h.feeder.stats();
    out.feeder = {
      clients: f.clients,
      variables: f.variables,
      'lines sent': f.linesSent,
      'clients dropped': Object.values(f.drops).reduce((a, b) => a + b, 0),
    };
  }
  if (h.queue) {
    const q = h.queue.stats();
    out.queue = {
      accepted: q.kingcobra.accepted,
      replied: q.kingcobra.replied,
      'in flight': q.kingcobra.inflight,
      busy: q.kingcobra.busy,
      'log records': q.log.records,
      'tcp clients': q.tcpClients,
    };
  }
  if (h.learn) {
    const l = h.learn.stats();
    let held = 0;
    try {
      held = h.learn.host.variableStates().filter((s) => s.held).length;
    } catch {
      // not ready yet: none held
    }
    out.learners = {
      backend: l.backend,
      published: l.published,
      pins: l.pins,
      'held by dwell': held,
      templates: l.ingest?.templates ?? null,
    };
  }
  if (h.actuators) {
    const d = deviceLoop(h.actuators);
    if (d) out.devices = d;
  }
  return out;
}

/** The device loop in a few words each: the drone's flight, the webcam's last action. */
export function deviceLoop(a: Actuators): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  const drone = a.drone();
  if (drone) {
    const s = drone.sim.state;
    const done = a.flights.length;
    out[a.deviceIds.drone] =
      `flight ${done + 1} ${s.status} ${(s.t / 1000).toFixed(1)}s` +
      (done > 0 ? `, ${done} done (last ${a.flights[done - 1]!.status})` : '');
  }
  const cam = a.webcam;
  if (cam) {
    const last = cam.actions[cam.actions.length - 1];
    out[a.deviceIds.webcam] = last ? `${cam.actions.length} actions, last ${last.action}` : 'no action yet';
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
