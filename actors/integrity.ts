// The integrity actor, a tripwire: files recorded in a baseline (`blessctl baseline`) must keep their content.
//   - a baselined file whose content matches:   allow ("matches baseline")
//   - a baselined file whose content differs:   deny  ("was not supposed to change: sha256 <old> in the baseline, now <new>")
//   - a file the baseline does not know:        ok    (no comment)
// A file is looked up by its path; one with several hard links (nlink > 1) also by the dev:ino it was recorded
// with, so that a link made elsewhere cannot get changed content blessed under a path the baseline does not list
// (a verdict is per inode: the first opener's path would otherwise decide for every path).
//
// options: baseline: string   the baseline file (absolute, or relative to config.yaml)
//          refreshMs?: number how often the baseline file is looked at again (default 10000; 0: only at reload). A
//                             changed file is a new generation: every older integrity tag is stale and each file is
//                             judged again, against the new baseline, at its next access.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { ActorInstance, ActorModule, ScanFile } from '../src/pool/actor.js';
import type { Answer } from '../src/policy/answer.js';
import { ActorError } from './common/errors.js';
import { noOtherKeys, optionsObject, requiredString } from './common/options.js';
import { byInode, parseBaseline, type Baseline } from './integrity/baseline.js';

const NAME = 'integrity';
const DEFAULT_REFRESH_MS = 10_000;

interface Loaded {
  /** ino, size and mtime of the baseline file as read: unchanged, it is not read again. */
  key: string;
  generation: string;
  entries: Baseline;
  inodes: Map<string, string>;
}

// Per worker thread: a reload, and every refresh tick (which loads the actor afresh), finds the parsed baseline
// here while the file has not changed — a baseline of a million files is parsed once, not every refreshMs.
const cache = new Map<string, Loaded>();

async function fileKey(path: string): Promise<string> {
  const s = await stat(path, { bigint: true });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

async function load(path: string): Promise<Loaded> {
  let key: string;
  try {
    key = await fileKey(path);
  } catch (err) {
    throw new ActorError('ACTOR_DATABASE', `${NAME}: cannot read the baseline ${path}: ${(err as Error).message}`, { cause: err });
  }
  const hit = cache.get(path);
  if (hit && hit.key === key) return hit;
  const bytes = await readFile(path);
  const entries = parseBaseline(bytes.toString('utf8'), path);
  const loaded: Loaded = { key, generation: `integrity:${createHash('sha256').update(bytes).digest('hex')}`, entries, inodes: byInode(entries) };
  cache.set(path, loaded);
  return loaded;
}

async function sha256(file: ScanFile): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of file.chunks()) hash.update(chunk);
  return hash.digest('hex');
}

const integrity: ActorModule = {
  manifest: { api: 1, name: NAME, version: '1.0.0' },

  async init(raw): Promise<ActorInstance> {
    const options = optionsObject(NAME, raw);
    noOtherKeys(NAME, options, ['baseline', 'refreshMs']);
    const path = requiredString(NAME, options, 'baseline', 'the path of a baseline file (blessctl baseline)');
    if (!path.startsWith('/')) throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.baseline must be an absolute path`);
    const refresh = options['refreshMs'] ?? DEFAULT_REFRESH_MS;
    if (typeof refresh !== 'number' || !Number.isSafeInteger(refresh) || refresh < 0) {
      throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.refreshMs must be a non-negative integer (0: only at reload)`);
    }
    const { generation, entries, inodes } = await load(path);

    const instance: ActorInstance = {
      generation,
      async scan(file: ScanFile): Promise<Answer> {
        let recorded = entries.get(file.path);
        let as = file.path;
        if (!recorded && inodes.size > 0) {
          const st = await file.stat();
          const linked = st.nlink > 1 ? inodes.get(`${st.dev}:${st.ino}`) : undefined;
          if (linked !== undefined) {
            recorded = entries.get(linked);
            as = linked;
          }
        }
        if (!recorded) return { answer: 'ok' };
        const now = await sha256(file);
        if (now === recorded.sha256 && file.size === recorded.size) return { answer: 'allow', reason: 'matches baseline' };
        const where = as === file.path ? '' : ` (a hard link of ${as})`;
        return { answer: 'deny', reason: `was not supposed to change${where}: sha256 ${recorded.sha256} in the baseline, now ${now}` };
      },
    };
    if (refresh > 0) {
      instance.generationRefreshMs = refresh;
      // The daemon asks on its timer; an unchanged file costs one stat (the cache above).
      instance.currentGeneration = async () => (await load(path)).generation;
    }
    return instance;
  },
};

export default integrity;
