/* child: a process der-sim starts and must never leave behind (`der-sim demo`). It runs in its
 * own process group (a terminal's Ctrl-C reaches der-sim alone, which stops its children in
 * order), gets SIGTERM if der-sim dies first (prctl PR_SET_PDEATHSIG), and writes its stdout
 * and stderr to DIR/NAME.out and DIR/NAME.log. Plain struct, owned by the caller. */
#ifndef DERLOOP_CHILD_H
#define DERLOOP_CHILD_H

#include <stddef.h>
#include <sys/types.h>

struct child {
    pid_t pid; /* 0: not running */
    char name[64];
    char out[1024], log[1024];
    int status; /* wait status once reaped */
};

/* Starts argv[0] (a path) with argv. 0, or -errno with err. */
int child_start(struct child *c, const char *name, char *const argv[], const char *dir, char *err,
                size_t errlen);
/* Waits up to timeout_ms until the child's stdout holds `needle`; copies the stdout (cut to
 * len) into buf. 0, -ETIMEDOUT, or -ECHILD when the child ended first. */
int child_wait_output(struct child *c, const char *needle, int timeout_ms, char *buf, size_t len);
/* 1 while the child runs (reaps it when it has ended). */
int child_running(struct child *c);
/* SIGTERM to its process group, then SIGKILL after grace_ms; reaps it. */
void child_stop(struct child *c, int grace_ms);
/* The last lines of the child's log (up to len bytes) into buf. */
void child_log_tail(const struct child *c, char *buf, size_t len);

#endif
