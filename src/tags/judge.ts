// Judging one tag against the file it sits on. Pure: the caller reads the value, the stamp, the clock and (in
// content mode) the digest; this file only decides. Order matters: nothing in a value is believed before its MAC
// verifies, and a changed file outranks an old generation.
import { decodeTag, verifyTag, type TagValue } from './codec.js';
import { isScannerName, type TagNamespace } from './names.js';
import type { HolderState } from './holder.js';
import { sameStamp, stampDiff, type Stamp } from './stamp.js';

export type Judgement =
  | 'valid' // a result tag bound to this file as it is, of the current generation
  | 'stale-stamp' // the file changed since (or, in content mode, its content differs or was never digested)
  | 'stale-generation' // the scanner's generation moved on
  | 'bad-mac' // forged, corrupted, copied from another scanner's name, or signed with another key
  | 'scanning-live' // someone holds a lease on this scan
  | 'scanning-expired' // a lease nobody renewed (its holder hung), or whose holder of this host is gone
  | 'unparseable'; // not a value of ours: treated as absent, reported

/** Current generation per scanner; a scanner missing from it has its generation left unchecked. */
export type Generations = Readonly<Record<string, string>> | ReadonlyMap<string, string>;

export interface JudgedTag {
  /** The xattr name. */
  name: string;
  namespace: TagNamespace;
  scanner: string;
  judgement: Judgement;
  /** Why, for logs and blessctl (the parse problem, the differing stamp fields...). */
  detail?: string;
  /** The decoded value. Trust it only when judgement is 'valid' or 'scanning-*': a bad-mac value is shown, not believed. */
  value?: TagValue;
  /** False when no current generation was given for this scanner. */
  generationChecked: boolean;
}

export interface JudgeInput {
  name: string;
  namespace: TagNamespace;
  scanner: string;
  raw: Buffer;
  key: Buffer;
  stamp: Stamp;
  generations: Generations;
  now: number;
  /** The file's current content digest, when the caller verifies content; `required`: a tag without one is stale. */
  content?: { digest: string; required: boolean };
  /** Whether a lease's holder still exists (holder.ts). Without it, only the lease's time counts. */
  holderState?: (holder: string) => HolderState;
}

function generationOf(generations: Generations, scanner: string): string | undefined {
  return generations instanceof Map ? generations.get(scanner) : (generations as Record<string, string>)[scanner];
}

export function judgeTag(input: JudgeInput): JudgedTag {
  const base = { name: input.name, namespace: input.namespace, scanner: input.scanner, generationChecked: false };
  if (!isScannerName(input.scanner)) return { ...base, judgement: 'unparseable', detail: 'not a valid scanner name' };
  const decoded = decodeTag(input.raw);
  if (!decoded.ok) return { ...base, judgement: 'unparseable', detail: decoded.problem };
  const value = decoded.tag.value;
  if (!verifyTag(decoded.tag, input.key, input.name, input.scanner)) {
    return { ...base, value, judgement: 'bad-mac', detail: 'MAC does not verify (another key, another file name, or altered)' };
  }
  if (value.kind === 'scanning') {
    if (input.now >= value.leaseUntil) return { ...base, value, judgement: 'scanning-expired', detail: `held by ${value.holder}` };
    // A lease of a process of this host that is gone (killed, crashed, before the last boot) is void at once.
    if (input.holderState?.(value.holder) === 'gone') return { ...base, value, judgement: 'scanning-expired', detail: `held by ${value.holder}, which is gone` };
    return { ...base, value, judgement: 'scanning-live', detail: `held by ${value.holder}` };
  }
  if (!sameStamp(value.stamp, input.stamp)) {
    return { ...base, value, judgement: 'stale-stamp', detail: stampDiff(value.stamp, input.stamp).join(', ') };
  }
  if (input.content) {
    if (value.digest === undefined) {
      if (input.content.required) return { ...base, value, judgement: 'stale-stamp', detail: 'no content digest (tag written in mtime mode, store is in content mode)' };
    } else if (value.digest !== input.content.digest) {
      return { ...base, value, judgement: 'stale-stamp', detail: 'content digest differs (content changed, size and mtime kept)' };
    }
  }
  const current = generationOf(input.generations, input.scanner);
  if (current === undefined) return { ...base, value, judgement: 'valid' };
  if (current !== value.generation) {
    return { ...base, value, generationChecked: true, judgement: 'stale-generation', detail: `generation ${value.generation} != current ${current}` };
  }
  return { ...base, value, generationChecked: true, judgement: 'valid' };
}
