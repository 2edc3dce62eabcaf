/* Unit tests for the site dispatch split (gateway/control/split.c): the hard cases named in issue 3
 * and a randomized property check (limits always held, total preserved whenever feasible). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include <CUnit/CUnit.h>

#include "gateway/control/split.h"
#include "sim/physics/rng.h"

#define NEAR(a, b) CU_ASSERT(fabs((a) - (b)) < 1e-6)

static void test_proportional(void)
{
    struct split_asset a[] = {{10000, -5000, 5000}, {5000, -5000, 5000}, {5000, -5000, 5000}};
    double w[3];
    struct split_result r;
    CU_ASSERT_EQUAL(split_dispatch(a, 3, 4000, 0, w, NULL, &r), 0);
    NEAR(w[0], 2000);
    NEAR(w[1], 1000);
    NEAR(w[2], 1000);
    NEAR(r.unallocated_w, 0);
    CU_ASSERT_EQUAL(r.equal_weights, 0);
}

static void test_equal_when_capacity_missing(void)
{
    struct split_asset a[] = {{10000, -5000, 5000}, {0, -5000, 5000}, {5000, -5000, 5000}};
    double w[3];
    struct split_result r;
    CU_ASSERT_EQUAL(split_dispatch(a, 3, 3000, 0, w, NULL, &r), 0);
    NEAR(w[0], 1000);
    NEAR(w[1], 1000);
    NEAR(w[2], 1000);
    CU_ASSERT_EQUAL(r.equal_weights, 1);
}

static void test_clamp_hands_remainder_on(void)
{
    /* the big one would get 6000 but can give only 3000: the rest goes to the others */
    struct split_asset a[] = {{20000, -3000, 3000}, {5000, -5000, 5000}, {5000, -5000, 5000}};
    double w[3];
    uint8_t f[3];
    struct split_result r;
    CU_ASSERT_EQUAL(split_dispatch(a, 3, 9000, 0, w, f, &r), 0);
    NEAR(w[0], 3000);
    NEAR(w[1], 3000);
    NEAR(w[2], 3000);
    CU_ASSERT(f[0] & SPLIT_AT_MAX);
    CU_ASSERT_FALSE(f[1] & SPLIT_AT_MAX);
    NEAR(r.allocated_w, 9000);
}

static void test_negative_total(void)
{
    struct split_asset a[] = {{10000, -2000, 5000}, {10000, -6000, 5000}};
    double w[2];
    uint8_t f[2];
    struct split_result r;
    CU_ASSERT_EQUAL(split_dispatch(a, 2, -7000, 0, w, f, &r), 0);
    NEAR(w[0], -2000);
    NEAR(w[1], -5000);
    CU_ASSERT(f[0] & SPLIT_AT_MIN);
    NEAR(r.unallocated_w, 0);
}

static void test_all_clamped_infeasible(void)
{
    struct split_asset a[] = {{10000, -5000, 5000}, {5000, -2500, 2500}};
    double w[2];
    uint8_t f[2];
    struct split_result r;
    CU_ASSERT_EQUAL(split_dispatch(a, 2, 10000, 0, w, f, &r), 0);
    NEAR(w[0], 5000);
    NEAR(w[1], 2500);
    NEAR(r.allocated_w, 7500);
    NEAR(r.unallocated_w, 2500);
    CU_ASSERT(f[0] & SPLIT_AT_MAX);
    CU_ASSERT(f[1] & SPLIT_AT_MAX);
    CU_ASSERT_EQUAL(split_dispatch(a, 2, -1e9, 0, w, f, &r), 0);
    NEAR(w[0], -5000);
    NEAR(w[1], -2500);
}

static void test_one_asset_and_zero_capacity(void)
{
    struct split_asset one = {0, -3000, 3000};
    double w;
    struct split_result r;
    CU_ASSERT_EQUAL(split_dispatch(&one, 1, 1234.5, 0, &w, NULL, &r), 0);
    NEAR(w, 1234.5);
    CU_ASSERT_EQUAL(split_dispatch(&one, 1, 1234.5, 100, &w, NULL, &r), 0);
    NEAR(w, 1200);
    /* an offline asset (limits 0, 0) takes nothing */
    struct split_asset two[] = {{10000, 0, 0}, {10000, -5000, 5000}};
    double w2[2];
    CU_ASSERT_EQUAL(split_dispatch(two, 2, 4000, 0, w2, NULL, &r), 0);
    NEAR(w2[0], 0);
    NEAR(w2[1], 4000);
}

static void test_largest_remainder(void)
{
    /* 1000 W over three equal assets at 100 W resolution: 400, 300, 300 (the first by index) */
    struct split_asset a[] = {{1, -5000, 5000}, {1, -5000, 5000}, {1, -5000, 5000}};
    double w[3];
    uint8_t f[3];
    struct split_result r;
    CU_ASSERT_EQUAL(split_dispatch(a, 3, 1000, 100, w, f, &r), 0);
    NEAR(w[0], 400);
    NEAR(w[1], 300);
    NEAR(w[2], 300);
    CU_ASSERT(f[0] & SPLIT_ROUNDED_UP);
    NEAR(r.allocated_w, 1000);
    CU_ASSERT_EQUAL(split_dispatch(a, 3, -1000, 100, w, f, &r), 0);
    NEAR(w[0] + w[1] + w[2], -1000);
    for (int i = 0; i < 3; i++)
        NEAR(fmod(fabs(w[i]), 100), 0);
}

static void test_bad_arguments(void)
{
    struct split_asset a = {1, 10, -10};
    double w;
    CU_ASSERT_NOT_EQUAL(split_dispatch(&a, 1, 0, 0, &w, NULL, NULL), 0);
    a.min_w = -10;
    a.max_w = 10;
    CU_ASSERT_NOT_EQUAL(split_dispatch(&a, 0, 0, 0, &w, NULL, NULL), 0);
    CU_ASSERT_NOT_EQUAL(split_dispatch(&a, 1, NAN, 0, &w, NULL, NULL), 0);
    CU_ASSERT_NOT_EQUAL(split_dispatch(&a, 1, 5, -1, &w, NULL, NULL), 0);
}

static void test_property_random(void)
{
    struct rng g;
    rng_seed(&g, 2026, "test/split");
    int failures = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 1 + rng_next(&g) % 8;
        struct split_asset a[8];
        double lo = 0, hi = 0;
        double res = (rng_next(&g) % 3) * 50.0; /* 0, 50 or 100 W */
        for (size_t i = 0; i < n; i++) {
            a[i].capacity = (rng_next(&g) % 4 == 0) ? 0 : 1000 + rng_uniform(&g) * 20000;
            /* limits on the resolution grid so a feasible total stays feasible after rounding */
            double grid = res > 0 ? res : 1;
            a[i].max_w = floor(rng_uniform(&g) * 10000 / grid) * grid;
            a[i].min_w = -floor(rng_uniform(&g) * 10000 / grid) * grid;
            lo += a[i].min_w;
            hi += a[i].max_w;
        }
        double total = (rng_uniform(&g) * 2 - 1) * 40000;
        if (res > 0)
            total = round(total / res) * res;
        double w[8];
        struct split_result r;
        if (split_dispatch(a, n, total, res, w, NULL, &r) != 0) {
            failures++;
            continue;
        }
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            if (w[i] < a[i].min_w - 1e-6 || w[i] > a[i].max_w + 1e-6)
                failures++;
            if (res > 0 && fabs(w[i] / res - round(w[i] / res)) > 1e-6)
                failures++;
            sum += w[i];
        }
        double expect = total < lo ? lo : total > hi ? hi : total;
        if (fabs(sum - expect) > 1e-6)
            failures++;
    }
    CU_ASSERT_EQUAL(failures, 0);
}

/* The examples table of docs/split.md, row by row: a change that breaks one breaks the doc. */
static void test_doc_examples(void)
{
    struct split_asset ab[] = {{10000, -5000, 5000}, {5000, -5000, 5000}};
    struct split_asset ub[] = {{0, -5000, 5000}, {5000, -5000, 5000}};
    static const struct {
        int unknown;
        double total, a, b, unallocated;
    } rows[] = {
        {0, 6000, 4000, 2000, 0},
        {0, 9000, 5000, 4000, 0},
        {0, 12000, 5000, 5000, 2000},
        {1, 1000, 500, 500, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double w[2];
        struct split_result r;
        CU_ASSERT_EQUAL(split_dispatch(rows[i].unknown ? ub : ab, 2, rows[i].total, 0, w, NULL, &r),
                        0);
        NEAR(w[0], rows[i].a);
        NEAR(w[1], rows[i].b);
        NEAR(r.unallocated_w, rows[i].unallocated);
        CU_ASSERT_EQUAL(r.equal_weights, rows[i].unknown);
    }
}

/* The policies' examples of docs/split.md: two batteries A and B, [-5000, 5000] each. */
static void test_doc_policy_examples(void)
{
    static const struct {
        int policy;
        double cap_a, cap_b, soc_a, soc_b, rating_a, rating_b;
        int rank_a, rank_b;
        double total, a, b;
    } rows[] = {
        {SPLIT_POLICY_EQUAL, 10000, 5000, NAN, NAN, 0, 0, 0, 0, 6000, 3000, 3000},
        {SPLIT_POLICY_SOC_BALANCE, 10000, 10000, 0.8, 0.4, 0, 0, 0, 0, 4000, 4000, 0},
        {SPLIT_POLICY_SOC_BALANCE, 10000, 10000, 0.8, 0.4, 0, 0, 0, 0, -4000, 0, -4000},
        {SPLIT_POLICY_SOC_BALANCE, 10000, 10000, 0.8, 0.4, 0, 0, 0, 0, 6000, 5000, 1000},
        {SPLIT_POLICY_SOC_BALANCE, 10000, 5000, 0.5, 0.5, 0, 0, 0, 0, 6000, 4000, 2000},
        {SPLIT_POLICY_LOSS_MIN, 10000, 10000, NAN, NAN, 5000, 5000, 0, 0, 1000, 1000, 0},
        {SPLIT_POLICY_LOSS_MIN, 10000, 10000, NAN, NAN, 5000, 5000, 0, 0, 4000, 2000, 2000},
        {SPLIT_POLICY_LOSS_MIN, 10000, 10000, NAN, NAN, 3000, 5000, 0, 0, 1000, 1000, 0},
        {SPLIT_POLICY_LOSS_MIN, 10000, 10000, NAN, NAN, 3000, 5000, 0, 0, 3000, 1125, 1875},
        {SPLIT_POLICY_PRIORITY, 10000, 10000, NAN, NAN, 0, 0, 1, 0, 6000, 1000, 5000},
        {SPLIT_POLICY_PRIORITY, 10000, 10000, NAN, NAN, 0, 0, 0, 1, -2000, -2000, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct split_asset a[] = {{rows[i].cap_a, -5000, 5000}, {rows[i].cap_b, -5000, 5000}};
        double soc[] = {rows[i].soc_a, rows[i].soc_b};
        double rating[] = {rows[i].rating_a, rows[i].rating_b};
        int rank[] = {rows[i].rank_a, rows[i].rank_b};
        struct split_opts o = {rows[i].policy, 0, 3600, soc, rating, rank};
        double w[2];
        struct split_result r;
        CU_ASSERT_EQUAL(split_dispatch_policy(&o, a, 2, rows[i].total, w, NULL, &r), 0);
        NEAR(w[0], rows[i].a);
        NEAR(w[1], rows[i].b);
        if (fabs(w[0] - rows[i].a) > 1e-6 || fabs(w[1] - rows[i].b) > 1e-6)
            printf("\nrow %zu: %s %.0f -> %.3f %.3f\n", i, split_policy_name(rows[i].policy),
                   rows[i].total, w[0], w[1]);
    }
}

/* Every policy keeps the limits and the total (random assets, SoCs, ratings and ranks). */
static void test_policies_property(void)
{
    struct rng g;
    rng_seed(&g, 2026, "test/split/policies");
    int failures = 0;
    for (int iter = 0; iter < 5000; iter++) {
        size_t n = 1 + rng_next(&g) % 6;
        struct split_asset a[6];
        double soc[6], rating[6], lo = 0, hi = 0;
        int rank[6];
        for (size_t i = 0; i < n; i++) {
            a[i].capacity = 1000 + rng_uniform(&g) * 20000;
            a[i].max_w = floor(rng_uniform(&g) * 10000);
            a[i].min_w = -floor(rng_uniform(&g) * 10000);
            soc[i] = rng_uniform(&g);
            rating[i] = (rng_next(&g) % 3 == 0) ? 0 : 2000 + rng_uniform(&g) * 10000;
            rank[i] = (int)(rng_next(&g) % 4);
            lo += a[i].min_w;
            hi += a[i].max_w;
        }
        double total = round((rng_uniform(&g) * 2 - 1) * 40000);
        struct split_opts o = {
            (int)(rng_next(&g) % SPLIT_POLICY_COUNT), 1, 3600, soc, rating, rank};
        double w[6], sum = 0;
        if (split_dispatch_policy(&o, a, n, total, w, NULL, NULL) != 0) {
            failures++;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (w[i] < a[i].min_w - 1e-6 || w[i] > a[i].max_w + 1e-6)
                failures++;
            sum += w[i];
        }
        double expect = total < lo ? lo : total > hi ? hi : total;
        if (fabs(sum - round(expect)) > 1e-6)
            failures++;
    }
    CU_ASSERT_EQUAL(failures, 0);
    CU_ASSERT_EQUAL(split_policy_parse("soc_balance"), SPLIT_POLICY_SOC_BALANCE);
    CU_ASSERT_EQUAL(split_policy_parse("fastest"), -1);
    CU_ASSERT_STRING_EQUAL(split_policy_name(SPLIT_POLICY_LOSS_MIN), "loss_min");
}

void test_register_split(void)
{
    CU_pSuite s = CU_add_suite("split", NULL, NULL);
    CU_add_test(s, "proportional to capacity", test_proportional);
    CU_add_test(s, "equal split without capacities", test_equal_when_capacity_missing);
    CU_add_test(s, "clamped asset hands the remainder on", test_clamp_hands_remainder_on);
    CU_add_test(s, "negative total", test_negative_total);
    CU_add_test(s, "all clamped: infeasible total", test_all_clamped_infeasible);
    CU_add_test(s, "one asset, offline asset", test_one_asset_and_zero_capacity);
    CU_add_test(s, "largest remainder rounding", test_largest_remainder);
    CU_add_test(s, "bad arguments", test_bad_arguments);
    CU_add_test(s, "random property: limits and total", test_property_random);
    CU_add_test(s, "the examples of docs/split.md", test_doc_examples);
    CU_add_test(s, "the policies' examples of docs/split.md", test_doc_policy_examples);
    CU_add_test(s, "random property: every policy", test_policies_property);
}
