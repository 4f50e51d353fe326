// A separate process that races for leases (tags-race.test.ts): from a common start time, it tries begin() on
// file i at start + i*2 ms, and (with --finish) writes a result for each lease it got.
// argv: keyHex holder finish(0|1) file...   env RACER_SYNC_DIR: a directory both racers share.
// Prints one JSON object: { leased: [...], written: [...] }. Exits 3 when the other racer does not show up.
import { openSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TagStore } from '../../src/tags/store.js';

const [keyHex, holder, finish, ...files] = process.argv.slice(2);
const [host, pid] = holder!.split(':');
const store = new TagStore({ namespace: 'trusted', key: Buffer.from(keyHex!, 'hex'), leaseMs: 30_000, host: host!, pid: Number(pid) });
const fds = files.map((f) => openSync(f, 'r'));
const sync = process.env.RACER_SYNC_DIR!;
const me = holder!.replace(/\W/g, '_');

/** Announce `step` and wait (bounded) until both racers announced it; resolves with the later announcement's mtime. */
async function meet(step: string): Promise<number> {
  writeFileSync(join(sync, `${me}.${step}`), '');
  const deadline = Date.now() + 30_000;
  for (;;) {
    const both = readdirSync(sync).filter((n) => n.endsWith(`.${step}`));
    if (both.length >= 2) return Math.max(...both.map((n) => statSync(join(sync, n)).mtimeMs));
    if (Date.now() > deadline) {
      process.stderr.write(`racer ${holder}: the other racer did not reach "${step}" within 30 s\n`);
      process.exit(3);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
}

// Both loaded, both opened every file: the start is a moment just after the later of the two said so (a loaded
// machine can take seconds to start node, so a start time fixed in advance could find one racer still loading).
const start = (await meet('ready')) + 100;
const SLOT_MS = 2;
while (Date.now() < start - 20) await new Promise((r) => setTimeout(r, 5));
while (Date.now() < start) {
  /* spin the last few ms so both racers start together */
}

const tokens = new Map<number, string>();
const leased: number[] = [];
const began = performance.timeOrigin + performance.now();
fds.forEach((fd, i) => {
  // One time slot per file, entered by spinning on the clock: both racers call begin() on file i within
  // microseconds of each other, so every file is a real race, not just the first one.
  const slot = start + i * SLOT_MS;
  while (performance.timeOrigin + performance.now() < slot) {
    /* spin */
  }
  const r = store.begin(fd, 'clamav');
  if (r.status === 'leased') {
    leased.push(i);
    tokens.set(i, r.token);
  }
});
const ended = performance.timeOrigin + performance.now();
const written: number[] = [];
if (finish === '1') {
  // Finish only after both racers began everything: a result written earlier would be a finished tag, which the
  // other racer may rightly replace (begin takes over result tags), and the test counts races, not rescans.
  // On a loaded machine one racer can fall far behind its slots, so the clock alone is not enough: each racer says
  // it is done beginning (a file in RACER_SYNC_DIR) and waits for the other's word.
  await meet('began');
  for (const [i, token] of tokens) {
    const r = await store.finish(fds[i]!, 'clamav', token, { answer: 'ok', reason: holder }, 'g#0');
    if (r.status === 'written') written.push(i);
  }
}
process.stdout.write(JSON.stringify({ leased, written, began, ended }) + '\n');
