// The fleet store's URL (config fleet.store), read in one place for the config check, the client and the logs. Its
// scheme says what the store is:
// - `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS): one Redis; ioredis reads the URL itself
//   (the TLS options beside it come from fleet.tls).
// - `redis+cluster://[user:password@]host[:port],host[:port]…`: a Redis Cluster, named by a few of its nodes (the
//   client finds the others from them). No database (a cluster has only 0), no query. The user and password are
//   those of every node.
// - `rediss+cluster://…`: the same cluster over TLS (the nodes run with tls-cluster yes). Every node is checked
//   against the address the cluster announces for it (or fleet.tls.servername), so each node's certificate must
//   name that address (an IP SAN for an IP): docs/fleet.md.
// TLS's files (CA, client certificate and key, servername) are config fleet.tls, the same for both TLS forms.
// Pure: no I/O, so the config loader can call it for each problem it reports with the file's line and column.

export interface ClusterNode {
  host: string;
  port: number;
}

export type StoreTarget =
  | { kind: 'single'; url: string; tls: boolean }
  | { kind: 'cluster'; nodes: ClusterNode[]; tls: boolean; username?: string; password?: string };

export const DEFAULT_REDIS_PORT = 6379;

const CLUSTER = /^(redis|rediss)\+cluster:\/\/([^/?#]*)(\/?)$/i;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])$/;

/** What `v` names, or why it names nothing this version speaks (a sentence for a config error). */
export function parseStoreUrl(v: string): StoreTarget | { problem: string } {
  if (/^[a-z]+\+cluster:/i.test(v)) return parseCluster(v);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return { problem: `must be a URL such as redis://10.0.0.5:6379, rediss://10.0.0.5:6380 or redis+cluster://10.0.0.5:6379,10.0.0.6:6379 (got ${JSON.stringify(v)})` };
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return { problem: `must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL (got ${u.protocol}//)` };
  if (!u.hostname) return { problem: 'names no host' };
  return { kind: 'single', url: v, tls: u.protocol === 'rediss:' };
}

function parseCluster(v: string): StoreTarget | { problem: string } {
  const m = CLUSTER.exec(v);
  if (!m) {
    if (/^rediss?\+cluster:\/\/[^/?#]*\/[^?#]/i.test(v)) return { problem: `a cluster has no database to choose: drop the /… after the nodes (got ${JSON.stringify(v)})` };
    if (/^rediss?\+cluster:/i.test(v)) return { problem: `must be redis+cluster://[user:password@]host[:port],host[:port]… (or rediss+cluster://… for TLS) with no query (got ${JSON.stringify(v)})` };
    return { problem: `must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL (got ${v.slice(0, v.indexOf(':') + 1)}//)` };
  }
  const authority = m[2]!;
  const at = authority.lastIndexOf('@');
  const target: StoreTarget = { kind: 'cluster', nodes: [], tls: m[1]!.toLowerCase() === 'rediss' };
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    try {
      const user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
      if (user) target.username = user;
      if (colon >= 0) target.password = decodeURIComponent(userinfo.slice(colon + 1));
    } catch {
      return { problem: 'the user or password is not valid percent-encoding' };
    }
  }
  const list = authority.slice(at + 1);
  if (!list) return { problem: `names no node: ${m[1]!.toLowerCase()}+cluster://host[:port],host[:port]…` };
  for (const item of list.split(',')) {
    const hp = /^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$/.exec(item);
    if (!hp || !HOST.test(hp[1]!)) return { problem: `node ${JSON.stringify(item)} is not host[:port]` };
    const port = hp[2] === undefined ? DEFAULT_REDIS_PORT : Number(hp[2]);
    if (port < 1 || port > 65535) return { problem: `node ${JSON.stringify(item)}: port must be 1..65535` };
    target.nodes.push({ host: hp[1]!.replace(/^\[(.*)\]$/, '$1'), port });
  }
  return target;
}

/** The store URL as logs may show it: without a password. */
export function shownStoreUrl(url: string): string {
  const t = parseStoreUrl(url);
  if ('problem' in t) return '(unparseable URL)';
  if (t.kind === 'cluster') {
    const user = t.username === undefined && t.password === undefined ? '' : `${encodeURIComponent(t.username ?? '')}${t.password === undefined ? '' : ':***'}@`;
    return `${t.tls ? 'rediss' : 'redis'}+cluster://${user}${t.nodes.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`).join(',')}`;
  }
  const u = new URL(t.url);
  if (u.password) u.password = '***';
  return u.toString();
}
