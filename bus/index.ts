// bus/: the Bus every stage publishes to and subscribes from (docs/design.md §2.3).
// Owns: the interface, the in-process and kafkajs implementations, topic names/specs.
// Imports: runtime/ (logging) only. Nothing outside bus/kafka.ts imports kafkajs.
import { KafkaBus } from './kafka.ts';
import { MemoryBus } from './memory.ts';
import { namespaced } from './namespace.ts';
import type { Bus } from './types.ts';

export { type Followed, type FollowOptions, followFromStart } from './follow.ts';
export { namespaced } from './namespace.ts';
export * from './topics.ts';
export * from './types.ts';
export { KafkaBus, MemoryBus };

export interface BusConfig {
  /** Kafka bootstrap brokers; empty or absent: the embedded in-process bus */
  brokers?: string[];
  /** prefix of every topic and consumer group (VIRGO_NAMESPACE): pipelines sharing one cluster */
  namespace?: string;
  clientId?: string;
  retries?: number;
}

export function createBus(cfg: BusConfig = {}): Bus {
  const ns = cfg.namespace ?? process.env.VIRGO_NAMESPACE;
  if (cfg.brokers && cfg.brokers.length > 0) {
    const kafka = new KafkaBus({
      brokers: cfg.brokers,
      ...(cfg.clientId ? { clientId: cfg.clientId } : {}),
      ...(cfg.retries !== undefined ? { retries: cfg.retries } : {}),
      ...saslFromEnv(),
    });
    return ns ? namespaced(kafka, ns) : kafka;
  }
  return new MemoryBus();
}

/** Credentials only from the environment (never flags, never logged). */
function saslFromEnv(): { ssl?: boolean; sasl?: { mechanism: 'plain'; username: string; password: string } } {
  const username = process.env.VIRGO_KAFKA_USERNAME;
  const password = process.env.VIRGO_KAFKA_PASSWORD;
  const ssl = process.env.VIRGO_KAFKA_SSL === '1' || process.env.VIRGO_KAFKA_SSL === 'true';
  if (username && password) return { ssl, sasl: { mechanism: 'plain', username, password } };
  return ssl ? { ssl } : {};
}

export function parseBrokers(s: string | undefined): string[] {
  if (!s) return [];
  return s
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
}
