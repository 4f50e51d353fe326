// The yara actor: YARA rules, through YARA-X (its native binding, @litko/yara-x-linux-x64-gnu; docs/actors.md says why).
//
// options: rules: string[]   rule files, or directories searched recursively for *.yar / *.yara
//          timeoutMs?        (10000) per file; a scan past it is given up and its engine thread replaced (rules recompiled)
//          maxBytes?         (128 MiB) YARA-X scans a file whole, in memory: larger files are `too-large`
//
// Answers: `deny` naming the matching rules (`namespace.rule` outside the default namespace), else `ok`.
// Generation: sha256 over the engine version and every rule file's path and text: editing a rule makes the older
// verdicts stale. Compiled once per pool worker, in an engine thread of its own (yara/engine.ts says why).
// At a reload (and in a worker that holds older rules than the daemon judges with) the actor is loaded again from
// disk; a compile error (named `file:line:col`) fails that load and the rules in force stay. `blessd check` loads
// it too.
import { createRequire } from 'node:module';
import type { ActorInstance, ActorModule, ScanFile } from '../src/pool/actor.js';
import type { Answer } from '../src/policy/answer.js';
import { ActorError } from './common/errors.js';
import { noOtherKeys, optionsObject, positiveInteger, stringArray } from './common/options.js';
import { YaraEngine } from './yara/engine.js';
import { readRuleSources, rulesDigest } from './yara/sources.js';

const NAME = 'yara';
const ENGINE_VERSION: string = createRequire(import.meta.url)('@litko/yara-x-linux-x64-gnu/package.json').version;

class YaraTooLargeError extends Error {
  readonly code = 'YARA_TOO_LARGE';
}

function parse(raw: unknown) {
  const options = optionsObject(NAME, raw);
  noOtherKeys(NAME, options, ['rules', 'timeoutMs', 'maxBytes']);
  return {
    rules: stringArray(NAME, options, 'rules', 'rule files or directories', true)!,
    timeoutMs: positiveInteger(NAME, options, 'timeoutMs', 10_000),
    maxBytes: positiveInteger(NAME, options, 'maxBytes', 128 * 1024 * 1024),
  };
}

const yara: ActorModule = {
  manifest: { api: 1, name: NAME, version: '1.0.0' },

  async init(raw, context): Promise<ActorInstance> {
    const o = parse(raw);
    const scanner = context?.name ?? NAME;
    const sources = readRuleSources(scanner, o.rules);
    const engine = await YaraEngine.start(scanner, sources);

    const instance: ActorInstance = {
      generation: `yara-x:${rulesDigest(ENGINE_VERSION, sources)}`,
      warnings: engine.warnings,

      async scan(file: ScanFile): Promise<Answer> {
        if (file.size > o.maxBytes) throw new YaraTooLargeError(`${scanner}: ${file.path} is ${file.size} bytes, over maxBytes (${o.maxBytes})`);
        const data = await file.read(0, file.size);
        const matches = await engine.scan(data, o.timeoutMs);
        return matches.length > 0 ? { answer: 'deny', reason: matches.join(', ') } : { answer: 'ok' };
      },

      async close() {
        engine.close();
      },
    };
    return instance;
  },
};

export default yara;
