/* Unit tests for the circuit breaker (gateway/bus/breaker.c) under injected time: opening after N
 * consecutive failures, the single half-open probe, closing on success, the doubling open
 * period and its cap, and the defaults. */
#include <errno.h>

#include <CUnit/CUnit.h>

#include "gateway/bus/breaker.h"

static void fail_n(struct breaker *b, int64_t now, int n)
{
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(breaker_allow(b, now), 0);
        breaker_record(b, now, 0);
    }
}

static void test_opens_after_consecutive_failures(void)
{
    struct breaker_config cfg = {3, 1000, 8000};
    struct breaker b;
    breaker_init(&b, &cfg);
    CU_ASSERT_EQUAL(b.state, BREAKER_CLOSED);
    fail_n(&b, 0, 2);
    CU_ASSERT_EQUAL(b.state, BREAKER_CLOSED);
    /* a success in between resets the count: failures must be consecutive */
    CU_ASSERT_EQUAL(breaker_allow(&b, 0), 0);
    CU_ASSERT_EQUAL(breaker_record(&b, 0, 1), BREAKER_CLOSED);
    fail_n(&b, 10, 2);
    CU_ASSERT_EQUAL(b.state, BREAKER_CLOSED);
    CU_ASSERT_EQUAL(breaker_allow(&b, 20), 0);
    CU_ASSERT_EQUAL(breaker_record(&b, 20, 0), BREAKER_OPEN);
    CU_ASSERT_EQUAL(b.opens, 1);
    /* open: refused until 20 + 1000 */
    CU_ASSERT_EQUAL(breaker_allow(&b, 21), -EAGAIN);
    CU_ASSERT_EQUAL(breaker_allow(&b, 1019), -EAGAIN);
    CU_ASSERT_EQUAL(breaker_state_at(&b, 1019), BREAKER_OPEN);
    CU_ASSERT_EQUAL(breaker_state_at(&b, 1020), BREAKER_HALF_OPEN);
}

static void test_half_open_single_probe_then_close(void)
{
    struct breaker_config cfg = {2, 500, 4000};
    struct breaker b;
    breaker_init(&b, &cfg);
    fail_n(&b, 100, 2);
    CU_ASSERT_EQUAL(b.state, BREAKER_OPEN);
    CU_ASSERT_EQUAL(breaker_allow(&b, 600), 0); /* the probe */
    CU_ASSERT_EQUAL(b.state, BREAKER_HALF_OPEN);
    CU_ASSERT_EQUAL(breaker_allow(&b, 601), -EAGAIN); /* only one probe at a time */
    CU_ASSERT_EQUAL(breaker_record(&b, 610, 1), BREAKER_CLOSED);
    CU_ASSERT_EQUAL(breaker_allow(&b, 611), 0);
    /* closed again with a fresh count: one failure does not reopen it */
    CU_ASSERT_EQUAL(breaker_record(&b, 611, 0), BREAKER_CLOSED);
    CU_ASSERT_EQUAL(breaker_allow(&b, 612), 0);
    CU_ASSERT_EQUAL(breaker_record(&b, 612, 0), BREAKER_OPEN);
    /* and the period is back at its base */
    CU_ASSERT_EQUAL(breaker_allow(&b, 1111), -EAGAIN);
    CU_ASSERT_EQUAL(breaker_allow(&b, 1112), 0);
}

static void test_failed_probe_doubles_period_to_cap(void)
{
    struct breaker_config cfg = {1, 1000, 5000};
    struct breaker b;
    breaker_init(&b, &cfg);
    int64_t now = 0;
    fail_n(&b, now, 1);
    int64_t expect[] = {1000, 2000, 4000, 5000, 5000};
    for (int i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(breaker_allow(&b, now + expect[i] - 1), -EAGAIN);
        now += expect[i];
        CU_ASSERT_EQUAL(breaker_allow(&b, now), 0);
        CU_ASSERT_EQUAL(breaker_record(&b, now, 0), BREAKER_OPEN);
    }
    CU_ASSERT_EQUAL(b.opens, 6);
    /* success resets the period */
    now += 5000;
    CU_ASSERT_EQUAL(breaker_allow(&b, now), 0);
    CU_ASSERT_EQUAL(breaker_record(&b, now, 1), BREAKER_CLOSED);
    fail_n(&b, now, 1);
    CU_ASSERT_EQUAL(breaker_allow(&b, now + 999), -EAGAIN);
    CU_ASSERT_EQUAL(breaker_allow(&b, now + 1000), 0);
}

static void test_defaults_and_never_open(void)
{
    struct breaker b;
    breaker_init(&b, NULL);
    CU_ASSERT_EQUAL(b.cfg.failures, 3);
    CU_ASSERT_EQUAL(b.cfg.open_ms, 5000);
    CU_ASSERT_EQUAL(b.cfg.open_max_ms, 60000);
    struct breaker_config bad = {-1, 0, 10};
    breaker_init(&b, &bad);
    CU_ASSERT_EQUAL(b.cfg.open_ms, 5000);
    CU_ASSERT_EQUAL(b.cfg.open_max_ms, 5000);
    fail_n(&b, 0, 100); /* failures <= 0: never opens */
    CU_ASSERT_EQUAL(b.state, BREAKER_CLOSED);
    CU_ASSERT_STRING_EQUAL(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
}

void test_register_breaker(void)
{
    CU_pSuite s = CU_add_suite("breaker", NULL, NULL);
    CU_add_test(s, "opens after N consecutive failures", test_opens_after_consecutive_failures);
    CU_add_test(s, "half-open: one probe, success closes", test_half_open_single_probe_then_close);
    CU_add_test(s, "failed probe doubles the period up to the cap",
                test_failed_probe_doubles_period_to_cap);
    CU_add_test(s, "defaults, never-open configuration", test_defaults_and_never_open);
}
