// Interop with a ZeroMQ client that is not ours: Python's pyzmq (libzmq underneath, as the original
// KingCobra clients) as a DEALER against the queue's ROUTER, authenticating the project's way
// (PLAIN, password = the shared secret, docs/design.md §9). Its requests are answered in order and
// persisted; a DEALER with a wrong secret or none fails the handshake and gets nothing in.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSegmentLog, startQueueService } from '../../queue-bridge/index.ts';
import { testScope } from '../helpers/scope.ts';
import { run, unique } from '../helpers/services.ts';

const { tempDir, cleanup } = testScope();

const CLIENT = `
import json, sys, zmq
from zmq.utils.monitor import recv_monitor_message

endpoint, secret = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
NAMES = {
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "succeeded",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "failed-auth",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "failed-protocol",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "failed",
}

def dealer(password):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 20000)
    if password is not None:
        s.plain_username = b"virgo"
        s.plain_password = password.encode()
    return s

def handshake(password):
    s = dealer(password)
    mon = s.get_monitor_socket(sum(NAMES))
    mon.setsockopt(zmq.RCVTIMEO, 20000)
    s.connect(endpoint)
    s.send_string("py-refused")
    event = recv_monitor_message(mon)["event"]
    s.close()
    return NAMES.get(event, str(event))

out = {"pyzmq": zmq.__version__, "libzmq": zmq.zmq_version()}
d = dealer(secret)
d.connect(endpoint)
for i in range(5):
    d.send_string("py-request-%d" % i)
out["replies"] = [d.recv_string() for _ in range(5)]
d.close()
out["wrong"] = handshake("wrong-" + secret)
out["none"] = handshake(None)
print(json.dumps(out))
ctx.term()
`;

/** A python3 that imports zmq: the one on PATH, or Debian's (python3-zmq). */
function python(): string {
  for (const p of ['python3', '/usr/bin/python3']) {
    try {
      execFileSync(p, ['-c', 'import zmq'], { stdio: 'ignore' });
      return p;
    } catch {
      // next
    }
  }
  throw new Error('no python3 imports zmq: `bash scripts/services.sh clients` installs python3-zmq');
}

describe('ZeroMQ: a pyzmq DEALER against the queue', () => {
  it('gets its replies in order with the secret; a wrong or missing secret fails the handshake', async () => {
    const dir = tempDir('pyzmq');
    const secret = unique('zmq-secret');
    const svc = await startQueueService({ dir, listen: false, zmq: 'tcp://127.0.0.1:0', secret });
    cleanup.push(() => svc.close());
    const script = join(tempDir('pyzmq-client'), 'dealer.py');
    writeFileSync(script, CLIENT);
    const r = await run(python(), [script, svc.zmqEndpoint!, secret], undefined, 60_000);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { replies: string[]; wrong: string; none: string };
    const payloads = out.replies.map((l) => /^REPLY#[\w-]+#zmq:\S+:\d+:\d+ (.*)$/.exec(l)?.[1]);
    expect(payloads).toEqual(
      [0, 1, 2, 3, 4].map(() => ':--- from kingcobra_servicerequest_kernelspace() to client'),
    );
    expect(out.wrong).toBe('failed-auth');
    expect(out.none).toMatch(/^failed/);
    // what the segment log holds: the five requests and their replies, none of the refused ones
    await svc.close();
    const log = await openSegmentLog(dir, { readOnly: true });
    const kept: string[] = [];
    for await (const rec of log.read()) if (rec.message.kind === 'REQUEST') kept.push(rec.message.payload);
    await log.close();
    expect(kept).toEqual([0, 1, 2, 3, 4].map((i) => `py-request-${i}`));
  });
});
