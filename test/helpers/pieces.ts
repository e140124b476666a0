// The same bytes in arbitrary pieces, as TCP may deliver them: a parser fed the pieces must give
// what it gives for the whole.

/** `bytes` cut at each of `cuts` (taken modulo its length + 1, sorted, duplicates once). */
export function piecesAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    pieces.push(bytes.subarray(prev, p));
    prev = p;
  }
  pieces.push(bytes.subarray(prev));
  return pieces;
}
