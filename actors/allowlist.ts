// The allowlist actor: "I say this is safe" for files whose path matches a glob, or whose SELinux label (the
// security.selinux xattr, read through the daemon's fd) is listed. Anything else: no comment.
//
// options: paths?: string[]    globs: `*` (within a directory), `**` (across directories), `?`
//          selinux?: string[]  labels, exact or with `*` (e.g. system_u:object_r:bin_t:*)
// At least one of the two lists must be non-empty.
import { createHash } from 'node:crypto';
import type { ActorInstance, ActorModule, ScanFile } from '../src/pool/actor.js';
import type { Answer } from '../src/policy/answer.js';
import { ActorError } from './common/errors.js';
import { noOtherKeys, optionsObject, stringArray, globsOption } from './common/options.js';

const NAME = 'allowlist';
const SELINUX_XATTR = 'security.selinux';

/** The kernel stores the label NUL-terminated. */
function label(value: Buffer | null): string | null {
  if (!value) return null;
  const end = value.indexOf(0);
  return value.toString('utf8', 0, end === -1 ? value.length : end);
}

const allowlist: ActorModule = {
  manifest: { api: 1, name: NAME, version: '1.0.0' },

  async init(raw): Promise<ActorInstance> {
    const options = optionsObject(NAME, raw);
    noOtherKeys(NAME, options, ['paths', 'selinux']);
    const paths = stringArray(NAME, options, 'paths', 'path globs', false) ?? [];
    const labels = stringArray(NAME, options, 'selinux', 'SELinux labels', false) ?? [];
    if (paths.length === 0 && labels.length === 0) {
      throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.paths or options.selinux must be a non-empty array`);
    }
    const pathMatches = globsOption(NAME, 'paths', paths);
    const labelMatches = globsOption(NAME, 'selinux', labels);

    return {
      // The rules are the whole rule set: a changed list is a new generation.
      generation: createHash('sha256').update(JSON.stringify({ paths, selinux: labels })).digest('hex'),
      async scan(file: ScanFile): Promise<Answer> {
        if (pathMatches(file.path)) return { answer: 'allow', reason: 'safe' };
        if (labels.length > 0) {
          // No label (no SELinux on this filesystem) is null: the label rules simply do not apply.
          const value = label(await file.xattr(SELINUX_XATTR));
          if (value !== null && labelMatches(value)) return { answer: 'allow', reason: 'safe' };
        }
        return { answer: 'ok' };
      },
    };
  },
};

export default allowlist;
