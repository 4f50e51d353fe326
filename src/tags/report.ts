// What reading a file's tags gives: its stamp and every tag judged. Its own module so that the daemon, the socket
// side and blessctl can name it without importing the store.
import type { JudgedTag } from './judge.js';
import type { Stamp } from './stamp.js';

export interface TagReport {
  stamp: Stamp;
  tags: JudgedTag[];
  /** The digest computed or given for verifyContent. */
  digest?: string;
}
