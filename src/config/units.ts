// Sizes and durations as people write them in config files. Each parser returns a number or an error string
// (the caller adds file, line and key).

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  // Single letters and IEC suffixes are powers of 1024 (like ls -h and systemd); "KB", "MB"... are SI.
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1000 ** 4,
};

/** Bytes from a non-negative integer or a string like "256MiB", "1G", "1.5 GB". */
export function parseSize(value: unknown): number | string {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : `must be a whole number of bytes >= 0 (got ${value})`;
  }
  if (typeof value !== 'string') return `must be a size like 1048576, "256MiB" or "1G"`;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    return `must be a size like 1048576, "256MiB" or "1G" (units B, K/KiB, M/MiB, G/GiB, T/TiB, KB, MB, GB, TB) (got ${JSON.stringify(value)})`;
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : `is too large (got ${JSON.stringify(value)})`;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds from a number (ms) or a string like "30s", "5m", "200ms", "1m30s". */
export function parseDuration(value: unknown): number | string {
  if (typeof value === 'number') {
    return Number.isFinite(value) && value >= 0 ? value : `must be a duration >= 0 (got ${value})`;
  }
  const bad = `must be a duration: milliseconds, or a string like "200ms", "30s", "5m", "1h", "1m30s" (got ${JSON.stringify(value)})`;
  if (typeof value !== 'string') return bad;
  const text = value.trim();
  if (/^\d+(?:\.\d+)?$/.test(text)) return Number(text);
  const part = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*/gy;
  let total = 0;
  let consumed = 0;
  for (let m = part.exec(text); m; m = part.exec(text)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    consumed = part.lastIndex;
  }
  return text.length > 0 && consumed === text.length ? total : bad;
}

/** A file mode from YAML: 0o660 (already a number), "0660" / "660" / "0o660" strings, or the raw source 0660. */
export function parseMode(value: unknown, source: string | undefined): number | string {
  const bad = `must be an octal file mode like 0660 or 0o660 (got ${JSON.stringify(source ?? value)})`;
  // YAML 1.2 reads a bare 0660 as decimal 660; the source text tells us the user meant octal.
  const text = typeof value === 'string' ? value.trim() : source?.trim();
  let mode: number | undefined;
  if (text !== undefined && /^0o?[0-7]+$/i.test(text)) mode = parseInt(text.replace(/^0o/i, ''), 8);
  else if (typeof value === 'string' && /^[0-7]{3,4}$/.test(text ?? '')) mode = parseInt(text!, 8);
  // A plain decimal integer in YAML is refused: "660" meaning 0o1224 is a classic slip.
  if (mode === undefined) return bad;
  return mode <= 0o7777 ? mode : bad;
}
