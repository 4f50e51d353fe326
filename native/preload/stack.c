// The stack walk (see stack.h); kept as the daemon's two-bit automaton so both read alike.
#include "stack.h"

int stack_step(int s, control_t control, answer_t a) {
  if (s >= WALK_ALLOW) return s;
  switch (control) {
    case CTL_OBSERVE:
      return s;
    case CTL_REQUIRED:
      return a == ANSWER_DENY ? s | WALK_FAIL : a == ANSWER_ALLOW ? s | WALK_SUCC : s;
    case CTL_REQUISITE:
      return a == ANSWER_DENY ? WALK_DENY : a == ANSWER_ALLOW ? s | WALK_SUCC : s;
    case CTL_SUFFICIENT:
      return a == ANSWER_ALLOW && !(s & WALK_FAIL) ? WALK_ALLOW : s;
    case CTL_OPTIONAL:
      return a == ANSWER_ALLOW ? s | WALK_SUCC : s;
  }
  return s;
}

answer_t stack_finish(int s) {
  if (s == WALK_ALLOW) return ANSWER_ALLOW;
  if (s == WALK_DENY || (s & WALK_FAIL)) return ANSWER_DENY;
  return (s & WALK_SUCC) ? ANSWER_ALLOW : ANSWER_DENY;
}

const char *answer_name(answer_t a) {
  switch (a) {
    case ANSWER_DENY:
      return "deny";
    case ANSWER_OK:
      return "ok";
    case ANSWER_ALLOW:
      return "allow";
    default:
      return "none";
  }
}
