// The real thing: `virgo queue serve` as a child process, killed with SIGKILL again and again
// while TCP and ZeroMQ clients write. A request is acknowledged when its REPLY line arrives; every
// acknowledged request must be in the log exactly once, and nothing may be stored twice.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { openSegmentLog } from '../../queue-bridge/index.ts';
import { waitFor } from '../helpers/services.ts';
import { cleanupDirs, tempDir } from './lib/queue.ts';

afterAll(cleanupDirs);

const sent = new Set<string>();
const acked = new Set<string>();

async function serve(
  dir: string,
): Promise<{ child: ChildProcess; port: number; zmq: string; stderr: () => string }> {
  const child = spawn(
    process.execPath,
    ['bin/virgo.js', 'queue', 'serve', '--dir', dir, '--listen', '127.0.0.1:0', '--zmq', 'tcp://127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  let out = '';
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening tcp=127\.0\.0\.1:(\d+) zmq=(\S+)/.exec(out);
      if (m) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code} before listening: ${err}`)));
  });
  return { child, port: Number(ready[1]), zmq: ready[2]!, stderr: () => err };
}

/** A pipelining line client: keeps `depth` requests outstanding until its connection dies. */
function tcpWriter(port: number, tag: string, depth = 4): Promise<void> {
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' });
    const outstanding: string[] = [];
    let n = 0;
    let rest = '';
    let stopped = false;
    const pump = () => {
      while (!stopped && outstanding.length < depth) {
        const p = `${tag}-${n++}`;
        outstanding.push(p);
        sent.add(p);
        sock.write(`${p}\n`);
      }
    };
    sock.setEncoding('utf8');
    sock.on('connect', pump);
    sock.on('data', (d: string) => {
      const lines = (rest + d).split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) {
        const p = outstanding.shift();
        if (p && l.startsWith('REPLY#')) acked.add(p);
      }
      pump();
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      stopped = true;
      resolve();
    });
  });
}

/** A pipelining DEALER; `stop()` closes it (it would otherwise wait for a reconnect forever). */
async function zmqWriter(endpoint: string, tag: string, depth = 8): Promise<{ stop: () => Promise<void> }> {
  const zmq = await import('zeromq');
  const d = new zmq.Dealer({ linger: 0 });
  d.connect(endpoint);
  const outstanding: string[] = [];
  let n = 0;
  let stopped = false;
  const send = async () => {
    while (!stopped && outstanding.length < depth) {
      const p = `${tag}-${n++}`;
      outstanding.push(p);
      sent.add(p);
      await d.send(p);
    }
  };
  const loop = (async () => {
    try {
      await send();
      for (;;) {
        const [reply] = await d.receive();
        const p = outstanding.shift();
        if (p && reply!.toString().startsWith('REPLY#')) acked.add(p);
        await send();
      }
    } catch {
      // closed
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      d.close();
      await loop;
    },
  };
}

describe('crash safety under SIGKILL', () => {
  it('killing the server in a loop while clients write loses no acknowledged request and duplicates none', async () => {
    const dir = tempDir();
    for (let iter = 0; iter < 3; iter++) {
      const srv = await serve(dir);
      const before = acked.size;
      const tcp = [0, 1, 2].map((k) => tcpWriter(srv.port, `i${iter}-tcp${k}`));
      const z = await zmqWriter(srv.zmq, `i${iter}-zmq`);
      await waitFor(() => acked.size >= before + 60, `60 acknowledged requests in round ${iter}`, 30_000);
      srv.child.kill('SIGKILL');
      await once(srv.child, 'exit');
      await Promise.all(tcp);
      await z.stop();
    }
    // recovery by the next writer, then the whole log
    const log = await openSegmentLog(dir);
    const count = new Map<string, number>();
    const idOf = new Map<string, string>();
    const answered = new Set<string>();
    for await (const r of log.read()) {
      const m = r.message;
      if (m.kind === 'REQUEST') {
        count.set(m.payload, (count.get(m.payload) ?? 0) + 1);
        idOf.set(m.payload, m.id);
      } else if (m.inReplyTo) {
        answered.add(m.inReplyTo);
      }
    }
    await log.close();
    const lost = [...acked].filter((p) => count.get(p) !== 1);
    expect(lost, 'acknowledged requests missing or duplicated').toEqual([]);
    const dup = [...count].filter(([, c]) => c > 1);
    expect(dup, 'requests stored twice').toEqual([]);
    const invented = [...count.keys()].filter((p) => !sent.has(p));
    expect(invented).toEqual([]);
    expect(acked.size).toBeGreaterThanOrEqual(180);
    // a reply is stored before the client sees it
    expect([...acked].filter((p) => !answered.has(idOf.get(p)!))).toEqual([]);
  });
});
