#!/usr/bin/env node
// A scanner on another host: connects to blessd farm listeners over TLS (one connection per file server),
// registers a scanner name on each and denies files that contain a word. Its scan requests carry the content after
// the line (`"content": N` bytes), since a descriptor cannot cross TCP.
//
//   node examples/farm-scanner.js HOST:PORT[,HOST:PORT...] SCANNER WORD [--ca CA.pem] [--cert C.pem --key K.pem]
//        [--secret-file F] [--servername NAME] [--must-pass]
//
// --ca checks the server's certificate (always give it: the secret must only go to the real server); --cert and
// --key present a client certificate (farm.ca on the server); --secret-file sends the shared secret
// (farm.secretFile). It prints each JSON line it receives that is not a scan request (replies, errors) on stdout,
// after the server it came from.
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';

const [where, scanner, word, ...rest] = process.argv.slice(2);
if (!where || !scanner || !word) {
  console.error('usage: farm-scanner.js HOST:PORT[,HOST:PORT...] SCANNER WORD [--ca F] [--cert F --key F] [--secret-file F] [--servername NAME] [--must-pass]');
  process.exit(2);
}
const flag = (name) => {
  const at = rest.indexOf(name);
  return at >= 0 ? rest[at + 1] : undefined;
};
const file = (name) => (flag(name) ? readFileSync(flag(name)) : undefined);
const secret = flag('--secret-file') ? readFileSync(flag('--secret-file'), 'utf8').replace(/\r?\n$/, '') : undefined;
const needle = Buffer.from(word);
const tlsOptions = { ca: file('--ca'), cert: file('--cert'), key: file('--key'), servername: flag('--servername') ?? 'blessd' };

// One connection per file server; the process ends when the last one closed.
const servers = where.split(',');
let open = servers.length;
for (const server of servers) serve(server);

function serve(server) {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(server);
  if (!m) throw new Error(`not HOST:PORT: ${server}`);
  const socket = connect({ host: m[1] ?? m[2], port: Number(m[3]), ...tlsOptions });
  const send = (msg) => socket.write(JSON.stringify({ v: 1, ...msg }) + '\n');
  socket.on('secureConnect', () => {
    send({ id: 'hello', op: 'hello', ...(secret === undefined ? {} : { secret }) });
    send({ id: 'register', op: 'register', scanner, mustPass: rest.includes('--must-pass'), fd: false });
  });
  socket.on('error', (err) => {
    console.error(`farm-scanner: ${server}: ${err.message}`);
    process.exitCode = 1;
  });
  socket.on('close', () => {
    if (--open === 0) process.exit();
  });

  // A line, or (after a scan line) exactly `content` bytes of the file.
  let buf = Buffer.alloc(0);
  let scan = null;
  socket.on('data', (data) => {
    buf = Buffer.concat([buf, data]);
    for (;;) {
      if (scan) {
        if (buf.length < scan.content) return;
        const content = buf.subarray(0, scan.content);
        buf = buf.subarray(scan.content);
        const bad = content.includes(needle);
        send({ op: 'answer', req: scan.req, ...(bad ? { answer: 'deny', reason: `contains ${word}` } : { answer: 'ok' }) });
        scan = null;
        continue;
      }
      const nl = buf.indexOf(10);
      if (nl < 0) return;
      const line = buf.subarray(0, nl).toString('utf8');
      buf = buf.subarray(nl + 1);
      const msg = JSON.parse(line);
      if (msg.event === 'scan') scan = msg;
      else process.stdout.write(`${server} ${line}\n`);
    }
  });
}
