// Interop with the producer operators already run: Debian's rsyslogd with omkafka (rsyslog-kafka)
// forwards kernel-format lines appended to a file into virgo.kernel-logs, key = the line's host,
// and the pipeline turns them into ufw.* variables. The rsyslogd is private: its own config, pid
// file and work directory, imfile on a file of this test, no imuxsock (the machine's syslog and
// /dev/log are never touched), stopped at the end.
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TOPICS } from '../../bus/index.ts';
import { startPipeline } from '../../cli/pipeline.ts';
import { Child } from '../helpers/child.ts';
import { UFW_SAMPLES } from '../helpers/fixtures.ts';
import { kcatConsume } from '../helpers/kcat.ts';
import { testScope } from '../helpers/scope.ts';
import { BROKERS, run, unique, waitFor } from '../helpers/services.ts';

const { tempDir, track, cleanup } = testScope();
const RSYSLOGD = '/usr/sbin/rsyslogd';

/** rsyslog's configuration: imfile on `file`, omkafka to `topic`, the raw line, key = its host. */
function rsyslogConf(dir: string, file: string, topic: string): string {
  return `global(workDirectory="${dir}/work")
module(load="imfile")
module(load="omkafka")
template(name="line" type="string" string="%rawmsg%")
template(name="hostkey" type="string" string="%rawmsg:R,ERE,1,DFLT:^[A-Z][a-z]{2} +[0-9]+ [0-9:]+ ([^ ]+) --end%")
input(type="imfile" file="${file}" tag="kern" ruleset="tokafka")
ruleset(name="tokafka") {
  action(type="omkafka" broker=[${BROKERS.map((b) => `"${b}"`).join(',')}] topic="${topic}"
         template="line" dynaKey="on" key="hostkey")
}
`;
}

describe('rsyslog omkafka → virgo.kernel-logs', () => {
  it('appended UFW lines forwarded by a private rsyslogd become ufw.* variables', async () => {
    const ns = unique('rsyslog');
    const dir = tempDir('rsyslog');
    const kernLog = join(dir, 'kern.log');
    writeFileSync(kernLog, '');
    mkdirSync(join(dir, 'work'));
    const p = await startPipeline({
      brokers: BROKERS,
      namespace: ns,
      input: 'none',
      stateDir: tempDir('rsyslog-state'),
      learners: ['ufw'],
      drivers: [],
      devices: [],
      feederPort: 0,
      queuePort: 0,
      zmq: false,
      metrics: false,
    });
    cleanup.push(() => p.close());

    const topic = `${ns}.${TOPICS.kernelLogs}`;
    const conf = join(dir, 'rsyslog.conf');
    writeFileSync(conf, rsyslogConf(dir, kernLog, topic));
    const check = await run(RSYSLOGD, ['-N1', '-f', conf]);
    expect(check.code, check.stderr).toBe(0);
    const rsyslogd = track(Child.spawn(RSYSLOGD, ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')]));
    cleanup.push(() => rsyslogd.stop());

    // the lines are appended while rsyslogd runs, as the kernel's logger would
    const lines = readFileSync(UFW_SAMPLES, 'utf8').trimEnd().split('\n');
    for (const l of lines) appendFileSync(kernLog, `${l}\n`);

    // what the learner makes of them: per host, the most frequent source of the blocks
    const host = 'ip-172-30-0-64';
    const srcs = lines.filter((l) => l.includes(` ${host} `)).map((l) => /SRC=(\S+)/.exec(l)![1]!);
    await waitFor(
      () => p.feeder.table.get('ufw.top_src_ip', host) !== undefined,
      `ufw.top_src_ip of ${host} on the feeder`,
      60_000,
    );
    expect(srcs).toContain(p.feeder.table.get('ufw.top_src_ip', host));
    expect(Number(p.feeder.table.get('ufw.block_rate', host))).toBeGreaterThan(0);
    // every line arrived once, keyed by its host (kcat reads the topic back)
    const k = await kcatConsume(topic, '%k|%s\n');
    const got = k.stdout.trimEnd().split('\n').sort();
    expect(got).toEqual(lines.map((l) => `${l.split(/\s+/)[3]}|${l}`).sort());
    expect(p.health().ingest).toMatchObject({ deadLettered: 0 });
  });
});
