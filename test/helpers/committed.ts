// Whether a consumer group has committed every partition of a topic up to its end: the "done"
// of a `virgo learn` run in a namespace (the scale-out test and `npm run bench -- scale`).
import { GROUPS, type KafkaBus, TOPICS } from '../../bus/index.ts';

export async function learnersCommittedAtEnd(kafka: KafkaBus, ns: string): Promise<boolean> {
  const admin = kafka.kafka.admin();
  await admin.connect();
  try {
    const topic = `${ns}.${TOPICS.kernelLogs}`;
    const [c] = await admin.fetchOffsets({ groupId: `${ns}.${GROUPS.learners}`, topics: [topic] });
    const ends = await admin.fetchTopicOffsets(topic);
    return ends.every(
      (e) => e.high === '0' || c!.partitions.find((p) => p.partition === e.partition)?.offset === e.high,
    );
  } finally {
    await admin.disconnect();
  }
}
