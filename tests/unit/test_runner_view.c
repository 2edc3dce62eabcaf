/* Unit test for the lockstep runner's register-view check (sim/run/runner.c): a gateway whose view
 * of a polled register differs from the simulator's image after a cycle - what a decoding or
 * addressing bug would look like - is counted in view_mismatches and logged; an untouched run
 * counts none; and what an observer of the run is handed. Runs tests/data/island/island.json (one
 * minute, in process) into a temp dir. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/bus/bus.h"
#include "gateway/control/controller.h"
#include "gateway/devices/device.h"
#include "sim/run/runner.h"
#include "sim/scenario/scenario.h"

struct corrupt {
    int64_t at_ms; /* the cycle after which the first polled register is flipped */
    int done;
};

static void flip_one(void *ctx, size_t site, struct controller *ctl, int64_t now_ms)
{
    struct corrupt *c = ctx;
    (void)site;
    if (c->done || now_ms != c->at_ms)
        return;
    for (size_t d = 0; d < controller_n_devices(ctl) && !c->done; d++) {
        const struct device *dev = controller_device(ctl, d);
        uint16_t start, addr[8], n[8];
        size_t count;
        const uint16_t *m = dev ? device_mirror(dev, &start, &count, NULL) : NULL;
        if (!m || device_polled_blocks(dev, addr, n, 8) == 0 || addr[0] < start)
            continue;
        /* the test plays a broken decoder: it writes into the gateway's mirror */
        uint16_t *reg = (uint16_t *)m + (addr[0] - start);
        *reg ^= 0x5a5a;
        c->done = 1;
    }
}

static unsigned run(struct corrupt *c, char *dir)
{
    struct scenario *sc = NULL;
    char err[1024];
    CU_ASSERT_EQUAL_FATAL(
        scenario_load("tests/data/island/island.json", NULL, 0, &sc, err, sizeof err), 0);
    struct runner_hook hook = {.ctx = c, .after_cycle = flip_one};
    struct runner_opts o = {.transport = RUNNER_INPROC, .out_dir = dir, .hook = &hook};
    struct runner_result res;
    memset(&res, 0, sizeof res);
    int rc = runner_run(sc, &o, &res, err, sizeof err);
    if (rc)
        fprintf(stderr, "\n%s\n", err);
    CU_ASSERT_EQUAL(rc, 0);
    scenario_free(sc);
    return res.view_mismatches;
}

static void test_view_check_catches(void)
{
    char dir[] = "/tmp/derloop-view-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    struct corrupt clean = {.at_ms = -1};
    CU_ASSERT_EQUAL(run(&clean, dir), 0);
    struct corrupt bad = {.at_ms = 5000};
    CU_ASSERT_EQUAL(run(&bad, dir), 1);
    CU_ASSERT_EQUAL(bad.done, 1);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "grep -q 'check=register_view' %s/events.log", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* What an observer sees: every site after every step, a tick_end and a tick_done per tick,
 * every cycle the result counts, one start and one finish; its events.log line comes before
 * run_end (the digest depends on that order). */
struct seen {
    int starts, finishes;
    long steps, tick_ends, tick_dones, cycles;
    int64_t last_t;
    int order_ok;
};

static int seen_start(void *ctx, struct runner *r, char *err, size_t errlen)
{
    struct seen *s = ctx;
    (void)err;
    (void)errlen;
    s->starts++;
    s->order_ok = runner_n_sites(r) == 1 && runner_site(r, 0) != NULL;
    return 0;
}

static void seen_step(void *ctx, size_t site, struct site *st, int64_t t_ms, int64_t dt_ms)
{
    struct seen *s = ctx;
    (void)site;
    s->order_ok &= st != NULL && t_ms == s->last_t;
    s->last_t = t_ms + dt_ms;
    s->steps++;
}

static void seen_tick_end(void *ctx, int64_t t_ms, int64_t dt_ms)
{
    struct seen *s = ctx;
    (void)dt_ms;
    s->order_ok &= t_ms == s->last_t;
    s->tick_ends++;
}

static void seen_cycle(void *ctx, size_t site, const struct decision *dm)
{
    (void)site;
    (void)dm;
    ((struct seen *)ctx)->cycles++;
}

static void seen_tick_done(void *ctx, int64_t t_ms, int64_t dt_ms)
{
    (void)t_ms;
    (void)dt_ms;
    ((struct seen *)ctx)->tick_dones++;
}

static void seen_finish(void *ctx, struct runner *r, const struct runner_result *res)
{
    struct seen *s = ctx;
    s->finishes++;
    s->order_ok &= (long)res->cycles == s->cycles;
    struct bus_stats st;
    s->order_ok &= runner_bus_stats(r, 0, &st) == 0 && runner_bus_stats(r, 1, &st) == -ENOENT;
    runner_event(r, "event=observer_says_bye");
}

static void test_observer(void)
{
    char dir[] = "/tmp/derloop-observer-XXXXXX", err[1024];
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    struct scenario *sc = NULL;
    CU_ASSERT_EQUAL_FATAL(
        scenario_load("tests/data/island/island.json", NULL, 0, &sc, err, sizeof err), 0);
    struct seen s = {0};
    struct runner_observer ob = {.ctx = &s,
                                 .start = seen_start,
                                 .site_step = seen_step,
                                 .tick_end = seen_tick_end,
                                 .cycle = seen_cycle,
                                 .tick_done = seen_tick_done,
                                 .finish = seen_finish};
    struct runner_opts o = {.transport = RUNNER_INPROC, .out_dir = dir, .observer = &ob};
    struct runner_result res;
    CU_ASSERT_EQUAL(runner_run(sc, &o, &res, err, sizeof err), 0);
    scenario_free(sc);
    CU_ASSERT(s.starts == 1 && s.finishes == 1 && s.order_ok);
    CU_ASSERT(s.steps == res.ticks && s.tick_ends == res.ticks && s.tick_dones == res.ticks);
    CU_ASSERT_EQUAL(s.cycles, (long)res.cycles);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "tail -2 %s/events.log | head -1 | grep -q ' event=observer_says_bye$' && "
             "tail -1 %s/events.log | grep -q 'event=run_end'",
             dir, dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

void test_register_runner_view(void)
{
    CU_pSuite s = CU_add_suite("runner_view", NULL, NULL);
    CU_add_test(s, "register-view check catches a corrupted view", test_view_check_catches);
    CU_add_test(s, "an observer sees every step and cycle", test_observer);
}
