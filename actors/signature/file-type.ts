// What ClamAV calls a file's target type, its entry point and its PE sections, read from the file's first bytes
// and headers — only what raw-byte matching needs. Types that ClamAV matches after normalising or extracting
// (2 OLE2, 3 HTML, 4 mail, 7 text) are not detected here: their signatures are skipped at load.
import { readSync } from 'node:fs';

export const TARGET = { any: 0, pe: 1, graphics: 5, elf: 6, macho: 9, pdf: 10, flash: 11, java: 12 } as const;
/** Target types whose signatures can be matched on the raw bytes of a file of that type. */
export const RAW_TARGETS: ReadonlySet<number> = new Set(Object.values(TARGET));

export interface Section {
  /** File offset and size of the section's raw data. */
  offset: number;
  size: number;
}

export interface FileLayout {
  type: number;
  /** File offset of the entry point, or -1 (no PE/ELF, or it points outside the file). */
  entry: number;
  /** PE sections (empty for other files). */
  sections: Section[];
}

function pread(fd: number, position: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  const n = readSync(fd, b, 0, length, position);
  return n === length ? b : b.subarray(0, n);
}

function typeOf(head: Buffer): number {
  if (head.length >= 2 && head[0] === 0x4d && head[1] === 0x5a) return TARGET.pe; // confirmed by peLayout
  if (head.length >= 4 && head.readUInt32BE(0) === 0x7f454c46) return TARGET.elf;
  if (head.length >= 4) {
    const m = head.readUInt32BE(0);
    if (m === 0xfeedface || m === 0xfeedfacf || m === 0xcefaedfe || m === 0xcffaedfe) return TARGET.macho;
    if (m === 0xcafebabe && head.length >= 8) return head.readUInt16BE(6) >= 45 ? TARGET.java : TARGET.macho;
  }
  const ascii = head.subarray(0, 8).toString('latin1');
  if (/^(FWS|CWS|ZWS)/.test(ascii)) return TARGET.flash;
  if (/^GIF8/.test(ascii) || ascii.startsWith('\x89PNG') || (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff)) return TARGET.graphics;
  if (head.subarray(0, 1024).indexOf('%PDF-') >= 0) return TARGET.pdf;
  return TARGET.any;
}

function peLayout(fd: number, size: number): FileLayout | null {
  const dos = pread(fd, 0, 64);
  if (dos.length < 64) return null;
  const pe = dos.readUInt32LE(0x3c);
  if (pe + 24 > size) return null;
  const coff = pread(fd, pe, 24);
  if (coff.readUInt32BE(0) !== 0x50450000) return null; // "PE\0\0"
  const nsections = coff.readUInt16LE(6);
  const optSize = coff.readUInt16LE(20);
  const opt = pread(fd, pe + 24, Math.min(optSize, 24));
  const entryRva = opt.length >= 20 ? opt.readUInt32LE(16) : 0;
  const table = pread(fd, pe + 24 + optSize, Math.min(nsections, 96) * 40);
  const sections: Section[] = [];
  let entry = -1;
  for (let i = 0; i + 40 <= table.length; i += 40) {
    const vsize = table.readUInt32LE(i + 8);
    const rva = table.readUInt32LE(i + 12);
    const rawSize = table.readUInt32LE(i + 16);
    const rawOffset = table.readUInt32LE(i + 20);
    if (rawSize > 0 && rawOffset < size) sections.push({ offset: rawOffset, size: Math.min(rawSize, size - rawOffset) });
    if (entry < 0 && entryRva >= rva && entryRva < rva + Math.max(vsize, rawSize)) {
      const at = rawOffset + (entryRva - rva);
      if (at < size) entry = at;
    }
  }
  return { type: TARGET.pe, entry, sections };
}

function elfEntry(fd: number, size: number): number {
  const h = pread(fd, 0, 64);
  if (h.length < 52) return -1;
  const is64 = h[4] === 2;
  const le = h[5] === 1;
  const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const u64 = (b: Buffer, o: number) => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
  const entry = is64 ? u64(h, 24) : u32(h, 24);
  const phoff = is64 ? u64(h, 32) : u32(h, 28);
  const phentsize = u16(h, is64 ? 54 : 42);
  const phnum = Math.min(u16(h, is64 ? 56 : 44), 256);
  if (phoff <= 0 || phoff >= size || phentsize < (is64 ? 56 : 32)) return -1;
  const ph = pread(fd, phoff, phnum * phentsize);
  for (let i = 0; i + phentsize <= ph.length; i += phentsize) {
    if (u32(ph, i) !== 1) continue; // PT_LOAD
    const offset = is64 ? u64(ph, i + 8) : u32(ph, i + 4);
    const vaddr = is64 ? u64(ph, i + 16) : u32(ph, i + 8);
    const filesz = is64 ? u64(ph, i + 32) : u32(ph, i + 16);
    if (entry >= vaddr && entry < vaddr + filesz) {
      const at = offset + (entry - vaddr);
      return at < size ? at : -1;
    }
  }
  return -1;
}

/** The file's type from its first bytes (`head`), and, for PE and ELF, its entry point and sections. */
export function fileLayout(fd: number, size: number, head: Buffer): FileLayout {
  const type = typeOf(head);
  if (type === TARGET.pe) return peLayout(fd, size) ?? { type: TARGET.any, entry: -1, sections: [] };
  if (type === TARGET.elf) return { type, entry: elfEntry(fd, size), sections: [] };
  return { type, entry: -1, sections: [] };
}
