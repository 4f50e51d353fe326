// TagStore: the daemon's face of the tags on disk. Overview of what it owns:
// - read: every scanned-by.* tag of the configured namespace on one file, decoded and judged;
// - begin/finish/abort: the conditional bless (a lease written with XATTR_CREATE, the result written with
//   XATTR_REPLACE after the stamp was checked again; a dirty transition in between removes the tag and the kernel
//   answers ENODATA: the result is dropped). The lease and the result write are one native call each
//   (native/tags/write.cc, the one writer of both); what is judged stays here: the takeover of a tag already there
//   (takeover.ts), which leases are ours (takeOwn), abort and releaseHeld;
// - clear: what "dirty" does, every scanned-by.* tag in both namespaces.
// It never opens or closes fds: the caller owns them (the gate's event fd, or the daemon's own read-only open).
// All calls on a file are synchronous syscalls except content digests, so nothing interleaves between a check and
// the write that depends on it within this process; other processes are kept apart by the kernel (CREATE/REPLACE).
import { native, type TagWriterHandle } from '../gate/addon.js';
import type { Answer } from '../policy/answer.js';
import { isAnswerKind } from '../policy/answer.js';
import { decodeTag, verifyTag } from './codec.js';
import { digestFd } from './digest.js';
import { TagError, errnoCode, messageOf } from './errors.js';
import { holderState, isHolderProcess, parseHolder, selfHolder } from './holder.js';
import { judgeTag, type Generations, type JudgedTag, type Judgement } from './judge.js';
import { KEY_BYTES } from './key.js';
import { isTagNamespace, parseTagName, tagName, type TagNamespace } from './names.js';
import type { TagReport } from './report.js';
import { judgeCtime } from './ctime.js';
import { readStampAndCtime, sameStamp, type Stamp } from './stamp.js';

export type { TagReport } from './report.js';
import { LOCK_STALE_MS, takeOver } from './takeover.js';

/**
 * 'ctime' (default): the stamp, and the inode's ctime no later than our newest tag write (ctime.ts) — a change made
 * while the daemon was down is seen even with mtime put back. 'mtime': the stamp alone (mtime can be put back).
 * 'content': the stamp plus a sha256 of the content, checked with verifyContent.
 */
export type StampMode = 'ctime' | 'mtime' | 'content';
const STAMP_MODES: readonly StampMode[] = ['ctime', 'mtime', 'content'];

export interface TagStoreOptions {
  namespace: TagNamespace;
  /** The MAC key (loadTagKey). */
  key: Buffer;
  /** How long a "scanning" lease holds before others may take the file over. Default 60 s. */
  leaseMs?: number;
  /** See StampMode. Default 'ctime'. */
  stampMode?: StampMode;
  /** Holder identity written into leases; default this process (holder.ts: host, pid, start time, boot id). */
  host?: string;
  pid?: number;
}

export interface ReadOptions {
  /** Check content digests (content mode: the first use of a tag after a restart). Costs a full read. */
  verifyContent?: boolean;
  /** The content digest if the caller already has it (saves the read). */
  digest?: string;
  /** With verifyContent: no digest (no read) when no result tag could use it — none whose stamp is the file's. */
  digestOnlyForTags?: boolean;
}

export type BeginResult =
  | { status: 'leased'; token: string; leaseUntil: number; stamp: Stamp; /** What the lease replaced. */ replaced: Judgement | 'absent' }
  | { status: 'busy'; holder: string; leaseUntil: number; /** The lease is this store's own (a scan already running here). */ own: boolean };
/** With `yieldToResult`: the tag there is a result of this generation on the file as it is (by its own stamp). */
export type YieldedResult = { status: 'result' };

export type DropCode = 'ENODATA' | 'stamp-changed' | 'lease-lost';
export type FinishResult = { status: 'written'; reason: string } | { status: 'dropped'; code: DropCode; reason: string };

export interface FinishOptions {
  /** Content mode: the sha256 of what was scanned (preferred: computed while scanning). Else computed here. */
  digest?: string;
}

interface Lease {
  scanner: string;
  stamp: Stamp;
}

const MAX_BEGIN_ATTEMPTS = 5;

/** tagFinish's answers (native/tags/write.cc FinishCode). */
const FINISH_WRITTEN = 0;
const FINISH_REMOVED = 1;
const FINISH_STAMP_CHANGED = 2;
const FINISH_NOT_OURS = 3;

/** Reused by every call of this thread (synchronous, so no two calls share them at once). */
const beginSlots = new BigInt64Array(6);
const boundSlots = new BigInt64Array(4);

function stampOfSlots(s: BigInt64Array): Stamp {
  return { ino: BigInt.asUintN(64, s[0]!), igen: Number(s[1]!), size: s[2]!, mtimeNs: s[3]! };
}

/** A native writer call: its own codes (TAG_*) stay theirs, a failed syscall is TAG_XATTR_IO naming the tag and fd. */
function writeCall<T>(fn: () => T, what: string, fd: number): T {
  try {
    return fn();
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'TAG_FIELD_TOO_LONG' || code === 'TAG_BAD_SCANNER_NAME' || code === 'TAG_BAD_OPTION') throw new TagError(code, messageOf(err), err);
    throw new TagError('TAG_XATTR_IO', `${what}${fd >= 0 ? ` on fd ${fd}` : ''}: ${messageOf(err)}`, err);
  }
}

export class TagStore {
  readonly namespace: TagNamespace;
  readonly leaseMs: number;
  readonly stampMode: StampMode;
  readonly holder: string;
  readonly #key: Buffer;
  /** The native side of begin/finish (native/tags/write.cc): namespace, key, holder, lease length, stamp mode. */
  readonly #writer: TagWriterHandle;
  /** Leases this store took and has not finished: token -> the stamp the scan is bound to. Every begin() that
   * leased must end in finish() or abort(), which remove the entry. */
  readonly #leases = new Map<string, Lease>();

  constructor(options: TagStoreOptions) {
    if (!isTagNamespace(options.namespace)) throw new TagError('TAG_BAD_OPTION', `options.namespace must be 'trusted' or 'user', got ${JSON.stringify(options.namespace)}`);
    if (!Buffer.isBuffer(options.key) || options.key.length !== KEY_BYTES) throw new TagError('TAG_BAD_OPTION', `options.key must be a Buffer of ${KEY_BYTES} bytes`);
    const leaseMs = options.leaseMs ?? 60_000;
    if (!Number.isSafeInteger(leaseMs) || leaseMs <= 0) throw new TagError('TAG_BAD_OPTION', 'options.leaseMs must be a positive integer');
    const stampMode = options.stampMode ?? 'ctime';
    if (!STAMP_MODES.includes(stampMode)) throw new TagError('TAG_BAD_OPTION', `options.stampMode must be one of ${STAMP_MODES.join(', ')}, got ${JSON.stringify(stampMode)}`);
    this.namespace = options.namespace;
    this.#key = Buffer.from(options.key);
    this.leaseMs = leaseMs;
    this.stampMode = stampMode;
    // A made-up identity (tests racing as other hosts) keeps the old host:pid form, which names no process here.
    this.holder = options.host !== undefined || options.pid !== undefined ? `${options.host ?? 'localhost'}:${options.pid ?? process.pid}` : selfHolder();
    this.#writer = writeCall(() => native.tagWriter({ namespace: this.namespace, key: this.#key, holder: this.holder, leaseMs, ctime: stampMode === 'ctime' }), 'tag writer', -1);
  }

  /** Every tag of the configured namespace on the file, judged. Unparseable values are reported, never trusted. */
  async read(fd: number, generations: Generations, options: ReadOptions = {}): Promise<TagReport> {
    let digest = options.digest;
    if (options.verifyContent && digest === undefined) {
      if (options.digestOnlyForTags) {
        // A cold file has no result tag: its answers are the same with or without the content's digest.
        const plain = this.readSync(fd, generations);
        if (!plain.tags.some((t) => t.value?.kind === 'result' && sameStamp(t.value.stamp, plain.stamp))) return plain;
      }
      digest = await digestFd(fd);
    }
    // Stamp and values after the digest: a change during the digest read then shows as stale-stamp.
    return this.readSync(fd, generations, { ...options, digest });
  }

  /** read() without content verification's digest pass (or with a digest the caller has): a few syscalls. */
  readSync(fd: number, generations: Generations, options: ReadOptions = {}): TagReport {
    const digest = options.digest;
    const { stamp, ctimeNs } = readStampAndCtime(fd);
    const now = Date.now();
    const content = options.verifyContent && digest !== undefined ? { digest, required: this.stampMode === 'content' } : undefined;
    const tags: JudgedTag[] = [];
    for (const name of xattrCall(() => native.listXattr(fd), 'listxattr', `fd ${fd}`)) {
      const parsed = parseTagName(name);
      if (parsed === null || parsed.namespace !== this.namespace) continue;
      const raw = xattrCall(() => native.getXattr(fd, name), `getxattr ${name}`, `fd ${fd}`);
      if (raw === null) continue; // removed between list and get: absent is absent
      tags.push(judgeTag({ ...parsed, name, raw, key: this.#key, stamp, generations, now, content, holderState }));
    }
    const report: TagReport = { stamp, tags: this.stampMode === 'ctime' ? judgeCtime(tags, ctimeNs) : tags };
    if (digest !== undefined) report.digest = digest;
    return report;
  }

  /**
   * Take the lease for scanning this file with this scanner. XATTR_CREATE makes exactly one of several racing
   * holders win on an untagged file. A tag already there is judged: a live lease means someone scans it (busy);
   * anything else (expired lease, result tag of any judgement, junk) is taken over with XATTR_REPLACE, one taker at
   * a time (takeover.ts says why a second attribute is needed for that).
   */
  begin(fd: number, scanner: string, generation: string, options: { takeOwn?: boolean; yieldToResult: true }): BeginResult | YieldedResult;
  begin(fd: number, scanner: string, generation?: string, options?: { takeOwn?: boolean }): BeginResult;
  begin(fd: number, scanner: string, generation?: string, options: { takeOwn?: boolean; yieldToResult?: boolean } = {}): BeginResult | YieldedResult {
    const name = tagName(this.namespace, scanner);
    let replaced: Judgement | 'absent' = 'absent';
    for (let attempt = 0; attempt < MAX_BEGIN_ATTEMPTS; attempt++) {
      // Stamp, lease value, MAC and the XATTR_CREATE in one native call (native/tags/write.cc).
      const leased = writeCall(() => native.tagBegin(this.#writer, fd, scanner, beginSlots), `lease ${name}`, fd);
      const stamp = stampOfSlots(beginSlots);
      const leaseUntil = Number(beginSlots[5]);
      if (typeof leased === 'string') {
        this.#leases.set(leased, { scanner, stamp });
        return { status: 'leased', token: leased, leaseUntil, stamp, replaced };
      }
      const { token, value } = leased;
      const now = Date.now();
      const seen = xattrCall(() => native.getXattr(fd, name), `getxattr ${name}`, `fd ${fd}`);
      if (seen === null) continue; // removed meanwhile (dirty, or another taker): try to create again
      const judged = judgeTag({ name, namespace: this.namespace, scanner, raw: seen, key: this.#key, stamp, generations: generation === undefined ? {} : { [scanner]: generation }, now, holderState });
      if (judged.judgement === 'scanning-live' && judged.value?.kind === 'scanning') {
        const own = this.#leases.has(judged.value.token);
        // takeOwn: a newer scan of this process supersedes its own older one (whose finish then finds the lease lost).
        if (!(own && options.takeOwn)) return { status: 'busy', holder: judged.value.holder, leaseUntil: judged.value.leaseUntil, own };
      }
      // yieldToResult: a result that may be the answer (its stamp and generation hold) is not replaced here. The caller
      // judges it fully (the ctime rule, a content digest: read()) and begins again without the option if it fails.
      if (options.yieldToResult && judged.judgement === 'valid' && judged.value?.kind === 'result') return { status: 'result' };
      replaced = judged.judgement;
      const taken = takeOver(fd, this.namespace, scanner, name, seen, value, this.holder, token);
      if (taken.status === 'busy') return { status: 'busy', holder: taken.holder, leaseUntil: now + LOCK_STALE_MS, own: false };
      if (taken.status === 'taken') {
        this.#leases.set(token, { scanner, stamp });
        return { status: 'leased', token, leaseUntil, stamp, replaced };
      }
    }
    // Still contended after several rounds: someone else is working on it right now.
    return { status: 'busy', holder: 'unknown (contended)', leaseUntil: Date.now() + this.leaseMs, own: false };
  }

  /**
   * Write the result of a scan that begin() leased. Dropped when the lease is no longer ours, when the file's stamp
   * changed since begin, or when the kernel says the tag is gone (ENODATA: a dirty transition removed it).
   */
  async finish(fd: number, scanner: string, token: string, answer: Answer, generation: string, options: FinishOptions = {}): Promise<FinishResult> {
    const name = tagName(this.namespace, scanner);
    if (!isAnswerKind(answer?.answer)) throw new TagError('TAG_BAD_OPTION', `finish ${name}: answer must be deny, ok or allow, got ${JSON.stringify(answer?.answer)}`);
    let digest = options.digest;
    if (this.stampMode === 'content' && digest === undefined) digest = await digestFd(fd);
    // From here on no await: the checks and the write below are one native call (native/tags/write.cc): the lease
    // still ours (token and MAC), the stamp unchanged since it was taken (else the lease is given back), the result
    // with XATTR_REPLACE (ENODATA: a dirty transition removed the lease), and in ctime mode a write that landed late
    // written again with a fresh time (ctime.ts). With the tag already gone, the result binds to our own lease's
    // stamp and the kernel is the one arbiter of "removed meanwhile", whether that happened before the read or after.
    const ownLease = this.#leases.get(token);
    this.#leases.delete(token);
    if (ownLease) {
      boundSlots[0] = BigInt.asIntN(64, ownLease.stamp.ino);
      boundSlots[1] = BigInt(ownLease.stamp.igen);
      boundSlots[2] = ownLease.stamp.size;
      boundSlots[3] = ownLease.stamp.mtimeNs;
    }
    const code = writeCall(
      () => native.tagFinish(this.#writer, fd, scanner, token, answer.answer, answer.reason, generation, this.stampMode === 'content' ? digest : undefined, ownLease ? boundSlots : null),
      `result ${name}`,
      fd,
    );
    switch (code) {
      case FINISH_WRITTEN:
        return { status: 'written', reason: `${name}: ${answer.answer}` };
      case FINISH_REMOVED:
        return { status: 'dropped', code: 'ENODATA', reason: `${name}: removed by a dirty transition during the scan` };
      case FINISH_STAMP_CHANGED:
        return { status: 'dropped', code: 'stamp-changed', reason: `${name}: the file changed during the scan` };
      case FINISH_NOT_OURS:
        return { status: 'dropped', code: 'lease-lost', reason: `${name}: the lease is no longer ours (taken over or replaced)` };
      default:
        return { status: 'dropped', code: 'lease-lost', reason: `${name}: no lease with this token here, and no tag on the file` };
    }
  }

  /** Give a lease back without a result (scan failed or was cancelled). True if our scanning tag was removed. */
  abort(fd: number, scanner: string, token: string): boolean {
    const name = tagName(this.namespace, scanner);
    this.#leases.delete(token);
    const current = xattrCall(() => native.getXattr(fd, name), `getxattr ${name}`, `fd ${fd}`);
    if (current === null) return false;
    const decoded = decodeTag(current);
    if (!decoded.ok || decoded.tag.value.kind !== 'scanning' || decoded.tag.value.token !== token) return false;
    return xattrCall(() => native.removeXattr(fd, name), `removexattr ${name}`, `fd ${fd}`);
  }

  /**
   * Give back a lease of this process whose token is lost: its scan ran in a pool worker that was destroyed (timed
   * out, crashed), so no abort() can come. Only a scanning tag with a valid MAC naming this holder is removed; a
   * scan of this process still running on the file then finds its lease gone and drops its result (no wrong tag).
   */
  releaseHeld(fd: number, scanner: string): boolean {
    const name = tagName(this.namespace, scanner);
    const current = xattrCall(() => native.getXattr(fd, name), `getxattr ${name}`, `fd ${fd}`);
    if (current === null) return false;
    const decoded = decodeTag(current);
    if (!decoded.ok || decoded.tag.value.kind !== 'scanning' || decoded.tag.value.holder !== this.holder) return false;
    if (!verifyTag(decoded.tag, this.#key, name, scanner)) return false;
    this.#leases.delete(decoded.tag.value.token);
    return xattrCall(() => native.removeXattr(fd, name), `removexattr ${name}`, `fd ${fd}`);
  }

  /**
   * Dirty: remove every scanned-by.* tag, in both namespaces — except, on a descriptor, the live lease of another
   * daemon on this kernel guarding the same filesystem (docs/sharedfs.md): it sees the same change and its own dirty
   * transition removes it; removing it here as well would only make it scan twice. Returns the names removed.
   */
  clear(target: number | string): string[] {
    return typeof target === 'number' ? clearTags(target, (name, raw) => this.#isPeerLease(name, raw)) : clearTags(target);
  }

  /** A MAC-verified, live scanning lease of our namespace held by another process of this kernel that still runs. */
  #isPeerLease(name: string, raw: Buffer): boolean {
    const parsed = parseTagName(name);
    if (parsed === null || parsed.namespace !== this.namespace) return false;
    const decoded = decodeTag(raw);
    if (!decoded.ok || decoded.tag.value.kind !== 'scanning' || decoded.tag.value.holder === this.holder) return false;
    if (Date.now() >= decoded.tag.value.leaseUntil || !verifyTag(decoded.tag, this.#key, name, parsed.scanner)) return false;
    const holder = parseHolder(decoded.tag.value.holder);
    return holder !== undefined && isHolderProcess(decoded.tag.value.holder, holder.pid);
  }
}

/**
 * Remove every scanned-by.* tag (trusted. and user.) of an fd or a path (the path's own, symlinks not followed),
 * but those `keep` says to keep (given the value).
 */
export function clearTags(target: number | string, keep?: (name: string, raw: Buffer) => boolean): string[] {
  const where = typeof target === 'number' ? `fd ${target}` : target;
  const removed: string[] = [];
  for (const name of xattrCall(() => native.listXattr(target), 'listxattr', where)) {
    if (parseTagName(name) === null) continue;
    if (keep) {
      const raw = xattrCall(() => native.getXattr(target, name), `getxattr ${name}`, where);
      if (raw === null || keep(name, raw)) continue;
    }
    if (xattrCall(() => native.removeXattr(target, name), `removexattr ${name}`, where)) removed.push(name);
  }
  return removed;
}

function xattrCall<T>(fn: () => T, what: string, where: string): T {
  try {
    return fn();
  } catch (err) {
    throw new TagError('TAG_XATTR_IO', `${what} on ${where}: ${messageOf(err)}`, err);
  }
}
