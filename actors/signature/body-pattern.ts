// ClamAV body signatures (the HexSignature field of .ndb lines) into Vectorscan expressions.
//
// Supported, as in ClamAV's signature format: hex byte pairs; `??` any byte; `a?` / `?a` a fixed high / low
// nibble; `*` any number of bytes; `{n}`, `{n-m}`, `{-m}`, `{n-}` (and the bracket form `[n-m]`) a bounded gap;
// `(aa|bb|...)` alternatives (each a run of bytes and `??`); `!(aa|bb)` any one byte but these. Not supported, and
// reported so: `(B)` / `(L)` boundaries, `::` modifiers (they belong to logical signatures), nested groups.
// Must not: accept a signature with fewer than two fixed bytes (it would match nearly every file; ClamAV refuses
// them too) or produce an expression whose meaning differs from ClamAV's on raw bytes.

export interface CompiledBody {
  /** Vectorscan expression (compile with HS_FLAG_DOTALL: `.` is any byte); '' for a literal (use literalExpression). */
  expression: string;
  /** Length of every match when it is fixed (no `*`, no open or ranged gap, alternatives of one length), else null. */
  fixedLength: number | null;
  /** The bytes themselves when the signature is plain hex (then the JS anchored path may take it). */
  literal: Buffer | null;
  /** Bytes the pattern fixes exactly (not counting wildcards or alternatives). */
  fixedBytes: number;
}

export class BodySyntaxError extends Error {}

const HEX = '0123456789abcdef';
const byte = (v: number) => `\\x${HEX[v >> 4]}${HEX[v & 15]}`;
const isHex = (c: string | undefined) => c !== undefined && /^[0-9a-fA-F]$/.test(c);

function nibbleClass(hi: string, lo: string): string {
  if (hi === '?' && lo === '?') return '.';
  if (hi === '?') {
    const l = parseInt(lo, 16);
    let out = '[';
    for (let h = 0; h < 16; h++) out += byte((h << 4) | l);
    return `${out}]`;
  }
  const h = parseInt(hi, 16);
  return `[${byte(h << 4)}-${byte((h << 4) | 15)}]`;
}

function gap(min: number, max: number | null): string {
  if (max === null) return min === 0 ? '.*' : `.{${min},}`;
  if (min === max) return `.{${min}}`;
  return `.{${min},${max}}`;
}

const PLAIN_HEX = /^(?:[0-9a-fA-F]{2})+$/;

/** The Vectorscan expression for plain bytes. */
export function literalExpression(bytes: Buffer): string {
  let out = '';
  for (const v of bytes) out += byte(v);
  return out;
}

export function compileBody(hex: string): CompiledBody {
  // Most signatures are plain hex: no parsing, and no expression until one is needed (a million anchored
  // literals are compared in JS and never become expressions).
  if (PLAIN_HEX.test(hex)) {
    const literal = Buffer.from(hex, 'hex');
    return { expression: '', fixedLength: literal.length, literal, fixedBytes: literal.length };
  }
  let expression = '';
  let fixedLength: number | null = 0;
  let fixedBytes = 0;
  let literalOnly = true;
  const literal: number[] = [];
  let i = 0;
  const fail = (what: string): never => {
    throw new BodySyntaxError(`${what} at character ${i + 1} of the signature`);
  };
  const number = (): number | null => {
    const m = /^[0-9]+/.exec(hex.slice(i));
    if (!m) return null;
    i += m[0].length;
    return Number(m[0]);
  };
  while (i < hex.length) {
    const c = hex[i]!;
    if (c === '*') {
      expression += '.*';
      fixedLength = null;
      literalOnly = false;
      i++;
    } else if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      const min = number();
      let max: number | null = min;
      if (hex[i] === '-') {
        i++;
        max = number();
      }
      if (hex[i] !== close) fail(`bad gap (expected {n}, {n-m}, {-m} or {n-})`);
      i++;
      const lo = min ?? 0;
      if (max !== null && max < lo) fail(`gap {${lo}-${max}} ends before it starts`);
      expression += gap(lo, max);
      if (max === lo && fixedLength !== null) fixedLength += lo;
      else fixedLength = null;
      literalOnly = false;
    } else if (c === '(' || (c === '!' && hex[i + 1] === '(')) {
      const negated = c === '!';
      i += negated ? 2 : 1;
      const end = hex.indexOf(')', i);
      if (end < 0) fail('unclosed (');
      const body = hex.slice(i, end);
      if (body === 'B' || body === 'L') fail(`(${body}) boundaries are not supported`);
      const alts = body.split('|');
      const lens = new Set<number>();
      const parts: string[] = [];
      for (const alt of alts) {
        if (alt.length === 0 || alt.length % 2 !== 0) fail(`bad alternative '${alt}' (an even number of hex digits)`);
        let part = '';
        for (let k = 0; k < alt.length; k += 2) {
          const hi = alt[k]!;
          const lo = alt[k + 1]!;
          if (!(isHex(hi) || hi === '?') || !(isHex(lo) || lo === '?')) fail(`bad alternative '${alt}'`);
          part += isHex(hi) && isHex(lo) ? byte(parseInt(hi + lo, 16)) : nibbleClass(hi, lo);
        }
        lens.add(alt.length / 2);
        parts.push(part);
      }
      if (negated) {
        if ([...lens].some((l) => l !== 1) || alts.some((a) => a.includes('?'))) fail('!(...) takes single hex bytes');
        expression += `[^${alts.map((a) => byte(parseInt(a, 16))).join('')}]`;
      } else {
        expression += `(?:${parts.join('|')})`;
      }
      if (lens.size === 1 && fixedLength !== null) fixedLength += [...lens][0]!;
      else fixedLength = null;
      literalOnly = false;
      i = end + 1;
    } else if ((isHex(c) || c === '?') && i + 1 < hex.length && (isHex(hex[i + 1]) || hex[i + 1] === '?')) {
      const lo = hex[i + 1]!;
      if (isHex(c) && isHex(lo)) {
        const v = parseInt(c + lo, 16);
        expression += byte(v);
        literal.push(v);
        fixedBytes++;
      } else {
        expression += nibbleClass(c, lo);
        literalOnly = false;
      }
      if (fixedLength !== null) fixedLength++;
      i += 2;
    } else if (c === ':') {
      fail('modifiers (::i, ::w, ...) are not supported');
    } else {
      fail(`unexpected '${c}'`);
    }
  }
  if (expression === '') fail('empty signature');
  return { expression, fixedLength, literal: literalOnly ? Buffer.from(literal) : null, fixedBytes };
}
