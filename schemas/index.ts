// schemas/: the Avro records every stage exchanges, and their codecs.
// Owns: the .avsc files (one per record), the single-object codec, and the variable contract
// (variable.ts: what a host, key and value may be; the number and boolean readers). Imports: avsc only.
import { readFileSync } from 'node:fs';
import type avro from 'avsc';
import { Codec } from './codec.ts';

export * from './codec.ts';
export { rabin64, rabin64Bytes } from './fingerprint.ts';
export * from './variable.ts';

export interface AnalyticsVariable {
  host: string;
  key: string;
  value: string;
  why: string;
  learner: string;
  model: string;
  confidence: number;
  /** epoch milliseconds */
  ts: number;
  /** declared type: int, float, bool, ip, string, enum */
  type: string;
  unit: string | null;
}

export interface KernelEvent {
  host: string;
  ts: number;
  mono: number | null;
  program: string | null;
  pid: number | null;
  severity: number | null;
  message: string;
  family: string;
  fields: Record<string, string>;
  templateId: string;
  template: string;
  params: string[];
  flags: string[];
}

export type KingCobraKind = 'REQUEST' | 'REPLY';

export interface KingCobraMessage {
  id: string;
  kind: KingCobraKind;
  clientAddr: string;
  ts_sec: number;
  ts_nsec: number;
  payload: string;
  inReplyTo: string | null;
}

export interface DroneSensorFrame {
  deviceId: string;
  seq: number;
  ts: number;
  distances: number[];
  speed: number;
  heading: number;
  goalBearing: number | null;
  goalDistance: number | null;
}

export interface WebcamFrame {
  deviceId: string;
  seq: number;
  ts: number;
  faceDetected: boolean;
  embedding: number[];
}

export const SCHEMA_DIR = new URL('.', import.meta.url);

export function loadSchema(name: string): avro.Schema {
  const path = new URL(`${name}.avsc`, SCHEMA_DIR);
  return JSON.parse(readFileSync(path, 'utf8')) as avro.Schema;
}

export const RECORD_NAMES = [
  'AnalyticsVariable',
  'KernelEvent',
  'KingCobraMessage',
  'DroneSensorFrame',
  'WebcamFrame',
] as const;
export type RecordName = (typeof RECORD_NAMES)[number];

export interface RecordTypes {
  AnalyticsVariable: AnalyticsVariable;
  KernelEvent: KernelEvent;
  KingCobraMessage: KingCobraMessage;
  DroneSensorFrame: DroneSensorFrame;
  WebcamFrame: WebcamFrame;
}

const cache = new Map<RecordName, Codec<unknown>>();

/** The process-wide codec of one record (schemas are parsed once). */
export function codecFor<N extends RecordName>(name: N): Codec<RecordTypes[N]> {
  let c = cache.get(name);
  if (!c) {
    c = new Codec<unknown>(loadSchema(name));
    cache.set(name, c);
  }
  return c as Codec<RecordTypes[N]>;
}

/** Which record a single-object message holds, by its fingerprint; undefined if none we know. */
export function recordForFingerprint(fp: string): RecordName | undefined {
  return RECORD_NAMES.find((n) => codecFor(n).knows(fp));
}

export const analyticsVariableCodec = (): Codec<AnalyticsVariable> => codecFor('AnalyticsVariable');
export const kernelEventCodec = (): Codec<KernelEvent> => codecFor('KernelEvent');
export const kingCobraCodec = (): Codec<KingCobraMessage> => codecFor('KingCobraMessage');
export const droneSensorCodec = (): Codec<DroneSensorFrame> => codecFor('DroneSensorFrame');
export const webcamFrameCodec = (): Codec<WebcamFrame> => codecFor('WebcamFrame');
