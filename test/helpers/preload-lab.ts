// A lab for the preload library: a private tmpfs or ext4 mount, an unprivileged user of its own (attacker.ts), the
// user's config, key and state inside the mount, scanner scripts that count their runs, and a way to run real
// programs as that user with LD_PRELOAD set. Everything is removed at teardown, also when the test fails.
import type { ExecutionContext } from 'ava';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import exec from '../../actors/exec.js';
import { loadTagKey } from '../../src/tags/key.js';
import { TagStore } from '../../src/tags/store.js';
import { tagGeneration } from '../../src/tags/generation.js';
import { makeAttacker, openToEveryone, type Attacker } from './attacker.js';
import type { ChildResult } from './child.js';
import { makeScratch, type Scratch, type ScratchKind } from './scratch.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const PRELOAD_LIB = join(repo, 'build/Release/libblessd-preload.so');

export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

export interface PreloadLab {
  kind: ScratchKind;
  dir: string;
  user: Attacker;
  stateDir: string;
  configPath: string;
  mustPass: string;
  /** A file owned by the lab user, as if it had downloaded it. */
  file(name: string, content: string | Buffer): string;
  /** Write preload.yaml (mustPass and paths are filled in unless given). */
  config(extra?: string, opts?: { paths?: boolean; mustPass?: boolean }): void;
  /** A scanner script (sh), run for each scan; `link` puts it into the must-pass directory under `name`. */
  scanner(name: string, body: string, opts?: { link?: boolean }): string;
  /** Scans so far, as "scanner path" lines the scanners appended. */
  scans(): string[];
  /** Run a program as the lab user with the library preloaded. */
  run(cmd: string, args: string[], opts?: { env?: Record<string, string>; timeoutMs?: number; input?: string }): Promise<ChildResult>;
  /** The user's tag key (created by the library on first use, or here) and a TagStore on user. tags with it. */
  store(): Promise<TagStore>;
  /** The generation the exec actor (and so the library) writes for a program. */
  generation(program: string, scanner: string): Promise<string>;
}

/** The must-pass scanner of most tests: denies content holding the EICAR string, else "ok". */
export const EICAR_SCANNER = `if grep -q 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE'; then echo Eicar-Test-Signature; exit 1; fi
exit 0`;

/** `on`: use this mount (a daemon's guarded scratch, say) instead of a fresh one. */
export async function makePreloadLab(t: ExecutionContext, kind: ScratchKind = 'tmpfs', opts: { on?: Scratch } = {}): Promise<PreloadLab> {
  if (!existsSync(PRELOAD_LIB)) throw new Error(`${PRELOAD_LIB} is missing: npm ci builds it`);
  const scratch = opts.on ?? (await makeScratch(kind, 32));
  if (!opts.on) t.teardown(() => scratch.cleanup());
  await openToEveryone(scratch.dir);
  const user = await makeAttacker(t, 'pre');
  const dir = scratch.dir;
  const own = (p: string) => chownSync(p, user.uid, user.gid);
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  own(stateDir);
  const mustPass = join(dir, 'must-pass.d');
  mkdirSync(mustPass);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const data = join(dir, 'data');
  mkdirSync(data, { mode: 0o755 });
  own(data);
  const countFile = join(dir, 'scans.log');
  writeFileSync(countFile, '');
  own(countFile);
  const configPath = join(dir, 'preload.yaml');

  const lab: PreloadLab = {
    kind,
    dir: data,
    user,
    stateDir,
    configPath,
    mustPass,
    file(name, content) {
      const p = join(data, name);
      writeFileSync(p, content);
      own(p);
      return p;
    },
    config(extra = '', opts = {}) {
      const lines = [];
      if (opts.mustPass !== false) lines.push(`mustPass: ${mustPass}`);
      if (opts.paths !== false) lines.push(`paths: [${data}]`);
      writeFileSync(configPath, lines.map((l) => `${l}\n`).join('') + extra);
    },
    scanner(name, body, opts = {}) {
      const p = join(bin, `${name}.sh`);
      writeFileSync(p, `#!/bin/sh\necho "$BLESSD_SCANNER $BLESSD_PATH preload=\${LD_PRELOAD:-none} uid=$(id -u)" >> ${countFile}\n${body}\n`);
      chmodSync(p, 0o755);
      if (opts.link !== false) symlinkSync(p, join(mustPass, name));
      return p;
    },
    scans() {
      return readFileSync(countFile, 'utf8').split('\n').filter((l) => l !== '');
    },
    run(cmd, args, opts = {}) {
      const env = [`LD_PRELOAD=${PRELOAD_LIB}`, `BLESSD_PRELOAD_CONFIG=${configPath}`, `XDG_STATE_HOME=${stateDir}`, 'PATH=/usr/local/bin:/usr/bin:/bin'];
      for (const [k, v] of Object.entries(opts.env ?? {})) env.push(`${k}=${v}`);
      return user.run('env', [...env, cmd, ...args], { timeoutMs: opts.timeoutMs ?? 20_000, input: opts.input, cwd: data });
    },
    async store() {
      const keyFile = join(stateDir, 'blessd', 'key');
      const key = await loadTagKey(keyFile, { create: !existsSync(keyFile) });
      if (existsSync(keyFile)) {
        own(dirname(keyFile));
        own(keyFile);
      }
      return new TagStore({ namespace: 'user', key, host: 'test', pid: 1 });
    },
    async generation(program, scanner) {
      const instance = await exec.init({ program }, { name: scanner });
      return tagGeneration(instance.generation, 0);
    },
  };
  return lab;
}
