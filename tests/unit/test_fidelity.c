/* Unit tests for reports/fidelity.c: a field CSV read with empty cells and a missing series,
 * interpolated between its samples and nowhere outside them, RMSE, bias and correlation against
 * a simulated series, and the errors naming the file and line. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "reports/fidelity.h"

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
}
