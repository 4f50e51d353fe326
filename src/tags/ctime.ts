// Overview — "nothing touched the inode since our last tag write": the offline-change check of ctime stamp mode.
//
// Size and mtime alone cannot prove a file unchanged: its owner may write and then put mtime back (utimensat), and a
// daemon that was down saw no event. ctime cannot be set by users: every change of content or metadata sets it to
// the current time. It cannot be bound into a tag's own stamp, though — writing the tag sets ctime too (so does
// every lease, every other scanner's tag). What holds instead: each tag carries the time it was written; our
// writes are the last things that touched a file we left tagged; so if the inode's ctime is later than the newest
// of our tags (plus a small slack for the time between taking the clock and the setxattr landing), something else
// touched the inode after we did, and no result tag on it is believed.
//
// It errs on the safe side: a chmod, a link or a user's own xattr also move ctime, and cost a rescan. A tag removed
// without a successor (an aborted lease) does as well. What it cannot see: a change within the slack of our last
// write, made while we were not listening — the daemon must die within that instant — and a clock set back (root).
import type { JudgedTag } from './judge.js';

/**
 * Clock-to-setxattr allowance: the tag's time is taken just before the write, the kernel stamps ctime as it lands
 * (coarse clocks stamp a tick early, never late). Kept small, as it is the one window an offline change could hide
 * in; TagStore.finish checks each write landed within it and writes again if not.
 */
export const CTIME_SLACK_MS = 50;

/** Whether a tag carrying `timeMs` still covers an inode whose ctime is `ctimeNs`. */
export function landedInTime(ctimeNs: bigint, timeMs: number, slackMs = CTIME_SLACK_MS): boolean {
  return ctimeNs <= BigInt(Math.floor(timeMs) + slackMs) * 1_000_000n;
}

/**
 * Judge every result tag stale-stamp when the inode changed after the newest tag we wrote. Only MAC-verified
 * values count (their time is ours); leases stay as judged (a live lease is not a verdict).
 */
export function judgeCtime(tags: JudgedTag[], ctimeNs: bigint, slackMs = CTIME_SLACK_MS): JudgedTag[] {
  let newest = -1;
  for (const t of tags) {
    if (t.judgement === 'bad-mac' || t.judgement === 'unparseable' || !t.value) continue;
    newest = Math.max(newest, t.value.time);
  }
  if (newest < 0) return tags;
  if (landedInTime(ctimeNs, newest, slackMs)) return tags;
  const detail = `inode changed after the last tag write (ctime ${new Date(Number(ctimeNs / 1_000_000n)).toISOString()} > ${new Date(newest).toISOString()} + ${slackMs} ms)`;
  return tags.map((t) => (t.judgement === 'valid' || t.judgement === 'stale-generation' ? { ...t, judgement: 'stale-stamp', detail } : t));
}
