// fleet.tls's files, read once on the main thread at start (and by `blessd check`): the workers' store clients get
// their contents with the fleet policy, so a worker never reads a file and never finds a missing one mid-run.
// Every problem is an error naming the config key and the path: Node itself would take a CA file with no
// certificate in it without a word and fail each handshake later, which would read as "store unavailable".
// Must not: log, or keep anything but the PEM text.
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { FleetTls } from '../config/types.js';
import { BlessdError } from '../errors.js';

export class FleetTlsError extends BlessdError<'FLEET_TLS'> {
  constructor(message: string, cause?: unknown) {
    super('FLEET_TLS', message, cause === undefined ? undefined : { cause });
  }
}

/** What a store client is given for TLS (src/fleet/store-client.ts): PEM text, not paths. */
export interface StoreTls {
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
}

/** The PEM text of fleet.tls's files, checked; throws FleetTlsError naming the key and path. */
export async function loadStoreTls(c: FleetTls): Promise<StoreTls> {
  const tls: StoreTls = {};
  const pem = async (key: 'ca' | 'cert' | 'key', path: string, what: RegExp, named: string) => {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new FleetTlsError(`fleet.tls.${key} ${path}: ${(err as Error).message}`, err);
    }
    if (!what.test(text)) throw new FleetTlsError(`fleet.tls.${key} ${path}: no PEM ${named} in it`);
    return text;
  };
  if (c.ca !== null) tls.ca = await pem('ca', c.ca, /-----BEGIN CERTIFICATE-----/, 'certificate (-----BEGIN CERTIFICATE-----)');
  if (c.cert !== null) tls.cert = await pem('cert', c.cert, /-----BEGIN CERTIFICATE-----/, 'certificate (-----BEGIN CERTIFICATE-----)');
  if (c.key !== null) tls.key = await pem('key', c.key, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'private key (-----BEGIN … PRIVATE KEY-----)');
  if (c.servername !== null) tls.servername = c.servername;
  try {
    // Parses every certificate and checks the key against its certificate, as each connection would.
    createSecureContext({ ...(tls.ca && { ca: tls.ca }), ...(tls.cert && { cert: tls.cert }), ...(tls.key && { key: tls.key }) });
  } catch (err) {
    const files = [c.ca && `fleet.tls.ca ${c.ca}`, c.cert && `fleet.tls.cert ${c.cert}`, c.key && `fleet.tls.key ${c.key}`].filter(Boolean).join(', ');
    throw new FleetTlsError(`fleet.tls (${files}): not usable for TLS: ${(err as Error).message}`, err);
  }
  return tls;
}
