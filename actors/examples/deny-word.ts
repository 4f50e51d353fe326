// A minimal custom actor: deny files that contain a word. Use it with
//   - actor: ./dist/actors/examples/deny-word.js
//     options: { word: "DO-NOT-RUN" }
import type { ActorModule } from '../../src/pool/actor.js';

const denyWord: ActorModule = {
  manifest: { api: 1, name: 'deny-word', version: '1.0.0' },
  init(options) {
    const word = options['word'];
    if (typeof word !== 'string' || word.length === 0) throw new Error('deny-word: options.word must be a non-empty string');
    const needle = Buffer.from(word);
    return {
      generation: `deny-word:${word}`, // changing the word makes every earlier verdict stale
      async scan(file) {
        let tail = Buffer.alloc(0); // keep the last bytes of each chunk: a match may straddle two
        for await (const chunk of file.chunks()) {
          const window = Buffer.concat([tail, chunk]);
          if (window.includes(needle)) return { answer: 'deny', reason: `contains ${word}` };
          tail = window.subarray(Math.max(0, window.length - needle.length + 1));
        }
        return { answer: 'ok' };
      },
    };
  },
};
export default denyWord;
