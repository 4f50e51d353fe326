// blessd-actor-magic: deny files that start with a listed magic number (e.g. no ELF executables in an upload tree).
// A complete blessd actor, actor API 1, shipped as its own npm package. It imports nothing of blessd: the daemon
// hands it everything (options, the file), and the types in index.d.ts are a copy of the few it uses.
//
// options: magic: { NAME: HEX, ... }   e.g. { elf: 7f454c46, zip: 504b0304 }
//          allowOwners?: number[]       uids whose files pass unread (a build user's own output)

/** @type {import('./index.js').ActorModule} */
const magic = {
  manifest: { api: 1, name: 'magic', version: '1.0.0' },

  init(options, context) {
    const scanner = context?.name ?? 'magic';
    const table = options.magic;
    if (!table || typeof table !== 'object' || Array.isArray(table) || Object.keys(table).length === 0) {
      throw new Error(`${scanner}: options.magic must be a non-empty map of name to hex bytes`);
    }
    for (const key of Object.keys(options)) {
      if (key !== 'magic' && key !== 'allowOwners') throw new Error(`${scanner}: unknown option options.${key}`);
    }
    const numbers = Object.entries(table).map(([name, hex]) => {
      if (typeof hex !== 'string' || !/^([0-9a-fA-F]{2})+$/.test(hex)) {
        throw new Error(`${scanner}: options.magic.${name} must be hex bytes (like 7f454c46), not ${JSON.stringify(hex)}`);
      }
      return { name, bytes: Buffer.from(hex, 'hex') };
    });
    const owners = options.allowOwners ?? [];
    if (!Array.isArray(owners) || owners.some((u) => !Number.isInteger(u) || u < 0)) {
      throw new Error(`${scanner}: options.allowOwners must be an array of uids`);
    }
    const longest = Math.max(...numbers.map((n) => n.bytes.length));
    // The generation is the rule set: changing the table makes every older verdict of this scanner stale.
    const generation = `magic-1:${JSON.stringify({ numbers: numbers.map((n) => [n.name, n.bytes.toString('hex')]), owners })}`;

    return {
      generation,
      async scan(file) {
        if (owners.length > 0 && owners.includes((await file.stat()).uid)) return { answer: 'ok' };
        const head = await file.read(0, longest); // one positioned read of the daemon's descriptor
        const hit = numbers.find((n) => head.length >= n.bytes.length && head.subarray(0, n.bytes.length).equals(n.bytes));
        return hit ? { answer: 'deny', reason: `magic: ${hit.name}` } : { answer: 'ok' };
      },
    };
  },
};

export default magic;
