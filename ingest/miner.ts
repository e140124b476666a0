// Streaming Drain-class template miner. A message is tokenised and masked (mask.ts), routed down a
// fixed-depth prefix tree (token count, then the first `depth` tokens), and matched against the
// templates in that leaf: a template that already fits wins; otherwise the most similar one at or
// above the threshold absorbs the message (differing positions become `<*>`, keeping a common
// `key=`/`(`…`)` frame); otherwise the message starts a new template.
//
// Lookup cost does not grow with the number of templates: the tree routes a message to the few
// templates of its token count and first tokens, and a leaf that still gathers many (high-entropy
// input lands in the `<*>` branch once a node has `maxChildren` children) indexes its templates by
// (position, token). A template that reaches the similarity threshold agrees with the message on
// `need` of its n positions, so on at least one of any `n - need + 1` of them: each template is
// listed under that many of its positions, literal ones first, and a message meets only the
// templates listed under its own tokens (Drain compares every template of the leaf).
//
// A masked message seen before skips all of this (the exact-match cache); a masked message enters
// the cache only the second time it is seen, so input whose masked forms never repeat (random
// text the masker could not reduce to `<*>`) pays the lookup but neither an entry nor a flush of
// the entries of lines that do repeat.
//
// Template ids are a hash of the template text, so the same template has the same id in every
// process and across restarts; ids a template had before it was generalised still resolve.
// Memory is bounded: past `maxTemplates` the least recently used templates are evicted (counted in
// stats().evicted). An evicted template's ids stop resolving; if its lines come back they start a
// new template, which gets the same id again when it reaches the same text (ids are the text's hash).
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isCut, Scanner, WILDCARD } from './mask.ts';

export interface MinerOptions {
  /** prefix-tree depth: how many leading tokens route a message (Drain's depth - 2) */
  depth?: number;
  /** similarity in [0,1] a message needs to join an existing template */
  threshold?: number;
  /** children per tree node before new tokens share the `<*>` branch */
  maxChildren?: number;
  /** templates kept; the least recently used go first */
  maxTemplates?: number;
  /** masked messages remembered for the exact-match fast path */
  cacheSize?: number;
  /**
   * templates a tree leaf holds before they are indexed by (position, token); smaller leaves are
   * scanned whole. Infinity: never (Drain's plain scan; the index gives the same answers)
   */
  indexAt?: number;
}

export type TemplateChange = 'none' | 'new' | 'generalized';

export interface MineResult {
  templateId: string;
  template: string;
  /** the values behind the template's `<*>`, in order */
  params: string[];
  change: TemplateChange;
}

export interface MinerState {
  version: 1;
  options: Required<Omit<MinerOptions, 'cacheSize' | 'indexAt'>>;
  /** most recently used last */
  templates: { template: string; count: number }[];
}

// Kinds of template positions.
const LIT = 0;
const ANY = 1;
/** one `<*>` inside a literal frame: `uid=<*>`, `(<*>)` */
const GLOB = 2;
/** `key=word`: an enumerated value (`PROTO=TCP`, `user=root`) that separates templates */
const ENUM = 3;

interface Cluster {
  tokens: string[];
  kinds: Uint8Array;
  pre: (string | undefined)[];
  suf: (string | undefined)[];
  /** count of LIT/ENUM/GLOB positions: more is more specific */
  fixed: number;
  template: string;
  id: string;
  count: number;
  lastUsed: number;
  /** creation order, for deterministic ties */
  seq: number;
  leaf: Leaf;
  alive: boolean;
  /** ids this template had before generalisation */
  aliases: string[];
  /** bumped when the template changes, so cached parameter plans are rebuilt */
  version: number;
  /** the last candidate search that met this template (dedup without a Set) */
  mark: number;
  /** the positions it is listed under in its leaf's index */
  anchors: number[];
}

/** A masked message seen before: its template and how to read the parameters out of it. */
interface CacheEntry {
  /** the masked message */
  key: string;
  units: Uint16Array;
  cluster: Cluster;
  version: number;
  /** per token: PLAN_VALUES, PLAN_WHOLE, PLAN_SLICE or PLAN_NONE */
  plan: Uint8Array;
  /** for PLAN_SLICE: literal prefix and suffix lengths */
  cut: Int32Array;
}

const PLAN_NONE = 0;
/** the values the masker took out of this token */
const PLAN_VALUES = 1;
/** the token as written (the template has `<*>` here) */
const PLAN_WHOLE = 2;
/** the token between a literal prefix and suffix (`user=<*>` over `user=root`) */
const PLAN_SLICE = 3;

type TreeMap = Map<string | number, unknown>;

/** The templates of one tree leaf, and the way back up to prune it when it empties. */
interface Leaf {
  /** in creation order */
  clusters: Cluster[];
  /** (map, key) from the root down to this leaf */
  chain: [TreeMap, string | number][];
  /** built once the leaf holds `indexAt` templates */
  index: LeafIndex | undefined;
}

/** The templates of a leaf by what they hold at each token position. */
interface LeafIndex {
  /** positions each template is listed under: n - need + 1 */
  r: number;
  /** literal (and `key=word`) token at position p → templates with it there */
  lit: Map<string, Cluster[]>[];
  /** templates with `<*>` at p */
  any: Cluster[][];
  /**
   * templates with a framed wildcard (`uid=<*>`, `(<*>)`) at p, by globKey of the frame's first
   * and last character: a message token can only fit frames keyed by its own first/last character
   */
  glob: Map<number, Cluster[]>[];
}

/** The bucket of a `pre<*>suf` frame: its first character (or none) and last character (or none). */
function globKey(first: number, last: number): number {
  return (first + 1) * 65_537 + (last + 1);
}

const NONE: Cluster[] = [];
const NO_UNITS = new Uint16Array(0);
const NO_CUT = new Int32Array(0);

function listRemove(list: Cluster[], c: Cluster): void {
  const i = list.indexOf(c);
  if (i < 0) return;
  // order does not matter: ties are broken by seq, not by list order
  list[i] = list[list.length - 1]!;
  list.pop();
}

/** slots of the doorkeeper (a power of two): 256 KiB */
const DOORKEEPER_SLOTS = 1 << 16;

const DEFAULTS = {
  depth: 2,
  threshold: 0.75,
  maxChildren: 100,
  maxTemplates: 20_000,
  cacheSize: 20_000,
  indexAt: 16,
};

export function templateIdOf(template: string): string {
  return createHash('sha256').update(template).digest('hex').slice(0, 16);
}

function kindOf(tok: string): number {
  if (tok === WILDCARD) return ANY;
  const w = tok.indexOf(WILDCARD);
  if (w >= 0) return tok.indexOf(WILDCARD, w + 1) < 0 ? GLOB : LIT;
  const eq = tok.indexOf('=');
  if (eq > 0 && eq < tok.length - 1) {
    for (let i = eq + 1; i < tok.length; i++) {
      const c = tok.charCodeAt(i) | 0x20;
      if (c < 97 || c > 122) return LIT;
    }
    return ENUM;
  }
  return LIT;
}

function longestCommonPrefix(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function longestCommonSuffix(a: string, b: string, max: number): number {
  let i = 0;
  while (i < max && a.charCodeAt(a.length - 1 - i) === b.charCodeAt(b.length - 1 - i)) i++;
  return i;
}

/**
 * The frame two different tokens share, cut at punctuation: `user=root` + `user=guest` → `user=<*>`,
 * `()` + `(<*>)` → `(<*>)`; nothing shared → `<*>`.
 */
export function mergeTokens(a: string, b: string): string {
  let p = longestCommonPrefix(a, b);
  while (p > 0 && !isCut(a.charCodeAt(p - 1))) p--;
  const room = Math.min(a.length, b.length) - p;
  let s = longestCommonSuffix(a, b, room);
  while (s > 0 && !isCut(a.charCodeAt(a.length - s))) s--;
  if (p === 0 && s === 0) return WILDCARD;
  const pre = a.slice(0, p);
  const suf = a.slice(a.length - s);
  if (pre.includes(WILDCARD) || suf.includes(WILDCARD) || pre.includes('<*') || suf.includes('*>'))
    return WILDCARD;
  return pre + WILDCARD + suf;
}

export class TemplateMiner {
  readonly options: Required<MinerOptions>;
  private readonly root: TreeMap = new Map();
  /** masked message hash → entry (a colliding message replaces the entry) */
  private readonly cache = new Map<number, CacheEntry>();
  /**
   * The cache's doorkeeper (TinyLFU's): the hashes of masked messages seen once, by hash. A
   * message enters the cache the second time it is seen, so a stream of masked forms that never
   * come back (high-entropy input) neither fills the cache (flushing the entries of the lines that
   * do repeat) nor leaves its entries to the old generation's collector.
   */
  private readonly seen = new Int32Array(DOORKEEPER_SLOTS);
  private readonly scanner = new Scanner();
  private readonly byId = new Map<string, Cluster>();
  private readonly clusters = new Set<Cluster>();
  private tick = 0;
  private seq = 0;
  private evicted = 0;
  /** templates compared with a message (cache misses only): what the index keeps flat */
  private compared = 0;

  constructor(opts: MinerOptions = {}) {
    this.options = { ...DEFAULTS, ...opts };
    if (!(this.options.threshold >= 0 && this.options.threshold <= 1))
      throw new RangeError(`threshold must be in [0,1], got ${this.options.threshold}`);
    if (!(this.options.depth >= 0)) throw new RangeError(`depth must be >= 0, got ${this.options.depth}`);
    if (!(this.options.maxTemplates >= 1))
      throw new RangeError(`maxTemplates must be >= 1, got ${this.options.maxTemplates}`);
  }

  get size(): number {
    return this.clusters.size;
  }

  /** templates evicted so far (without stats()'s walk of the prefix tree: read once per batch) */
  get evictedCount(): number {
    return this.evicted;
  }

  /**
   * templates held, evicted so far (least recently used, past maxTemplates), cached masked
   * messages, prefix-tree nodes, templates compared with a message so far
   */
  stats(): { templates: number; evicted: number; cached: number; nodes: number; compared: number } {
    const count = (m: TreeMap): number => {
      let n = m.size;
      for (const v of m.values()) if (v instanceof Map) n += count(v as TreeMap);
      return n;
    };
    return {
      templates: this.clusters.size,
      evicted: this.evicted,
      cached: this.cache.size,
      nodes: count(this.root),
      compared: this.compared,
    };
  }

  /**
   * Mines one message (the text after the syslog header): `text.slice(start, end)`, read in place
   * (the stage passes the whole line and ParsedLine.messageAt, sparing the slice's indirection).
   */
  add(text: string, start = 0, end = text.length): MineResult {
    const m = this.scanner.scan(text, start, end);
    let e = this.cache.get(m.hash);
    let change: TemplateChange = 'none';
    if (e && (!e.cluster.alive || !m.keyEquals(e.units))) e = undefined;
    if (!e) {
      const key = m.key();
      const masked = m.count === 0 ? [] : key.split(' ');
      const leaf = this.leafFor(masked);
      let c = this.bestFit(leaf, masked);
      if (!c) {
        const similar = this.mostSimilar(leaf, masked);
        if (similar) {
          this.generalise(similar, masked);
          c = similar;
          change = 'generalized';
        } else {
          c = this.create(leaf, masked, key);
          change = 'new';
        }
      }
      const h = m.hash | 0;
      const slot = h & (DOORKEEPER_SLOTS - 1);
      const admit = this.seen[slot] === h;
      this.seen[slot] = h;
      e = {
        key,
        units: admit ? m.keyUnits() : NO_UNITS,
        cluster: c,
        version: -1,
        plan: new Uint8Array(masked.length),
        cut: NO_CUT,
      };
      this.plan(e, masked);
      if (admit) {
        if (this.cache.size >= this.options.cacheSize) this.cache.clear();
        this.cache.set(m.hash, e);
      }
    } else if (e.version !== e.cluster.version) {
      this.plan(e, e.key.length === 0 ? [] : e.key.split(' '));
    }
    const c = e.cluster;
    c.count++;
    c.lastUsed = ++this.tick;
    const result: MineResult = { templateId: c.id, template: c.template, params: this.params(e, m), change };
    if (change === 'new' && this.clusters.size > this.options.maxTemplates) this.evict();
    return result;
  }

  /** The current id and template of a template id this miner gave out (maybe since generalised). */
  resolve(templateId: string): { templateId: string; template: string } | undefined {
    const c = this.byId.get(templateId);
    return c?.alive ? { templateId: c.id, template: c.template } : undefined;
  }

  /** Templates, most used first. */
  templates(): { templateId: string; template: string; count: number }[] {
    return [...this.clusters]
      .sort((a, b) => b.count - a.count || a.seq - b.seq)
      .map((c) => ({ templateId: c.id, template: c.template, count: c.count }));
  }

  toJSON(): MinerState {
    const { cacheSize: _c, indexAt: _i, ...options } = this.options;
    return {
      version: 1,
      options,
      templates: [...this.clusters]
        .sort((a, b) => a.lastUsed - b.lastUsed || a.seq - b.seq)
        .map((c) => ({ template: c.template, count: c.count })),
    };
  }

  static fromJSON(state: MinerState, overrides: MinerOptions = {}): TemplateMiner {
    if (state?.version !== 1 || !Array.isArray(state.templates))
      throw new Error('not a template miner state (expected {"version":1,"templates":[…]})');
    const miner = new TemplateMiner({ ...state.options, ...overrides });
    for (const t of state.templates) {
      if (typeof t.template !== 'string') continue;
      miner.insert(t.template, Number(t.count) || 0);
    }
    return miner;
  }

  /**
   * Takes a template as it is (another miner learnt it: a host that moved here brings the
   * templates its lines matched), so this miner matches those lines to the same template and id.
   * Returns its id. A template already here only gains `count`.
   */
  adopt(template: string, count = 0): string {
    const before = this.clusters.size;
    const id = this.insert(template, count);
    if (this.clusters.size > before) {
      // a message cached as another template may fit this one better now: look again
      this.cache.clear();
      if (this.clusters.size > this.options.maxTemplates) this.evict();
    }
    return id;
  }

  private insert(template: string, count: number): string {
    const tokens = template.length > 0 ? template.split(' ') : [];
    const leaf = this.leafFor(tokens);
    const existing = leaf.clusters.find((c) => c.template === template);
    const c = existing ?? this.create(leaf, tokens, template);
    c.count += count;
    c.lastUsed = ++this.tick;
    return c.id;
  }

  /** Writes the state atomically (temp file + rename). */
  save(path: string): void {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.toJSON()));
    renameSync(tmp, path);
  }

  static load(path: string, overrides: MinerOptions = {}): TemplateMiner {
    return TemplateMiner.fromJSON(JSON.parse(readFileSync(path, 'utf8')) as MinerState, overrides);
  }

  /** The leaf of a message: token count, then its first `depth` tokens (`<*>` for variables). */
  private leafFor(tokens: string[]): Leaf {
    const n = tokens.length;
    const depth = Math.min(this.options.depth, n);
    const chain: [TreeMap, string | number][] = [];
    let node = this.root;
    let key: string | number = n;
    for (let d = 0; ; d++) {
      const last = d === depth;
      let next = node.get(key);
      if (next === undefined) {
        next = last ? ({ clusters: [], chain: [], index: undefined } satisfies Leaf) : new Map();
        node.set(key, next);
      }
      chain.push([node, key]);
      if (last) {
        const leaf = next as Leaf;
        if (leaf.chain.length === 0) leaf.chain = chain;
        return leaf;
      }
      node = next as TreeMap;
      const t = tokens[d]!;
      key = t.includes(WILDCARD) ? WILDCARD : t;
      // Past maxChildren, new tokens share the `<*>` branch (bounds the fan-out).
      if (key !== WILDCARD && !node.has(key) && node.size >= this.options.maxChildren) key = WILDCARD;
    }
  }

  private prune(leaf: Leaf): void {
    if (leaf.clusters.length > 0) return;
    for (let k = leaf.chain.length - 1; k >= 0; k--) {
      const [map, key] = leaf.chain[k]!;
      map.delete(key);
      if (map.size > 0) return;
    }
  }

  /** The most specific template that matches every position of the message. */
  private bestFit(leaf: Leaf, masked: string[]): Cluster | undefined {
    const ix = leaf.index;
    if (!ix) return this.bestFitOf(leaf.clusters, masked, undefined, -1);
    // a fitting template fits at each position it is listed under, so it is met at one of them
    const epoch = ++this.epoch;
    let best: Cluster | undefined;
    for (let p = 0; p < masked.length; p++) {
      const t = masked[p]!;
      best = this.bestFitOf(ix.lit[p]!.get(t) ?? NONE, masked, best, epoch);
      best = this.bestFitOf(ix.any[p]!, masked, best, epoch);
      const g = ix.glob[p]!;
      if (g.size === 0) continue;
      const f = t.charCodeAt(0);
      const l = t.charCodeAt(t.length - 1);
      best = this.bestFitOf(g.get(globKey(f, l)) ?? NONE, masked, best, epoch);
      best = this.bestFitOf(g.get(globKey(f, -1)) ?? NONE, masked, best, epoch);
      best = this.bestFitOf(g.get(globKey(-1, l)) ?? NONE, masked, best, epoch);
    }
    return best;
  }

  private bestFitOf(
    clusters: Cluster[],
    masked: string[],
    best: Cluster | undefined,
    epoch: number,
  ): Cluster | undefined {
    for (let k = 0; k < clusters.length; k++) {
      const c = clusters[k]!;
      if (epoch >= 0) {
        if (c.mark === epoch) continue;
        c.mark = epoch;
      }
      if (best && c.fixed < best.fixed) continue;
      this.compared++;
      if (!this.fits(c, masked)) continue;
      if (!best || c.fixed > best.fixed || (c.fixed === best.fixed && c.seq < best.seq)) best = c;
    }
    return best;
  }

  private fits(c: Cluster, masked: string[]): boolean {
    const kinds = c.kinds;
    for (let i = 0; i < masked.length; i++) {
      const k = kinds[i];
      if (k === ANY) continue;
      const t = masked[i]!;
      if (k === GLOB) {
        const pre = c.pre[i]!;
        const suf = c.suf[i]!;
        if (t.length < pre.length + suf.length || !t.startsWith(pre) || !t.endsWith(suf)) return false;
      } else if (t !== c.tokens[i]) return false;
    }
    return true;
  }

  /**
   * Drain's similarity (share of positions that agree) where a variable of the message agrees
   * with a `<*>` of the template; enumerated values (`PROTO=TCP`) must agree.
   */
  private mostSimilar(leaf: Leaf, masked: string[]): Cluster | undefined {
    const kinds = this.messageKinds(masked);
    const ix = leaf.index;
    this.bestSim = -1;
    let best: Cluster | undefined;
    if (!ix) best = this.similarOf(leaf.clusters, masked, kinds, undefined, -1);
    else {
      const epoch = ++this.epoch;
      for (let p = 0; p < masked.length; p++) {
        const t = masked[p]!;
        best = this.similarOf(ix.lit[p]!.get(t) ?? NONE, masked, kinds, best, epoch);
        // a `<*>` of the template agrees only with a variable of the message
        if (t === WILDCARD) best = this.similarOf(ix.any[p]!, masked, kinds, best, epoch);
        const g = ix.glob[p]!;
        if (g.size === 0) continue;
        const f = t.charCodeAt(0);
        const l = t.charCodeAt(t.length - 1);
        best = this.similarOf(g.get(globKey(f, l)) ?? NONE, masked, kinds, best, epoch);
        best = this.similarOf(g.get(globKey(f, -1)) ?? NONE, masked, kinds, best, epoch);
        best = this.similarOf(g.get(globKey(-1, l)) ?? NONE, masked, kinds, best, epoch);
      }
    }
    return best && this.bestSim >= this.options.threshold ? best : undefined;
  }

  /** the similarity of the best template so far in mostSimilar */
  private bestSim = -1;
  private epoch = 0;
  private kinds = new Uint8Array(64);

  /** kindOf of each masked token, once per search (not once per template compared). */
  private messageKinds(masked: string[]): Uint8Array {
    if (this.kinds.length < masked.length) this.kinds = new Uint8Array(masked.length * 2);
    for (let i = 0; i < masked.length; i++) this.kinds[i] = kindOf(masked[i]!);
    return this.kinds;
  }

  private similarOf(
    clusters: Cluster[],
    masked: string[],
    mkinds: Uint8Array,
    best: Cluster | undefined,
    epoch: number,
  ): Cluster | undefined {
    const n = masked.length;
    let bestSim = this.bestSim;
    for (let k = 0; k < clusters.length; k++) {
      const c = clusters[k]!;
      if (epoch >= 0) {
        if (c.mark === epoch) continue;
        c.mark = epoch;
      }
      this.compared++;
      let same = 0;
      let blocked = false;
      for (let i = 0; i < n; i++) {
        const kind = c.kinds[i];
        const t = masked[i]!;
        if (kind === ANY) {
          // two variables in the same place agree; a word where the template has one does not
          if (t === WILDCARD) same++;
          continue;
        }
        if (kind === GLOB) {
          const pre = c.pre[i]!;
          const suf = c.suf[i]!;
          if (t.length >= pre.length + suf.length && t.startsWith(pre) && t.endsWith(suf)) same++;
        } else if (t === c.tokens[i]) same++;
        else if (kind === ENUM || mkinds[i] === ENUM) {
          blocked = true;
          break;
        }
      }
      if (blocked) continue;
      const sim = n === 0 ? 1 : same / n;
      if (
        sim > bestSim ||
        (sim === bestSim && best && (c.fixed > best.fixed || (c.fixed === best.fixed && c.seq < best.seq)))
      ) {
        bestSim = sim;
        best = c;
      }
    }
    this.bestSim = bestSim;
    return best;
  }

  private create(leaf: Leaf, tokens: string[], template: string): Cluster {
    const n = tokens.length;
    const c: Cluster = {
      tokens,
      kinds: new Uint8Array(n),
      pre: new Array(n),
      suf: new Array(n),
      fixed: 0,
      template,
      id: templateIdOf(template),
      count: 0,
      lastUsed: ++this.tick,
      seq: this.seq++,
      leaf,
      alive: true,
      aliases: [],
      version: 0,
      mark: 0,
      anchors: [],
    };
    this.classify(c);
    leaf.clusters.push(c);
    if (leaf.index) indexAdd(leaf.index, c);
    else if (leaf.clusters.length >= this.options.indexAt && n > 0) {
      // need: the agreeing positions a template needs to reach the threshold (0: all qualify)
      const need = Math.ceil(this.options.threshold * n - 1e-9);
      if (need > 0) leaf.index = buildIndex(leaf, n - need + 1);
    }
    this.clusters.add(c);
    this.byId.set(c.id, c);
    return c;
  }

  private classify(c: Cluster): void {
    let fixed = 0;
    for (let i = 0; i < c.tokens.length; i++) {
      const t = c.tokens[i]!;
      const k = kindOf(t);
      c.kinds[i] = k;
      if (k !== ANY) fixed++;
      if (k === GLOB) {
        const w = t.indexOf(WILDCARD);
        c.pre[i] = t.slice(0, w);
        c.suf[i] = t.slice(w + WILDCARD.length);
      }
    }
    c.fixed = fixed;
  }

  private generalise(c: Cluster, masked: string[]): void {
    const ix = c.leaf.index;
    if (ix) indexRemove(ix, c);
    const tokens = c.tokens;
    for (let i = 0; i < masked.length; i++) {
      const k = c.kinds[i];
      if (k === ANY) continue;
      const t = masked[i]!;
      if (k === GLOB) {
        const pre = c.pre[i]!;
        const suf = c.suf[i]!;
        if (t.length >= pre.length + suf.length && t.startsWith(pre) && t.endsWith(suf)) continue;
        tokens[i] = mergeTokens(tokens[i]!, t);
      } else if (t !== tokens[i]) tokens[i] = mergeTokens(tokens[i]!, t);
    }
    this.classify(c);
    if (ix) indexAdd(ix, c);
    const template = tokens.join(' ');
    if (template === c.template) return;
    c.aliases.push(c.id);
    c.version++;
    c.template = template;
    c.id = templateIdOf(template);
    this.byId.set(c.id, c);
  }

  private plan(e: CacheEntry, masked: string[]): void {
    const c = e.cluster;
    let cut: Int32Array | undefined;
    for (let i = 0; i < masked.length; i++) {
      const k = c.kinds[i];
      if (k === ANY) e.plan[i] = PLAN_WHOLE;
      else if (c.tokens[i] === masked[i]) e.plan[i] = PLAN_VALUES;
      else if (k === GLOB) {
        e.plan[i] = PLAN_SLICE;
        cut ??= new Int32Array(masked.length * 2);
        cut[2 * i] = c.pre[i]!.length;
        cut[2 * i + 1] = c.suf[i]!.length;
      } else e.plan[i] = PLAN_NONE;
    }
    e.cut = cut ?? e.cut;
    e.version = c.version;
  }

  private params(e: CacheEntry, m: Scanner): string[] {
    const out: string[] = [];
    const plan = e.plan;
    for (let i = 0; i < m.count; i++) {
      const p = plan[i];
      if (p === PLAN_VALUES) {
        for (let v = m.vstart[i]!; v < m.vstart[i + 1]!; v++) out.push(m.value(v));
      } else if (p === PLAN_WHOLE) {
        out.push(m.token(i));
      } else if (p === PLAN_SLICE) {
        out.push(m.message.slice(m.starts[i]! + e.cut[2 * i]!, m.ends[i]! - e.cut[2 * i + 1]!));
      }
    }
    return out;
  }

  /** Drops the least recently used sixteenth (at least one) of the templates. */
  private evict(): void {
    const all = [...this.clusters].sort((a, b) => a.lastUsed - b.lastUsed);
    const over = this.clusters.size - this.options.maxTemplates;
    const n = Math.max(over, Math.ceil(this.options.maxTemplates / 16));
    const leaves = new Set<Leaf>();
    for (let i = 0; i < n && i < all.length - 1; i++) {
      const c = all[i]!;
      c.alive = false;
      leaves.add(c.leaf);
      if (c.leaf.index) indexRemove(c.leaf.index, c);
      this.clusters.delete(c);
      if (this.byId.get(c.id) === c) this.byId.delete(c.id);
      for (const a of c.aliases) if (this.byId.get(a) === c) this.byId.delete(a);
      this.evicted++;
    }
    // one pass per leaf, not a search and a splice per template
    for (const leaf of leaves) {
      leaf.clusters = leaf.clusters.filter((c) => c.alive);
      this.prune(leaf);
    }
  }
}

function buildIndex(leaf: Leaf, r: number): LeafIndex {
  const n = leaf.clusters[0]!.tokens.length;
  const ix: LeafIndex = { r, lit: [], any: [], glob: [] };
  for (let p = 0; p < n; p++) {
    ix.lit.push(new Map());
    ix.any.push([]);
    ix.glob.push(new Map());
  }
  for (const c of leaf.clusters) indexAdd(ix, c);
  return ix;
}

function frameKey(c: Cluster, p: number): number {
  const pre = c.pre[p]!;
  const suf = c.suf[p]!;
  return globKey(
    pre.length > 0 ? pre.charCodeAt(0) : -1,
    suf.length > 0 ? suf.charCodeAt(suf.length - 1) : -1,
  );
}

function mapAdd<K>(m: Map<K, Cluster[]>, key: K, c: Cluster): void {
  const list = m.get(key);
  if (list) list.push(c);
  else m.set(key, [c]);
}

function mapRemove<K>(m: Map<K, Cluster[]>, key: K, c: Cluster): void {
  const list = m.get(key);
  if (!list) return;
  listRemove(list, c);
  if (list.length === 0) m.delete(key);
}

/**
 * Lists c under r of its positions: the literal (then framed) ones whose lists are shortest now, so
 * that templates sharing a common word spread over their rarer ones; `<*>` positions (met by every
 * message variable) only when it has too few others.
 */
function indexAdd(ix: LeafIndex, c: Cluster): void {
  const n = c.tokens.length;
  const cost: number[] = [];
  for (let p = 0; p < n; p++) {
    const k = c.kinds[p];
    if (k === ANY) cost.push(1e9 + ix.any[p]!.length);
    else if (k === GLOB) cost.push(1e6 + (ix.glob[p]!.get(frameKey(c, p))?.length ?? 0));
    else cost.push(ix.lit[p]!.get(c.tokens[p]!)?.length ?? 0);
  }
  const anchors: number[] = [];
  for (let k = 0; k < ix.r && k < n; k++) {
    let best = -1;
    for (let p = 0; p < n; p++) if (cost[p]! >= 0 && (best < 0 || cost[p]! < cost[best]!)) best = p;
    cost[best] = -1;
    anchors.push(best);
  }
  c.anchors = anchors;
  for (const p of anchors) {
    const k = c.kinds[p];
    if (k === ANY) ix.any[p]!.push(c);
    else if (k === GLOB) mapAdd(ix.glob[p]!, frameKey(c, p), c);
    else mapAdd(ix.lit[p]!, c.tokens[p]!, c);
  }
}

function indexRemove(ix: LeafIndex, c: Cluster): void {
  for (const p of c.anchors) {
    const k = c.kinds[p];
    if (k === ANY) listRemove(ix.any[p]!, c);
    else if (k === GLOB) mapRemove(ix.glob[p]!, frameKey(c, p), c);
    else mapRemove(ix.lit[p]!, c.tokens[p]!, c);
  }
  c.anchors = [];
}
