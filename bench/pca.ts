// The PCA baseline of log anomaly detection (Xu et al., SOSP 2009; as in Loghub's loglizer):
// project window vectors on the principal subspace that explains 95% of their variance and flag
// a window whose squared prediction error (SPE) exceeds the Q-statistic threshold of Jackson and
// Mudholkar (1979) at c_alpha = 3.2905 (loglizer's default). Fitted on past windows only.

/** Eigenvalues (descending) and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi. */
export function symmetricEigen(a: number[][]): { values: number[]; vectors: number[][] } {
  const n = a.length;
  const m = a.map((r) => [...r]);
  const v = Array.from({ length: n }, (_, i) =>
    Array.from({ length: n }, (_, j): number => (i === j ? 1 : 0)),
  );
  for (let sweep = 0; sweep < 50; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p]![q]! ** 2;
    if (off < 1e-18) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p]![q]!;
        if (Math.abs(apq) < 1e-15) continue;
        const theta = (m[q]![q]! - m[p]![p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k]![p]!;
          const mkq = m[k]![q]!;
          m[k]![p] = c * mkp - s * mkq;
          m[k]![q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p]![k]!;
          const mqk = m[q]![k]!;
          m[p]![k] = c * mpk - s * mqk;
          m[q]![k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k]![p]!;
          const vkq = v[k]![q]!;
          v[k]![p] = c * vkp - s * vkq;
          v[k]![q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = m.map((r, i) => [r[i]!, i] as const).sort((x, y) => y[0] - x[0]);
  return {
    values: order.map(([val]) => Math.max(0, val)),
    vectors: v.map((row) => order.map(([, i]) => row[i]!)),
  };
}

export interface PcaModel {
  mean: number[];
  /** principal components kept, as rows */
  components: number[][];
  threshold: number;
}

export function fitPca(rows: number[][], variance = 0.95, cAlpha = 3.2905): PcaModel {
  const d = rows[0]!.length;
  const mean = new Array<number>(d).fill(0);
  for (const r of rows) for (let j = 0; j < d; j++) mean[j]! += r[j]! / rows.length;
  const cov = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  for (const r of rows) {
    for (let i = 0; i < d; i++) {
      const xi = r[i]! - mean[i]!;
      if (xi === 0) continue;
      for (let j = i; j < d; j++) cov[i]![j]! += (xi * (r[j]! - mean[j]!)) / Math.max(1, rows.length - 1);
    }
  }
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) cov[i]![j] = cov[j]![i]!;
  const { values, vectors } = symmetricEigen(cov);
  const total = values.reduce((a, b) => a + b, 0);
  let k = 0;
  let acc = 0;
  while (k < d && (total === 0 || acc / total < variance)) acc += values[k++]!;
  const rest = values.slice(k);
  const th = [1, 2, 3].map((p) => rest.reduce((a, l) => a + l ** p, 0));
  const [t1, t2, t3] = th as [number, number, number];
  let threshold = 0;
  if (t1 > 0 && t2 > 0) {
    const h0 = 1 - (2 * t1 * t3) / (3 * t2 * t2);
    threshold =
      t1 * ((cAlpha * Math.sqrt(2 * t2 * h0 * h0)) / t1 + 1 + (t2 * h0 * (h0 - 1)) / (t1 * t1)) ** (1 / h0);
  }
  return { mean, components: Array.from({ length: k }, (_, c) => vectors.map((row) => row[c]!)), threshold };
}

/** Squared prediction error: the part of x outside the principal subspace. */
export function spe(m: PcaModel, x: number[]): number {
  const y = x.map((v, j) => v - m.mean[j]!);
  const r = [...y];
  for (const c of m.components) {
    const p = c.reduce((a, cj, j) => a + cj * y[j]!, 0);
    for (let j = 0; j < r.length; j++) r[j]! -= p * c[j]!;
  }
  return r.reduce((a, v) => a + v * v, 0);
}
