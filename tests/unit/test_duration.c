/* Unit tests for the duration parser's bounds (common/duration.c): every result lies in
 * [0, DURATION_MAX_MS], longer inputs are -ERANGE however many digits they have, garbage is
 * -EINVAL whatever its length, and nothing overflows on the way (UBSan in make test SAN=1). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "common/duration.h"
#include "sim/physics/rng.h"

/* Small multiples and sums (3 poll periods, an instant plus a duration) and the conversion of
 * one duration to nanoseconds all stay inside int64_t. */
_Static_assert(DURATION_MAX_MS <= INT64_MAX / 1000000, "DURATION_MAX_MS in ns overflows");
_Static_assert(DURATION_MAX_MS <= INT64_MAX / 1000000 * 2 / 3, "DURATION_MAX_MS too close");

static void test_max(void)
{
    int64_t ms = -1;
    CU_ASSERT_EQUAL(duration_parse("36500d", &ms), 0);
    CU_ASSERT_EQUAL(ms, DURATION_MAX_MS);
    CU_ASSERT_EQUAL(duration_parse("3153600000000ms", &ms), 0);
    CU_ASSERT_EQUAL(ms, DURATION_MAX_MS);
    CU_ASSERT_EQUAL(duration_parse("36499d23h59m59s999ms", &ms), 0);
    CU_ASSERT_EQUAL(ms, DURATION_MAX_MS - 1);
    char buf[32];
    CU_ASSERT_STRING_EQUAL(duration_format(DURATION_MAX_MS, buf, sizeof buf), "36500d");
    /* max + 1, in several spellings: refused, the output untouched */
    const char *over[] = {"3153600000001ms",
                          "36500d1ms",
                          "36499d23h59m59s1001ms",
                          "36500.001d",
                          "876001h",
                          "3333333313333351s",
                          "99999999999999999999d",
                          "99999999999999999999999999999999999999999999999999ms",
                          "1d36500d"};
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        ms = 42;
        CU_ASSERT_EQUAL(duration_parse(over[i], &ms), -ERANGE);
        CU_ASSERT_EQUAL(ms, 42);
    }
}

static void test_garbage(void)
{
    int64_t ms = 42;
    /* negative, garbage, garbage after a number too long: -EINVAL, not -ERANGE */
    const char *bad[] = {"-1s",
                         "-0s",
                         "1s-1s",
                         "+1s",
                         "s",
                         "1",
                         "1 s",
                         "1y",
                         "0x10s",
                         "1.0000001s",
                         "99999999999999999999999x",
                         "99999999999999999999999d1",
                         "1d.",
                         ".s",
                         "1..5s",
                         "\x01s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(duration_parse(bad[i], &ms), -EINVAL);
        CU_ASSERT_EQUAL(ms, 42);
    }
}

/* Random strings of duration-ish characters (seeded): every parse is an error or a value in
 * [0, DURATION_MAX_MS]; the sanitizers see every intermediate step. */
static void test_random(void)
{
    static const char alphabet[] = "0123456789999999.msmhd";
    struct rng r;
    rng_seed(&r, 7, "duration/random");
    char s[48];
    unsigned long ok = 0, range = 0;
    for (int k = 0; k < 200000; k++) {
        size_t n = 1 + rng_next(&r) % (sizeof s - 1);
        for (size_t i = 0; i < n; i++)
            s[i] = alphabet[rng_next(&r) % (sizeof alphabet - 1)];
        s[n] = '\0';
        int64_t ms = -1;
        int rc = duration_parse(s, &ms);
        if (rc == 0) {
            ok++;
            CU_ASSERT(ms >= 0 && ms <= DURATION_MAX_MS);
        } else {
            range += rc == -ERANGE;
            CU_ASSERT(rc == -EINVAL || rc == -ERANGE);
            CU_ASSERT_EQUAL(ms, -1);
        }
    }
    CU_ASSERT(ok > 0);
    CU_ASSERT(range > 0);
}

void test_register_duration(void)
{
    CU_pSuite s = CU_add_suite("duration", NULL, NULL);
    CU_add_test(s, "the maximum and one above it", test_max);
    CU_add_test(s, "negative and garbage", test_garbage);
    CU_add_test(s, "random strings stay in range", test_random);
}
