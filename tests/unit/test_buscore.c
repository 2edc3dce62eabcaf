/* Unit tests for the bus core (gateway/bus/buscore.c) through a scripted transport: each
 * exchange returns the next code of a script, so the retries, backoff, statistics, breaker and
 * log lines can be checked without sockets or images. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "bus_fixture.h"
#include "gateway/bus/buscore.h"

struct scripted {
    struct bus base;
    const int *script; /* the exchanges' results in order; past the end: 0 */
    int n, next;
    int closed;
    int *closed_flag; /* set by close, read after bus_close */
};

static int scripted_exchange(struct bus *b, int unit_id, int write, uint16_t addr, uint16_t n,
                             uint16_t *dst, const uint16_t *src)
{
    struct scripted *s = (struct scripted *)b;
    (void)unit_id;
    (void)write;
    (void)src;
    int rc = s->next < s->n ? s->script[s->next] : 0;
    s->next++;
    if (rc == 0 && dst)
        for (uint16_t i = 0; i < n; i++)
            dst[i] = (uint16_t)(addr + i);
    return rc;
}

static void scripted_close(struct bus *b)
{
    *((struct scripted *)b)->closed_flag = 1;
}

static const struct bus_transport scripted_tr = {"fake", scripted_exchange, scripted_close, 0};

static int closed_flag;

static struct bus *new_scripted(const int *script, int n, const struct bus_config *cfg)
{
    struct scripted *s = calloc(1, sizeof(*s));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    s->script = script;
    s->n = n;
    s->closed_flag = &closed_flag;
    CU_ASSERT_EQUAL_FATAL(bus_core_init(&s->base, &scripted_tr, cfg), 0);
    return &s->base;
}

static void base_config(struct bus_config *cfg, struct fake_clock *fc, struct logbuf *lb)
{
    bus_config_default(cfg);
    cfg->name = "site-1";
    cfg->clock = (struct bus_clock){fake_now, fake_sleep, fc};
    cfg->log = lb ? log_capture : NULL;
    cfg->log_ctx = lb;
}

static void test_retries_backoff_and_counters(void)
{
    /* timeout, refused, lost, bad reply, then success: four retries */
    const int script[] = {-ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EPROTO, 0};
    struct fake_clock fc = {0};
    struct bus_config cfg;
    base_config(&cfg, &fc, NULL);
    cfg.retry = (struct bus_retry){4, 10, 25, 0, 0};
    struct bus *b = new_scripted(script, 5, &cfg);
    uint16_t r[3];
    CU_ASSERT_EQUAL(bus_read(b, 1, 100, 3, r), 0);
    CU_ASSERT_EQUAL(r[2], 102);
    CU_ASSERT_EQUAL(fc.n_sleeps, 4);
    CU_ASSERT_EQUAL(fc.sleeps[0], 10);
    CU_ASSERT_EQUAL(fc.sleeps[1], 20);
    CU_ASSERT_EQUAL(fc.sleeps[2], 25);
    CU_ASSERT_EQUAL(fc.sleeps[3], 25);
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.requests, 1);
    CU_ASSERT_EQUAL(st.ok, 1);
    CU_ASSERT_EQUAL(st.retries, 4);
    CU_ASSERT_EQUAL(st.timeouts, 1);
    CU_ASSERT_EQUAL(st.conn_errors, 2);
    CU_ASSERT_EQUAL(st.proto_errors, 1);
    /* the unit's share: one call, no failure (the retries succeeded), one attempt timed out */
    struct bus_unit_stats us;
    CU_ASSERT_EQUAL(bus_get_unit_stats(b, 1, &us), 0);
    CU_ASSERT_EQUAL(us.requests, 1);
    CU_ASSERT_EQUAL(us.errors, 0);
    CU_ASSERT_EQUAL(us.timeouts, 1);
    CU_ASSERT_EQUAL(bus_get_unit_stats(b, 2, &us), 0);
    CU_ASSERT_EQUAL(us.requests, 0);
    CU_ASSERT_EQUAL(bus_get_unit_stats(b, 256, &us), -EINVAL);
    closed_flag = 0;
    bus_close(b);
    CU_ASSERT_EQUAL(closed_flag, 1);
}

/* Jitter shortens each sleep by at most jitter_pct, and the same seed gives the same sleeps. */
static void test_jitter_replays_from_its_seed(void)
{
    const int script[] = {-ECONNREFUSED, -ECONNREFUSED, -ECONNREFUSED, -ECONNREFUSED,
                          -ECONNREFUSED};
    int64_t seq[2][4];
    for (int k = 0; k < 2; k++) {
        struct fake_clock fc = {0};
        struct bus_config cfg;
        base_config(&cfg, &fc, NULL);
        cfg.retry = (struct bus_retry){4, 100, 1000, 50, 42};
        struct bus *b = new_scripted(script, 5, &cfg);
        uint16_t r[1];
        CU_ASSERT_EQUAL(bus_read(b, 1, 0, 1, r), -ECONNREFUSED);
        CU_ASSERT_EQUAL(fc.n_sleeps, 4);
        const int64_t base[4] = {100, 200, 400, 800};
        for (int i = 0; i < 4; i++) {
            seq[k][i] = fc.sleeps[i];
            CU_ASSERT(seq[k][i] <= base[i] && seq[k][i] >= base[i] / 2);
        }
        bus_close(b);
    }
    CU_ASSERT_EQUAL(memcmp(seq[0], seq[1], sizeof(seq[0])), 0);
}

static void test_exception_answers_at_once(void)
{
    const int script[] = {bus_exception_rc(2), bus_exception_rc(0x0B), bus_exception_rc(200)};
    struct fake_clock fc = {0};
    struct bus_config cfg;
    base_config(&cfg, &fc, NULL);
    cfg.retry.retries = 3;
    struct bus *b = new_scripted(script, 3, &cfg);
    uint16_t w[1] = {1};
    CU_ASSERT_EQUAL(bus_write(b, 5, 10, 1, w), bus_exception_rc(2));
    CU_ASSERT_EQUAL(bus_write(b, 5, 10, 1, w), bus_exception_rc(0x0B));
    CU_ASSERT_EQUAL(bus_write(b, 5, 10, 1, w), bus_exception_rc(200));
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.exceptions, 3);
    CU_ASSERT_EQUAL(st.exceptions_by_code[2], 1);
    CU_ASSERT_EQUAL(st.exceptions_by_code[11], 1);
    CU_ASSERT_EQUAL(st.exceptions_by_code[0], 1); /* codes above 15 */
    struct bus_unit_stats us;                     /* exceptions are failed calls of the unit */
    bus_get_unit_stats(b, 5, &us);
    CU_ASSERT_EQUAL(us.requests, 3);
    CU_ASSERT_EQUAL(us.errors, 3);
    CU_ASSERT_EQUAL(us.timeouts, 0);
    CU_ASSERT_EQUAL(st.retries, 0);
    CU_ASSERT_EQUAL(fc.n_sleeps, 0);
    /* bad arguments reach neither the counters nor the transport */
    CU_ASSERT_EQUAL(bus_write(b, 256, 10, 1, w), -EINVAL);
    CU_ASSERT_EQUAL(bus_read(b, 1, 0xFFFF, 2, w), -EINVAL);
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.requests, 3);
    CU_ASSERT_EQUAL(((struct scripted *)b)->next, 3);
    bus_close(b);
}

static void test_breaker_and_log_lines(void)
{
    const int script[] = {-ETIMEDOUT, -ETIMEDOUT, -ETIMEDOUT, -ETIMEDOUT, 0};
    struct fake_clock fc = {.now = 1000};
    struct logbuf lb = {{0}, 0};
    struct bus_config cfg;
    base_config(&cfg, &fc, &lb);
    cfg.retry.retries = 0;
    cfg.breaker = (struct breaker_config){2, 500, 4000};
    struct bus *b = new_scripted(script, 5, &cfg);
    CU_ASSERT_EQUAL(bus_set_device(b, 7, "pv-2"), 0);
    uint16_t r[1];
    CU_ASSERT_EQUAL(bus_read(b, 7, 0, 1, r), -ETIMEDOUT);
    CU_ASSERT_EQUAL(bus_read(b, 7, 0, 1, r), -ETIMEDOUT);
    CU_ASSERT_EQUAL(bus_breaker_state(b, 7), BREAKER_OPEN);
    CU_ASSERT_EQUAL(bus_read(b, 7, 0, 1, r), BUS_EOPEN);
    CU_ASSERT_EQUAL(bus_breaker_state(b, 8), BREAKER_CLOSED);
    fc.now += 500; /* the probe fails: open again for 1000 */
    CU_ASSERT_EQUAL(bus_read(b, 7, 0, 1, r), -ETIMEDOUT);
    fc.now += 999;
    CU_ASSERT_EQUAL(bus_read(b, 7, 0, 1, r), BUS_EOPEN);
    fc.now += 1;
    CU_ASSERT_EQUAL(bus_read(b, 7, 0, 1, r), -ETIMEDOUT);
    fc.now += 2000;
    CU_ASSERT_EQUAL(bus_read(b, 7, 0, 1, r), 0);
    CU_ASSERT_EQUAL(bus_breaker_state(b, 7), BREAKER_CLOSED);
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.breaker_opens, 3);
    CU_ASSERT_EQUAL(st.breaker_rejects, 2);
    CU_ASSERT_EQUAL(st.timeouts, 4);
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "bus=fake endpoint=site-1 unit=7 device=pv-2 "
                                           "event=breaker_open reason=\"timeout: no reply\" "
                                           "open_ms=500\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "event=breaker_open reason=\"timeout: no reply\" "
                                           "open_ms=1000\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "unit=7 device=pv-2 event=breaker_half_open probe=1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "unit=7 device=pv-2 event=breaker_closed\n"));
    CU_ASSERT_EQUAL(lb.lines, 3 + 3 + 1); /* opens, probes, close */
    /* an endpoint's own line, and a unit without a name */
    bus_core_logf(b, -1, "disconnect", "reason=%s", "closed");
    bus_core_logf(b, 9, "bad_reply", NULL);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(lb.text, "bus=fake endpoint=site-1 device=site-1 event=disconnect reason=closed\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(lb.text, "bus=fake endpoint=site-1 unit=9 device=site-1/9 event=bad_reply\n"));
    CU_ASSERT_EQUAL(bus_set_device(b, 256, "x"), -EINVAL);
    CU_ASSERT_EQUAL(bus_breaker_state(b, -1), -EINVAL);
    bus_close(b);
}

static void test_init_checks_settings(void)
{
    struct fake_clock fc = {0};
    struct bus_config cfg;
    struct scripted s;
    const struct bus_retry bad[] = {{-1, 50, 1000, 0, 0},
                                    {11, 50, 1000, 0, 0},
                                    {1, -1, 1000, 0, 0},
                                    {1, 50, 49, 0, 0},
                                    {1, 50, 1000, 101, 0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        base_config(&cfg, &fc, NULL);
        cfg.retry = bad[i];
        memset(&s, 0, sizeof(s));
        CU_ASSERT_EQUAL(bus_core_init(&s.base, &scripted_tr, &cfg), -EINVAL);
    }
    base_config(&cfg, &fc, NULL);
    cfg.name = NULL; /* the transport resolves its default first */
    CU_ASSERT_EQUAL(bus_core_init(&s.base, &scripted_tr, &cfg), -EINVAL);
    base_config(&cfg, &fc, NULL);
    cfg.clock.now_ms = NULL;
    CU_ASSERT_EQUAL(bus_core_init(&s.base, &scripted_tr, &cfg), -EINVAL);
    CU_ASSERT_EQUAL(bus_read(NULL, 1, 0, 1, (uint16_t[1]){0}), -EINVAL);
    bus_close(NULL);
}

void test_register_buscore(void)
{
    CU_pSuite s = CU_add_suite("buscore", NULL, NULL);
    CU_add_test(s, "retries, backoff and counters", test_retries_backoff_and_counters);
    CU_add_test(s, "jitter replays from its seed", test_jitter_replays_from_its_seed);
    CU_add_test(s, "an exception answers at once", test_exception_answers_at_once);
    CU_add_test(s, "breaker and log lines", test_breaker_and_log_lines);
    CU_add_test(s, "init checks the settings", test_init_checks_settings);
}
