// What a scanner says about a file. PAM-like: 'deny' = bad, 'ok' = no comment, 'allow' = "I say this is safe".
export type AnswerKind = 'deny' | 'ok' | 'allow';

export interface Answer {
  answer: AnswerKind;
  /** Why (required for deny: the signature name, the rule, the exit code...). */
  reason?: string;
}

export const isAnswerKind = (v: unknown): v is AnswerKind => v === 'deny' || v === 'ok' || v === 'allow';
