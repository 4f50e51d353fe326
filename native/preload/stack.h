// The PAM-style stack walk, the same automaton as the daemon's src/policy/stack.ts:
//   control     deny                    ok        allow
//   required    remember failure, go on nothing   remember success
//   requisite   deny now                nothing   remember success
//   sufficient  ignored                 nothing   allow now, if no earlier failure
//   optional    ignored                 nothing   remember success
//   observe     ignored                 ignored   ignored
// End: a remembered failure denies; else a remembered success allows; else deny (nobody vouched).
#ifndef BLESSD_PRELOAD_STACK_H
#define BLESSD_PRELOAD_STACK_H

typedef enum { ANSWER_NONE = 0, ANSWER_DENY, ANSWER_OK, ANSWER_ALLOW } answer_t;
typedef enum { CTL_REQUIRED, CTL_REQUISITE, CTL_SUFFICIENT, CTL_OPTIONAL, CTL_OBSERVE } control_t;

enum { WALK_FAIL = 1, WALK_SUCC = 2, WALK_ALLOW = 4, WALK_DENY = 5 };

/* One step of the walk from state s (0 at the start). */
int stack_step(int s, control_t control, answer_t answer);
/* The verdict of a finished walk: ANSWER_ALLOW or ANSWER_DENY. */
answer_t stack_finish(int s);
/* Whether the walk is already decided (a requisite deny, a sufficient allow). */
static inline int stack_final(int s) { return s >= WALK_ALLOW; }

const char *answer_name(answer_t a);

#endif
