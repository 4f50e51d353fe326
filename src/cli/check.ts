// `blessd check`: everything `blessd run` would fail on, found without guarding anything — guard paths that are
// missing or of the wrong kind, a must-pass directory that cannot be read, actors that do not load (missing
// databases, rules that do not compile, bad options), fleet.tls files that are missing or hold no usable PEM, a
// fleet key file that is missing, unreadable, too short or readable by others.
// Each problem is one line, `file:line:col: key: message`.
// `run` makes the same checks before it marks anything, so a start-up failure reads the same.
import { statSync } from 'node:fs';
import { unsupportedFilesystem } from '../gate/fs-support.js';
import type { Config, StackEntry } from '../config/types.js';
import { effectiveStack } from '../policy/must-pass.js';
import { FleetKeyError, loadFleetKey } from '../fleet/key.js';
import { parseStoreUrl } from '../fleet/store-url.js';
import { FleetTlsError, loadStoreTls } from '../fleet/tls.js';

export interface CheckReport {
  problems: string[];
  warnings: string[];
  /** The effective stack (config + must-pass), when it could be read. */
  stack: StackEntry[];
}

/** The guards' paths: each must exist (or be created by `create: true`), and a tree must be a directory. */
export function checkGuards(config: Config): string[] {
  const problems: string[] = [];
  config.guards.forEach((g, i) => {
    let isDir: boolean;
    try {
      isDir = statSync(g.path).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && g.create) return; // run creates it
      problems.push(`${g.origin}: guards[${i}].path: ${g.path} ${code === 'ENOENT' ? 'does not exist (set create: true to make it)' : `cannot be read: ${(err as Error).message}`}`);
      return;
    }
    if (!isDir) problems.push(`${g.origin}: guards[${i}].path: ${g.path} is not a directory`);
    else {
      const why = unsupportedFilesystem(g.path);
      if (why) problems.push(`${g.origin}: guards[${i}].path: ${g.path}: ${why}`);
    }
  });
  return problems;
}

/** Every check; `loadActors` loads each pool actor once in a one-thread pool (as run will, at start). */
export async function checkConfig(config: Config, opts: { loadActors?: boolean } = {}): Promise<CheckReport> {
  const problems = checkGuards(config);
  const warnings: string[] = [];
  let stack: StackEntry[] = [];
  try {
    const eff = await effectiveStack(config);
    stack = eff.stack;
    for (const w of eff.warnings) warnings.push((w as { message?: string }).message ?? String(w));
  } catch (err) {
    problems.push(`${config.file}: mustPass.dir: ${(err as Error).message}`);
  }
  await checkFleetKey(config, problems, warnings);
  await checkFleetTls(config, problems, warnings);
  if (opts.loadActors !== false) problems.push(...(await loadActors(stack, warnings)));
  return { problems, warnings, stack };
}

/** The fleet key file, read as run reads it at start (src/fleet/key.ts): missing, unreadable, too short, shared. */
async function checkFleetKey(config: Config, problems: string[], warnings: string[]): Promise<void> {
  if (config.fleet.store === null) return;
  try {
    await loadFleetKey(config.fleet.keyFile);
  } catch (err) {
    if (!(err instanceof FleetKeyError)) throw err;
    notRootOr(config, err, problems, warnings);
  }
}

/** check runs as any user; run reads the files as root: a file only root may read is no problem of the config. */
function notRootOr(config: Config, err: FleetKeyError | FleetTlsError, problems: string[], warnings: string[]): void {
  const notRoot = (err.cause as NodeJS.ErrnoException | undefined)?.code === 'EACCES' && process.getuid?.() !== 0;
  (notRoot ? warnings : problems).push(`${config.file}: ${err.message}${notRoot ? ' (not checked: blessd run reads it as root)' : ''}`);
}

/** fleet.tls's files, read as run reads them at start (src/fleet/tls.ts). */
async function checkFleetTls(config: Config, problems: string[], warnings: string[]): Promise<void> {
  if (config.fleet.store === null) return;
  const target = parseStoreUrl(config.fleet.store);
  if ('problem' in target || !target.tls) return;
  try {
    await loadStoreTls(config.fleet.tls);
  } catch (err) {
    if (!(err instanceof FleetTlsError)) throw err;
    notRootOr(config, err, problems, warnings);
  }
}

async function loadActors(stack: StackEntry[], warnings: string[]): Promise<string[]> {
  const toLoad = stack.filter((e) => e.actor !== 'remote' && !(e.builtin && e.actor === 'default'));
  if (toLoad.length === 0) return [];
  // The pool (and through it the actors) may need the native addon: loaded only when there is something to load.
  const { ScanPool } = await import('../pool/scan-pool.js');
  const pool = new ScanPool({ threads: 1 });
  const problems: string[] = [];
  try {
    for (const e of toLoad) {
      try {
        const d = await pool.describe({ name: e.name, actor: e.actor, options: e.options as Record<string, unknown>, maxSize: e.maxSize });
        for (const w of d.warnings) warnings.push(`${e.origin}: ${e.name}: ${w}`);
      } catch (err) {
        problems.push(`${e.origin}: ${e.name} (${e.actor}): ${oneLine((err as Error).message)}`);
      }
    }
  } finally {
    await pool.close();
  }
  return problems;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, '; ');
}
