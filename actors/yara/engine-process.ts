// Overview — the YARA-X engine in a process of its own, one per pool worker (yara/engine.ts forks it).
//
// The engine is YARA-X's native binding (@litko/yara-x-linux-x64-gnu; docs/actors.md says why not the WebAssembly build). A scan
// is one synchronous native call that nothing can interrupt, so it runs here: a scan past its deadline is given
// up by the caller and this process is killed and replaced, without taking down the pool worker, its other actors
// or the daemon's descriptors. The rules are compiled once, when the process starts. It never opens a guarded
// file: the bytes come over the IPC channel.
//
// Messages in: { sources } once, then { id, data } per scan.
// Messages out: { ready, warnings } | { compileError } once, then { id, matches } | { id, error } per scan.
import { createRequire } from 'node:module';
import { placeError, type RuleSource } from './sources.js';

interface YaraX {
  addRuleSource(source: string): void;
  scan(data: Buffer): { ruleIdentifier: string; namespace: string }[];
  getWarnings(): { code: string; message: string }[];
}

const send = (m: unknown) => {
  // The parent may be gone (its pool worker ended, or it gave up on us): nobody to tell.
  if (process.connected) process.send!(m, undefined, undefined, () => {});
};
let rules: YaraX | undefined;

function compile(sources: RuleSource[]): YaraX {
  const { compile: newCompiler } = createRequire(import.meta.url)('@litko/yara-x-linux-x64-gnu') as { compile(src: string): YaraX };
  const y = newCompiler('');
  // One source per file, so that an error's `line:L:C` belongs to one file.
  for (const s of sources) {
    try {
      y.addRuleSource(s.text);
    } catch (err) {
      throw new Error(placeError(s.path, ((err as Error).message ?? String(err)).replace(/^Compilation error \([^)]*\): /, '')));
    }
  }
  return y;
}

process.on('message', (msg: { sources?: RuleSource[]; id?: number; data?: Uint8Array }) => {
  if (msg.sources) {
    try {
      rules = compile(msg.sources);
      send({ ready: true, warnings: rules.getWarnings().map((w) => w.message.split('\n')[0]) });
    } catch (err) {
      send({ compileError: (err as Error).message });
    }
    return;
  }
  try {
    const matches = rules!.scan(Buffer.from(msg.data!.buffer, msg.data!.byteOffset, msg.data!.byteLength));
    send({ id: msg.id, matches: matches.map((m) => (m.namespace === 'default' ? m.ruleIdentifier : `${m.namespace}.${m.ruleIdentifier}`)) });
  } catch (err) {
    send({ id: msg.id, error: (err as Error).message ?? String(err) });
  }
});
// The parent's end is gone (its pool worker ended): nothing left to do.
process.on('disconnect', () => process.exit(0));
