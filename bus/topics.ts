// Topic names and their specs (docs/design.md §4).
import type { TopicSpec } from './types.ts';

export const TOPICS = {
  kernelLogs: 'virgo.kernel-logs',
  kernelLogsDlq: 'virgo.kernel-logs.dlq',
  kernelAnalytics: 'virgo.kernel-analytics',
  kingcobraRequests: 'virgo.kingcobra-requests',
  droneSensors: 'virgo.drone-sensors',
  webcamFrames: 'virgo.webcam-frames',
} as const;

export const GROUPS = {
  learners: 'virgo-learners',
} as const;

export const HEADERS = {
  contentType: 'content-type',
  schema: 'virgo-schema',
  error: 'virgo-error',
  flags: 'virgo-flags',
} as const;

export const CONTENT_TYPES = {
  text: 'text/plain',
  avro: 'avro/binary',
} as const;

/** The project's topics with their partitions and configs; `partitions` scales ingest out. */
export function topicSpecs(partitions = 4): TopicSpec[] {
  return [
    { topic: TOPICS.kernelLogs, partitions },
    { topic: TOPICS.kernelLogsDlq, partitions: 1 },
    {
      topic: TOPICS.kernelAnalytics,
      partitions,
      // Compacted: the topic is the table of latest values per host/key.
      configs: { 'cleanup.policy': 'compact', 'min.cleanable.dirty.ratio': '0.1', 'segment.ms': '600000' },
    },
    { topic: TOPICS.kingcobraRequests, partitions: 1 },
    { topic: TOPICS.droneSensors, partitions },
    { topic: TOPICS.webcamFrames, partitions },
  ];
}
