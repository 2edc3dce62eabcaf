/* import: see import.h. The rules written here are the ones docs/incidents.md states:
 *  - time stamps through caltime_parse_stamp (the one parser), the zone only for stamps
 *    without an offset;
 *  - site signs (docs/physics.md): grid + import, pv + production, battery + discharge; the
 *    load, when not recorded, is solved from grid = load + evse + boiler - pv - battery;
 *  - measured PV is what the inverter produced, curtailment included: the replay's PV power
 *    profile is that measurement (the replay can curtail further, never produce more);
 *  - a gap is two present samples further apart than 1.5 sampling intervals; up to
 *    linear_gap it is interpolated, beyond it the last value holds until the next sample;
 *    missing samples at either end take the nearest present value.
 * Everything is derived from the records alone, in file order, so the same records give the
 * same files byte for byte. */
#include "sim/run/import.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/caltime.h"
#include "common/duration.h"
#include "common/fmtnum.h"
#include "sim/physics/profile.h"

#define MAX_COLS         64
#define MAX_BATS         8
#define IMPORT_VALUE_MAX 1e12 /* |cell| below this (W, SoC): see cell_number */

struct records {
    size_t n, cap, ncols;
    char *names[MAX_COLS];
    int64_t *t;          /* Unix ms, strictly increasing */
    double *v[MAX_COLS]; /* NAN = empty cell */
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static void records_free(struct records *r)
{
    for (size_t c = 0; c < r->ncols; c++) {
        free(r->names[c]);
        free(r->v[c]);
    }
    free(r->t);
}

static int col_of(const struct records *r, const char *name)
{
    for (size_t c = 0; c < r->ncols; c++)
        if (strcmp(r->names[c], name) == 0)
            return (int)c;
    return -1;
}

static int grow(struct records *r)
{
    size_t na = r->cap ? r->cap * 2 : 1024;
    int64_t *t = realloc(r->t, na * sizeof *t);
    if (!t)
        return -ENOMEM;
    r->t = t;
    for (size_t c = 0; c < r->ncols; c++) {
        double *v = realloc(r->v[c], na * sizeof *v);
        if (!v)
            return -ENOMEM;
        r->v[c] = v;
    }
    r->cap = na;
    return 0;
}

static int cell_number(const char *s, double *out)
{
    char *end;
    if (!*s) {
        *out = NAN;
        return 0;
    }
    double v = strtod(s, &end);
    /* bounded: 1e308 W passed and came out as a 47-digit truncation in field.csv and an inf
     * load (fmt_fixed is exact below 9e15 / 10^decimals); no site reads a terawatt */
    if (*end || !isfinite(v))
        return -EINVAL;
    if (fabs(v) >= IMPORT_VALUE_MAX)
        return -ERANGE;
    *out = v;
    return 0;
}

/* The time column: "time", "timestamp", "unix_s" or "unix_ms" (the last two say the format). */
static const char *const time_names[] = {"time", "timestamp", "unix_s", "unix_ms"};

static int read_records(const struct import_opts *o, struct records *r, int *tcol_out, char *err,
                        size_t errlen)
{
    FILE *f = fopen(o->csv, "r");
    if (!f)
        return fail(err, errlen, errno == ENOMEM ? -ENOMEM : -ENOENT, "%s: %s", o->csv,
                    strerror(errno));
    struct caltime_zone zone = {0};
    enum caltime_format fmt = CALTIME_ISO;
    int have_fmt = 0, rc = 0, tcol = -1;
    char *line = NULL, *cells[MAX_COLS + 1];
    size_t cap = 0;
    long lineno = 0;
    if (o->time_format && strcmp(o->time_format, "auto") != 0) {
        if (caltime_format_parse(o->time_format, &fmt)) {
            rc = fail(err, errlen, -EINVAL,
                      "--time-format must be auto, iso, unix_s or unix_ms, got \"%s\"",
                      o->time_format);
            goto out;
        }
        have_fmt = 1;
    }
    if (o->tz && caltime_zone_open(&zone, o->tz)) {
        rc = fail(err, errlen, -EINVAL,
                  "--tz must be an IANA zone in the system's zoneinfo (Europe/Berlin), got \"%s\"",
                  o->tz);
        goto out;
    }
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *l = line;
        if (lineno == 1 && (unsigned char)l[0] == 0xEF && (unsigned char)l[1] == 0xBB &&
            (unsigned char)l[2] == 0xBF)
            l += 3;
        /* a NUL byte ends the C string early: the cells after it were silently lost */
        if (memchr(l, '\0', (size_t)(len - (l - line)))) {
            rc = fail(err, errlen, -EINVAL, "%s:%ld: NUL byte in the line (not a text CSV)", o->csv,
                      lineno);
            goto out;
        }
        if (strspn(l, " \t\r\n") == strlen(l))
            continue;
        /* one cell more than allowed: a 65th column was silently dropped (with its data) */
        size_t nc = profile_csv_split(l, cells, MAX_COLS + 1);
        if (nc > MAX_COLS) {
            rc = fail(err, errlen, -EINVAL, "%s:%ld: more than %d columns", o->csv, lineno,
                      MAX_COLS);
            goto out;
        }
        if (r->ncols == 0) {
            for (size_t c = 0; c < nc; c++) {
                if (!*cells[c] || col_of(r, cells[c]) >= 0) {
                    rc = fail(err, errlen, -EINVAL, "%s:%ld: %s column name \"%s\"", o->csv, lineno,
                              *cells[c] ? "duplicate" : "empty", cells[c]);
                    goto out;
                }
                if (!(r->names[c] = strdup(cells[c]))) {
                    rc = -ENOMEM;
                    goto out;
                }
                r->ncols = c + 1;
                for (size_t k = 0; k < 4 && tcol < 0; k++)
                    if (strcmp(cells[c], time_names[k]) == 0)
                        tcol = (int)c;
            }
            if (tcol < 0) {
                rc = fail(err, errlen, -EINVAL,
                          "%s:%ld: no time column: name one time, timestamp, unix_s or unix_ms",
                          o->csv, lineno);
                goto out;
            }
            if (!have_fmt && strncmp(r->names[tcol], "unix_", 5) == 0) {
                caltime_format_parse(r->names[tcol], &fmt);
                have_fmt = 1;
            }
            continue;
        }
        if (nc != r->ncols) {
            rc = fail(err, errlen, -EINVAL, "%s:%ld: expected %zu cells as in the header, got %zu",
                      o->csv, lineno, r->ncols, nc);
            goto out;
        }
        if (r->n == r->cap && (rc = grow(r)))
            goto out;
        int64_t t;
        int trc = caltime_parse_stamp(cells[tcol], fmt, zone.open ? &zone : NULL,
                                      r->n ? r->t[r->n - 1] : INT64_MIN, &t);
        if (trc == -EDOM) {
            rc = fail(err, errlen, -EINVAL,
                      "%s:%ld: time \"%.64s\" has no UTC offset: give the zone with --tz "
                      "(Europe/Berlin)",
                      o->csv, lineno, cells[tcol]);
            goto out;
        }
        if (trc) {
            rc =
                fail(err, errlen, -EINVAL, "%s:%ld: time must be %s, got \"%.64s\"", o->csv, lineno,
                     trc == -ERANGE           ? "a wall-clock time that exists in the zone"
                     : !have_fmt              ? "an ISO 8601 instant"
                     : fmt == CALTIME_UNIX_S  ? "Unix seconds (in the years 0000..9999)"
                     : fmt == CALTIME_UNIX_MS ? "Unix milliseconds (in the years 0000..9999)"
                                              : "an ISO 8601 instant",
                     cells[tcol]);
            goto out;
        }
        if (r->n && t <= r->t[r->n - 1]) {
            rc = fail(err, errlen, -EINVAL,
                      "%s:%ld: times must be strictly increasing, got \"%.64s\"", o->csv, lineno,
                      cells[tcol]);
            goto out;
        }
        r->t[r->n] = t;
        for (size_t c = 0; c < r->ncols; c++) {
            if ((int)c == tcol) {
                r->v[c][r->n] = NAN;
                continue;
            }
            int crc = cell_number(cells[c], &r->v[c][r->n]);
            if (crc) {
                rc = fail(err, errlen, -EINVAL,
                          crc == -ERANGE
                              ? "%s:%ld: %s must be below 1e12 in magnitude, got \"%.64s\""
                              : "%s:%ld: %s must be a number (or empty for a missing "
                                "sample), got \"%.64s\"",
                          o->csv, lineno, r->names[c], cells[c]);
                goto out;
            }
        }
        r->n++;
    }
    if (r->n < 2)
        rc = fail(err, errlen, -EINVAL, "%s: %s", o->csv,
                  r->ncols ? "at least two rows of records are needed"
                           : "empty file, a header is required");
out:
    *tcol_out = tcol;
    caltime_zone_close(&zone);
    free(line);
    fclose(f);
    return rc;
}

/* ---- the site's series ------------------------------------------------------------------- */

struct battery {
    char id[64];
    int wcol, soccol; /* record columns; soccol -1 = none */
    double max_w, capacity_wh, soc_init;
};

struct site {
    int grid, pv, evse, boiler, load; /* record columns, -1 = absent */
    size_t n_bats;
    struct battery bats[MAX_BATS];
};

static int classify(const struct records *r, int tcol, struct site *s, FILE *report, char *err,
                    size_t errlen, const char *file)
{
    memset(s, 0, sizeof *s);
    s->grid = col_of(r, "grid_w");
    s->pv = col_of(r, "pv_w");
    s->evse = col_of(r, "evse_w");
    s->boiler = col_of(r, "boiler_w");
    s->load = col_of(r, "load_w");
    if (s->grid < 0)
        return fail(err, errlen, -EINVAL, "%s: no grid_w column (the grid meter, + import)", file);
    int single = col_of(r, "battery_w");
    if (single >= 0) {
        struct battery *b = &s->bats[s->n_bats++];
        snprintf(b->id, sizeof b->id, "bat-1");
        b->wcol = single;
        b->soccol = col_of(r, "soc");
    }
    static const char *const known[] = {"grid_w", "pv_w",      "evse_w", "boiler_w",
                                        "load_w", "battery_w", "soc"};
    for (size_t c = 0; c < r->ncols; c++) {
        const char *nm = r->names[c];
        size_t len = strlen(nm);
        int is_known = (int)c == tcol;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            is_known |= strcmp(nm, known[k]) == 0;
        if (is_known)
            continue;
        if (len > 2 && strcmp(nm + len - 2, "_w") == 0) {
            if (single >= 0)
                return fail(err, errlen, -EINVAL,
                            "%s: column \"%s\" next to battery_w: name every battery <id>_w, or "
                            "use battery_w alone",
                            file, nm);
            if (s->n_bats == MAX_BATS || len - 2 >= sizeof s->bats[0].id)
                return fail(err, errlen, -EINVAL,
                            "%s: column \"%s\": at most %d batteries, ids "
                            "shorter than 64 characters",
                            file, nm, MAX_BATS);
            struct battery *b = &s->bats[s->n_bats++];
            snprintf(b->id, sizeof b->id, "%.*s", (int)(len - 2), nm);
            char soc[80];
            snprintf(soc, sizeof soc, "%s_soc", b->id);
            b->wcol = (int)c;
            b->soccol = col_of(r, soc);
            continue;
        }
        if (len > 4 && strcmp(nm + len - 4, "_soc") == 0) {
            char w[80];
            snprintf(w, sizeof w, "%.*s_w", (int)(len - 4), nm);
            if (col_of(r, w) >= 0)
                continue;
        }
        fprintf(report, "import: ignored column \"%s\" (not a series the importer knows)\n", nm);
    }
    return 0;
}

static double col(const struct records *r, int c, size_t i)
{
    return c < 0 ? 0.0 : r->v[c][i];
}

/* load = grid - evse - boiler + pv + battery; NAN where any term is missing. */
static void derive_load(const struct records *r, const struct site *s, double *load,
                        size_t *negative)
{
    *negative = 0;
    for (size_t i = 0; i < r->n; i++) {
        double l =
            col(r, s->grid, i) - col(r, s->evse, i) - col(r, s->boiler, i) + col(r, s->pv, i);
        for (size_t b = 0; b < s->n_bats; b++)
            l += r->v[s->bats[b].wcol][i];
        load[i] = l;
        if (l < 0)
            (*negative)++;
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t median_interval(const struct records *r)
{
    int64_t *d = malloc((r->n - 1) * sizeof *d);
    if (!d)
        return -1;
    for (size_t i = 1; i < r->n; i++)
        d[i - 1] = r->t[i] - r->t[i - 1];
    /* qsort, not an insertion sort: irregular intervals made that quadratic (200 000 records
     * with jittered intervals ran past 30 s; a million, hours) */
    qsort(d, r->n - 1, sizeof *d, cmp_i64);
    int64_t m = d[(r->n - 1) / 2];
    free(d);
    return m;
}

/* Writes one profile CSV (time in s from t0, value) with gaps filled, and reports them. */
static int write_series(const struct import_opts *o, const struct records *r, const char *name,
                        const double *v, int64_t t0, int64_t interval, FILE *report, char *err,
                        size_t errlen)
{
    char path[1200], tb[40], db[32], lb[32];
    snprintf(path, sizeof path, "%s/%s.csv", o->out_dir, name);
    size_t first = r->n, last = 0, gaps = 0;
    int64_t longest = 0, longest_at = 0;
    for (size_t i = 0; i < r->n; i++)
        if (!isnan(v[i])) {
            if (first == r->n)
                first = i;
            last = i;
        }
    if (first == r->n)
        return fail(err, errlen, -EINVAL, "%s: column for %s has no samples", o->csv, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return fail(err, errlen, -EIO, "%s: %s", path, strerror(errno));
    fprintf(f, "time,%s\n", name);
    char num[FMTNUM_MAX], tnum[FMTNUM_MAX];
    /* missing at the start: the first present value from t0 (counted as a gap) */
    if (first > 0) {
        gaps++;
        longest = r->t[first] - t0;
        longest_at = t0;
        fmt_fixed(num, v[first], 3);
        fprintf(f, "0.000,%s\n", num);
    }
    size_t prev = first;
    for (size_t i = first; i <= last; i++) {
        if (isnan(v[i]))
            continue;
        int64_t gap = r->t[i] - r->t[prev];
        if (i > first && gap * 2 > interval * 3) {
            gaps++;
            if (gap > longest) {
                longest = gap;
                longest_at = r->t[prev];
            }
            if (o->max_gap_ms > 0 && gap > o->max_gap_ms) {
                fclose(f);
                return fail(err, errlen, -EINVAL,
                            "%s: %s has a gap of %s from %s, longer than --max-gap %s", o->csv,
                            name, duration_format(gap, db, sizeof db),
                            caltime_format(r->t[prev], tb, sizeof tb),
                            duration_format(o->max_gap_ms, lb, sizeof lb));
            }
            if (gap > o->linear_gap_ms) { /* hold the last value until just before the next */
                fmt_fixed(tnum, (double)(r->t[i] - 1 - t0) / 1000.0, 3);
                fmt_fixed(num, v[prev], 3);
                fprintf(f, "%s,%s\n", tnum, num);
            }
        }
        fmt_fixed(tnum, (double)(r->t[i] - t0) / 1000.0, 3);
        fmt_fixed(num, v[i], 3);
        fprintf(f, "%s,%s\n", tnum, num);
        prev = i;
    }
    if (last < r->n - 1) { /* missing at the end: the last value holds */
        gaps++;
        if (r->t[r->n - 1] - r->t[last] > longest) {
            longest = r->t[r->n - 1] - r->t[last];
            longest_at = r->t[last];
        }
        fmt_fixed(tnum, (double)(r->t[r->n - 1] - t0) / 1000.0, 3);
        fmt_fixed(num, v[last], 3);
        fprintf(f, "%s,%s\n", tnum, num);
    }
    if (fclose(f) != 0)
        return fail(err, errlen, -EIO, "%s: write failed", path);
    if (gaps)
        fprintf(report, "import: %s: %zu gaps, longest %s at %s\n", name, gaps,
                duration_format(longest, db, sizeof db), caltime_format(longest_at, tb, sizeof tb));
    else
        fprintf(report, "import: %s: no gaps\n", name);
    return 0;
}

/* Capacity (Wh) from the battery's energy against its SoC: the least-squares slope of the
 * cumulative energy charged over the SoC (losses included, so about 5 % high or low). */
static int estimate_capacity(const struct records *r, struct battery *b, double *cap_wh,
                             double *soc_range)
{
    double e = 0, se = 0, ss = 0, see = 0, sse = 0, n = 0, lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < r->n; i++) {
        if (i > 0 && !isnan(r->v[b->wcol][i - 1]))
            e -= r->v[b->wcol][i - 1] * (double)(r->t[i] - r->t[i - 1]) / 3600000.0;
        double s = r->v[b->soccol][i];
        if (isnan(s))
            continue;
        lo = fmin(lo, s);
        hi = fmax(hi, s);
        se += e;
        ss += s;
        see += s * s;
        sse += s * e;
        n++;
    }
    *soc_range = hi - lo;
    double var = see - ss * ss / n;
    if (n < 2 || *soc_range < 0.05 || var <= 0)
        return -EINVAL;
    *cap_wh = (sse - ss * se / n) / var;
    return *cap_wh > 0 ? 0 : -EINVAL;
}

static double first_present(const struct records *r, int c)
{
    for (size_t i = 0; c >= 0 && i < r->n; i++)
        if (!isnan(r->v[c][i]))
            return r->v[c][i];
    return NAN;
}

static double max_abs(const struct records *r, int c)
{
    double m = 0;
    for (size_t i = 0; i < r->n; i++)
        if (!isnan(r->v[c][i]))
            m = fmax(m, fabs(r->v[c][i]));
    return m;
}

/* kW rounded up to 0.1 kW, at least 0.1: a rating the recorded power never exceeds. */
static double rating_kw(double w)
{
    double kw = ceil(w / 100.0) / 10.0;
    return kw < 0.1 ? 0.1 : kw;
}

/* A column of field.csv: a record column, or -2 = the derived load, -3 = the batteries' sum,
 * -4 = their mean SoC. */
struct out_col {
    char name[80];
    int c;
};

static void add_col(struct out_col *out, size_t *no, const char *name, int c)
{
    snprintf(out[*no].name, sizeof out[*no].name, "%s", name);
    out[(*no)++].c = c;
}

/* field.csv: the records in site signs, seconds from the start, empty cells kept. */
static int write_field(const struct import_opts *o, const struct records *r, const struct site *s,
                       const double *load, int64_t t0, cJSON *cols, char *err, size_t errlen)
{
    char path[1200], num[FMTNUM_MAX];
    snprintf(path, sizeof path, "%s/field.csv", o->out_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return fail(err, errlen, -EIO, "%s: %s", path, strerror(errno));
    struct out_col out[MAX_COLS + 8];
    size_t no = 0;
    add_col(out, &no, "grid_w", s->grid);
    if (s->pv >= 0)
        add_col(out, &no, "pv_w", s->pv);
    if (s->n_bats)
        add_col(out, &no, "battery_w", -3);
    int any_soc = 0;
    for (size_t b = 0; b < s->n_bats; b++)
        any_soc |= s->bats[b].soccol >= 0;
    if (any_soc)
        add_col(out, &no, "soc", -4);
    add_col(out, &no, "load_w", s->load >= 0 ? s->load : -2);
    if (s->evse >= 0)
        add_col(out, &no, "evse_w", s->evse);
    if (s->boiler >= 0)
        add_col(out, &no, "boiler_w", s->boiler);
    for (size_t b = 0; s->n_bats > 1 && b < s->n_bats; b++) {
        char nm[80];
        snprintf(nm, sizeof nm, "battery_w.%s", s->bats[b].id);
        add_col(out, &no, nm, s->bats[b].wcol);
        if (s->bats[b].soccol >= 0) {
            snprintf(nm, sizeof nm, "soc.%s", s->bats[b].id);
            add_col(out, &no, nm, s->bats[b].soccol);
        }
    }
    fputs("time", f);
    for (size_t k = 0; k < no; k++) {
        fprintf(f, ",%s", out[k].name);
        cJSON_AddStringToObject(cols, out[k].name, out[k].name);
    }
    fputc('\n', f);
    for (size_t i = 0; i < r->n; i++) {
        fmt_fixed(num, (double)(r->t[i] - t0) / 1000.0, 3);
        fputs(num, f);
        for (size_t k = 0; k < no; k++) {
            double v = NAN;
            if (out[k].c >= 0)
                v = r->v[out[k].c][i];
            else if (out[k].c == -2)
                v = load[i];
            else if (out[k].c == -3 || out[k].c == -4) {
                double sum = 0, nn = 0;
                for (size_t b = 0; b < s->n_bats; b++) {
                    int c = out[k].c == -3 ? s->bats[b].wcol : s->bats[b].soccol;
                    if (c < 0)
                        continue;
                    sum += r->v[c][i]; /* NAN propagates: a missing term is a missing sum */
                    nn++;
                }
                v = out[k].c == -3 ? sum : sum / nn;
            }
            fputc(',', f);
            if (!isnan(v)) {
                fmt_fixed(num, v, out[k].c == -4 || strncmp(out[k].name, "soc", 3) == 0 ? 4 : 3);
                fputs(num, f);
            }
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0)
        return fail(err, errlen, -EIO, "%s: write failed", path);
    return 0;
}

static cJSON *csv_profile(const char *name)
{
    char file[80];
    cJSON *p = cJSON_CreateObject();
    snprintf(file, sizeof file, "%s.csv", name);
    cJSON_AddStringToObject(p, "type", "csv");
    cJSON_AddStringToObject(p, "file", file);
    cJSON_AddStringToObject(p, "time_column", "time");
    cJSON_AddStringToObject(p, "value_column", name);
    return p;
}

static cJSON *asset(const char *id, const char *type)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "id", id);
    cJSON_AddStringToObject(a, "type", type);
    return a;
}

static int write_json(const char *path, const cJSON *doc, char *err, size_t errlen)
{
    char *txt = cJSON_Print(doc);
    if (!txt)
        return -ENOMEM;
    FILE *f = fopen(path, "w");
    if (!f) {
        free(txt);
        return fail(err, errlen, -EIO, "%s: %s", path, strerror(errno));
    }
    fputs(txt, f);
    fputc('\n', f);
    free(txt);
    return fclose(f) == 0 ? 0 : fail(err, errlen, -EIO, "%s: write failed", path);
}

/* ---- a headend export's site.json ------------------------------------------------------ */

static cJSON *read_json(const char *path, char *err, size_t errlen, int *rc)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    *rc = 0;
    if (!f) {
        *rc = fail(err, errlen, -ENOENT, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);
            if (!nb) {
                free(buf);
                fclose(f);
                *rc = -ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    cJSON *doc = cJSON_Parse(buf);
    free(buf);
    if (!doc || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "assets")))
        *rc = fail(err, errlen, -EINVAL, "%s: not a der-headend export site.json (no \"assets\")",
                   path);
    if (*rc) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The export's asset whose power went to records column `col`, or NULL. */
static const cJSON *asset_of_column(const cJSON *site, const char *col)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(
                              site, "assets")) if (strcmp(jstr(a, "column"), col) == 0) return a;
    return NULL;
}

/* The scenario asset that stands for export asset `id`: its id, or NULL when not replayed. */
static const cJSON *scenario_asset(const cJSON *assets, const char *id)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, assets) if (strcmp(jstr(a, "id"), id) == 0) return a;
    return NULL;
}

/* A duration string of ms rounded up to whole steps (events want at least one step). */
static const char *steps_dur(int64_t ms, int64_t step, char *buf, size_t len)
{
    int64_t n = (ms + step - 1) / step;
    return duration_format((n < 1 ? 1 : n) * step, buf, len);
}

/* The gateway's sessions with the headend: a gap between one session's end and the next one's
 * start is a span the uplink was down, replayed as a `headend_outage` event (and the headend
 * in the loop, which such an event needs), so that dispatches sent meanwhile reach the replay's
 * gateway late, as they reached the site. Gaps shorter than a step, and the time before the
 * first session or after the last, are not outages. Returns the number of events added. */
static int add_link_outages(const cJSON *site, cJSON *doc, cJSON *events, int64_t t0,
                            int64_t duration, int64_t step)
{
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(site, "sessions"), *x;
    int n = cJSON_GetArraySize(ss), k = 0, added = 0;
    int64_t *se = n > 0 ? calloc((size_t)n, 2 * sizeof *se) : NULL;
    if (!se)
        return 0;
    cJSON_ArrayForEach(x, ss)
    { /* started, ended pairs, sorted by start (the export lists them newest first) */
        se[2 * k] = (int64_t)jnum(x, "started_ms");
        se[2 * k + 1] = jnum(x, "ended_ms") > 0 ? (int64_t)jnum(x, "ended_ms") : INT64_MAX;
        k++;
    }
    qsort(se, (size_t)n, 2 * sizeof *se, cmp_i64);
    char b1[32], b2[32];
    for (int i = 0; i + 1 < n; i++) {
        int64_t from = se[2 * i + 1] - t0, to = se[2 * (i + 1)] - t0;
        if (from < 0 || to <= from || from >= duration)
            continue;
        from = (from + step - 1) / step * step; /* the first whole step without a stream */
        if (to > duration)
            to = duration;
        if (to - from < step)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "at", duration_format(from, b1, sizeof b1));
        cJSON_AddStringToObject(e, "type", "headend_outage");
        cJSON_AddStringToObject(e, "duration", steps_dur(to - from, step, b2, sizeof b2));
        cJSON_AddItemToArray(events, e);
        added++;
    }
    free(se);
    if (added && !cJSON_GetObjectItemCaseSensitive(doc, "headend"))
        cJSON_AddItemToObject(doc, "headend", cJSON_CreateObject());
    return added;
}

/* Dispatches that reached the gateway become dispatch events with their TTLs; offline spans
 * become "offline" faults of the asset. Those outside the run, or of assets the replay does
 * not have, are reported and left out. */
static void add_site_events(const cJSON *site, cJSON *doc, const cJSON *assets, int64_t t0,
                            int64_t duration, int64_t step, FILE *report)
{
    cJSON *events = cJSON_AddArrayToObject(doc, "events");
    const cJSON *d;
    char b1[32], b2[32];
    size_t skipped = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(site, "dispatches"))
    {
        const char *asset = jstr(d, "asset_id");
        int64_t at = (int64_t)jnum(d, "created_ms") - t0;
        int64_t ttl = ((int64_t)jnum(d, "expires_ms") - (int64_t)jnum(d, "created_ms")) / 1000;
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "reached")) || at < 0 ||
            at >= duration || (*asset && !scenario_asset(assets, asset))) {
            skipped++;
            continue;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "at", duration_format(at / step * step, b1, sizeof b1));
        cJSON_AddStringToObject(e, "type", "dispatch");
        if (*asset)
            cJSON_AddStringToObject(e, "asset", asset);
        cJSON_AddNumberToObject(e, "power_w", jnum(d, "power_w"));
        cJSON_AddStringToObject(e, "ttl",
                                duration_format((ttl < 1 ? 1 : ttl) * 1000, b2, sizeof b2));
        cJSON_AddItemToArray(events, e);
    }
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(site, "offline"))
    {
        const char *asset = jstr(d, "asset_id");
        int64_t at = (int64_t)jnum(d, "from_ms") - t0, to = (int64_t)jnum(d, "to_ms") - t0;
        if (at < 0)
            at = 0;
        if (to > duration)
            to = duration;
        if (at >= duration || to <= at || !scenario_asset(assets, asset)) {
            skipped++;
            continue;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "at", duration_format(at / step * step, b1, sizeof b1));
        cJSON_AddStringToObject(e, "duration",
                                steps_dur(to - at / step * step, step, b2, sizeof b2));
        cJSON_AddStringToObject(e, "type", "fault");
        cJSON_AddStringToObject(e, "asset", asset);
        cJSON_AddStringToObject(e, "fault", "offline");
        cJSON_AddItemToArray(events, e);
    }
    int n_outages = add_link_outages(site, doc, events, t0, duration, step);
    fprintf(report,
            "import: %d events from the export (dispatches that reached the gateway, offline "
            "spans, %d uplink outages), %zu left out (not reached, outside the run, or an asset "
            "not replayed)\n",
            cJSON_GetArraySize(events), n_outages, skipped);
}

int import_records(const struct import_opts *o, FILE *report, char *err, size_t errlen)
{
    struct records r = {0};
    struct site s;
    double *load = NULL;
    cJSON *doc = NULL, *sj = NULL;
    int tcol = -1, rc;
    char tb[40], db[32], path[1200];
    if (o->step_ms <= 0)
        return fail(err, errlen, -EINVAL, "--step must be > 0");
    if (o->site_json && !(sj = read_json(o->site_json, err, errlen, &rc)))
        return rc;
    if ((rc = read_records(o, &r, &tcol, err, errlen)) ||
        (rc = classify(&r, tcol, &s, report, err, errlen, o->csv)))
        goto out;
    if (mkdir(o->out_dir, 0777) != 0 && errno != EEXIST) {
        rc = fail(err, errlen, -EIO, "%s: %s", o->out_dir, strerror(errno));
        goto out;
    }
    int64_t t0 = r.t[0], span = r.t[r.n - 1] - t0, interval = median_interval(&r);
    int64_t duration = span / o->step_ms * o->step_ms;
    if (interval < 0) {
        rc = -ENOMEM;
        goto out;
    }
    if (duration < o->step_ms) {
        rc = fail(err, errlen, -EINVAL, "%s: the records span %s, shorter than one step", o->csv,
                  duration_format(span, db, sizeof db));
        goto out;
    }
    fprintf(report, "import: %zu records from %s, every %s (median), span %s\n", r.n,
            caltime_format(t0, tb, sizeof tb), duration_format(interval, db, sizeof db),
            duration_format(span, path, sizeof path));
    if (!(load = malloc(r.n * sizeof *load))) {
        rc = -ENOMEM;
        goto out;
    }
    if (s.load >= 0) {
        memcpy(load, r.v[s.load], r.n * sizeof *load);
        fprintf(report, "import: load_w as recorded\n");
    } else {
        size_t neg;
        derive_load(&r, &s, load, &neg);
        fprintf(report,
                "import: load_w derived from the balance (grid - evse - boiler + pv + battery)%s",
                neg ? "" : "\n");
        if (neg)
            fprintf(report, ", negative in %zu samples (meters read at different instants)\n", neg);
    }

    doc = cJSON_CreateObject();
    cJSON *profiles = cJSON_CreateObject(), *sites = cJSON_CreateArray(),
          *site = cJSON_CreateObject(), *assets = cJSON_CreateArray(), *gw = cJSON_CreateObject(),
          *field = cJSON_CreateObject(), *fcols = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "name", o->name ? o->name : "import");
    cJSON_AddStringToObject(doc, "description", "Imported from field records (der-sim import).");
    cJSON_AddNumberToObject(doc, "seed", 1);
    cJSON_AddStringToObject(doc, "start", caltime_format(t0, tb, sizeof tb));
    if (o->tz) /* the site's clock for the report's time axes (the run stays in UTC) */
        cJSON_AddStringToObject(doc, "timezone", o->tz);
    cJSON_AddStringToObject(doc, "duration", duration_format(duration, db, sizeof db));
    cJSON_AddStringToObject(doc, "step", duration_format(o->step_ms, db, sizeof db));
    cJSON_AddItemToObject(doc, "profiles", profiles);
    cJSON_AddItemToObject(doc, "sites", sites);
    /* attached now, filled below: the document owns them on every path, errors included */
    cJSON_AddItemToObject(doc, "gateway", gw);
    cJSON_AddItemToObject(doc, "field", field);
    cJSON_AddStringToObject(field, "csv", "field.csv");
    cJSON_AddItemToObject(field, "columns", fcols);
    cJSON_AddItemToArray(sites, site);
    cJSON_AddStringToObject(site, "id", "site");
    cJSON_AddItemToObject(site, "assets", assets);
    const cJSON *gm = sj ? asset_of_column(sj, "grid_w") : NULL,
                *pvm = sj ? asset_of_column(sj, "pv_w") : NULL;
    cJSON *grid = asset(gm ? jstr(gm, "id") : "grid", "meter");
    cJSON_AddStringToObject(grid, "role", "grid");
    cJSON_AddItemToArray(assets, grid);

    for (size_t b = 0; b < s.n_bats; b++) {
        struct battery *bt = &s.bats[b];
        char wcol[80];
        snprintf(wcol, sizeof wcol, "%s_w", bt->id);
        const cJSON *ex = sj ? asset_of_column(sj, wcol) : NULL;
        double cap_wh = o->capacity_kwh > 0 ? o->capacity_kwh * 1000.0 : NAN, range = 0;
        if (ex && !(o->capacity_kwh > 0) && jnum(ex, "capacity_wh") > 0) {
            cap_wh = jnum(ex, "capacity_wh");
            fprintf(report, "import: battery %s: capacity %.1f kWh from the export\n", bt->id,
                    cap_wh / 1000.0);
        } else if (!(o->capacity_kwh > 0)) {
            if (bt->soccol < 0 || estimate_capacity(&r, bt, &cap_wh, &range)) {
                rc = fail(err, errlen, -EINVAL,
                          "%s: battery %s: cannot estimate its capacity (%s): give --capacity-kwh",
                          o->csv, bt->id, bt->soccol < 0 ? "no SoC column" : "SoC range below 5 %");
                goto out;
            }
            fprintf(report, "import: battery %s: capacity %.1f kWh estimated from %.0f %% of SoC\n",
                    bt->id, cap_wh / 1000.0, range * 100.0);
        }
        double soc0 = bt->soccol >= 0 ? first_present(&r, bt->soccol) : 0.5;
        if (soc0 > 1.0 && soc0 <= 100.0) {
            rc = fail(err, errlen, -EINVAL, "%s: SoC column of %s must be a fraction 0..1, got %g",
                      o->csv, bt->id, soc0);
            goto out;
        }
        cJSON *a = asset(bt->id, "battery");
        double kw = rating_kw(max_abs(&r, bt->wcol)), ch = kw, dis = kw;
        if (ex && jnum(ex, "min_power_w") < 0 && jnum(ex, "max_power_w") > 0) {
            ch = fmax(kw, rating_kw(-jnum(ex, "min_power_w"))); /* the registered limits */
            dis = fmax(kw, rating_kw(jnum(ex, "max_power_w")));
        }
        cJSON_AddNumberToObject(a, "capacity_kwh", round(cap_wh / 100.0) / 10.0);
        cJSON_AddNumberToObject(a, "soc_init", isnan(soc0) ? 0.5 : round(soc0 * 1e4) / 1e4);
        cJSON_AddNumberToObject(a, "max_charge_kw", ch);
        cJSON_AddNumberToObject(a, "max_discharge_kw", dis);
        cJSON_AddItemToArray(assets, a);
    }
    if (s.pv >= 0) {
        if ((rc = write_series(o, &r, "pv", r.v[s.pv], t0, interval, report, err, errlen)))
            goto out;
        cJSON_AddItemToObject(profiles, "pv", csv_profile("pv"));
        cJSON *a = asset(pvm ? jstr(pvm, "id") : "pv-1", "pv");
        double kw = rating_kw(max_abs(&r, s.pv));
        if (pvm && jnum(pvm, "max_power_w") > 0)
            kw = fmax(kw, rating_kw(jnum(pvm, "max_power_w")));
        cJSON_AddNumberToObject(a, "peak_kw", kw);
        cJSON_AddStringToObject(a, "power_profile", "pv");
        cJSON_AddItemToArray(assets, a);
    }
    if ((rc = write_series(o, &r, "load", load, t0, interval, report, err, errlen)))
        goto out;
    cJSON_AddItemToObject(profiles, "load", csv_profile("load"));
    cJSON *la = asset("site-load", "load");
    cJSON_AddStringToObject(la, "profile", "load");
    cJSON_AddItemToArray(assets, la);
    /* EVSE and boiler power as recorded: the records hold what they drew, not the cars'
     * sessions or the tank's state, so the replay plays them as loads. */
    static const char *const extra[] = {"evse", "boiler"};
    const int extra_col[] = {s.evse, s.boiler};
    for (size_t k = 0; k < 2; k++) {
        if (extra_col[k] < 0)
            continue;
        char id[32];
        if ((rc = write_series(o, &r, extra[k], r.v[extra_col[k]], t0, interval, report, err,
                               errlen)))
            goto out;
        cJSON_AddItemToObject(profiles, extra[k], csv_profile(extra[k]));
        snprintf(id, sizeof id, "%s-load", extra[k]);
        cJSON *a = asset(id, "load");
        cJSON_AddStringToObject(a, "profile", extra[k]);
        cJSON_AddItemToArray(assets, a);
    }
    cJSON_AddStringToObject(gw, "strategy", o->strategy ? o->strategy : "net_zero");
    cJSON_AddStringToObject(gw, "poll_period", "1s");
    if (sj)
        add_site_events(sj, doc, assets, t0, duration, o->step_ms, report);
    if ((rc = write_field(o, &r, &s, load, t0, fcols, err, errlen)))
        goto out;
    snprintf(path, sizeof path, "%s/scenario.json", o->out_dir);
    if ((rc = write_json(path, doc, err, errlen)))
        goto out;
    fprintf(report, "import: wrote %s (%s from %s)\n", path,
            duration_format(duration, db, sizeof db), caltime_format(t0, tb, sizeof tb));
out:
    cJSON_Delete(sj);
    cJSON_Delete(doc);
    free(load);
    records_free(&r);
    return rc;
}
