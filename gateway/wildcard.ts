/**
 * Wildcard patterns from config (tool names, hosts, origins), matched without RegExp.
 *
 * `*` matches any run of characters (none included); `?` matches exactly one (unless `questionMark` is
 * off, then it is literal); everything else is literal, and the whole text must match. A character is
 * a UTF-16 code unit, as `.` was in the regular expressions these patterns used to compile to.
 *
 * Why not a RegExp: `*a*a*a*b` compiled to `^.*a.*a.*a.*b$` backtracks polynomially in the text's
 * length with the pattern's number of stars (a 1,000-character name took over a minute). This matcher
 * is greedy and, on a mismatch, backtracks only to the most recent `*`: earlier stars never need to
 * move again, because the later star can absorb anything they would have. That bounds the work by
 * text length × pattern length, whatever the pattern.
 */

export interface WildcardOptions {
  /** Compare ASCII letters case-insensitively (host names, origins). Default false. */
  ignoreAsciiCase?: boolean;
  /** `?` matches one character; when false it is a literal `?`. Default true. */
  questionMark?: boolean;
}

/** Tests one text against a compiled pattern. */
export type WildcardMatcher = (text: string) => boolean;

const STAR = 0x2a; // *
const QUESTION = 0x3f; // ?

/** ASCII `A`–`Z` → `a`–`z`; every other code unit unchanged. */
function foldAscii(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

/** True when `pattern` contains a wildcard under these options (so exact comparison will not do). */
export function hasWildcard(pattern: string, opts: WildcardOptions = {}): boolean {
  return pattern.includes('*') || ((opts.questionMark ?? true) && pattern.includes('?'));
}

/** Compiles a pattern once; the returned matcher allocates nothing per call. */
export function compileWildcard(pattern: string, opts: WildcardOptions = {}): WildcardMatcher {
  const fold = opts.ignoreAsciiCase ?? false;
  const anyOne = opts.questionMark ?? true;
  const units = new Uint16Array(pattern.length);
  for (let i = 0; i < pattern.length; i++) units[i] = fold ? foldAscii(pattern.charCodeAt(i)) : pattern.charCodeAt(i);
  if (!hasWildcard(pattern, opts)) {
    if (!fold) return function exactMatch(text) { return text === pattern; };
    return function exactMatchIgnoringCase(text) {
      if (text.length !== units.length) return false;
      for (let i = 0; i < units.length; i++) if (foldAscii(text.charCodeAt(i)) !== units[i]) return false;
      return true;
    };
  }
  const m = units.length;

  return function wildcardMatch(text) {
    const n = text.length;
    let p = 0; // position in the pattern
    let t = 0; // position in the text
    let star = -1; // pattern index of the last `*` seen, -1 before any
    let resume = 0; // text index that `*` has absorbed up to (exclusive)
    while (t < n) {
      if (p < m) {
        const pc = units[p];
        if (pc === STAR) {
          // Let the star absorb nothing for now; a later mismatch grows it by one.
          star = p++;
          resume = t;
          continue;
        }
        const tc = fold ? foldAscii(text.charCodeAt(t)) : text.charCodeAt(t);
        if (pc === tc || (anyOne && pc === QUESTION)) {
          p++;
          t++;
          continue;
        }
      }
      if (star < 0) return false;
      // Mismatch (or pattern exhausted with text left): the last star takes one more character.
      p = star + 1;
      t = ++resume;
    }
    while (p < m && units[p] === STAR) p++;
    return p === m;
  };
}

/** Compiles a list of patterns into one matcher: true when any pattern matches. */
export function compileWildcards(patterns: readonly string[], opts: WildcardOptions = {}): WildcardMatcher {
  const exact = new Set<string>();
  const matchers: WildcardMatcher[] = [];
  for (const p of patterns) {
    if (!hasWildcard(p, opts) && !opts.ignoreAsciiCase) exact.add(p);
    else matchers.push(compileWildcard(p, opts));
  }
  return function anyWildcardMatch(text) {
    if (exact.has(text)) return true;
    for (const match of matchers) if (match(text)) return true;
    return false;
  };
}
