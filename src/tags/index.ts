// The tag store's public face: what the daemon and blessctl import.
export { TagStore, clearTags, type TagStoreOptions, type ReadOptions, type TagReport, type BeginResult, type FinishResult, type FinishOptions, type DropCode, type StampMode } from './store.js';
export { judgeTag, type Judgement, type JudgedTag, type Generations } from './judge.js';
export { decodeTag, encodeTag, verifyTag, MAX_VALUE_BYTES, TAG_VERSION, type TagValue, type ResultTag, type ScanningTag, type DecodedTag } from './codec.js';
export { readStamp, sameStamp, type Stamp } from './stamp.js';
export { loadTagKey, KEY_BYTES } from './key.js';
export { digestFd } from './digest.js';
export { bumpGeneration, readBumps, currentGenerations, tagGeneration, splitTagGeneration, generationsPath, type Bumps } from './generation.js';
export { probeNamespace, type NamespaceProbe } from './namespace.js';
export { tagName, parseTagName, isScannerName, isTagNamespace, type TagNamespace } from './names.js';
export { TagError, type TagErrorCode } from './errors.js';
