// The library's decision: may this descriptor's content be reached? One answer per open file, remembered in a
// per-descriptor table so later reads cost one atomic load.
#ifndef BLESSD_PRELOAD_GATE_H
#define BLESSD_PRELOAD_GATE_H
#include <stdbool.h>

/* Set up from the environment and the config (called once, from the library's constructor). */
void gate_init(void);

/* Whether the library gates anything in this process. */
bool gate_active(void);

/* 0 if fd's content may be read, else the errno to fail the call with. errno itself is left as it was. */
int gate_fd(int fd);

/* A descriptor number was (re)used or closed: forget what we knew about it. */
void gate_forget(int fd);
void gate_forget_range(unsigned first, unsigned last);

/* For exec: gate the file at path (opened read-only by us, then closed). 0 or an errno. */
int gate_path(const char *path);

#endif
