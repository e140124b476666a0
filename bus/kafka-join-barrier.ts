// A consumer committing its offsets in transactions must not rejoin its group while a
// transaction of its is still in flight or not yet visible: once it rejoins, the rebalance can
// complete and the new owner of its partitions read their offsets and state, and a commit landing
// after that would count the same lines twice. kafkajs (2.2.4) has no hook between "the group is
// rebalancing" and its JoinGroup request, and its TxnOffsetCommit (v0-v1) carries no group
// generation for the broker to fence with (KIP-447). So this wraps kafkajs's JoinGroup request:
// its encoding (done just before the request is written) first awaits the barrier the
// subscription registered for its group. Other requests are untouched.
//
// Like bus/kafka-fastpath.ts this reaches into kafkajs's request table, so it is installed only on
// the kafkajs version it was written against; elsewhere `installJoinBarrier` returns false and the
// bus says the window it leaves open (docs/design.md §2.4).
import { createRequire } from 'node:module';
import { createLogger } from '../runtime/log.ts';
import { KAFKAJS_VERSION } from './kafka-fastpath.ts';

const log = createLogger('bus.kafka');
const require = createRequire(import.meta.url);

interface KjsRequest {
  request: { encode: () => Promise<unknown> };
}
type Protocol = (opts: {
  version: number;
}) => ((args: { groupId?: string; memberId?: string | null }) => KjsRequest) | undefined;
interface Definition {
  versions: string[];
  protocol: Protocol;
}

const barriers = new Map<string, () => Promise<void>>();
let installed: boolean | undefined;

/** Wraps kafkajs's JoinGroup once; false when this kafkajs is not the one it fits. */
export function installJoinBarrier(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  try {
    const version = (require('kafkajs/package.json') as { version: string }).version;
    if (version !== KAFKAJS_VERSION) {
      log.warn(
        'kafkajs is not the version the rejoin barrier fits; transactional consumers rejoin unguarded',
        {
          version,
          fits: KAFKAJS_VERSION,
        },
      );
      return false;
    }
    const { requests } = require('kafkajs/src/protocol/requests/index.js') as {
      requests: Record<string, Definition>;
    };
    const join = requests.JoinGroup!;
    requests.JoinGroup = {
      versions: join.versions,
      protocol: ({ version }) => {
        const stock = join.protocol({ version });
        if (!stock) return stock;
        return (args) => {
          const r = stock(args);
          // A member's rejoin names it; a new member's first join has no id yet and waits for nobody.
          const barrier = args.memberId ? barriers.get(`${args.groupId}\0${args.memberId}`) : undefined;
          if (barrier) {
            const encode = r.request.encode.bind(r.request);
            r.request.encode = async () => {
              await barrier().catch((err: unknown) =>
                log.warn('rejoin barrier failed; rejoining anyway', { group: args.groupId, err }),
              );
              return encode();
            };
          }
          return r;
        };
      },
    };
    installed = true;
  } catch (err) {
    log.warn('could not install the rejoin barrier; transactional consumers rejoin unguarded', { err });
  }
  return installed;
}

/** Registers (or, with undefined, removes) the barrier of one group member's JoinGroup requests. */
export function setJoinBarrier(
  groupId: string,
  memberId: string,
  barrier: (() => Promise<void>) | undefined,
): void {
  const k = `${groupId}\0${memberId}`;
  if (barrier) barriers.set(k, barrier);
  else barriers.delete(k);
}
