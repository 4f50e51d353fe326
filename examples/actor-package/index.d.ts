// The part of blessd's actor API 1 (src/pool/actor.ts in blessd) this package uses, copied: an actor package does
// not depend on blessd, it is loaded by it.
export interface ScanFileStat { dev: number; ino: number; mode: number; nlink: number; uid: number; gid: number; size: number; mtimeMs: number; ctimeMs: number; mtimeNs: bigint; ctimeNs: bigint }
export interface ScanFile {
  fd: number;
  size: number;
  path: string;
  read(offset: number, length: number): Promise<Buffer>;
  chunks(chunkSize?: number): AsyncIterable<Buffer>;
  stat(): Promise<ScanFileStat>;
  xattr(name: string): Promise<Buffer | null>;
  xattrNames(): Promise<string[]>;
}
export type Answer = { answer: 'deny' | 'ok' | 'allow'; reason?: string };
export interface ActorInstance { generation: string; scan(file: ScanFile): Promise<Answer>; close?(): Promise<void> | void }
export interface ActorModule {
  manifest: { api: 1; name: string; version: string };
  init(options: Record<string, any>, context?: { name: string; api?: number }): ActorInstance | Promise<ActorInstance>;
}
declare const magic: ActorModule;
export default magic;
