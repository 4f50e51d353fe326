// Lease tokens: 16 random bytes as 32 hex digits, unguessable and unique per lease (only the holder that wrote a
// lease may replace it with a result). Drawn from a pool filled 4 KiB at a time, because a randomBytes(16) per
// lease is a call into OpenSSL's generator per scanned file (the worker profile in docs/bench.md); the bytes are
// the same CSPRNG's either way, each handed out once.
import { randomFillSync } from 'node:crypto';

const TOKEN_BYTES = 16;
const pool = Buffer.alloc(4096);
let used = pool.length;

export function leaseToken(): string {
  if (used + TOKEN_BYTES > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const token = pool.toString('hex', used, used + TOKEN_BYTES);
  used += TOKEN_BYTES;
  return token;
}
