// Regular-expression character classes as tests on one UTF-16 code unit, for the learners' scans
// that stand in for regular expressions on every line (no u flag, so code units, as the regexes).

/** `\w`: [A-Za-z0-9_] */
export function isWordCode(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95;
}

/** `\s`: the ASCII spaces and line terminators, and Unicode's spaces (a test holds it to `\s`) */
export function isSpaceCode(c: number): boolean {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13);
  if (c < 160) return false;
  return (
    c === 160 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}
