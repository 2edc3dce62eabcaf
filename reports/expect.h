/* expect: a scenario's expectations, the `expect` block that makes a run pass or fail: bounds
 * (min, max, eq with tol) on any KPI by name, including the deltas against the baseline, and
 * the name of the baseline strategy. expect_parse validates the block (an unknown KPI is an
 * error naming the file and the path); expect_eval judges a run's KPIs. Plain value structs
 * with fixed capacity: the caller owns them, nothing is allocated. */
#ifndef DERLOOP_EXPECT_H
#define DERLOOP_EXPECT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "reports/kpi.h"

#define EXPECT_MAX 64

enum { EXPECT_MIN = 1, EXPECT_MAX_BOUND = 2, EXPECT_EQ = 4 };

struct expectation {
    int kpi;         /* enum kpi_id */
    unsigned has;    /* EXPECT_MIN | EXPECT_MAX_BOUND | EXPECT_EQ */
    double min, max; /* inclusive */
    double eq, tol;  /* |value - eq| <= tol; tol defaults to half the KPI's last decimal */
};

struct expect_list {
    size_t n;
    struct expectation e[EXPECT_MAX]; /* file order */
    char baseline_strategy[32];       /* "null" unless the block names another */
};

struct expect_result {
    int pass;
    double value;   /* NaN when the KPI has no value (e.g. no baseline was run) */
    char text[256]; /* "name = value unit (min 1, max 2): PASS" */
};

/* Validates `expect` (NULL or an object) of scenario file `file`. Errors:
 * "FILE: expect.NAME: unknown KPI", "FILE: expect.NAME.KEY: unknown key", a bound that is not
 * a number, min > max, no bound at all. Returns 0 or -EINVAL. */
int expect_parse(const cJSON *expect, const char *file, struct expect_list *out, char *err,
                 size_t errlen);

/* True when some expectation needs the baseline run (a vs_baseline KPI). */
int expect_needs_baseline(const struct expect_list *l);

/* Judges every expectation against k (res has l->n entries). Returns the number that failed. */
size_t expect_eval(const struct expect_list *l, const struct kpi_set *k, struct expect_result *res);

/* "min 1, max 2" / "eq 3 ± 0.001": the bounds of e, for reports. */
void expect_bounds_text(const struct expectation *e, char *buf, size_t len);

#endif
