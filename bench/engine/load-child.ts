// Loads one database set in a fresh process and prints {ms, rssMB, signatures}: load time and memory are a
// property of the process, so each measurement gets its own.
import { loadDatabases } from '../../actors/signature/database.js';
import { SignatureEngine } from '../../actors/signature/engine.js';

const c0 = process.cpuUsage();
const t0 = performance.now();
const db = await loadDatabases(process.argv.slice(2));
const engine = new SignatureEngine(db, 1 << 20);
const ms = performance.now() - t0;
const cpu = process.cpuUsage(c0);
const cpuMs = (cpu.user + cpu.system) / 1000;
const rssMB = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify({ ms, cpuMs, rssMB, signatures: db.signatures, streamed: engine.stats.streamed }));
