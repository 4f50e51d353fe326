// Private scratch filesystems for tests: a tmpfs or a loop-mounted ext4 image under a fresh temp dir.
// Nothing else is ever marked. Every mount is undone on teardown, and on process exit if a test dies.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type ScratchKind = 'ext4' | 'tmpfs';

export interface Scratch {
  kind: ScratchKind;
  /** The mount point. */
  dir: string;
  /** The temp dir that holds the image and the mount point. */
  base: string;
  /** Unmount and remove (idempotent). */
  cleanup(): Promise<void>;
  /** Unmount and mount again (ext4: the same image), to prove what survives. */
  remount(): Promise<void>;
}

const live = new Set<Scratch>();
process.once('exit', () => {
  for (const s of live) {
    try {
      execFileSync('umount', ['-l', s.dir], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
});

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export async function makeScratch(kind: ScratchKind, sizeMiB = 64): Promise<Scratch> {
  const base = await mkdtemp(join(tmpdir(), `blessd-${kind}-`));
  const dir = join(base, 'mnt');
  await mkdir(dir);
  const image = join(base, 'fs.img');
  const mount = async () => {
    if (kind === 'tmpfs') await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir]);
    else await run('mount', ['-o', 'loop', image, dir]);
  };
  if (kind === 'ext4') {
    await run('truncate', ['-s', `${sizeMiB}M`, image]);
    // 4 KiB blocks as on real filesystems (mke2fs picks 1 KiB for small images: room for only a few tags per file).
    await run('mkfs.ext4', ['-q', '-F', '-b', '4096', image]);
  }
  await mount();
  let mounted = true;
  const unmount = async () => {
    if (!mounted) return;
    mounted = false;
    await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
  };
  const scratch: Scratch = {
    kind,
    dir,
    base,
    async cleanup() {
      live.delete(scratch);
      await unmount().catch(() => {});
      await rm(base, { recursive: true, force: true });
    },
    async remount() {
      if (kind === 'tmpfs') throw new Error('remount: a tmpfs keeps nothing across a remount');
      await unmount();
      await mount();
      mounted = true;
    },
  };
  live.add(scratch);
  return scratch;
}
