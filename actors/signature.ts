// The signature actor: ClamAV databases (.cvd/.cld containers, .hdb/.hsb/.mdb/.msb hashes, .ndb body signatures
// with wildcards, offsets and target types, .fp/.sfp allow-lists, .ign2) matched in ONE pass over the file
// (actors/signature/engine.ts). docs/signatures.md is the reference.
//
// Beside scan(), scanDigesting() (src/pool/content-pass.ts): its one pass also gives the content's SHA-256.
//
// options: databases: string[]  files or directories (every ClamAV database file in a directory)
//          chunkSize?: number    read size in bytes (default 1 MiB)
import type { ActorInstance, ActorModule, ScanFile } from '../src/pool/actor.js';
import type { Answer } from '../src/policy/answer.js';
import { noOtherKeys, optionsObject, positiveInteger, stringArray } from './common/options.js';
import { loadDatabases } from './signature/database.js';
import { SignatureEngine } from './signature/engine.js';

const NAME = 'signature';
const DEFAULT_CHUNK = 1 << 20;

const signature: ActorModule = {
  manifest: { api: 1, name: NAME, version: '2.0.0' },

  async init(raw): Promise<ActorInstance> {
    const options = optionsObject(NAME, raw);
    noOtherKeys(NAME, options, ['databases', 'chunkSize']);
    const databases = stringArray(NAME, options, 'databases', 'paths', true)!;
    const chunkSize = positiveInteger(NAME, options, 'chunkSize', DEFAULT_CHUNK);
    const db = await loadDatabases(databases);
    const engine = new SignatureEngine(db, chunkSize);
    const instance: ActorInstance & { scanDigesting(file: ScanFile, sha256: Buffer): Promise<{ answer: Answer; digested: boolean }> } = {
      generation: db.generation,
      warnings: [...db.warnings, ...engine.dropped],
      async scan(file: ScanFile): Promise<Answer> {
        const name = engine.scan(file.fd, file.size);
        return name ? { answer: 'deny', reason: name } : { answer: 'ok' };
      },
      // Not actor API (src/pool/content-pass.ts): the same scan, its pass also hashing the content for the fleet
      // key, so that the daemon need not read the file once more for it.
      async scanDigesting(file: ScanFile, sha256: Buffer): Promise<{ answer: Answer; digested: boolean }> {
        const name = engine.scan(file.fd, file.size, sha256);
        return { answer: name ? { answer: 'deny', reason: name } : { answer: 'ok' }, digested: engine.digested };
      },
    };
    return instance;
  },
};

export default signature;
