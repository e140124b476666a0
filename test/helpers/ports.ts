// Free TCP ports for what cannot report a port-0 choice (`nc -l`, a broker's listener, a child
// told where to listen). Tests bind port 0 wherever the server can say which port it took.
import { createServer } from 'node:net';

/** A port nobody listens on now (bind 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}
