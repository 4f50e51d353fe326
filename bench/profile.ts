// Where does the daemon's CPU go? Run any bench with BENCH_PROFILE=/some/dir (the daemon process then writes V8 CPU
// profiles: one for the main thread, one per pool worker), then: node dist/bench/profile.js /some/dir [TOP]
// Prints, per profile, busy vs idle time and the functions with the most self and inclusive time.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const label = (n: Node) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;

function summarize(file: string, top: number) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const time = new Map<number, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    time.set(id, (time.get(id) ?? 0) + dt);
    total += dt;
  });
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  for (const [id, t] of time) {
    self.set(label(byId.get(id)!), (self.get(label(byId.get(id)!)) ?? 0) + t);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = label(byId.get(cur)!);
      if (!seen.has(k)) incl.set(k, (incl.get(k) ?? 0) + t), seen.add(k);
    }
  }
  const idle = [...self].filter(([k]) => k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0);
  console.log(`\n${file}\n  ${(total / 1e6).toFixed(2)} s sampled, busy ${((total - idle) / 1e6).toFixed(2)} s (${((100 * (total - idle)) / total).toFixed(0)}%)`);
  const show = (title: string, m: Map<string, number>) => {
    console.log(`  -- ${title}`);
    for (const [k, v] of [...m].filter(([k]) => !k.startsWith('(idle)') && !k.startsWith('(root)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`  ${(v / 1e3).toFixed(0).padStart(7)} ms ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
    }
  };
  show('self', self);
  show('inclusive', incl);
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node dist/bench/profile.js DIR [TOP]  (DIR: what BENCH_PROFILE pointed at)');
  process.exit(2);
}
const top = Number(process.argv[3] ?? 25);
for (const f of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) summarize(join(dir, f), top);
