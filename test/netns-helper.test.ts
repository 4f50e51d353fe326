// The network-namespace helper itself: hosts reach each other on their private network, a server in one namespace
// is not reachable from the test's namespace (unless asked), setLink cuts a host off, and cleanup leaves no
// namespace, veth or process behind.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { isRoot } from './helpers/scratch.js';
import { makeNet, withNet } from './helpers/netns.js';
import { within } from './helpers/wait.js';

const rootTest = isRoot() ? test : test.skip;

const SERVE = `require('node:net').createServer((s) => s.end('hello from ' + process.argv[2] + '\\n')).listen(7000, process.argv[1], () => console.log('listening'));`;
const FETCH = `const s = require('node:net').connect({ host: process.argv[1], port: 7000, timeout: 2000 }); let d = ''; s.on('data', (c) => (d += c)); s.on('end', () => (process.stdout.write(d), process.exit(0))); s.on('timeout', () => (console.log('timeout'), process.exit(2))); s.on('error', (e) => (console.log(e.code), process.exit(1)));`;

function namespaces(): string {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
}

function tcpAnswer(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 1500 });
    let d = '';
    s.on('data', (c) => (d += c));
    s.on('end', () => resolve(d));
    s.on('timeout', () => (s.destroy(), resolve('timeout')));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

async function serve(t: { log(...a: unknown[]): void }, net: Awaited<ReturnType<typeof makeNet>>, host: string) {
  const h = net.hosts[host]!;
  const child = h.spawn(process.execPath, ['-e', SERVE, h.addr, host], { stdio: ['ignore', 'pipe', 'pipe'] });
  await within(`a server in ${host}`, new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => d.includes('listening') && resolve());
    child.once('exit', (c) => reject(new Error(`server in ${host} exited ${c}`)));
  }), 10_000);
  return child;
}

rootTest('hosts reach each other; the test only when asked; setLink cuts one off; cleanup removes everything', async (t) => {
  const net = await makeNet(['a', 'b']);
  try {
    const [a, b] = [net.hosts.a!, net.hosts.b!];
    t.regex(a.ns, /^blessd-[0-9a-f]{8}-a$/);
    t.true(namespaces().includes(a.ns));
    t.not(a.addr, b.addr);
    const server = await serve(t, net, 'b');
    const got = await a.run(process.execPath, ['-e', FETCH, b.addr]);
    t.is(got.stdout, 'hello from b\n');
    // The machine's own namespace has no route to the private network.
    t.not(await tcpAnswer(b.addr, 7000), 'hello from b\n');
    await net.setLink('b', false);
    const cut = await a.run(process.execPath, ['-e', FETCH, b.addr]);
    t.not(cut.stdout, 'hello from b\n');
    await net.setLink('b', true);
    t.is((await a.run(process.execPath, ['-e', FETCH, b.addr])).stdout, 'hello from b\n');
    await net.cleanup();
    t.true(server.exitCode !== null || server.signalCode !== null, 'a child started inside is killed at cleanup');
    for (const ns of [a.ns, b.ns]) t.false(namespaces().includes(ns), `${ns} deleted`);
  } finally {
    await net.cleanup();
  }
});

rootTest('reachFromTest joins the test to the network, and its veth goes at cleanup', async (t) => {
  const net = await withNet(t, ['srv'], { reachFromTest: true });
  t.truthy(net.testAddr);
  await serve(t, net, 'srv');
  t.is(await tcpAnswer(net.hosts.srv!.addr, 7000), 'hello from srv\n');
  await net.cleanup();
  t.false(execFileSync('ip', ['-o', 'addr'], { encoding: 'utf8' }).includes(net.testAddr!), 'the test veth is gone');
});

rootTest('bad host names are refused before anything is made', async (t) => {
  await t.throwsAsync(makeNet(['ok', 'Bad!']), { message: /host name "Bad!"/ });
  await t.throwsAsync(makeNet(['a', 'a']), { message: /must differ/ });
});
