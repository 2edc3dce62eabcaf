/* Unit tests for reports/fidelity.c: a field CSV read with empty cells and a missing series,
 * interpolated between its samples and nowhere outside them, RMSE, bias and correlation against
 * a simulated series, the oscillation of a record with jittered timestamps (resampled onto its
 * median interval), and the errors naming the file and line. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "reports/fidelity.h"
#include "reports/oscill.h"

static char *write_csv(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/derloop-fid-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_read_and_compare(void)
{
    struct scenario sc;
    memset(&sc, 0, sizeof sc);
    char *p = write_csv("time,grid_w,soc\n0,100,0.5\n10,200,\n20,,0.7\n30,400,0.8\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    struct fidelity *f;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(fidelity_open(&sc, p, &f, err, sizeof err), 0);
    unlink(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_DOUBLE_EQUAL(fidelity_field_at(f, FID_GRID_W, 5000), 150, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(fidelity_field_at(f, FID_GRID_W, 20000), 300, 1e-9); /* 10 s to 30 s */
    CU_ASSERT(isnan(fidelity_field_at(f, FID_GRID_W, 31000)));
    CU_ASSERT_DOUBLE_EQUAL(fidelity_field_at(f, FID_SOC, 10000), 0.6, 1e-9);
    CU_ASSERT(isnan(fidelity_field_at(f, FID_BATTERY_W, 0)));
    /* replay = record + 10 W: bias 10, RMSE 10, correlation 1 at the 3 grid samples */
    for (int64_t t = 0; t <= 40000; t += 1000) {
        double sim[FID_COUNT] = {fidelity_field_at(f, FID_GRID_W, t) + 10, 0.5, 0};
        if (isnan(sim[0]))
            sim[0] = 1e6; /* nothing recorded: never compared */
        fidelity_step(f, t, sim);
    }
    struct kpi_set k;
    fidelity_result(f, &k);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FIELD_GRID_BIAS_W], 10, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FIELD_GRID_RMSE_W], 10, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FIELD_GRID_CORR], 1, 1e-9);
    CU_ASSERT(isnan(k.v[KPI_FIELD_SOC_CORR])); /* a constant simulated SoC */
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FIELD_SOC_BIAS], 0.5 - 2.0 / 3, 1e-9); /* its 3 samples */
    CU_ASSERT(isnan(k.v[KPI_FIELD_BATTERY_RMSE_W]));
    fidelity_free(f);
    fidelity_result(NULL, &k);
    CU_ASSERT(isnan(k.v[KPI_FIELD_GRID_RMSE_W]));
}

/* A record of grid_w = 1000 sin(2 pi t / 60 s) at the instants t_ms[0..n) (the replay the same),
 * and its field_osc_* KPIs. */
static void osc_of_record(const int64_t *t_ms, size_t n, struct kpi_set *k)
{
    static char text[64 * 1024];
    size_t len = (size_t)snprintf(text, sizeof text, "time,grid_w\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%.3f,%.6f\n", t_ms[i] / 1000.0,
                                1000 * sin(2 * M_PI * (double)t_ms[i] / 60000.0));
    struct scenario sc;
    memset(&sc, 0, sizeof sc);
    char *p = write_csv(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    struct fidelity *f;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(fidelity_open(&sc, p, &f, err, sizeof err), 0);
    unlink(p);
    for (size_t i = 0; i < n; i++) { /* the replay at each recorded instant: the record */
        double sim[FID_COUNT] = {fidelity_field_at(f, FID_GRID_W, t_ms[i]), NAN, NAN};
        fidelity_step(f, t_ms[i], sim);
    }
    fidelity_result(f, k);
    fidelity_free(f);
}

static void test_oscillation_jittered(void)
{
    /* a real gateway's telemetry: every 10 or 11 s (a fixed pattern), 10 minutes */
    static const int gaps[] = {10000, 11000, 10000, 10000, 11000, 10000, 11000};
    int64_t t[80];
    size_t n = 0;
    for (int64_t u = 0; u < 600000; u += gaps[n % 7])
        t[n++] = u;
    struct kpi_set k;
    osc_of_record(t, n, &k);
    /* resampled at the median 10 s: the 60 s sinusoid in both 5-minute windows */
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FIELD_OSC_PERIOD_S], 60, 60 * 0.03);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FIELD_OSC_AMPLITUDE_W], 1000, 1000 * 0.1);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FIELD_REPLAY_OSC_PERIOD_S], k.v[KPI_FIELD_OSC_PERIOD_S], 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FIELD_REPLAY_OSC_AMPLITUDE_W], k.v[KPI_FIELD_OSC_AMPLITUDE_W],
                           1e-9);
    double period = k.v[KPI_FIELD_OSC_PERIOD_S], amp = k.v[KPI_FIELD_OSC_AMPLITUDE_W];
    osc_of_record(t, n, &k); /* deterministic */
    CU_ASSERT_EQUAL(k.v[KPI_FIELD_OSC_PERIOD_S], period);
    CU_ASSERT_EQUAL(k.v[KPI_FIELD_OSC_AMPLITUDE_W], amp);

    /* an even record is analysed as recorded: the windows' own DFT */
    n = 0;
    for (int64_t u = 0; u < 600000; u += 10000)
        t[n++] = u;
    osc_of_record(t, n, &k);
    double x[30], p0, a0, p1, a1;
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < 30; i++)
            x[i] = 1000 * sin(2 * M_PI * (w * 300 + i * 10) / 60.0);
        CU_ASSERT(oscill_dominant(x, 30, 10, w ? &p1 : &p0, w ? &a1 : &a0) >= OSC_LOWEST_CYCLES);
    }
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FIELD_OSC_PERIOD_S], (p0 + p1) / 2, 1e-6); /* CSV digits */
    CU_ASSERT_DOUBLE_EQUAL(k.v[KPI_FIELD_OSC_AMPLITUDE_W], (a0 + a1) / 2, 1e-3);

    /* a gap of more than two intervals in each window: no window, no figure */
    n = 0;
    for (int64_t u = 0; u < 600000; u += 10000)
        if (u % 300000 != 150000 && u % 300000 != 160000 && u % 300000 != 170000)
            t[n++] = u;
    osc_of_record(t, n, &k);
    CU_ASSERT(isnan(k.v[KPI_FIELD_OSC_PERIOD_S]));
    CU_ASSERT(isnan(k.v[KPI_FIELD_OSC_AMPLITUDE_W]));
}

static void test_errors(void)
{
    struct scenario sc;
    memset(&sc, 0, sizeof sc);
    struct fidelity *f;
    char err[512];
    char *p = write_csv("time,grid_w\n0,1\n10,2\n10,3\n");
    CU_ASSERT_EQUAL(fidelity_open(&sc, p, &f, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":4: time: must increase"));
    unlink(p);
    p = write_csv("time,grid_w\n0,x\n");
    CU_ASSERT_EQUAL(fidelity_open(&sc, p, &f, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":2: grid_w: must be a number or empty, got \"x\""));
    unlink(p);
    p = write_csv("t,load_w\n0,1\n");
    CU_ASSERT_EQUAL(fidelity_open(&sc, p, &f, err, sizeof err), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1: needs a \"time\" column"));
    unlink(p);
    CU_ASSERT_EQUAL(fidelity_open(&sc, "/nonexistent/field.csv", &f, err, sizeof err), -ENOENT);
    CU_ASSERT_EQUAL(fidelity_open(&sc, NULL, &f, err, sizeof err), 0); /* no field block */
    CU_ASSERT_PTR_NULL(f);
}

void test_register_fidelity(void)
{
    CU_pSuite s = CU_add_suite("fidelity", NULL, NULL);
    CU_add_test(s, "field CSV: interpolation, RMSE, bias, correlation", test_read_and_compare);
    CU_add_test(s, "field CSV: errors name the file and line", test_errors);
    CU_add_test(s, "field CSV: jittered record resampled for the oscillation",
                test_oscillation_jittered);
}
