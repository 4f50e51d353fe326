// The wire protocol of the control socket (docs/protocol.md): newline-delimited JSON, one object per line, every
// request and every message carrying the protocol version `v`. Shared by the server and the client library, so
// the limits and error codes are written down once.
//
// Client → daemon:  {"v":1,"id":<any JSON scalar>,"op":"<name>", ...arguments}
// Daemon → client:  {"v":1,"id":<same>,"ok":true, ...result}            one reply per request
//                   {"v":1,"id":<same>,"ok":false,"error":{"code","message"}}
//                   {"v":1,"id":<same>,"progress":{...}}                before the reply of a long request (scan)
//                   {"v":1,"event":"dirty"|"verdict"|"lost"|"scan", ...} unsolicited: notices and scan requests
import { BlessdError } from '../errors.js';

export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [1];

export interface Limits {
  maxLine: number;
  maxClients: number;
  rootSlots: number;
  maxClientsPerUid: number;
  subscriberQueue: number;
  maxUnread: number;
  maxBadLines: number;
  scanConcurrency: number;
  scanMaxFiles: number;
  scannerConcurrency: number;
}

/** Bounds, so that no client can make the daemon grow or wait. */
export const LIMITS: Readonly<Limits> = {
  /** Longest request line, newline excluded. A longer one gets LINE_TOO_LONG and the connection is closed. */
  maxLine: 64 * 1024,
  /** Connections at once; the next one gets TOO_MANY_CLIENTS and is closed. */
  maxClients: 256,
  /** Of maxClients, slots only root may take: a socket.group member cannot lock out blessctl or a scanner. */
  rootSlots: 32,
  /** Connections one non-root uid may hold at once. */
  maxClientsPerUid: 16,
  /** Notices queued for one subscriber that does not read; then they are dropped and counted ("lost"). */
  subscriberQueue: 1000,
  /** Bytes a non-reading client may leave unread in its socket buffer before it is disconnected (replies). */
  maxUnread: 4 * 1024 * 1024,
  /** Bad lines (junk, unknown ops...) one connection may send before it is closed. */
  maxBadLines: 100,
  /** Files of one on-demand scan judged at once. */
  scanConcurrency: 8,
  /** Files one on-demand scan may cover. */
  scanMaxFiles: 1_000_000,
  /** Requests an out-of-process scanner may have in flight (the default is 4). */
  scannerConcurrency: 64,
};

/** Stable error codes of the protocol (docs/protocol.md lists them with their meaning). */
export const ERROR_CODES = [
  'BAD_JSON', // the line is not a JSON object
  'BAD_VERSION', // `v` missing or not supported
  'UNKNOWN_OP',
  'BAD_REQUEST', // an argument is missing or of the wrong type
  'LINE_TOO_LONG',
  'TOO_MANY_CLIENTS',
  'EPERM', // the peer's uid may not use this op
  'NOT_FOUND', // a path or scanner that does not exist
  'ALREADY_REGISTERED',
  'NOT_REGISTERED',
  'UNKNOWN_REQUEST', // an answer to a scan request that is not (or no longer) pending
  'FAILED', // the op ran and failed (reload with a bad config...): the message says why
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export class ProtocolError extends BlessdError<ErrorCode> {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
  }
}

export type RequestId = string | number | null;

export interface Request {
  v: number;
  id?: RequestId;
  op: string;
  [arg: string]: unknown;
}

/** A notice as it goes on the wire (event 'dirty' | 'verdict'), or the loss report of a slow subscriber. */
export interface WireNotice {
  v: number;
  event: 'dirty' | 'verdict' | 'lost';
  time: number;
  host?: string;
  fsid?: string | null;
  dev?: number;
  ino?: number;
  /** base64 of the struct file_handle's f_handle bytes; `handleType` is its handle_type. */
  handle?: string;
  handleType?: number;
  path?: string;
  cleared?: string[];
  verdict?: string;
  decidedBy?: string;
  reason?: string;
  count?: number;
}

/** A scan request to an out-of-process scanner. `fd: true`: a descriptor rides on the first byte of this line. */
export interface WireScanRequest {
  v: number;
  event: 'scan';
  req: number;
  scanner: string;
  path: string;
  size: number;
  dev: number;
  ino: number;
  fsid: string | null;
  handle: string | null;
  handleType: number | null;
  mountId: number | null;
  fd: boolean;
}

/** Parse one request line. Throws ProtocolError (BAD_JSON, BAD_VERSION) with a message that quotes what was wrong. */
export function parseRequest(line: string): Request {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new ProtocolError('BAD_JSON', `not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProtocolError('BAD_JSON', 'a request must be a JSON object');
  const o = value as Record<string, unknown>;
  if (!('v' in o)) throw new ProtocolError('BAD_VERSION', `every request carries "v" (supported: ${SUPPORTED_VERSIONS.join(', ')})`);
  if (!SUPPORTED_VERSIONS.includes(o['v'] as number)) {
    throw new ProtocolError('BAD_VERSION', `protocol version ${JSON.stringify(o['v'])} is not supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`);
  }
  if (typeof o['op'] !== 'string' || o['op'] === '') throw new ProtocolError('BAD_REQUEST', '"op" must be a non-empty string');
  return o as Request;
}

/** The id of a request line, if one can be recovered, so an error reply can name it. */
export function idOf(value: unknown): RequestId {
  if (typeof value !== 'object' || value === null) return null;
  const id = (value as Record<string, unknown>)['id'];
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

export function encode(message: object): string {
  return JSON.stringify(message) + '\n';
}

// ---- argument checks: each names the argument, so a client sees what it got wrong --------------------------

export function stringArg(req: Request, name: string, opts: { optional?: boolean } = {}): string | undefined {
  const v = req[name];
  if (v === undefined && opts.optional) return undefined;
  if (typeof v !== 'string' || v === '') throw new ProtocolError('BAD_REQUEST', `${req.op}: "${name}" must be a non-empty string`);
  if (v.includes('\0')) throw new ProtocolError('BAD_REQUEST', `${req.op}: "${name}" must not contain NUL`);
  return v;
}

export function boolArg(req: Request, name: string, fallback: boolean): boolean {
  const v = req[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new ProtocolError('BAD_REQUEST', `${req.op}: "${name}" must be true or false`);
  return v;
}

export function intArg(req: Request, name: string, fallback: number, min: number, max: number): number {
  const v = req[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ProtocolError('BAD_REQUEST', `${req.op}: "${name}" must be an integer from ${min} to ${max}`);
  }
  return v;
}
