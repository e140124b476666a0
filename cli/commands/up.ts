import { defineCommand } from '../command.ts';

// The whole pipeline lands stage by stage; until then `up` says what works today.
export default defineCommand({
  name: 'up',
  summary: 'run the whole pipeline (embedded by default)',
  usage: 'virgo up [--brokers HOST:PORT] [--redis URL]',
  options: {},
  async run({ io }) {
    io.stdout.write(`virgo up: the pipeline stages are being built; available today:
  virgo topics create --brokers 127.0.0.1:9092   create the topics on a Kafka broker
  virgo subscribe TOPIC --brokers 127.0.0.1:9092 print a topic, decoding Avro
  npm run services:up                            start local Kafka 3.9 (KRaft) and Redis
Run \`virgo --help\` for every command.
`);
    return 0;
  },
});
