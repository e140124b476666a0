// Counting what came out of a topic (read with kcatRecords, test/helpers/kcat.ts): by key, with
// duplicates.

/** How many records beyond the first each key has, summed. */
export function duplicatesByKey(records: { key: string }[]): { distinct: number; duplicates: number } {
  const seen = new Set<string>();
  let duplicates = 0;
  for (const r of records) {
    if (seen.has(r.key)) duplicates++;
    else seen.add(r.key);
  }
  return { distinct: seen.size, duplicates };
}
