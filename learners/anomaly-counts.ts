// The online count model behind kernel.anomaly: what each host logs and how often, learnt with
// exponential forgetting on event time, backed off to the fleet for what a host has not shown
// yet, and to the rate at which new templates appear for what nobody has shown.
//
// Time is counted in windows of event time. Two rates per host, kept apart on purpose:
//  - activity: how many windows it logs anything in, per window of exposure (exposure runs from
//    its first line to its latest, silent windows included);
//  - content: of its active windows, how many contain template t. Conditioning on the host
//    logging keeps a sampled log (Loghub's) or a quiet host honest: a line a host logs in one
//    window out of ten is common for it, however rarely it logs.
//
// Surprises, all −ln p (nats), each from what was known BEFORE the window (judge, then learn):
//  - occurrence of t: the host's active windows with t over the last hour (short half-life)
//    against its share of t before that hour, as a Gamma-Poisson predictive (the share is only
//    known as a posterior: forgiving while little is known, sharp once much is). For a template
//    the last hour did not have, also that it shows up now at all: a never-seen one by the rate
//    new templates appear (Good-Turing style, fleet-wide), a known one never more than that;
//  - burst of t: given that t occurred, how unlikely this many lines of it are (negative binomial
//    from the sizes t had on this host before the last hour, then in the fleet);
//  - activity: the host's other active windows of the last hour against its usual activity;
//  - volume: the window's line count against the host's usual before the last hour.
// Comparing against the usual BEFORE the last hour keeps an ongoing burst from hiding itself.
// It also keeps when each host first logged each template, and which templates the fleet logged
// during the baseline (its first `baselineWindows`, taken as the fleet's usual state), so the
// learner can tell known behaviour from what appeared later.
import { countSurprise, gammaPoissonSurprise } from './tail.ts';

export interface CountModelOptions {
  /** half-life of the "recent" counts, in windows (60: an hour of 60 s windows) */
  shortHalfLife: number;
  /** half-life of the long-run counts, in windows (10080: a week) */
  longHalfLife: number;
  /** active windows of fleet experience a host's content rates start from */
  contentPrior: number;
  /** windows from the first one learnt during which what a host logs is its baseline */
  baselineWindows: number;
  /** windows of fleet experience a host's activity rate starts from */
  activityPrior: number;
  maxHostTemplates: number;
  maxFleetTemplates: number;
  maxHosts: number;
}

export const COUNT_DEFAULTS: CountModelOptions = {
  shortHalfLife: 60,
  longHalfLife: 10_080,
  contentPrior: 3,
  baselineWindows: 120,
  activityPrior: 1440,
  maxHostTemplates: 2000,
  maxFleetTemplates: 20_000,
  maxHosts: 20_000,
};

/** One template's lines in one host-window. */
export interface WindowTemplate {
  n: number;
  /** worst (lowest) severity of its event lines (context lines left out), null if none was known */
  sev: number | null;
  text: string;
  /** how many of its lines were context lines (context-line.ts), their worst severity and shape */
  ctx: number;
  ctxSev: number | null;
  shape: string | null;
}

export interface WindowCounts {
  host: string;
  /** window index (event time / window length) */
  w: number;
  total: number;
  templates: Map<string, WindowTemplate>;
}

export interface TemplateSurprise {
  templateId: string;
  text: string;
  n: number;
  sev: number | null;
  /** context lines among the n, their worst severity and shape (context-line.ts) */
  ctx: number;
  ctxSev: number | null;
  shape: string | null;
  /** lines of t expected in an active window of this host (share × usual size), before this one */
  expected: number;
  /** occurrence surprise, nats */
  occurrence: number;
  /** size surprise given it occurred, nats */
  burst: number;
  /** active windows with t over the last hour (decayed), this one included */
  recent: number;
  /** how well this host knew t before the recent windows: its active windows with t older than
   * about an hour (what recurs within the hour is an episode, not routine yet; what other hosts
   * log every day says little about this one, so only the host's own count) */
  familiar: number;
  /** windows since the host first logged t (0 when it is new on the host) */
  age: number;
  /** the fleet logged t during the baseline (the first `baselineWindows` the model learnt, when the
   * fleet is taken to be in its usual state), or this window is in it */
  baseline: boolean;
  hostNew: boolean;
  fleetNew: boolean;
  // The learner's verdict on t (anomaly.ts, decide), 0 and false until it fills them in. Slots
  // here, not added there: an object built with 18 fields and given 3 more afterwards gets a
  // second allocation for them, per template per window (~15% of a pass, with its garbage).
  /** severity prior + occurrence + burst, nats */
  evidence: number;
  prior: number;
  /** a critical template that recurred but kept its whole prior (not baseline, not a day old) */
  kept: boolean;
}

export interface CountSurprise {
  /** this window's lines against the usual, nats */
  n: number;
  expected: number;
  surprise: number;
}

export interface WindowSurprise {
  templates: TemplateSurprise[];
  volume: CountSurprise;
  /** active windows over the last hour (decayed) against the usual number */
  activity: CountSurprise;
}

/** decayed moments of X = n − 1 over occurrences: count, Σx, Σx² */
interface Moments {
  c: number;
  s1: number;
  s2: number;
}

interface TStat extends Moments {
  at: number;
  /** window the host first logged t in */
  first: number;
  /** active windows with t, short half-life (the long-run count is `c`) */
  ks: number;
  /** the size moments with the short half-life (what the last hour added) */
  short: Moments;
}

interface HostStat {
  at: number;
  /** exposure in windows, short and long half-life */
  ts: number;
  tl: number;
  /** active windows, short and long half-life */
  as: number;
  al: number;
  /** window sizes (X = lines − 1), long and short half-life */
  vol: Moments;
  volShort: Moments;
  t: Map<string, TStat>;
}

interface FleetT extends Moments {
  at: number;
  text: string;
  /** some host logged it during the baseline (the model's first `baselineWindows`) */
  baseline: boolean;
}

export interface CountModelJson {
  at: number | null;
  origin: number | null;
  exposure: number;
  active: number;
  fresh: number;
  vol: Moments;
  clump: Moments;
  fleet: [string, FleetT][];
  hosts: [string, Omit<HostStat, 't'> & { t: [string, TStat][] }][];
}

const zero = (): Moments => ({ c: 0, s1: 0, s2: 0 });

function decayInPlace(m: Moments, f: number): void {
  m.c *= f;
  m.s1 *= f;
  m.s2 *= f;
}

function addX(m: Moments, x: number): void {
  m.c += 1;
  m.s1 += x;
  m.s2 += x * x;
}

/**
 * Mean and variance from moments, each part counting `weight` pseudo-occurrences of its own mean
 * and spread (Infinity: its own count). The first part is the host's, the others its priors.
 * Parts are added as numbers into one object judge() reuses: it blends per template and window,
 * and an object per part (and per scaled or based moments) was much of a pass's garbage.
 */
class Blend {
  private c = 0;
  private s1 = 0;
  private s2 = 0;
  mean = 0;
  variance = 0;

  start(): this {
    this.c = 0;
    this.s1 = 0;
    this.s2 = 0;
    return this;
  }

  /** a part whose moments are c, s1, s2; none (c not > 0) adds nothing */
  add(c: number, s1: number, s2: number, weight: number): this {
    if (!(c > 0) || weight <= 0) return this;
    const f = Number.isFinite(weight) ? weight / c : 1;
    this.c += c * f;
    this.s1 += s1 * f;
    this.s2 += s2 * f;
    return this;
  }

  /** m decayed by f */
  addScaled(m: Moments, f: number, weight: number): this {
    return this.add(m.c * f, m.s1 * f, m.s2 * f, weight);
  }

  /** Long-run moments minus what the last hour added: the usual before the current episode. */
  addBase(long: Moments, fl: number, short: Moments, fs: number, weight: number): this {
    const c = long.c * fl - short.c * fs;
    if (c <= 1e-9) return this;
    return this.add(
      c,
      Math.max(0, long.s1 * fl - short.s1 * fs),
      Math.max(0, long.s2 * fl - short.s2 * fs),
      weight,
    );
  }

  end(): this {
    if (this.c <= 0) {
      this.mean = 0;
      this.variance = 0;
      return this;
    }
    this.mean = this.s1 / this.c;
    this.variance = Math.max(0, this.s2 / this.c - this.mean * this.mean);
    return this;
  }
}

/** −ln P(X ≥ x) for a size X with these moments, never below a small mean (a prior's floor). */
function sizeSurprise(x: number, s: { mean: number; variance: number }): number {
  const mean = Math.max(s.mean, 0.05);
  return countSurprise(x, mean, Math.max(s.variance, mean));
}

export class CountModel {
  private readonly dS: number;
  private readonly dL: number;
  private hosts = new Map<string, HostStat>();
  /** judge's scratch for blending moments (one at a time) */
  private readonly blend = new Blend();
  private fleet = new Map<string, FleetT>();
  /** fleet clock: newest window learnt */
  private at = Number.NEGATIVE_INFINITY;
  /** the first window learnt: the baseline runs `baselineWindows` from it */
  private origin = Number.NaN;
  /** Σ of host exposures and of host active windows (long half-life) */
  private exposure = 0;
  private active = 0;
  /** active host-windows that held a template new to the fleet (long half-life) */
  private fresh = 0;
  /** fleet window sizes, and the sizes of every template occurrence (priors for the unknown) */
  private vol = zero();
  private clump = zero();

  constructor(readonly opts: CountModelOptions = COUNT_DEFAULTS) {
    this.dS = 2 ** (-1 / opts.shortHalfLife);
    this.dL = 2 ** (-1 / opts.longHalfLife);
  }

  get hostCount(): number {
    return this.hosts.size;
  }

  get templateCount(): number {
    return this.fleet.size;
  }

  /** Σ d^i for i < n: the exposure n windows add */
  private inc(n: number, d: number): number {
    return n <= 0 ? 0 : (1 - d ** n) / (1 - d);
  }

  private fleetDecay(w: number): number {
    return w > this.at && Number.isFinite(this.at) ? this.dL ** (w - this.at) : 1;
  }

  /** A window's surprises. Call before learn(win): judged, then learnt. */
  judge(win: WindowCounts): WindowSurprise {
    const h = this.hosts.get(win.host);
    const gap = h ? Math.max(0, win.w - h.at) : 1;
    const dsG = this.dS ** gap;
    const dlG = this.dL ** gap;
    // host state before this window, decayed to it; "base" = older than the last hour (roughly)
    const asPrev = h ? h.as * dsG : 0;
    const alPrev = h ? h.al * dlG : 0;
    const tsPrev = h ? h.ts * dsG : 0;
    const tlPrev = h ? h.tl * dlG : 0;
    const asNow = asPrev + 1;
    const baseActive = Math.max(0, alPrev - asPrev);
    const baseExposure = Math.max(0, tlPrev - tsPrev);

    const ff = this.fleetDecay(win.w);
    const fleetActive = this.active * ff;
    const pNew = (this.fresh * ff + 1) / (fleetActive + 2);
    // sizes of all template occurrences, with a broad pseudo-occurrence (mean 1 extra line, sd 3)
    const clumpC = this.clump.c * ff + 1;
    const clumpS1 = this.clump.s1 * ff + 1;
    const clumpS2 = this.clump.s2 * ff + 10;
    const blend = this.blend;
    const kPrior = this.opts.contentPrior;

    // activity per window of exposure (silence included), the fleet's as the prior of a host
    // with little history of its own
    const rhoFleet = (fleetActive + 1) / (this.exposure * ff + 2);
    const aPrior = this.opts.activityPrior;

    const templates: TemplateSurprise[] = [];
    for (const [id, wt] of win.templates) {
      const st = h?.t.get(id);
      const age = st ? Math.max(0, win.w - st.at) : 0;
      // each decay factor computed once (a power per use was a good part of judge's own time)
      const dsAge = this.dS ** age;
      const dlAge = this.dL ** age;
      const ksPrev = st ? st.ks * dsAge : 0;
      const klPrev = st ? st.c * dlAge : 0;
      const kBase = Math.max(0, klPrev - ksPrev);
      const ft = this.fleet.get(id);
      const fAge = ft ? Math.max(0, win.w - ft.at) : 0;
      const dlFAge = this.dL ** fAge;
      const klFleet = ft ? ft.c * dlFAge : 0;
      // The fleet's share of active host-windows with t, never below the rate at which new
      // templates appear (a template seen once is no more surprising than a new one); then the
      // host's share before the recent windows as a Gamma posterior, with `contentPrior` windows
      // of the fleet's share as its prior.
      const shareFleet = Math.max(pNew, klFleet / (fleetActive + 1));
      const shape = kPrior * shareFleet + kBase;
      const rate = kPrior + baseActive;
      const recent = ksPrev + 1;
      // How unlikely this many recent active windows with t are, given that share (t's share only
      // known as that posterior: the Gamma-Poisson predictive, forgiving while little is known) …
      let occurrence = gammaPoissonSurprise(recent, shape, (shape / rate) * asNow);
      if (ksPrev < 0.5) {
        // … and, for a template the recent windows did not have, that it shows up in this window
        // at all: new templates by the rate new ones appear, known ones never more than that.
        const novel = -Math.log(-Math.expm1(-pNew));
        occurrence = Math.max(
          occurrence,
          klFleet < 1e-9 ? novel : Math.min(novel, gammaPoissonSurprise(1, shape, shape / rate)),
        );
      }
      const size = blend.start();
      // sizes before the last hour: a burst must not make the next minute's burst look usual
      if (st) size.addBase(st, dlAge, st.short, dsAge, Number.POSITIVE_INFINITY);
      if (ft) size.addScaled(ft, dlFAge, 2);
      size.add(clumpC, clumpS1, clumpS2, 1).end();
      templates.push({
        templateId: id,
        text: wt.text,
        n: wt.n,
        sev: wt.sev,
        ctx: wt.ctx,
        ctxSev: wt.ctxSev,
        shape: wt.shape,
        expected: Math.min(1, shape / rate) * (1 + size.mean),
        occurrence,
        burst: wt.n >= 2 ? sizeSurprise(wt.n - 1, size) : 0,
        recent,
        familiar: kBase,
        age: st ? Math.max(0, win.w - st.first) : 0,
        baseline: (ft?.baseline ?? false) || this.inBaseline(win.w),
        hostNew: klPrev < 1e-9,
        fleetNew: klFleet < 1e-9,
        prior: 0,
        kept: false,
        evidence: 0,
      });
    }

    const v = blend.start();
    if (h) v.addBase(h.vol, dlG, h.volShort, dsG, Number.POSITIVE_INFINITY);
    v.addScaled(this.vol, ff, 2);
    // a broad default (mean 2 extra lines, sd ~4) so a young host's first busy window is no alarm
    v.add(1, 2, 20, 1).end();
    const volume: CountSurprise = {
      n: win.total,
      expected: 1 + v.mean,
      surprise: sizeSurprise(win.total - 1, v),
    };

    const shapeA = aPrior * rhoFleet + baseActive;
    const rateA = aPrior + baseExposure;
    // Given that the host logs now (this window exists), how unusual are its OTHER active windows
    // of the last hour: a host's first window is no evidence of anything.
    const activity: CountSurprise = {
      n: asPrev,
      expected: (shapeA / rateA) * tsPrev,
      surprise: gammaPoissonSurprise(asPrev, shapeA, (shapeA / rateA) * tsPrev),
    };
    return { templates, volume, activity };
  }

  /** Whether a window lies in the baseline (the model's first `baselineWindows`; all of them
   * while nothing was learnt yet). */
  private inBaseline(w: number): boolean {
    return Number.isNaN(this.origin) || w < this.origin + this.opts.baselineWindows;
  }

  learn(win: WindowCounts): void {
    if (Number.isNaN(this.origin)) this.origin = win.w;
    let h = this.hosts.get(win.host);
    const gap = h ? Math.max(0, win.w - h.at) : 1;
    if (!h) {
      h = { at: win.w, ts: 0, tl: 0, as: 0, al: 0, vol: zero(), volShort: zero(), t: new Map() };
      this.hosts.set(win.host, h);
    } else {
      // re-inserted: Map order is then least recently seen first (the pruning order)
      this.hosts.delete(win.host);
      this.hosts.set(win.host, h);
    }
    const dsG = this.dS ** gap;
    const dlG = this.dL ** gap;
    const addL = this.inc(gap, this.dL);
    h.ts = h.ts * dsG + this.inc(gap, this.dS);
    h.tl = h.tl * dlG + addL;
    h.as = h.as * dsG + 1;
    h.al = h.al * dlG + 1;
    decayInPlace(h.vol, dlG);
    decayInPlace(h.volShort, dsG);
    addX(h.vol, win.total - 1);
    addX(h.volShort, win.total - 1);
    h.at = Math.max(h.at, win.w);

    const ff = this.fleetDecay(win.w);
    if (ff !== 1) {
      this.exposure *= ff;
      this.active *= ff;
      this.fresh *= ff;
      decayInPlace(this.vol, ff);
      decayInPlace(this.clump, ff);
    }
    if (!(win.w <= this.at)) this.at = win.w;
    this.exposure += addL;
    this.active += 1;
    addX(this.vol, win.total - 1);

    let fresh = false;
    for (const [id, wt] of win.templates) {
      const x = wt.n - 1;
      let st = h.t.get(id);
      if (!st) {
        st = { at: win.w, first: win.w, ks: 0, c: 0, s1: 0, s2: 0, short: zero() };
        h.t.set(id, st);
      } else {
        const age = Math.max(0, win.w - st.at);
        const dsAge = this.dS ** age;
        st.ks *= dsAge;
        decayInPlace(st, this.dL ** age);
        decayInPlace(st.short, dsAge);
        st.at = Math.max(st.at, win.w);
      }
      st.ks += 1;
      addX(st, x);
      addX(st.short, x);
      let ft = this.fleet.get(id);
      if (!ft) {
        fresh = true;
        ft = { at: win.w, c: 0, s1: 0, s2: 0, text: wt.text, baseline: false };
        this.fleet.set(id, ft);
      } else {
        decayInPlace(ft, this.dL ** Math.max(0, win.w - ft.at));
        ft.at = Math.max(ft.at, win.w);
        ft.text = wt.text;
      }
      if (this.inBaseline(win.w)) ft.baseline = true;
      addX(ft, x);
      addX(this.clump, x);
    }
    if (fresh) this.fresh += 1;
    if (h.t.size > this.opts.maxHostTemplates * 1.1) prune(h.t, this.opts.maxHostTemplates, win.w, this.dL);
    if (this.fleet.size > this.opts.maxFleetTemplates * 1.1)
      prune(this.fleet, this.opts.maxFleetTemplates, win.w, this.dL);
    if (this.hosts.size > this.opts.maxHosts * 1.1) {
      // learn() re-inserts a host when it logs, so the first ones are the longest silent
      const drop = this.hosts.size - this.opts.maxHosts;
      let i = 0;
      for (const k of this.hosts.keys()) {
        if (i++ >= drop) break;
        this.hosts.delete(k);
      }
    }
  }

  /** The newest window learnt for this host. */
  lastWindow(host: string): number | undefined {
    return this.hosts.get(host)?.at;
  }

  toJSON(): CountModelJson {
    return {
      at: Number.isFinite(this.at) ? this.at : null,
      origin: Number.isNaN(this.origin) ? null : this.origin,
      exposure: this.exposure,
      active: this.active,
      fresh: this.fresh,
      vol: this.vol,
      clump: this.clump,
      fleet: [...this.fleet],
      hosts: [...this.hosts].map(([k, h]) => [k, { ...h, t: [...h.t] }]),
    };
  }

  static fromJSON(j: CountModelJson, opts: CountModelOptions = COUNT_DEFAULTS): CountModel {
    const m = new CountModel(opts);
    m.at = j.at ?? Number.NEGATIVE_INFINITY;
    m.origin = j.origin ?? Number.NaN;
    m.exposure = j.exposure;
    m.active = j.active;
    m.fresh = j.fresh;
    m.vol = j.vol;
    m.clump = j.clump;
    m.fleet = new Map(j.fleet);
    m.hosts = new Map(j.hosts.map(([k, h]) => [k, { ...h, t: new Map(h.t) }]));
    return m;
  }
}

/** Keeps the `keep` entries with the largest decayed count. */
function prune<T extends Moments & { at: number }>(
  m: Map<string, T>,
  keep: number,
  w: number,
  d: number,
): void {
  const ranked = [...m].map(([k, v]) => [k, v.c * d ** Math.max(0, w - v.at)] as const);
  ranked.sort((a, b) => a[1] - b[1]);
  for (let i = 0; i < ranked.length - keep; i++) m.delete(ranked[i]![0]);
}
