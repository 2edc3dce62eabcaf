/* child: see child.h. fork and exec rather than posix_spawn: the child must set its process
 * group and its parent-death signal itself, between the two. */
#define _GNU_SOURCE
#include "sim/run/child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int child_start(struct child *c, const char *name, char *const argv[], const char *dir, char *err,
                size_t errlen)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    if (snprintf(c->out, sizeof c->out, "%s/%s.out", dir, name) >= (int)sizeof c->out ||
        snprintf(c->log, sizeof c->log, "%s/%s.log", dir, name) >= (int)sizeof c->log) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -ENAMETOOLONG;
    }
    int fo = open(c->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int fl = fo < 0 ? -1 : open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fo < 0 || fl < 0) {
        int e = errno;
        if (fo >= 0)
            close(fo);
        snprintf(err, errlen, "%s: %s", fo < 0 ? c->out : c->log, strerror(e));
        return -e;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) /* the parent died before prctl: nobody would stop us */
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        dup2(fo, 1);
        dup2(fl, 2);
        execv(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int e = errno;
    close(fo);
    close(fl);
    if (pid < 0) {
        snprintf(err, errlen, "%s: fork: %s", name, strerror(e));
        return -e;
    }
    setpgid(pid, pid); /* also here: no race with a signal sent right after the fork */
    c->pid = pid;
    return 0;
}

int child_running(struct child *c)
{
    if (c->pid <= 0)
        return 0;
    if (waitpid(c->pid, &c->status, WNOHANG) == c->pid) {
        c->pid = 0;
        return 0;
    }
    return 1;
}

static size_t read_file(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, len - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return n;
}

int child_wait_output(struct child *c, const char *needle, int timeout_ms, char *buf, size_t len)
{
    for (int waited = 0;; waited += 20) {
        read_file(c->out, buf, len);
        if (strstr(buf, needle))
            return 0;
        if (!child_running(c))
            return -ECHILD;
        if (waited >= timeout_ms)
            return -ETIMEDOUT;
        sleep_ms(20);
    }
}

void child_stop(struct child *c, int grace_ms)
{
    pid_t pid = c->pid; /* child_running clears c->pid once reaped */
    if (pid <= 0)
        return;
    kill(-pid, SIGTERM);
    for (int waited = 0; waited < grace_ms; waited += 10) {
        if (!child_running(c)) {
            kill(-pid, SIGKILL); /* the leader is gone: anything left in its group */
            return;
        }
        sleep_ms(10);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &c->status, 0);
    c->pid = 0;
}

void child_log_tail(const struct child *c, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(c->log, "r");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)len - 1 ? size - (long)len + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}
