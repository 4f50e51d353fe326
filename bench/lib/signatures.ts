// A small hand-written signature database in ClamAV's formats, read by blessd's signature actor and by clamd alike,
// so that both scan with the same rules. No download, no freshclam: these files are the whole database.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const hex = (s: string) => Buffer.from(s, 'latin1').toString('hex');

export async function writeSignatures(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  // The EICAR test file by MD5 and size: the classic hash signature (every file then gets an MD5).
  await writeFile(join(dir, 'bench.hdb'), '44d88612fea8a8f36de82e1278abb02f:68:Bench.Eicar-Test-File\n');
  // Body signatures anywhere in a file: the streaming matcher runs over every byte.
  await writeFile(
    join(dir, 'bench.ndb'),
    [
      `Bench.Marker.Text:0:*:${hex('blessd-bench-malware-marker')}`,
      `Bench.Marker.Eicar:0:*:${hex('EICAR-STANDARD-ANTIVIRUS-TEST-FILE')}`,
      'Bench.Marker.Bytes:0:*:deadbeefcafebabe0011223344556677',
      `Bench.Marker.Script:0:*:${hex('powershell -enc JAB')}`,
    ].join('\n') + '\n',
  );
  return dir;
}
