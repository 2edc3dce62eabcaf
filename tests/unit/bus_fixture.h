/* An injected bus clock that records its sleeps, and a log callback that collects the lines,
 * for the bus tests (tests/unit/test_bus*.c). Header-only: each test file includes it once. */
#ifndef DERLOOP_TEST_BUS_FIXTURE_H
#define DERLOOP_TEST_BUS_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Time that moves only when the test (or a backoff sleep) moves it. */
struct fake_clock {
    int64_t now;
    int64_t sleeps[16];
    int n_sleeps;
};

static inline int64_t fake_now(void *ctx)
{
    return ((struct fake_clock *)ctx)->now;
}

static inline void fake_sleep(void *ctx, int64_t ms)
{
    struct fake_clock *c = ctx;
    if (c->n_sleeps < 16)
        c->sleeps[c->n_sleeps++] = ms;
    c->now += ms;
}

/* The log lines, each with its newline, and their count. */
struct logbuf {
    char text[8192];
    int lines;
};

static inline void log_capture(void *ctx, const char *line)
{
    struct logbuf *l = ctx;
    size_t len = strlen(l->text);
    snprintf(l->text + len, sizeof(l->text) - len, "%s\n", line);
    l->lines++;
}

static inline void quiet(void *ctx, const char *line)
{
    (void)ctx;
    (void)line;
}

#endif
