// A separate process that races for leases (tags-race.test.ts): from a common start time, it tries begin() on
// file i at start + i*2 ms, and (with --finish) writes a result for each lease it got.
// argv: keyHex holder startAtMs finish(0|1) file...   Prints one JSON object: { leased: [...], written: [...] }.
import { openSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TagStore } from '../../src/tags/store.js';

const [keyHex, holder, startAt, finish, ...files] = process.argv.slice(2);
const [host, pid] = holder!.split(':');
const store = new TagStore({ namespace: 'trusted', key: Buffer.from(keyHex!, 'hex'), leaseMs: 30_000, host: host!, pid: Number(pid) });
const fds = files.map((f) => openSync(f, 'r'));

const start = Number(startAt);
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
  const sync = process.env.RACER_SYNC_DIR;
  if (sync) {
    writeFileSync(join(sync, `${holder!.replace(/\W/g, '_')}.began`), '');
    const deadline = Date.now() + 20_000;
    while (readdirSync(sync).filter((n) => n.endsWith('.began')).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, Math.max(0, start + fds.length * SLOT_MS + 500 - Date.now())));
  for (const [i, token] of tokens) {
    const r = await store.finish(fds[i]!, 'clamav', token, { answer: 'ok', reason: holder }, 'g#0');
    if (r.status === 'written') written.push(i);
  }
}
process.stdout.write(JSON.stringify({ leased, written, began, ended }) + '\n');
