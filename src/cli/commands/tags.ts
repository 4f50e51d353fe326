// blessctl tags PATH: every verdict tag of a file, decoded and judged. blessctl tags clear PATH: remove them.
// Offline, blessctl does not know the scanners' own generations (the actors do); it knows the bump counters in
// generations.json, so a tag is shown stale-generation only when its counter differs from the current one.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { JudgedTag } from '../../tags/judge.js';
import { loadTagKey } from '../../tags/key.js';
import { readBumps, splitTagGeneration, type Bumps } from '../../tags/generation.js';
import type { Stamp } from '../../tags/stamp.js';
import { COMMON_OPTIONS, COMMON_USAGE, commonOf, out, parseOrUsage, printable, table, UsageError, type Command } from '../command.js';

const usage = `Usage: blessctl tags PATH [--json] [--verify-content] [options]
       blessctl tags clear PATH [--json] [options]

The first form prints each scanned-by.* tag of PATH (symlinks followed): scanner, judgement, answer, reason,
generation, stamp and time. Judgements: valid, stale-stamp, stale-generation, bad-mac, scanning-live,
scanning-expired, unparseable. --verify-content also checks content digests (reads the whole file).
The second form removes every scanned-by.* tag of PATH itself (trusted. and user.), as a change to it would.
A file named "clear" is ./clear.

${COMMON_USAGE}
  --verify-content        check content digests of content-mode tags`;

// The store needs the native addon; `blessctl --help` and the socket commands must not.
const tagStore = () => import('../../tags/store.js');

const stampJson = (s: Stamp) => ({ ino: String(s.ino), igen: s.igen, size: String(s.size), mtimeNs: String(s.mtimeNs) });

function isoNs(ns: bigint): string {
  const iso = new Date(Number(ns / 1_000_000n)).toISOString();
  return iso.replace(/\.\d{3}Z$/, `.${String(ns % 1_000_000_000n).padStart(9, '0')}Z`);
}

/** The offline generation check: compare only the bump counter. */
function judgeBump(tag: JudgedTag, bumps: Bumps): JudgedTag {
  if (tag.judgement !== 'valid' || tag.value?.kind !== 'result') return tag;
  const { bump } = splitTagGeneration(tag.value.generation);
  const current = bumps[tag.scanner] ?? 0;
  if (bump === current) return { ...tag, generationChecked: true };
  return { ...tag, generationChecked: true, judgement: 'stale-generation', detail: `bump counter ${bump === null ? 'missing' : '#' + bump}, current #${current}` };
}

function tagJson(tag: JudgedTag) {
  const v = tag.value;
  const base = { name: tag.name, scanner: tag.scanner, judgement: tag.judgement, detail: tag.detail ?? null };
  if (v === undefined) return base;
  if (v.kind === 'scanning') return { ...base, kind: 'scanning', holder: v.holder, leaseUntil: v.leaseUntil, stamp: stampJson(v.stamp), time: v.time };
  return { ...base, kind: 'result', answer: v.answer, reason: v.reason ?? null, generation: v.generation, stamp: stampJson(v.stamp), time: v.time, digest: v.digest ?? null };
}

function tagRow(tag: JudgedTag): string[] {
  const v = tag.value;
  const when = (ms: number) => new Date(ms).toISOString();
  const stamp = (s: Stamp) => `${s.ino}/${s.igen} ${s.size}B ${isoNs(s.mtimeNs)}`;
  if (v === undefined) return [tag.scanner, tag.judgement, '-', '-', '-', '-', tag.detail ?? ''];
  if (v.kind === 'scanning') {
    return [tag.scanner, tag.judgement, 'scanning', '-', when(v.time), stamp(v.stamp), `held by ${v.holder} until ${when(v.leaseUntil)}`];
  }
  const why = [v.reason, tag.judgement === 'valid' ? undefined : tag.detail].filter(Boolean).join('; ');
  return [tag.scanner, tag.judgement, v.answer, v.generation, when(v.time), stamp(v.stamp), why];
}

async function show(path: string, common: ReturnType<typeof commonOf>, verifyContent: boolean): Promise<number> {
  const key = await loadTagKey(common.key, { create: false });
  const bumps = await readBumps(common.stateDir);
  let fh;
  try {
    // O_NONBLOCK: a FIFO must not hang us; we only read attributes, a stamp and (maybe) content.
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw new Error(`cannot open ${path}: ${(err as Error).message}`);
  }
  try {
    const { TagStore } = await tagStore();
    const store = new TagStore({ namespace: common.namespace, key });
    const report = await store.read(fh.fd, {}, { verifyContent });
    const tags = report.tags.map((t) => judgeBump(t, bumps)).sort((a, b) => a.scanner.localeCompare(b.scanner));
    if (common.json) {
      out(JSON.stringify({ path, namespace: common.namespace, stamp: stampJson(report.stamp), digest: report.digest ?? null, tags: tags.map(tagJson) }));
      return 0;
    }
    const s = report.stamp;
    out(`${printable(path)}: ino ${s.ino}, igen ${s.igen}, size ${s.size}, mtime ${isoNs(s.mtimeNs)}`);
    if (tags.length === 0) {
      out(`no ${common.namespace}.scanned-by.* tags`);
      return 0;
    }
    const header = ['SCANNER', 'JUDGEMENT', 'ANSWER', 'GENERATION', 'TIME', 'STAMP (ino/igen size mtime)', 'REASON / DETAIL'];
    out(table(header, tags.map((t) => tagRow(t).map(printable))));
    return 0;
  } finally {
    await fh.close();
  }
}

export const tagsCommand: Command = {
  name: 'tags',
  summary: 'tags [clear] PATH           show (or remove) the verdict tags of a file',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(() =>
      parseArgs({ args, options: { ...COMMON_OPTIONS, 'verify-content': { type: 'boolean' } }, allowPositionals: true, strict: true }),
    );
    if (values.help) {
      out(usage);
      return 0;
    }
    const common = commonOf(values);
    if (positionals[0] === 'clear' && positionals.length === 2) {
      const path = positionals[1]!;
      let removed: string[];
      try {
        removed = (await tagStore()).clearTags(path);
      } catch (err) {
        throw new Error(`cannot clear the tags of ${path}: ${(err as Error).message}`);
      }
      if (common.json) out(JSON.stringify({ path, removed }));
      else out(removed.length === 0 ? `${printable(path)}: no tags` : removed.map((n) => `${printable(path)}: removed ${n}`).join('\n'));
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('expected: tags PATH, or tags clear PATH');
    return show(positionals[0]!, common, values['verify-content'] ?? false);
  },
};
