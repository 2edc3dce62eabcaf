/* Unit tests for sim/run/import.c: record time formats and zones, gaps (reported, linear, held,
 * --max-gap), the load from the power balance, the battery estimates, bad records. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "common/caltime.h"
#include "sim/run/import.h"
#include "sim/scenario/scenario.h"

static char dir[64], err[1024], rep[8192];

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *name)
{
    static char buf[65536];
    char path[256];
    snprintf(path, sizeof path, "%s/out/%s", dir, name);
    FILE *f = fopen(path, "r");
    buf[0] = '\0';
    if (f) {
        buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
        fclose(f);
    }
    return buf;
}

/* Imports dir/name with opts (csv and out_dir filled in); the report goes to rep. */
static int import(const char *name, struct import_opts o)
{
    char csv[256], out[256];
    snprintf(csv, sizeof csv, "%s/%s", dir, name);
    snprintf(out, sizeof out, "%s/out", dir);
    o.csv = csv;
    o.out_dir = out;
    if (!o.step_ms)
        o.step_ms = 1000;
    if (!o.linear_gap_ms)
        o.linear_gap_ms = 60000;
    FILE *r = fmemopen(rep, sizeof rep, "w");
    int rc = import_records(&o, r, err, sizeof err);
    fclose(r);
    return rc;
}

static void test_balance_and_files(void)
{
    snprintf(dir, sizeof dir, "/tmp/derloop-import-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    /* load = grid - evse + pv + battery: 1000 - 0 + 3000 + 500 = 4500, etc. */
    put("a.csv", "time,grid_w,pv_w,battery_w,soc,evse_w\n"
                 "2026-05-12T11:00:00+02:00,1000,3000,500,0.8,0\n"
                 "2026-05-12T11:00:10+02:00,-200,3000,-1000,0.7,1000\n"
                 "2026-05-12T11:00:20+02:00,0,2000,0,0.6,0\n"
                 "2026-05-12T11:00:30+02:00,100,2000,0,0.6,0\n");
    CU_ASSERT_EQUAL_FATAL(import("a.csv", (struct import_opts){.capacity_kwh = 10}), 0);
    CU_ASSERT_STRING_EQUAL(slurp("load.csv"), "time,load\n0.000,4500.000\n10.000,800.000\n"
                                              "20.000,2000.000\n30.000,2100.000\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(slurp("field.csv"),
                                  "time,grid_w,pv_w,battery_w,soc,load_w,evse_w\n"
                                  "0.000,1000.000,3000.000,500.000,0.8000,4500.000,0.000\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "load_w derived from the balance"));
    /* the scenario loads, and its start is the first record in UTC */
    char path[256];
    struct scenario *s = NULL;
    snprintf(path, sizeof path, "%s/out/scenario.json", dir);
    CU_ASSERT_EQUAL_FATAL(scenario_load(path, NULL, 0, &s, err, sizeof err), 0);
    int64_t want;
    caltime_parse("2026-05-12T09:00:00Z", &want);
    CU_ASSERT_EQUAL(s->start_unix_ms, want);
    CU_ASSERT_EQUAL(s->duration_ms, 30000);
    CU_ASSERT_PTR_NOT_NULL(s->field);
    CU_ASSERT_PTR_NOT_NULL(strstr(s->field_csv, "/out/field.csv"));
    scenario_free(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(slurp("scenario.json"), "\"power_profile\":\t\"pv\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(slurp("scenario.json"), "\"evse-load\""));

    /* a recorded load is taken as is */
    put("b.csv", "unix_s,grid_w,load_w\n1778576400,100,700\n1778576410,200,800\n");
    CU_ASSERT_EQUAL_FATAL(import("b.csv", (struct import_opts){0}), 0);
    CU_ASSERT_STRING_EQUAL(slurp("load.csv"), "time,load\n0.000,700.000\n10.000,800.000\n");
}

static void test_gaps(void)
{
    /* every 10 s; a 30 s gap (linear) and a 90 s gap (held); pv missing at the end */
    put("g.csv", "unix_ms,grid_w,pv_w\n"
                 "1778576400000,0,100\n1778576410000,0,200\n1778576440000,0,500\n"
                 "1778576530000,0,800\n1778576540000,0,\n1778576550000,0,\n");
    CU_ASSERT_EQUAL_FATAL(import("g.csv", (struct import_opts){0}), 0);
    CU_ASSERT_STRING_EQUAL(slurp("pv.csv"), "time,pv\n0.000,100.000\n10.000,200.000\n"
                                            "40.000,500.000\n129.999,500.000\n130.000,800.000\n"
                                            "150.000,800.000\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "import: pv: 3 gaps, longest 1m30s at "
                                       "2026-05-12T09:00:40.000Z"));
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "import: load: 3 gaps, longest 1m30s"));
    /* --max-gap makes the long one an error naming it */
    CU_ASSERT_EQUAL(import("g.csv", (struct import_opts){.max_gap_ms = 60000}), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "g.csv: pv has a gap of 1m30s from "
                                       "2026-05-12T09:00:40.000Z, longer than --max-gap 1m"));
}

static void test_times_and_errors(void)
{
    put("l.csv", "time,grid_w\n2026-05-12 11:00:00,1\n2026-05-12 11:00:10,2\n");
    CU_ASSERT_EQUAL(import("l.csv", (struct import_opts){0}), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "l.csv:2: time \"2026-05-12 11:00:00\" has no UTC offset: "
                                       "give the zone with --tz"));
    CU_ASSERT_EQUAL(import("l.csv", (struct import_opts){.tz = "Europe/Berlin"}), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "from 2026-05-12T09:00:00.000Z"));
    CU_ASSERT_EQUAL(import("l.csv", (struct import_opts){.tz = "Mars/Olympus"}), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--tz must be an IANA zone"));
    CU_ASSERT_EQUAL(import("l.csv", (struct import_opts){.time_format = "unix_s"}), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "l.csv:2: time must be Unix seconds"));

    put("n.csv", "time,pv_w\n2026-05-12T09:00:00Z,1\n2026-05-12T09:00:10Z,2\n");
    CU_ASSERT_EQUAL(import("n.csv", (struct import_opts){0}), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no grid_w column"));
    put("d.csv", "time,grid_w\n2026-05-12T09:00:10Z,1\n2026-05-12T09:00:00Z,2\n");
    CU_ASSERT_EQUAL(import("d.csv", (struct import_opts){0}), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "d.csv:3: times must be strictly increasing"));
    put("v.csv", "time,grid_w\n2026-05-12T09:00:00Z,1\n2026-05-12T09:00:10Z,1kW\n");
    CU_ASSERT_EQUAL(import("v.csv", (struct import_opts){0}), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "v.csv:3: grid_w must be a number (or empty for a missing "
                                       "sample), got \"1kW\""));
    /* a battery without enough SoC movement needs its capacity */
    put("c.csv", "time,grid_w,bat-a_w,bat-a_soc\n2026-05-12T09:00:00Z,0,100,0.5\n"
                 "2026-05-12T09:00:10Z,0,100,0.5\n");
    CU_ASSERT_EQUAL(import("c.csv", (struct import_opts){0}), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "battery bat-a: cannot estimate its capacity (SoC range "
                                       "below 5 %): give --capacity-kwh"));
}

static void test_capacity(void)
{
    /* 5 kW discharge for 1 h from SoC 0.9 to 0.4: 10 kWh */
    FILE *f;
    char path[256];
    snprintf(path, sizeof path, "%s/e.csv", dir);
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("unix_s,grid_w,battery_w,soc\n", f);
    for (int i = 0; i <= 360; i++)
        fprintf(f, "%d,0,5000,%.6f\n", 1778576400 + i * 10, 0.9 - 0.5 * i / 360.0);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(import("e.csv", (struct import_opts){0}), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(rep, "battery bat-1: capacity 10.0 kWh estimated from 50 %"));
    CU_ASSERT_PTR_NOT_NULL(strstr(slurp("scenario.json"), "\"max_discharge_kw\":\t5"));
    static const char *const files[] = {"a.csv", "b.csv", "g.csv", "l.csv", "n.csv",
                                        "d.csv", "v.csv", "c.csv", "e.csv"};
    static const char *const outs[] = {"scenario.json", "field.csv", "load.csv", "pv.csv",
                                       "evse.csv"};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        snprintf(path, sizeof path, "%s/out/%s", dir, outs[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/out", dir);
    rmdir(path);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

void test_register_import(void)
{
    CU_pSuite su = CU_add_suite("import (field records -> scenario)", NULL, NULL);
    CU_add_test(su, "load from the balance, files, the scenario loads", test_balance_and_files);
    CU_add_test(su, "gaps: reported, linear, held, --max-gap", test_gaps);
    CU_add_test(su, "time formats, zones and bad records", test_times_and_errors);
    CU_add_test(su, "battery capacity from SoC", test_capacity);
}
