// blessctl baseline: record what each file's content is supposed to be, for the integrity actor (a tripwire), and
// watch for baselined files that change. The baseline format belongs to the actor (actors/integrity/baseline.ts).
//
// Reading a guarded tree goes through the gate like anyone's reads. A baselined file whose content changed is
// refused by the integrity actor itself, so --update cannot read it: it asks the running daemon for the file's
// integrity tag instead (the `tags` op judges it with the daemon's key and generations), whose deny reason carries
// the digest the actor computed of the content now on disk. Only a valid tag of that content is taken.
import { constants, type Dirent } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { byInode, formatBaseline, parseBaseline, type Baseline, type BaselineEntry } from '../../../actors/integrity/baseline.js';
import { ControlClient } from '../../notify/client.js';
import { digestFd } from '../../tags/digest.js';
import { COMMON_OPTIONS, commonOf, out, parseOrUsage, printable, UsageError, type Command } from '../command.js';
import { connectDaemon, socketPath } from '../control.js';

const usage = `Usage: blessctl baseline [--update] [--baseline FILE] PATH...
       blessctl baseline --watch [--baseline FILE] [--count N]

The first form records the sha256 and size of every regular file at or below each PATH (symlinks are not
followed) in the baseline FILE, for the integrity actor (actor: integrity, options: { baseline: FILE }). Without
--update FILE must not exist yet; with --update the entries at or below each PATH are recorded again (files gone
are dropped) and the others kept. The file is replaced atomically; keep it where only root can write.
A changed baselined file that the gate refuses is recorded from its integrity tag, asked of the running daemon.
The second form subscribes to the daemon and prints a line for each baselined file that goes dirty.

Options:
  --baseline FILE         the baseline (default <state-dir>/baseline)
  --update                record PATHs again in an existing baseline
  --watch                 print the baselined files that change, as the daemon notices them
  --count N               with --watch: exit after N changes
  --scanner NAME          the integrity entry's scanner name, for tags asked of the daemon (default integrity)
  --socket PATH           the daemon's control socket (default $BLESSD_SOCKET or /run/blessd.sock)
  --state-dir DIR         state directory (default /var/lib/blessd)
  -c, --config FILE       take the state directory from the daemon's config.yaml
  --json                  machine-readable output
  -h, --help              this text`;

interface Walked {
  entries: Baseline;
  /** Files that could not be recorded, with why. */
  failed: { path: string; error: string }[];
  /** Files recorded from the daemon's integrity tag (their reads were refused). */
  fromTags: string[];
}

const REFUSED = new Set(['EPERM', 'EACCES']);
const NOW_DIGEST = /, now ([0-9a-f]{64})$/;

/** A digest the daemon's integrity actor computed of the content now on disk (a valid deny tag), or why not. */
async function digestFromDaemon(socket: string, scanner: string, path: string): Promise<{ sha256: string; size: number } | string> {
  let c: ControlClient;
  try {
    c = await ControlClient.connect(socket, { timeoutMs: 2000 });
  } catch (err) {
    return `no daemon to ask on ${socket} (${(err as Error).message})`;
  }
  try {
    const r = await c.request('tags', { path }, { timeoutMs: 10_000 });
    const tags = r['tags'] as { scanner: string; judgement: string; answer: string | null; reason: string | null }[];
    const tag = tags.find((t) => t.scanner === scanner);
    if (!tag) return `the daemon holds no ${scanner} tag for it`;
    if (tag.judgement !== 'valid') return `its ${scanner} tag is ${tag.judgement}`;
    const m = tag.answer === 'deny' && tag.reason ? NOW_DIGEST.exec(tag.reason) : null;
    if (!m) return `its ${scanner} tag says ${tag.answer}${tag.reason ? ` (${tag.reason})` : ''}, not a changed digest`;
    const stamp = r['stamp'] as { size: string };
    return { sha256: m[1]!, size: Number(stamp.size) };
  } catch (err) {
    return `the daemon could not tell: ${(err as Error).message}`;
  } finally {
    c.close();
  }
}

async function recordFile(path: string, into: Walked, ask: (path: string) => Promise<{ sha256: string; size: number } | string>): Promise<void> {
  let fh;
  try {
    // O_NONBLOCK: a FIFO swapped in meanwhile must not hang us; O_NOFOLLOW: nor a symlink.
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    if (code === 'ENOENT') return; // gone since the directory was listed
    if (!REFUSED.has(code)) return void into.failed.push({ path, error: (err as Error).message });
    return recordRefused(path, into, ask, code);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return;
    let sha256: string;
    try {
      sha256 = await digestFd(fh.fd);
    } catch (err) {
      const code = ((err as { cause?: { code?: string } }).cause?.code) ?? '';
      if (REFUSED.has(code)) return recordRefused(path, into, ask, code);
      throw err;
    }
    into.entries.set(path, { sha256, size: st.size, dev: st.dev, ino: st.ino });
  } catch (err) {
    into.failed.push({ path, error: (err as Error).message });
  } finally {
    await fh.close();
  }
}

async function recordRefused(path: string, into: Walked, ask: (path: string) => Promise<{ sha256: string; size: number } | string>, code: string): Promise<void> {
  const st = await lstat(path);
  const got = await ask(path);
  if (typeof got === 'string') return void into.failed.push({ path, error: `${code}: the gate refuses to read it, and ${got}` });
  into.entries.set(path, { ...got, dev: st.dev, ino: st.ino });
  into.fromTags.push(path);
}

async function walk(root: string, into: Walked, ask: (path: string) => Promise<{ sha256: string; size: number } | string>): Promise<void> {
  const st = await lstat(root);
  if (st.isFile()) return recordFile(root, into, ask);
  if (!st.isDirectory()) return;
  let children: Dirent[];
  try {
    children = await readdir(root, { withFileTypes: true });
  } catch (err) {
    return void into.failed.push({ path: root, error: (err as Error).message });
  }
  for (const d of children.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = join(root, d.name);
    if (d.isDirectory()) await walk(p, into, ask);
    else if (d.isFile()) await recordFile(p, into, ask);
  }
}

const under = (path: string, root: string) => path === root || path.startsWith(root.endsWith('/') ? root : root + '/');

async function readExisting(file: string): Promise<Baseline | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw new Error(`cannot read the baseline ${file}: ${(err as Error).message}`);
  }
  return parseBaseline(text, file);
}

async function writeAtomically(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, text, { mode: 0o644, flush: true });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

const same = (a: BaselineEntry, b: BaselineEntry) => a.sha256 === b.sha256 && a.size === b.size;

async function record(file: string, paths: string[], update: boolean, json: boolean, ask: (path: string) => Promise<{ sha256: string; size: number } | string>): Promise<number> {
  const existing = await readExisting(file);
  if (existing && !update) throw new Error(`${file} exists: use --update to record paths again in it`);
  if (!existing && update) throw new Error(`${file} does not exist: record a baseline first (without --update)`);
  const roots: string[] = [];
  for (const p of paths) {
    try {
      roots.push(await realpath(p));
    } catch (err) {
      throw new Error(`cannot record ${p}: ${(err as Error).message}`);
    }
  }
  const walked: Walked = { entries: new Map(), failed: [], fromTags: [] };
  for (const r of roots) await walk(r, walked, ask);
  const next: Baseline = new Map([...(existing ?? new Map<string, BaselineEntry>())].filter(([p]) => !roots.some((r) => under(p, r))));
  let added = 0;
  let changed = 0;
  let unchanged = 0;
  for (const [p, e] of walked.entries) {
    const before = existing?.get(p);
    if (!before) added++;
    else if (same(before, e)) unchanged++;
    else changed++;
    next.set(p, e);
  }
  // A file that could not be read keeps its old entry: a read error must not drop a file from the tripwire.
  for (const f of walked.failed) {
    const before = existing?.get(f.path);
    if (before) next.set(f.path, before);
  }
  const removed = existing ? [...existing.keys()].filter((p) => roots.some((r) => under(p, r)) && !next.has(p)).length : 0;
  await writeAtomically(file, formatBaseline(next));
  const summary = { baseline: file, files: next.size, added, changed, unchanged, removed, fromTags: walked.fromTags, failed: walked.failed };
  if (json) out(JSON.stringify(summary));
  else {
    out(`${printable(file)}: ${next.size} files (${added} added, ${changed} changed, ${unchanged} unchanged, ${removed} removed)`);
    for (const p of walked.fromTags) out(`  ${printable(p)}: recorded from the daemon's integrity tag (the gate refuses to read it)`);
    for (const f of walked.failed) process.stderr.write(`blessctl baseline: ${printable(f.path)}: ${f.error}\n`);
  }
  return walked.failed.length > 0 ? 1 : 0;
}

async function watch(file: string, socket: string, count: number, json: boolean): Promise<number> {
  const baseline = await readExisting(file);
  if (!baseline) throw new Error(`${file} does not exist: record a baseline first`);
  const inodes = byInode(baseline);
  const c = await connectDaemon(socket);
  let seen = 0;
  let done = false;
  return new Promise<number>((resolve, reject) => {
    const stop = (code: number) => {
      done = true;
      c.close();
      resolve(code);
    };
    process.once('SIGINT', () => stop(0));
    c.on('event', (n: Record<string, unknown>) => {
      if (n['event'] === 'lost') return void process.stderr.write(`blessctl baseline: LOST ${String(n['count'])} notices (read too slowly): check the baseline with a scan\n`);
      if (n['event'] !== 'dirty') return;
      const path = String(n['path']);
      const as = baseline.has(path) ? path : inodes.get(`${String(n['dev'])}:${String(n['ino'])}`);
      if (as === undefined) return;
      const e = baseline.get(as)!;
      if (json) out(JSON.stringify({ event: 'changed', path, baselined: as, sha256: e.sha256, time: n['time'] }));
      else out(`${new Date(Number(n['time'])).toISOString()} CHANGED ${printable(path)}${as === path ? '' : ` (a link of ${printable(as)})`}  baseline sha256 ${e.sha256}`);
      if (++seen >= count) stop(0);
    });
    c.on('close', () => {
      if (done) return;
      process.stderr.write('blessctl baseline: the daemon closed the connection\n');
      resolve(1);
    });
    c.request('subscribe', { verdicts: false }).then(
      () => {
        if (json) out(JSON.stringify({ event: 'watching', baseline: file, files: baseline.size }));
        else out(`watching ${baseline.size} baselined files of ${printable(file)}`);
      },
      (err) => {
        c.close();
        reject(err);
      },
    );
  });
}

export const baselineCommand: Command = {
  name: 'baseline',
  summary: 'baseline [--update] PATH... record content digests for the integrity actor (--watch: print changes)',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(() =>
      parseArgs({
        args,
        options: {
          ...COMMON_OPTIONS,
          baseline: { type: 'string' },
          update: { type: 'boolean' },
          watch: { type: 'boolean' },
          count: { type: 'string' },
          scanner: { type: 'string' },
          socket: { type: 'string' },
        },
        allowPositionals: true,
        strict: true,
      }),
    );
    if (values.help) {
      out(usage);
      return 0;
    }
    const common = commonOf(values);
    const file = values.baseline ?? join(common.stateDir, 'baseline');
    const socket = socketPath(values);
    if (values.watch) {
      if (positionals.length > 0 || values.update) throw new UsageError('--watch takes no PATH and no --update');
      const count = values.count === undefined ? Infinity : Number(values.count);
      if (!(count === Infinity || (Number.isInteger(count) && count > 0))) throw new UsageError('--count must be a positive integer');
      return watch(file, socket, count, common.json);
    }
    if (values.count !== undefined) throw new UsageError('--count goes with --watch');
    if (positionals.length === 0) throw new UsageError('expected: baseline [--update] PATH...');
    const scanner = values.scanner ?? 'integrity';
    return record(file, positionals, values.update ?? false, common.json, (p) => digestFromDaemon(socket, scanner, p));
  },
};
