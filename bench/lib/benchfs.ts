// Private bench filesystems: a loop-mounted ext4 or xfs image under a fresh temp dir. Nothing else is ever marked.
// ext4 gets as many inodes as the bench asks for (the scale bench needs a million) and 512-byte inodes, so that
// blessd's verdict tags fit inside the inode instead of costing an xattr block per file. Every mount is undone by
// cleanup(), and lazily on process exit if a bench dies (an error, or a signal).
import { execFile, execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type BenchFsKind = 'ext4' | 'xfs';

export interface BenchFs {
  kind: BenchFsKind;
  /** The mount point. */
  dir: string;
  /** The temp dir holding the image, the mount point and whatever else a bench keeps (binaries, configs, logs). */
  base: string;
  cleanup(): Promise<void>;
}

export interface BenchFsOptions {
  sizeMiB: number;
  /** ext4: inodes to provide (mkfs -N). xfs allocates inodes dynamically. */
  inodes?: number;
}

/** Mount point -> its temp dir. */
const live = new Map<string, string>();
process.once('exit', () => {
  for (const [dir, base] of live) {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      // Detached at once (-l), so the walk below cannot enter the filesystem; the image's space is freed when the
      // loop device lets go of it.
      rmSync(base, { recursive: true, force: true });
    } catch {
      /* already gone, or still mounted: left for the operator rather than walked into */
    }
  }
});
// A bench ended by a signal (`timeout`, Ctrl-C) gets no 'exit' event of its own: exit, so the handler above unmounts.
// The daemons it forked stop on their own when their IPC channel closes (daemon-host.ts).
for (const [signal, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]] as const) {
  process.once(signal, () => process.exit(128 + n));
}

export function benchFsKind(fallback: BenchFsKind = 'ext4'): BenchFsKind {
  const v = process.env.BENCH_FS ?? fallback;
  if (v !== 'ext4' && v !== 'xfs') throw new Error(`BENCH_FS: must be ext4 or xfs (got "${v}")`);
  return v;
}

async function ensureMkfs(kind: BenchFsKind) {
  const tool = kind === 'xfs' ? 'mkfs.xfs' : 'mkfs.ext4';
  try {
    await run('which', [tool]);
  } catch {
    if (kind !== 'xfs') throw new Error(`${tool} is missing`);
    await run('apt-get', ['install', '-y', '--no-install-recommends', 'xfsprogs'], { timeout: 300_000 });
  }
}

export async function makeBenchFs(kind: BenchFsKind, opts: BenchFsOptions): Promise<BenchFs> {
  await ensureMkfs(kind);
  const base = await mkdtemp(join(tmpdir(), `blessd-bench-${kind}-`));
  const dir = join(base, 'mnt');
  await mkdir(dir);
  const image = join(base, 'fs.img');
  // xfs refuses images under 300 MiB.
  const size = Math.max(opts.sizeMiB, kind === 'xfs' ? 320 : 16);
  try {
    await run('truncate', ['-s', `${size}M`, image]);
    if (kind === 'xfs') await run('mkfs.xfs', ['-q', '-f', image]);
    else await run('mkfs.ext4', ['-q', '-F', '-I', '512', ...(opts.inodes ? ['-N', String(opts.inodes)] : []), image]);
    await run('mount', ['-o', 'loop', image, dir]);
  } catch (err) {
    await rm(base, { recursive: true, force: true });
    throw err;
  }
  live.set(dir, base);
  let mounted = true;
  return {
    kind,
    dir,
    base,
    async cleanup() {
      if (mounted) {
        mounted = false;
        live.delete(dir);
        await run('umount', [dir]).catch(() => run('umount', ['-l', dir]).catch(() => {}));
      }
      await rm(base, { recursive: true, force: true });
    },
  };
}
