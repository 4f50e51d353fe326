// The default actor: the last line of a stack, answering one fixed answer for every file.
//
// options: answer: 'allow' | 'deny'
import type { ActorInstance, ActorModule } from '../src/pool/actor.js';
import type { Answer } from '../src/policy/answer.js';
import { ActorError } from './common/errors.js';
import { noOtherKeys, optionsObject } from './common/options.js';

const NAME = 'default';

const defaultActor: ActorModule = {
  manifest: { api: 1, name: NAME, version: '1.0.0' },

  init(raw): ActorInstance {
    const options = optionsObject(NAME, raw);
    noOtherKeys(NAME, options, ['answer']);
    const answer = options['answer'];
    if (answer !== 'allow' && answer !== 'deny') {
      throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.answer must be 'allow' or 'deny'`);
    }
    const result: Answer = { answer, reason: 'default' };
    return {
      generation: answer,
      async scan() {
        return { ...result };
      },
    };
  },
};

export default defaultActor;
