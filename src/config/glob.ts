// A tiny glob -> RegExp compiler for exempt.paths. Only what the docs promise: `*` within one path segment,
// `**` across segments, `?` one character (never '/'). Everything else is literal.

export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      const atSegmentStart = i === 0 || glob[i - 1] === '/';
      if (atSegmentStart && glob[i + 2] === '/') {
        out += '(?:.*/)?'; // "a/**/b" also matches "a/b"
        i += 2;
      } else if (atSegmentStart && i + 2 === glob.length && i > 0) {
        out = out.slice(0, -1) + '(?:/.*)?'; // "a/**" matches "a" and everything below it
        i += 1;
      } else {
        out += '.*';
        i += 1;
      }
    } else if (c === '*') {
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else {
      out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&'); // '/' needs no escape in new RegExp()
    }
  }
  return new RegExp(`^${out}$`, 's');
}

/** True when an absolute path matches one of the compiled exempt.paths globs. */
export function isExemptPath(matchers: readonly RegExp[], path: string): boolean {
  return matchers.some((m) => m.test(path));
}
