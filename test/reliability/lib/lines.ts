// Kernel log lines with a known answer: each host blocks one source IP on one port, so the ufw
// learner must emit exactly ufw.top_src_ip=<ip> and ufw.top_dst_port=<port> for it, whatever
// part of its lines a fault made it see twice or after a restart.
import type { OutgoingMessage } from '../../../bus/index.ts';

export interface HostAnswer {
  host: string;
  ip: string;
  port: number;
}

export function hostAnswer(tag: string, i: number): HostAnswer {
  return { host: `${tag}-${i}`, ip: `10.${(i >> 8) & 255}.${i & 255}.9`, port: 1000 + i };
}

export function ufwLine(a: HostAnswer, n = 0): string {
  return (
    `Nov 23 19:37:${String(30 + (n % 30)).padStart(2, '0')} ${a.host} kernel: [ ${1 + n}.000000] [UFW BLOCK] ` +
    `IN=eth0 OUT= MAC=00:00:00:00:00:00 SRC=${a.ip} DST=10.1.0.1 LEN=40 TOS=0x00 PREC=0x00 TTL=41 ` +
    `ID=${4242 + n} PROTO=TCP SPT=4242 DPT=${a.port} WINDOW=1024 RES=0x00 SYN URGP=0`
  );
}

/** `perHost` lines of each host, keyed by host (what publish-logs and rsyslog do). */
export function ufwMessages(hosts: HostAnswer[], perHost = 2): OutgoingMessage[] {
  return hosts.flatMap((a) =>
    Array.from({ length: perHost }, (_, n) => ({
      key: a.host,
      value: ufwLine(a, n),
      headers: { 'content-type': 'text/plain' },
    })),
  );
}
