// The shipped config's demo tree: clean files to read, and the EICAR test file to be refused.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

// The industry's harmless anti-virus test string (eicar.org); every scanner is meant to flag it.
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';

export function makeDemoTree(dir: string): void {
  writeFileSync(join(dir, 'hello.txt'), 'Hello from a file blessd has passed.\n');
  writeFileSync(join(dir, 'notes.md'), '# Demo\nRead me with cat: allowed. Try cat eicar.com: refused.\n');
  writeFileSync(join(dir, 'eicar.com'), EICAR);
}
