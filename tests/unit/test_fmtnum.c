/* Unit tests for common/fmtnum.c: equal to printf's %.Nf away from rounding boundaries. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "common/fmtnum.h"
#include "sim/physics/rng.h"

static void test_fixed_cases(void)
{
    char b[FMTNUM_MAX];
    fmt_fixed(b, 0, 3);
    CU_ASSERT_STRING_EQUAL(b, "0.000");
    fmt_fixed(b, -2500, 3);
    CU_ASSERT_STRING_EQUAL(b, "-2500.000");
    fmt_fixed(b, 1234.5678, 3);
    CU_ASSERT_STRING_EQUAL(b, "1234.568");
    fmt_fixed(b, 0.5, 0);
    CU_ASSERT_STRING_EQUAL(b, "1"); /* half away from zero (printf: "0", to even) */
    fmt_fixed(b, -0.0001, 3);
    CU_ASSERT_STRING_EQUAL(b, "-0.000");
    fmt_fixed(b, 0.123456789, 6);
    CU_ASSERT_STRING_EQUAL(b, "0.123457");
    CU_ASSERT_EQUAL(fmt_fixed(b, NAN, 3), 3);
    CU_ASSERT_STRING_EQUAL(b, "nan");
    fmt_fixed(b, -INFINITY, 3);
    CU_ASSERT_STRING_EQUAL(b, "-inf");
    CU_ASSERT_EQUAL(fmt_fixed(b, 1e300, 2), strlen(b)); /* the fallback, truncated */
    CU_ASSERT_EQUAL(strlen(b), FMTNUM_MAX - 1);
    CU_ASSERT_EQUAL(fmt_fixed(b, 1e17, 1), strlen(b));
    CU_ASSERT_STRING_EQUAL(b, "100000000000000000.0");
}

static void test_matches_printf(void)
{
    struct rng g;
    rng_seed(&g, 99, "test/fmtnum");
    int differ = 0, boundary = 0;
    char a[FMTNUM_MAX], b[FMTNUM_MAX];
    for (int i = 0; i < 200000; i++) {
        int d = (int)(rng_next(&g) % 7);
        double mag = pow(10, (double)(rng_next(&g) % 9)) * rng_uniform(&g);
        double v = (rng_next(&g) & 1) ? -mag : mag;
        fmt_fixed(a, v, d);
        snprintf(b, sizeof b, "%.*f", d, v);
        if (strcmp(a, b)) {
            double s = fabs(v) * pow(10, d);
            if (fabs(s - floor(s) - 0.5) < 1e-6)
                boundary++;
            else
                differ++;
        }
    }
    CU_ASSERT_EQUAL(differ, 0);
    CU_ASSERT(boundary <
              2000); /* 1 %: halfway cases, frequent only where doubles run out of digits */
}

void test_register_fmtnum(void)
{
    CU_pSuite s = CU_add_suite("fmtnum", NULL, NULL);
    CU_add_test(s, "cases", test_fixed_cases);
    CU_add_test(s, "equals printf away from boundaries", test_matches_printf);
}
