// One shape for what a learner persists, so no learner copies its fields into and out of
// state.json by hand: a part per host (windows, counts, forecasts: what follows a host when Kafka
// moves its partition to another instance, docs/design.md §7.6) and a shared part (the instance's
// models' training state, replay buffers, fleet statistics), plus an optional tfjs model saved
// beside it. A learner exposes a `LearnerState`; `saveLearnerState` and `loadLearnerState` write
// and read `<dir>/state.json` and `<dir>/model/` for every learner alike, and the learner host
// takes single hosts out of it (`host`) and puts them back (`restoreHost`) for the changelog.
//
// state.json: {"format":"virgo-learner-state","learner":…,"version":N,"shared":{…},"hosts":[[host,{…}],…]}
// A file of the layout before this one (the learner's fields at the top level) is read through
// the learner's `legacy` converter.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type ModelBlob, modelFromBlob, modelToBlob } from './model-io.ts';
import { readJson, writeJsonAtomic } from './snapshot.ts';
import { loadModel, type Model, saveModel } from './tf-util.ts';
import type { Tf } from './types.ts';

export const STATE_FORMAT = 'virgo-learner-state';

export interface LearnerState<Shared = unknown, Host = unknown> {
  /** the learner's name, written into the file (a state saved by another learner is refused) */
  readonly learner: string;
  /** the layout version of `shared` and the host parts */
  readonly version: number;
  /** the instance's part (JSON-able) */
  shared(): Shared;
  restoreShared(s: Shared): void;
  /** hosts it holds state for */
  hosts(): Iterable<string>;
  /** one host's part (JSON-able), undefined when it holds nothing for it */
  host(name: string): Host | undefined;
  /** puts a host's part back (from a file, or from another instance through the changelog) */
  restoreHost(name: string, s: Host): void;
  /** forgets a host (its partition went to another instance) */
  dropHost(name: string): void;
  /** the tfjs model saved with the state (model/model.json + weights.bin, optimiser included);
   * async for a learner that trains outside tfjs and writes its weights into the model first */
  readonly model?: { get(): Model | Promise<Model>; set(m: Model): void | Promise<void> };
  /** examples the shared part learnt from: of two instances' shared parts, the one that learnt
   * more is the better start (absent: the shared part is not handed between instances) */
  trained?(): number;
  /** reads a state.json of the layout before this one into the parts */
  legacy?(json: Record<string, unknown>): { shared: Shared; hosts: [string, Host][] };
}

export interface LearnerStateFile<Shared = unknown, Host = unknown> {
  format: typeof STATE_FORMAT;
  learner: string;
  version: number;
  shared: Shared;
  hosts: [string, Host][];
}

export class LearnerStateError extends Error {
  override readonly name = 'LearnerStateError';
}

/** Every host's part, as state.json holds them. */
export function allHosts<S, H>(st: LearnerState<S, H>): [string, H][] {
  const out: [string, H][] = [];
  for (const h of st.hosts()) {
    const s = st.host(h);
    if (s !== undefined) out.push([h, s]);
  }
  return out;
}

/** Writes `<dir>/model/` (when the learner has a model) and `<dir>/state.json`. */
export async function saveLearnerState<S, H>(dir: string, st: LearnerState<S, H>, tf?: Tf): Promise<void> {
  if (st.model) {
    if (!tf) throw new LearnerStateError(`learner ${st.learner} has a model but no tfjs to save it`);
    await saveModel(await st.model.get(), dir, tf);
  }
  const file: LearnerStateFile<S, H> = {
    format: STATE_FORMAT,
    learner: st.learner,
    version: st.version,
    shared: st.shared(),
    hosts: allHosts(st),
  };
  writeJsonAtomic(join(dir, 'state.json'), file);
}

/** Reads what `saveLearnerState` wrote (or the learner's older layout) into the learner. */
export async function loadLearnerState<S, H>(dir: string, st: LearnerState<S, H>, tf?: Tf): Promise<void> {
  const path = join(dir, 'state.json');
  const j = readJson<Record<string, unknown>>(path);
  let parts: { shared: S; hosts: [string, H][] };
  if (j.format === STATE_FORMAT) {
    const f = j as unknown as LearnerStateFile<S, H>;
    if (f.learner !== st.learner)
      throw new LearnerStateError(`${path} is the state of learner ${f.learner}, not ${st.learner}`);
    if (f.version !== st.version)
      throw new LearnerStateError(
        `${path} has state version ${f.version}; learner ${st.learner} reads version ${st.version}`,
      );
    parts = { shared: f.shared, hosts: f.hosts };
  } else if (st.legacy) {
    parts = st.legacy(j);
  } else {
    throw new LearnerStateError(`${path} is not a learner state (no "format":"${STATE_FORMAT}")`);
  }
  // The model first: a state without its model is refused before anything changed.
  if (st.model) {
    if (!tf) throw new LearnerStateError(`learner ${st.learner} has a model but no tfjs to load it`);
    if (!existsSync(join(dir, 'model')))
      throw new LearnerStateError(`${dir} holds no model/ for learner ${st.learner}`);
    await st.model.set(await loadModel(tf, dir));
  }
  st.restoreShared(parts.shared);
  for (const h of [...st.hosts()]) st.dropHost(h);
  for (const [h, s] of parts.hosts) st.restoreHost(h, s);
}

/** A learner's shared part (and model) as one JSON document, for another instance to start from. */
export interface SharedDoc<S = unknown> {
  learner: string;
  version: number;
  trained: number;
  shared: S;
  model?: ModelBlob;
}

export async function exportShared<S, H>(st: LearnerState<S, H>, tf?: Tf): Promise<SharedDoc<S>> {
  return {
    learner: st.learner,
    version: st.version,
    trained: st.trained?.() ?? 0,
    shared: st.shared(),
    ...(st.model && tf ? { model: await modelToBlob(tf, await st.model.get()) } : {}),
  };
}

/** Takes another instance's shared part (and model); false when it is not this learner's. */
export async function importShared<S, H>(
  st: LearnerState<S, H>,
  doc: SharedDoc<S>,
  tf?: Tf,
): Promise<boolean> {
  if (doc.learner !== st.learner || doc.version !== st.version) return false;
  if (st.model) {
    if (!tf || !doc.model) return false;
    await st.model.set(await modelFromBlob(tf, doc.model));
  }
  st.restoreShared(doc.shared);
  return true;
}
