/* Unit tests for sim/physics/load.c: profile and base, AR(1) noise deterministic per seed and
 * stream, never negative, energy. */
#include <math.h>

#include <CUnit/CUnit.h>

#include "sim/physics/load.h"

static int64_t l_t[2] = {0, 3600000};
static double l_v[2] = {1000.0, 3000.0};
static struct profile l_prof = {
    .name = "load", .kind = PROFILE_SERIES, .n = 2, .t_ms = l_t, .v = l_v};

static void test_profile_and_energy(void)
{
    struct load_params p = {.profile = &l_prof, .scale = 2.0, .base_w = 100.0};
    struct load l;
    load_init(&l, &p, 1, "s/load/noise");
    load_step(&l, 1800000, 1000);
    CU_ASSERT_DOUBLE_EQUAL(l.power_w, 2.0 * 2000.0 + 100.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(l.energy_wh, 4100.0 / 3600.0, 1e-12);
}

static void run(struct load *l, const struct load_params *p, uint64_t seed, const char *stream,
                double *out, int n)
{
    load_init(l, p, seed, stream);
    for (int i = 0; i < n; i++) {
        load_step(l, (int64_t)i * 1000, 1000);
        out[i] = l->power_w;
    }
}

static void test_noise_determinism(void)
{
    struct load_params p = {.base_w = 1000.0, .noise_phi = 0.9, .noise_sigma_w = 50.0};
    struct load l;
    double a[500], b[500], c[500], d[500];
    run(&l, &p, 42, "s/load/noise", a, 500);
    run(&l, &p, 42, "s/load/noise", b, 500);
    run(&l, &p, 43, "s/load/noise", c, 500);
    run(&l, &p, 42, "s/other/noise", d, 500);
    int same_seed = 1, diff_seed = 0, diff_stream = 0;
    double sum = 0.0, sum2 = 0.0;
    for (int i = 0; i < 500; i++) {
        same_seed &= a[i] == b[i];
        diff_seed |= a[i] != c[i];
        diff_stream |= a[i] != d[i];
        sum += a[i] - 1000.0;
        sum2 += (a[i] - 1000.0) * (a[i] - 1000.0);
    }
    CU_ASSERT(same_seed);
    CU_ASSERT(diff_seed);
    CU_ASSERT(diff_stream);
    /* AR(1) stationary deviation sigma / sqrt(1 - phi^2) = 115 W: the noise is really there. */
    double sd = sqrt(sum2 / 500.0 - (sum / 500.0) * (sum / 500.0));
    CU_ASSERT(sd > 40.0 && sd < 250.0);
}

static void test_never_negative(void)
{
    struct load_params p = {.base_w = 10.0, .noise_phi = 0.5, .noise_sigma_w = 500.0};
    struct load l;
    load_init(&l, &p, 7, "s/load/noise");
    int zeros = 0;
    for (int i = 0; i < 1000; i++) {
        load_step(&l, i * 1000, 1000);
        CU_ASSERT_FATAL(l.power_w >= 0.0);
        zeros += l.power_w == 0.0;
    }
    CU_ASSERT(zeros > 100);
}

void test_register_load(void)
{
    CU_pSuite s = CU_add_suite("load", NULL, NULL);
    CU_add_test(s, "profile and energy", test_profile_and_energy);
    CU_add_test(s, "noise determinism", test_noise_determinism);
    CU_add_test(s, "never negative", test_never_negative);
}
