// Path globs for the allowlist and expected actors: `*` = any run of characters except '/', `**` = any run
// including '/', `?` = one character except '/'. Everything else is literal (no classes, no braces): a rule that
// allows content must mean exactly what it says.

function escapeLiteral(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? '\\' + c : c;
}

export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // `**/` also matches no directory at all: /a/**/b matches /a/b.
        if (glob[i + 2] === '/') {
          re += '(?:.*/)?';
          i += 2;
        } else {
          re += '.*';
          i += 1;
        }
      } else {
        re += '[^/]*';
      }
    } else if (c === '?') {
      re += '[^/]';
    } else {
      re += escapeLiteral(c);
    }
  }
  return new RegExp('^' + re + '$', 's');
}

/** One matcher for a list of globs: true when any matches. */
export function globMatcher(globs: readonly string[]): (path: string) => boolean {
  const res = globs.map(globToRegExp);
  return (path) => res.some((re) => re.test(path));
}
