// The consumer stage's event-time state, kept in front of the learners: the event-time merger
// (event-order.ts), the per-host watermarks with their allowed lateness, and the dedupe of
// admitted lines (dedupe.ts). The learn stage saves the watermarks and the dedupe beside the
// models, so a restart does not count a line twice; the lines waiting in the merger are not saved:
// their offsets were never committed, so the bus hands them over again.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../runtime/log.ts';
import { counter, gauge } from '../runtime/metrics.ts';
import { type DedupeJson, type IdBlock, LineDedupe } from './dedupe.ts';
import { EventTimeMerger, HostWatermarks, type MergerStats } from './event-order.ts';
import type { ParsedLine } from './types.ts';

const log = createLogger('ingest.order');

export const orderMetrics = {
  late: counter(
    'virgo_ingest_late_total',
    'lines older than their host watermark minus the allowed lateness: dead-lettered with reason late',
    ['topic'],
  ),
  duplicates: counter(
    'virgo_ingest_duplicates_total',
    'lines dropped because the learners already took the same line (host, event time, text)',
    ['topic'],
  ),
  paused: counter(
    'virgo_ingest_partition_pauses_total',
    'partitions paused because they read ahead of the event-time watermark while many lines waited',
    ['topic'],
  ),
  forced: counter(
    'virgo_ingest_reorder_forced_total',
    'lines released before their event-time turn because the reorder buffer was full',
    ['topic'],
  ),
  dedupeEvicted: counter(
    'virgo_ingest_dedupe_evicted_total',
    'exact dedupe identities forgotten by the memory cap while still within the lateness horizon',
  ),
  buffered: gauge('virgo_ingest_reorder_buffered', 'lines waiting in the event-time reorder buffer', [
    'topic',
  ]),
  unkeyedSplit: counter(
    'virgo_ingest_unkeyed_split_total',
    'lines not keyed by their host read by one of several consumers of the topic (their host is split)',
    ['topic'],
  ),
};

/** Where a buffered line came from, enough to dead-letter it with its original bytes. */
export interface LineSource {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  contentType: string;
  /** the message's own bytes when it held this line alone and they are not just the line's UTF-8
   * (else the line's UTF-8 is sent: the same bytes when the value was the line, ASCII) */
  raw: Buffer | null;
  /** the message's timestamp (the receive time of lines without one of their own) */
  timestamp: number;
}

export interface PendingLine {
  ts: number;
  host: string;
  /** the decoded line (mined, hashed and dead-lettered as is) */
  line: string;
  parsed: ParsedLine;
  /** cut to the maximum line length */
  cut: boolean;
  /** the host of lines that name none (the message key) */
  keyHost: string;
  src: LineSource;
  /** processing time the stage received it (the stage→learners latency hop) */
  receivedAt: number;
}

/**
 * A host's part of the event-time state (what follows it to another consumer): its watermark and
 * where its exact dedupe identities are. Since version 2 the identities go in records of their
 * own, block `n` as the part `order.<n>` (an `IdBlock`), so a commit writes only the blocks that
 * gained identities; version 1 (no `v`) had them all in `seen`, and is still read.
 */
export interface HostOrderState {
  watermark: number | null;
  /** version 1: base64 of a Float64Array, [ts, key] of each exact dedupe identity; '' since */
  seen: string;
  v?: 2;
  /** version 2: the places of the live identities in the host's blocks (to excluded) */
  from?: number;
  to?: number;
}

/** A host's part as exported: the state, and the JSON text of each block of identities by number. */
export interface HostOrderExport {
  state: HostOrderState;
  blocks: Map<number, string>;
}

interface OrderStateJson {
  version: 1;
  hosts: [string, number][];
  dedupe: DedupeJson;
}

export interface IngestOrderOptions {
  /** how far behind its host's watermark a line may still be admitted (default 300 s) */
  allowedLatenessMs?: number;
  /** lines the reorder buffer holds at most (default 100,000) */
  maxBuffered?: number;
  /** an assigned partition not heard from stops holding the watermark after this (default 5 s) */
  idleMs?: number;
  /** a partition with unread data but no batch stops holding it after this (default 30 s) */
  stallMs?: number;
  /** exact dedupe identities at most (default 200,000) */
  maxExact?: number;
  /** lines per Bloom generation (default 1,000,000) */
  bloomCapacity?: number;
  /** processing time, for idleness (tests pass a fake one) */
  now?: () => number;
}

export interface IngestOrderStats extends MergerStats {
  allowedLatenessMs: number;
  hosts: number;
  dedupeExact: number;
  dedupeEvicted: number;
}

export class IngestOrder {
  readonly merger: EventTimeMerger<PendingLine>;
  readonly hosts: HostWatermarks;
  readonly dedupe: LineDedupe;

  constructor(opts: IngestOrderOptions = {}) {
    const lateness = opts.allowedLatenessMs ?? 300_000;
    this.merger = new EventTimeMerger<PendingLine>({
      ...(opts.idleMs !== undefined ? { idleMs: opts.idleMs } : {}),
      ...(opts.stallMs !== undefined ? { stallMs: opts.stallMs } : {}),
      ...(opts.maxBuffered !== undefined ? { maxBuffered: opts.maxBuffered } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
    this.hosts = new HostWatermarks(lateness);
    this.dedupe = new LineDedupe({
      horizonMs: lateness,
      ...(opts.maxExact !== undefined ? { maxExact: opts.maxExact } : {}),
      ...(opts.bloomCapacity !== undefined ? { bloomCapacity: opts.bloomCapacity } : {}),
    });
  }

  stats(): IngestOrderStats {
    return {
      ...this.merger.stats(),
      allowedLatenessMs: this.hosts.allowedLatenessMs,
      hosts: this.hosts.size,
      dedupeExact: this.dedupe.size,
      dedupeEvicted: this.dedupe.evictedEarly,
    };
  }

  /**
   * The per-host part of the event-time state, for `hosts`: the host's watermark and the exact
   * dedupe identities within its lateness horizon (a line admitted by another consumer is then
   * a duplicate here too), those in blocks whose text stays the same object while unchanged.
   */
  exportHosts(hosts: ReadonlySet<string>): Map<string, HostOrderExport> {
    const ids = this.dedupe.exportHostBlocks(hosts);
    const out = new Map<string, HostOrderExport>();
    for (const h of hosts) {
      const watermark = this.hosts.get(h);
      const b = ids.get(h);
      if (watermark === undefined && !b) continue;
      out.set(h, {
        state: { watermark: watermark ?? null, seen: '', v: 2, from: b?.from ?? 0, to: b?.to ?? 0 },
        blocks: b?.blocks ?? new Map(),
      });
    }
    return out;
  }

  /**
   * Puts a host's part back (from `exportHosts`, maybe of another consumer): `blocks` are its
   * `order.<n>` records by number (version 2); a version-1 part carries its identities in `seen`.
   */
  importHost(host: string, s: HostOrderState, blocks: ReadonlyMap<number, IdBlock> = new Map()): void {
    if (s.watermark !== null) this.hosts.admit(host, s.watermark);
    if (s.v === 2) {
      const from = s.from ?? 0;
      const to = s.to ?? 0;
      const missing = this.dedupe.importHostBlocks(host, from, to, [...blocks.values()]);
      if (missing > 0)
        log.error(
          'dedupe identities of a host missing from its state (a block not read): they start afresh',
          {
            host,
            missing,
          },
        );
      return;
    }
    const b = Buffer.from(s.seen, 'base64');
    const pairs = new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    this.dedupe.importHost(host, pairs);
  }

  /** Forgets `hosts` (their partition went to another consumer). */
  dropHosts(hosts: ReadonlySet<string>): void {
    for (const h of hosts) this.hosts.forget(h);
    this.dedupe.dropHosts(hosts);
  }

  /** Writes `dir/state.json` and `dir/bloom.bin` (dir is created). */
  save(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const j: OrderStateJson = {
      version: 1,
      hosts: this.hosts.toJSON(),
      dedupe: this.dedupe.toJSON(),
    };
    writeFileSync(join(dir, 'state.json'), JSON.stringify(j));
    const [cur, old] = this.dedupe.bloomBits();
    writeFileSync(join(dir, 'bloom.bin'), Buffer.concat([cur, old]));
  }

  /** Restores what `save` wrote. */
  load(dir: string): void {
    const p = join(dir, 'state.json');
    if (!existsSync(p)) return;
    const j = JSON.parse(readFileSync(p, 'utf8')) as OrderStateJson;
    if (j.version !== 1) throw new Error(`unknown ingest order state version ${String(j.version)}`);
    this.hosts.restore(j.hosts);
    const bloomPath = join(dir, 'bloom.bin');
    let bits: [Uint8Array, Uint8Array] | undefined;
    if (existsSync(bloomPath)) {
      const b = readFileSync(bloomPath);
      const half = b.length / 2;
      bits = [new Uint8Array(b.subarray(0, half)), new Uint8Array(b.subarray(half))];
    }
    this.dedupe.restore(j.dedupe, bits);
  }
}
