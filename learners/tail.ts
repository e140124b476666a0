// Tail probabilities of count distributions, as surprises in nats (−log p), computed in log space
// so a count far out in the tail gives a large finite number instead of −log 0. The anomaly
// learner scores every piece of evidence this way, so its parts add up on one scale.

/** Surprises are capped here: beyond it the evidence is overwhelming either way. */
export const MAX_SURPRISE = 50;

const LANCZOS = [
  676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
  -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7: about 15 significant digits). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let a = 0.99999999999980993;
  const t = z + 7.5;
  for (let i = 0; i < LANCZOS.length; i++) a += LANCZOS[i]! / (z + i + 1);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** a tail term this small next to the sum so far ends the sum (e^-35, as in log space before) */
const TAIL_EPS = Math.exp(-35);

/**
 * ln P(a, x), the regularised lower incomplete gamma function, for a > 0, x ≥ 0: the series when
 * x < a + 1 (exact in log space however small), else 1 − Q by Lentz's continued fraction.
 */
export function logLowerGammaP(a: number, x: number): number {
  if (x <= 0) return Number.NEGATIVE_INFINITY;
  const lead = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (term < sum * 1e-15) break;
    }
    return lead + Math.log(sum);
  }
  // Q(a, x) by the modified Lentz method; P = 1 − Q is then not small.
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  const q = Math.exp(lead) * h;
  return Math.log(Math.max(1e-300, 1 - q));
}

/**
 * −ln P(N ≥ k) for N ~ Poisson(mean); k may be fractional (a decayed count), through the identity
 * P(N ≥ k) = P(k, mean) that holds for integer k and interpolates smoothly between them.
 */
export function poissonSurprise(k: number, mean: number): number {
  if (k <= 0) return 0;
  if (!(mean > 0)) return MAX_SURPRISE;
  return Math.min(MAX_SURPRISE, Math.max(0, -logLowerGammaP(k, mean)));
}

/** ln P(K = k) of the negative binomial with r and q as countSurprise has them (module-level: no
 * closure made per call on a path that runs per template and window) */
function negBinomialLogPmf(k: number, r: number, q: number): number {
  return logGamma(k + r) - logGamma(k + 1) - logGamma(r) + r * Math.log(1 - q) + k * Math.log(q);
}

/**
 * −ln P(X ≥ m) for a count X with this mean and variance: negative binomial when overdispersed
 * (variance > mean), else Poisson. m is an integer ≥ 0.
 */
export function countSurprise(m: number, mean: number, variance: number): number {
  if (m <= 0) return 0;
  if (!(mean > 0)) return MAX_SURPRISE;
  if (!(variance > mean * 1.0001)) return poissonSurprise(m, mean);
  const r = (mean * mean) / (variance - mean);
  const q = mean / (r + mean); // success probability of the "extra count" trials
  const mode = r > 1 ? Math.floor(((r - 1) * q) / (1 - q)) : 0;
  if (m <= mode + 1) {
    // The tail holds at least the mode's mass: 1 − CDF loses nothing here.
    let cdf = 0;
    for (let k = 0; k < m; k++) cdf += Math.exp(negBinomialLogPmf(k, r, q));
    return Math.min(MAX_SURPRISE, Math.max(0, -Math.log(Math.max(1e-300, 1 - cdf))));
  }
  // Past the mode the terms fall monotonically: sum the tail itself relative to its first term
  // (every ratio ≤ 1, so nothing overflows), in log space only at the ends. A term is the one
  // before times ((k + r) / (k + 1)) q; an exp and two logs per term made this a twentieth of a
  // replay's CPU.
  const lp = negBinomialLogPmf(m, r, q);
  let term = 1;
  let sum = 1;
  for (let k = m; k < m + 100_000; k++) {
    term *= ((k + r) / (k + 1)) * q;
    sum += term;
    if (term < sum * TAIL_EPS) break;
  }
  return Math.min(MAX_SURPRISE, Math.max(0, -(lp + Math.log(sum))));
}

/** ln I_x(a, b), the regularised incomplete beta function, for a, b > 0 and 0 ≤ x ≤ 1. */
export function logBetaInc(x: number, a: number, b: number): number {
  if (x <= 0) return Number.NEGATIVE_INFINITY;
  if (x >= 1) return 0;
  const front = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return front + Math.log(betaFraction(x, a, b)) - Math.log(a);
  // the complement is the small one here: I = 1 − I_{1−x}(b, a)
  const c = Math.exp(front) * (betaFraction(1 - x, b, a) / b);
  return Math.log(Math.max(1e-300, 1 - c));
}

/** The continued fraction of the incomplete beta function (modified Lentz). */
function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/**
 * −ln P(K ≥ k) for K ~ NegativeBinomial with shape r and this mean: the predictive count of a
 * Poisson whose rate is only known as a Gamma(r, ·) posterior. k may be fractional (a decayed
 * count): P(K ≥ k) = I_q(k, r), q = mean / (r + mean), interpolates between integers.
 */
export function gammaPoissonSurprise(k: number, shape: number, mean: number): number {
  if (k <= 0) return 0;
  if (!(mean > 0) || !(shape > 0)) return MAX_SURPRISE;
  const q = mean / (shape + mean);
  return Math.min(MAX_SURPRISE, Math.max(0, -logBetaInc(q, k, shape)));
}

/** −ln P(Z ≥ z) for a standard normal Z (z ≥ 0), via the complementary error function. */
export function normalSurprise(z: number): number {
  if (z <= 0) return 0;
  // Asymptotic form past 8 σ, where erfc underflows relative precision.
  if (z > 8) return Math.min(MAX_SURPRISE, (z * z) / 2 + Math.log(z * Math.sqrt(2 * Math.PI)));
  return Math.min(MAX_SURPRISE, -Math.log(0.5 * erfc(z / Math.SQRT2)));
}

/** erfc(x) for x ≥ 0 (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7). */
function erfc(x: number): number {
  const t = 1 / (1 + 0.5 * x);
  const y =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t * (-1.13520398 + t * (1.48851973 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return y;
}
