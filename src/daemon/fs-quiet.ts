// Small fs calls whose failure means "nothing to show": a path for display, an fd that may be closed already.
import { closeSync, readlinkSync } from 'node:fs';

export function readlinkQuiet(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

export function closeQuiet(fd: number) {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}
