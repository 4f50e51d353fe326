// The expected actor, the paranoid end of a stack: only what is listed may pass. A file whose path matches one of
// the globs, or whose content has one of the listed SHA-256 digests, is allowed; everything else is denied
// ("not expected").
//
// options: paths?: string[]   globs (`*`, `**`, `?`)
//          sha256?: string[]  hex digests of allowed content
// At least one of the two lists must be non-empty.
import { createHash } from 'node:crypto';
import type { ActorInstance, ActorModule, ScanFile } from '../src/pool/actor.js';
import type { Answer } from '../src/policy/answer.js';
import { ActorError } from './common/errors.js';
import { noOtherKeys, optionsObject, stringArray, globsOption } from './common/options.js';

const NAME = 'expected';

const expected: ActorModule = {
  manifest: { api: 1, name: NAME, version: '1.0.0' },

  init(raw): ActorInstance {
    const options = optionsObject(NAME, raw);
    noOtherKeys(NAME, options, ['paths', 'sha256']);
    const paths = stringArray(NAME, options, 'paths', 'path globs', false) ?? [];
    const digests = stringArray(NAME, options, 'sha256', 'SHA-256 hex digests', false) ?? [];
    if (paths.length === 0 && digests.length === 0) {
      throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.paths or options.sha256 must be a non-empty array`);
    }
    digests.forEach((d, i) => {
      if (!/^[0-9a-fA-F]{64}$/.test(d)) {
        throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.sha256[${i}] must be 64 hex digits, not '${d}'`);
      }
    });
    const known = new Set(digests.map((d) => d.toLowerCase()));
    const pathMatches = globsOption(NAME, 'paths', paths);

    return {
      generation: createHash('sha256').update(JSON.stringify({ paths, sha256: [...known].sort() })).digest('hex'),
      async scan(file: ScanFile): Promise<Answer> {
        if (pathMatches(file.path)) return { answer: 'allow', reason: 'expected path' };
        if (known.size > 0) {
          const hash = createHash('sha256');
          for await (const chunk of file.chunks()) hash.update(chunk);
          if (known.has(hash.digest('hex'))) return { answer: 'allow', reason: 'expected content' };
        }
        return { answer: 'deny', reason: 'not expected' };
      },
    };
  },
};

export default expected;
