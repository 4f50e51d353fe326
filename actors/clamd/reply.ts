// What one clamd reply means. clamd answers a scan with `<what>: OK`, `<what>: <signature> FOUND` or
// `<what>: <message> ERROR`, where <what> is `fd[N]` (FILDES) or `stream` (INSTREAM); inside an IDSESSION each
// reply is prefixed with the number of the command it answers (`3: stream: OK`), counted from 1 in the order
// clamd read the commands. An over-long INSTREAM gets `INSTREAM size limit exceeded. ERROR`.

export type ScanReply =
  | { kind: 'clean' }
  | { kind: 'found'; signature: string }
  | { kind: 'too-large'; message: string }
  | { kind: 'error'; message: string };

/** Split `N: body` (a session reply); undefined when the reply carries no command number. */
export function splitNumbered(reply: string): { id: number; body: string } | undefined {
  const m = /^(\d+): ([\s\S]*)$/.exec(reply);
  return m ? { id: Number(m[1]), body: m[2] } : undefined;
}

export function parseScanReply(body: string): ScanReply {
  const text = body.trim();
  if (/size limit exceeded/i.test(text)) return { kind: 'too-large', message: text };
  if (text.endsWith(' ERROR') || text === 'ERROR') return { kind: 'error', message: text };
  // The subject is everything up to the first ': ' (`fd[12]`, `stream`, or a path for SCAN commands).
  const colon = text.indexOf(': ');
  const verdict = colon >= 0 ? text.slice(colon + 2) : text;
  if (verdict === 'OK') return { kind: 'clean' };
  if (verdict.endsWith(' FOUND')) return { kind: 'found', signature: verdict.slice(0, -' FOUND'.length).trim() || 'unnamed' };
  return { kind: 'error', message: `unexpected reply ${JSON.stringify(text.slice(0, 200))}` };
}
