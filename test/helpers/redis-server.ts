// A private redis-server for the fleet tests, started inside a test network namespace (netns.ts: it is SIGKILLed
// at the network's cleanup), bound to that host's address only, with nothing written to disk but what the caller's
// extra arguments ask for in `dir`. Resolves once it accepts connections; bounded, rejects with its output.
import type { ChildProcess } from 'node:child_process';
import type { NetHost } from './netns.js';
import { within } from './wait.js';

export async function startRedisServer(host: NetHost, port: number, dir: string, extra: string[] = []): Promise<ChildProcess> {
  const args = ['--bind', host.addr, '--port', String(port), '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir, ...extra];
  const child = host.spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await within(
    `redis-server on ${host.addr}:${port}`,
    new Promise<void>((resolve, reject) => {
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('Ready to accept connections')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    }),
    10_000,
  );
  return child;
}
