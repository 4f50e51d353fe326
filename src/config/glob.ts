// Overview — the one path-glob dialect of blessd: exempt.paths, and the allowlist and expected actors' paths.
//
// Three tokens, and everything else literal (no classes, braces, negation or extglobs), because a rule that lets
// content pass must mean exactly what it says and no more:
//   ?    one character other than '/'
//   *    any run of characters other than '/' (empty too; a leading dot is nothing special)
//   **   whole path segments only: `**/` at the start or `/**/` inside is zero or more directories (/a/**/b
//        matches /a/b and /a/x/y/b); a trailing `/**` is everything below (/srv/** matches /srv/x and /srv/x/y,
//        never /srv itself nor /srvx); `**` alone is everything. Anywhere else (`/a**`, `/**.log`) it is refused:
//        it would cross directories where the writer probably meant one.
// Hand-written rather than picomatch: picomatch is well kept, but its dialect is far larger (braces, classes,
// extglobs, negation, dotfile rules) and each feature would have to be switched off to keep rules this narrow;
// this dialect compiles to a regular expression in 40 lines, with every case tested (test/glob.test.ts).
import { BlessdError } from '../errors.js';

export class GlobError extends BlessdError<'BLESSD_GLOB'> {
  constructor(
    readonly glob: string,
    message: string,
  ) {
    super('BLESSD_GLOB', `glob ${JSON.stringify(glob)}: ${message}`);
  }
}

function literal(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? '\\' + c : c;
}

/** Compile one glob; throws GlobError for a `**` that is not a whole segment. */
export function globToRegExp(glob: string): RegExp {
  if (glob === '') throw new GlobError(glob, 'is empty');
  if (glob === '**') return /^.*$/s;
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      const startsSegment = i === 0 || glob[i - 1] === '/';
      const after = glob[i + 2];
      if (!startsSegment || (after !== undefined && after !== '/')) throw new GlobError(glob, '"**" must be a whole path segment (/a/**/b, /a/**, **/x); use "*" within a name');
      if (after === '/') {
        re += '(?:.*/)?'; // zero or more directories
        i += 2;
      } else {
        // Trailing "/**": at least one more segment below (the '/' before it is already in `re`).
        re += '.+';
        i += 1;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += literal(c);
  }
  return new RegExp(`^${re}$`, 's');
}

/** One matcher for a list of globs: true when any matches. */
export function globMatcher(globs: readonly string[]): (path: string) => boolean {
  const res = globs.map(globToRegExp);
  return (path) => res.some((re) => re.test(path));
}

/** True when an absolute path matches one of the compiled exempt.paths globs. */
export function isExemptPath(matchers: readonly RegExp[], path: string): boolean {
  return matchers.some((m) => m.test(path));
}

/**
 * True when exempt.paths or exempt.executables are set: those are matched per access on the main thread, so verdicts
 * that would answer on the native thread first (denied tags, cached denies) must go there instead.
 */
export function exemptsAccessors(exempt: { executables: readonly string[]; pathMatchers: readonly RegExp[] }): boolean {
  return exempt.executables.length > 0 || exempt.pathMatchers.length > 0;
}
