// The bounded TCP line server (runtime/line-server.ts), which the feeder, the drivers and the
// queue are built on: their own tests cover it through them, test/reliability fuzzes every port.
// Here, a regression the reliability suite found.
import { describe, expect, it } from 'vitest';
import { LineServer } from '../../runtime/line-server.ts';
import { cleanupAfterEach } from '../helpers/cleanup.ts';
import { LineConn } from '../helpers/line-client.ts';
import { waitFor } from '../helpers/services.ts';

describe('LineServer', () => {
  const cleanup = cleanupAfterEach();

  it('a client dropped for an overlong line is counted once (overlong), not again as a partial line when it hangs up', async () => {
    const srv = new LineServer({ name: 'rel-once', port: 0, maxLineBytes: 100, onLine: () => {} });
    await srv.listen();
    cleanup.push(() => srv.close());
    const c = await LineConn.open(srv.port);
    c.write('x'.repeat(5_000)); // no newline: caught while buffering
    await c.closed;
    await waitFor(() => srv.clientCount === 0, 'the server to let go of the client');
    expect(Object.fromEntries(srv.rejects)).toEqual({ overlong: 1 });
  });
});
