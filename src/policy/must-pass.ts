// The must-pass directory: one symlink per extra scanner. The link name is the scanner and tag name, the target a
// program run by the built-in `exec` actor. Packages drop a link in (like /etc/pam.d or run-parts), an admin removes
// one to retire a scanner, no config edit needed.
//
// A bad entry (not a symlink, a bad name, a dangling or non-executable target) is reported by path and skipped:
// one broken package must not stop the daemon. An unreadable directory is an error: silently losing every
// must-pass scanner would quietly weaken the policy.
import { BlessdError } from '../errors.js';
import { constants } from 'node:fs';
import { access, lstat, readdir, readlink, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { SCANNER_NAME, STACK_ENTRY_DEFAULTS, type Config, type Control, type MustPassPosition, type StackEntry } from '../config/types.js';

export interface MustPassWarning {
  code: 'MUSTPASS_NOT_SYMLINK' | 'MUSTPASS_BAD_NAME' | 'MUSTPASS_DANGLING' | 'MUSTPASS_NOT_EXECUTABLE' | 'MUSTPASS_DUPLICATE';
  /** The directory entry (the link), or the entry name for duplicates. */
  path: string;
  message: string;
}

export class MustPassError extends BlessdError<'BLESSD_MUSTPASS'> {
  constructor(
    readonly dir: string,
    message: string,
  ) {
    super('BLESSD_MUSTPASS', `${dir}: ${message}`);
  }
}

export interface MustPassResult {
  /** One exec entry per good link, sorted by name. */
  entries: StackEntry[];
  warnings: MustPassWarning[];
}

/** Read the directory into stack entries. Asynchronous: the daemon may re-read it while its gate is live. */
export async function readMustPass(dir: string, control: Control = 'required'): Promise<MustPassResult> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const what = e.code === 'ENOENT' ? 'does not exist' : e.code === 'ENOTDIR' ? 'is not a directory' : `cannot be read (${e.code ?? e.message})`;
    throw new MustPassError(dir, `${what} (mustPass.dir: a directory of symlinks, one per scanner)`);
  }
  const entries: StackEntry[] = [];
  const warnings: MustPassWarning[] = [];
  for (const name of names) {
    const link = join(dir, name);
    const result = await readOne(link, name);
    if ('code' in result) warnings.push(result);
    else entries.push(execEntry(name, result.program, control, dir, link));
  }
  return { entries, warnings };
}

async function readOne(link: string, name: string): Promise<{ program: string } | MustPassWarning> {
  const warn = (code: MustPassWarning['code'], message: string): MustPassWarning => ({ code, path: link, message: `${link}: ${message}` });
  let info;
  try {
    info = await lstat(link);
  } catch (err) {
    // Removed between readdir and lstat: it is simply gone.
    return warn('MUSTPASS_DANGLING', `vanished while reading (${(err as NodeJS.ErrnoException).code})`);
  }
  if (!info.isSymbolicLink()) {
    return warn('MUSTPASS_NOT_SYMLINK', 'not a symlink: each entry must be a symlink named after the scanner, pointing to a program');
  }
  if (!SCANNER_NAME.test(name)) {
    return warn('MUSTPASS_BAD_NAME', `bad scanner name ${JSON.stringify(name)}: must match [a-z0-9][a-z0-9_-]{0,63}`);
  }
  let program: string;
  try {
    // Relative targets are relative to the link's directory, as the kernel reads them.
    program = resolve(link, '..', await readlink(link));
  } catch (err) {
    return warn('MUSTPASS_DANGLING', `cannot read the link (${(err as NodeJS.ErrnoException).code})`);
  }
  try {
    const target = await stat(link);
    if (!target.isFile()) return warn('MUSTPASS_NOT_EXECUTABLE', `target ${program} is not a regular file`);
    // root passes access(X_OK) if any x bit is set; with none set the program could not run.
    if ((target.mode & 0o111) === 0) return warn('MUSTPASS_NOT_EXECUTABLE', `target ${program} is not executable`);
    await access(link, constants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES') return warn('MUSTPASS_NOT_EXECUTABLE', `target ${program} is not executable`);
    const what = code === 'ENOENT' ? 'does not exist' : 'cannot be reached';
    return warn('MUSTPASS_DANGLING', `target ${program} ${what} (${code})`);
  }
  return { program };
}

function execEntry(name: string, program: string, control: Control, dir: string, link: string): StackEntry {
  return {
    ...STACK_ENTRY_DEFAULTS,
    actor: 'exec',
    builtin: true,
    name,
    control,
    options: { program },
    baseDir: dir,
    origin: link,
  };
}

/**
 * Put the must-pass entries into the configured stack: before the first `default` entry (order matters for
 * requisite and sufficient entries, and the default is meant to be last) or at the end. A must-pass name that the
 * stack already uses is skipped with a warning: config.yaml is the more deliberate of the two.
 */
export function mergeStack(
  stack: readonly StackEntry[],
  mustPass: readonly StackEntry[],
  position: MustPassPosition,
): { stack: StackEntry[]; warnings: MustPassWarning[] } {
  const taken = new Set(stack.map((e) => e.name));
  const warnings: MustPassWarning[] = [];
  const extra = mustPass.filter((e) => {
    if (!taken.has(e.name)) {
      taken.add(e.name);
      return true;
    }
    warnings.push({ code: 'MUSTPASS_DUPLICATE', path: e.origin, message: `${e.origin}: scanner name "${e.name}" is already in the stack; link ignored` });
    return false;
  });
  const at = position === 'beforeDefault' ? stack.findIndex((e) => e.actor === 'default') : -1;
  const cut = at < 0 ? stack.length : at;
  return { stack: [...stack.slice(0, cut), ...extra, ...stack.slice(cut)], warnings };
}

/** The effective stack of a config: its own entries plus the must-pass directory, if any. */
export async function effectiveStack(config: Config): Promise<{ stack: StackEntry[]; warnings: MustPassWarning[] }> {
  if (config.mustPass.dir === null) return { stack: [...config.stack], warnings: [] };
  const read = await readMustPass(config.mustPass.dir, config.mustPass.control);
  const merged = mergeStack(config.stack, read.entries, config.mustPass.position);
  return { stack: merged.stack, warnings: [...read.warnings, ...merged.warnings] };
}
