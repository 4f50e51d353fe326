// Typed reading of YAML nodes with positions. Every getter records a problem (file:line:col, key path, message)
// and returns the default instead of throwing, so one pass over the document reports every mistake at once.
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import { isAbsolute, resolve } from 'node:path';
import { parseDuration, parseMode, parseSize } from './units.js';

/** A key with its value node (null for `key:` with nothing after it), and its dotted path for messages. */
export interface Slot {
  path: string;
  key: Node | null;
  value: Node | null;
}

export class Reader {
  /** Problems with their byte offset, so the report reads top to bottom whatever order they were found in. */
  private readonly found: { at: number; text: string }[] = [];

  constructor(
    readonly file: string,
    readonly baseDir: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  get count(): number {
    return this.found.length;
  }

  /** The problems, in file order. */
  issues(): string[] {
    return [...this.found].sort((a, b) => a.at - b.at).map((p) => p.text);
  }

  /** Record a problem at a byte offset (YAML syntax errors come this way). */
  problemAt(offset: number, message: string): void {
    this.found.push({ at: offset, text: `${this.placeOf(offset)}: ${message}` });
  }

  /** "file:line:col" of a byte offset. */
  placeOf(offset: number): string {
    const { line, col } = this.lines.linePos(offset);
    return `${this.file}:${line}:${col}`;
  }

  /** Where a slot is: its key (as people read "line 14: control: ..."), else its value, else the file's start. */
  where(slot: Slot | Node | null | undefined): string {
    return this.placeOf(offsetOf(slot));
  }

  problem(at: Slot | Node | null | undefined, path: string, message: string): void {
    this.problemAt(offsetOf(at), `${path ? `${path}: ` : ''}${message}`);
  }

  /** The keys of a map, checked against the allowed ones. `undefined` if the node is not a map (reported). */
  map(slot: Slot, allowed: readonly string[]): Map<string, Slot> | undefined {
    const node = slot.value;
    const out = new Map<string, Slot>();
    if (this.isNull(slot)) return out; // `key:` alone = all defaults
    if (!isMap(node)) {
      this.problem(slot, slot.path, `must be a map of ${allowed.join(', ')} (got ${describe(node)})`);
      return undefined;
    }
    for (const pair of node.items) {
      const key = pair.key as Node | null;
      const name = isScalar(key) ? String(key.value) : undefined;
      const path = slot.path ? `${slot.path}.${name}` : String(name);
      if (name === undefined) {
        this.problem(key, slot.path, `keys must be plain names (got ${describe(key)})`);
      } else if (!allowed.includes(name)) {
        const hint = closest(name, allowed);
        this.problem(key, path, `unknown key${hint ? ` (did you mean "${hint}"?)` : ''}; known keys: ${allowed.join(', ')}`);
      } else {
        const value = this.deref((pair.value as Node | null) ?? null, path);
        if (value !== undefined) out.set(name, { path, key, value });
      }
    }
    return out;
  }

  /** The items of a list; `undefined` if missing or not a list (reported unless missing). */
  list(slot: Slot | undefined): Slot[] | undefined {
    if (!slot) return undefined;
    const node = slot.value;
    if (this.isNull(slot)) return [];
    if (!isSeq(node)) {
      this.problem(slot, slot.path, `must be a list (got ${describe(node)})`);
      return undefined;
    }
    const items: Slot[] = [];
    node.items.forEach((item, i) => {
      const path = `${slot.path}[${i}]`;
      const value = this.deref((item as Node | null) ?? null, path);
      if (value !== undefined) items.push({ path, key: null, value });
    });
    return items;
  }

  /** An alias (*name) replaced by what it points at; `undefined` (reported) when nothing does. */
  private deref(node: Node | null, path: string): Node | null | undefined {
    if (!isAlias(node)) return node;
    const target = node.resolve(this.doc) as Node | undefined;
    if (target === undefined) this.problem(node, path, `unknown alias *${node.source}`);
    return target;
  }

  /** True for `key:` and `key: null`. */
  isNull(slot: Slot | undefined): boolean {
    return !!slot && (slot.value === null || (isScalar(slot.value) && slot.value.value === null));
  }

  /** The plain JS value of a scalar slot; `undefined` (reported) for maps and lists. */
  scalar(slot: Slot, expected: string): unknown {
    if (isScalar(slot.value)) return slot.value.value;
    if (slot.value === null) return null;
    this.problem(slot, slot.path, `must be ${expected} (got ${describe(slot.value)})`);
    return undefined;
  }

  string(slot: Slot | undefined, dflt: string): string {
    if (!slot) return dflt;
    const v = this.scalar(slot, 'a string');
    if (typeof v === 'string' && v.length > 0) return v;
    if (v !== undefined) this.problem(slot, slot.path, `must be a non-empty string (got ${show(v)})`);
    return dflt;
  }

  bool(slot: Slot | undefined, dflt: boolean): boolean {
    if (!slot) return dflt;
    const v = this.scalar(slot, 'true or false');
    if (typeof v === 'boolean') return v;
    if (v !== undefined) this.problem(slot, slot.path, `must be true or false (got ${show(v)})`);
    return dflt;
  }

  int(slot: Slot | undefined, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (!slot) return dflt;
    const v = this.scalar(slot, 'a whole number');
    if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    if (v !== undefined) this.problem(slot, slot.path, `must be a whole number ${range} (got ${show(v)})`);
    return dflt;
  }

  number(slot: Slot | undefined, dflt: number, minExclusive: number): number {
    if (!slot) return dflt;
    const v = this.scalar(slot, 'a number');
    if (typeof v === 'number' && Number.isFinite(v) && v > minExclusive) return v;
    if (v !== undefined) this.problem(slot, slot.path, `must be a number > ${minExclusive} (got ${show(v)})`);
    return dflt;
  }

  oneOf<T extends string>(slot: Slot | undefined, choices: readonly T[], dflt: T): T {
    if (!slot) return dflt;
    const v = this.scalar(slot, `one of ${choices.join(', ')}`);
    if (typeof v === 'string' && (choices as readonly string[]).includes(v)) return v as T;
    if (v !== undefined) {
      const hint = typeof v === 'string' ? closest(v, choices) : undefined;
      this.problem(slot, slot.path, `must be one of ${choices.join(', ')} (got ${show(v)})${hint ? `; did you mean "${hint}"?` : ''}`);
    }
    return dflt;
  }

  size(slot: Slot | undefined, dflt: number): number {
    return this.parsed(slot, dflt, 'a size', parseSize);
  }

  /** Milliseconds; `min` is inclusive. */
  /** A duration in ms; `max` with the reason it is the most (the place that would otherwise fail later). */
  duration(slot: Slot | undefined, dflt: number, min = 0, max?: { ms: number; why: string }): number {
    const ms = this.parsed(slot, dflt, 'a duration', parseDuration);
    if (slot && ms < min) {
      this.problem(slot, slot.path, `must be at least ${min}ms`);
      return dflt;
    }
    if (slot && max && ms > max.ms) {
      this.problem(slot, slot.path, `must be at most ${max.ms}ms: ${max.why} (got ${ms}ms)`);
      return dflt;
    }
    return ms;
  }

  mode(slot: Slot | undefined, dflt: number): number {
    if (!slot) return dflt;
    const source = isScalar(slot.value) ? slot.value.source : undefined;
    return this.parsed(slot, dflt, 'a file mode', (v) => parseMode(v, source));
  }

  /** A path, made absolute against the config file's directory ('' stays '': missing or already reported). */
  path(slot: Slot | undefined, dflt: string): string {
    const p = this.string(slot, dflt);
    return p === '' || isAbsolute(p) ? p : resolve(this.baseDir, p);
  }

  /** A free-form map, as plain JS (for actor options). */
  freeform(slot: Slot | undefined): Record<string, unknown> {
    if (!slot || this.isNull(slot)) return {};
    if (!isMap(slot.value)) {
      this.problem(slot, slot.path, `must be a map (got ${describe(slot.value)})`);
      return {};
    }
    try {
      return slot.value.toJS(this.doc) as Record<string, unknown>;
    } catch (err) {
      // e.g. an alias inside the options that points nowhere
      this.problem(slot, slot.path, (err as Error).message);
      return {};
    }
  }

  private parsed(slot: Slot | undefined, dflt: number, what: string, parse: (v: unknown) => number | string): number {
    if (!slot) return dflt;
    const v = this.scalar(slot, what);
    if (v === undefined) return dflt;
    const r = parse(v);
    if (typeof r === 'number') return r;
    this.problem(slot, slot.path, r);
    return dflt;
  }
}

function offsetOf(slot: Slot | Node | null | undefined): number {
  const node = slot && 'path' in slot ? (slot.key ?? slot.value) : slot;
  return node?.range?.[0] ?? 0;
}

/** How a wrong value looks in a message. */
export function describe(node: Node | null | undefined): string {
  if (node === null || node === undefined) return 'nothing';
  if (isMap(node)) return 'a map';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return show(node.value);
  return 'an alias';
}

function show(v: unknown): string {
  return v === null ? 'null' : typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** The allowed word within edit distance 2 of a typo, for "did you mean". */
export function closest(word: string, choices: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = 3;
  for (const c of choices) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) [best, bestDist] = [c, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
