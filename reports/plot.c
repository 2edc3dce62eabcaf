/* plot: see plot.h.
 *
 * Each plot is a row of a table (its series name columns of data.csv) and is drawn by its own
 * gnuplot process: gnuplot stops a script at the first error, and a plot whose every point is
 * undefined is an error, so one missing device must not cost the other plots. Series whose
 * column holds no number at all (no boiler, no price) are left out before gnuplot sees them.
 * PNG uses pngcairo when this gnuplot has it (anti-aliased), else the libgd png terminal. */
#define _GNU_SOURCE
#include "reports/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- the recorder ---------------------------------------------------------------------------- */

#define F(x) offsetof(struct plot_point, x)
static const struct column {
    const char *name;
    size_t off;
    int mean; /* 1: averaged over the sample period (powers); 2, 3: its lowest, highest step; 0:
               * the value at its end */
} columns[] = {
    {"grid_w", F(grid_w), 1},
    {"grid_w_min", F(grid_w), 2},
    {"grid_w_max", F(grid_w), 3},
    {"battery_w_min", F(battery_w), 2},
    {"battery_w_max", F(battery_w), 3},
    {"pv_w", F(pv_w), 1},
    {"battery_w", F(battery_w), 1},
    {"load_w", F(load_w), 1},
    {"evse_w", F(evse_w), 1},
    {"boiler_w", F(boiler_w), 1},
    {"soc", F(soc), 0},
    {"soc_floor", F(soc_floor), 0},
    {"soc_ceiling", F(soc_ceiling), 0},
    {"grid_limit_w", F(grid_limit_w), 0},
    {"import_15m_w", F(import_15m_w), 0},
    {"import_price", F(import_price), 0},
    {"export_price", F(export_price), 0},
    {"ev_cars", F(ev_cars), 0},
    {"boiler_temp_c", F(boiler_temp_c), 0},
    {"boiler_min_c", F(boiler_min_c), 0},
    {"target_w", F(target_w), 0},
    {"error_w", F(error_w), 0},
    {"p_w", F(p_w), 0},
    {"i_w", F(i_w), 0},
    {"d_w", F(d_w), 0},
    {"raw_w", F(raw_w), 0},
    {"field_grid_w", F(field_grid_w), 1},
    {"field_soc", F(field_soc), 0},
    {"field_battery_w", F(field_battery_w), 1},
    {"bat1_w", F(bat_w[0]), 1},
    {"bat2_w", F(bat_w[1]), 1},
    {"bat3_w", F(bat_w[2]), 1},
    {"bat4_w", F(bat_w[3]), 1},
    {"bat1_soc", F(bat_soc[0]), 0},
    {"bat2_soc", F(bat_soc[1]), 0},
    {"bat3_soc", F(bat_soc[2]), 0},
    {"bat4_soc", F(bat_soc[3]), 0},
};
_Static_assert(PLOT_BATTERIES == 4, "one column per battery above");
#undef F
#define N_COLUMNS (sizeof columns / sizeof columns[0])

struct plot_rec {
    FILE *f;
    int64_t sample_ms;
    int64_t acc_ms;
    double sum[N_COLUMNS];
};

static double field(const struct plot_point *p, size_t i)
{
    /* cppcheck-suppress invalidPointerCast ; off is an offsetof() of a double member */
    return *(const double *)((const char *)p + columns[i].off);
}

int64_t plot_sample_ms(int64_t duration_ms, int64_t step_ms)
{
    int64_t want = duration_ms / 3000;
    if (want <= step_ms)
        return step_ms;
    return (want + step_ms - 1) / step_ms * step_ms;
}

struct plot_rec *plot_rec_open(const char *dir, int64_t sample_ms)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/plots", dir);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return NULL;
    snprintf(path, sizeof path, "%s/plots/data.csv", dir);
    struct plot_rec *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->f = fopen(path, "w");
    if (!r->f) {
        free(r);
        return NULL;
    }
    r->sample_ms = sample_ms > 0 ? sample_ms : 1;
    fputs("time_s", r->f);
    for (size_t i = 0; i < N_COLUMNS; i++)
        fprintf(r->f, ",%s", columns[i].name);
    fputc('\n', r->f);
    return r;
}

void plot_rec_add(struct plot_rec *r, int64_t t_ms, int64_t dt_ms, const struct plot_point *p)
{
    for (size_t i = 0; i < N_COLUMNS; i++) {
        double v = field(p, i);
        if (columns[i].mean == 1)
            r->sum[i] += v * (double)dt_ms;
        else if (columns[i].mean > 1 &&
                 (r->acc_ms == 0 || (columns[i].mean == 2) == (v < r->sum[i])))
            r->sum[i] = v; /* the first step of the row, or a new extreme */
    }
    r->acc_ms += dt_ms;
    if (t_ms % r->sample_ms != 0)
        return;
    fprintf(r->f, "%.3f", t_ms / 1000.0);
    for (size_t i = 0; i < N_COLUMNS; i++) {
        double v = columns[i].mean == 1 ? r->sum[i] / (double)r->acc_ms
                   : columns[i].mean    ? r->sum[i]
                                        : field(p, i);
        if (isfinite(v))
            fprintf(r->f, ",%.6g", v);
        else
            fputs(",nan", r->f);
        r->sum[i] = 0;
    }
    fputc('\n', r->f);
    r->acc_ms = 0;
}

int plot_rec_close(struct plot_rec *r)
{
    if (!r)
        return 0;
    int rc = fclose(r->f) ? -EIO : 0;
    free(r);
    return rc;
}

/* ---- the plots ------------------------------------------------------------------------------- */

struct series {
    const char *col;   /* column of data.csv */
    const char *title; /* legend */
    double scale;
    int y2;            /* on the right axis */
    int baseline;      /* from the baseline run's data.csv */
    const char *style; /* gnuplot "with" clause */
};

struct plot_def {
    const char *name, *caption, *ylabel, *y2label;
    /* columns of which one must hold a non-zero number for the plot to be drawn (a device the
     * site has, a record); NULL = always */
    const char *needs;
    struct series s[8];
};

static const struct plot_def plots[] = {
    {"power",
     "Site power flows (site signs: grid + import, battery + discharge)",
     "power (kW)",
     NULL,
     NULL,
     {{"grid_w", "grid", 1e-3, 0, 0, "lines lw 2 lc rgb '#1f77b4'"},
      {"pv_w", "PV", 1e-3, 0, 0, "lines lw 1.5 lc rgb '#ff7f0e'"},
      {"battery_w", "battery", 1e-3, 0, 0, "lines lw 1.5 lc rgb '#2ca02c'"},
      {"load_w", "load", 1e-3, 0, 0, "lines lw 1 lc rgb '#7f7f7f'"},
      {"evse_w", "EVSE", 1e-3, 0, 0, "lines lw 1 lc rgb '#9467bd'"},
      {"boiler_w", "boiler", 1e-3, 0, 0, "lines lw 1 lc rgb '#d62728'"}}},
    {"soc",
     "Battery state of charge and the gateway's SoC limits",
     "state of charge (%)",
     NULL,
     "soc",
     {{"soc", "SoC", 100, 0, 0, "lines lw 2 lc rgb '#2ca02c'"},
      {"soc_floor", "soc floor", 100, 0, 0, "lines dt 2 lc rgb '#d62728'"},
      {"soc_ceiling", "soc ceiling", 100, 0, 0, "lines dt 2 lc rgb '#ff7f0e'"}}},
    {"grid",
     "Grid import against its limit and the 15-minute peak",
     "grid power (kW)",
     NULL,
     NULL,
     {{"grid_w", "grid (+ import)", 1e-3, 0, 0, "lines lw 1.5 lc rgb '#1f77b4'"},
      {"import_15m_w", "last 15-min mean import", 1e-3, 0, 0, "steps lw 2 lc rgb '#9467bd'"},
      {"grid_limit_w", "import limit", 1e-3, 0, 0, "lines dt 2 lw 2 lc rgb '#d62728'"},
      {"grid_w", "grid, baseline run", 1e-3, 0, 1, "lines lw 1 lc rgb '#aaaaaa'"}}},
    {"price",
     "Energy price against battery power",
     "battery power (kW, + discharge)",
     "price (currency/kWh)",
     "import_price,export_price",
     {{"battery_w", "battery", 1e-3, 0, 0, "lines lw 1.5 lc rgb '#2ca02c'"},
      {"import_price", "import price", 1, 1, 0, "steps lw 2 lc rgb '#d62728'"},
      {"export_price", "export price", 1, 1, 0, "steps lw 2 dt 2 lc rgb '#ff7f0e'"}}},
    {"ev",
     "EV sessions: cars present and charging power",
     "EVSE power (kW)",
     "cars present",
     "evse_w,ev_cars",
     {{"evse_w", "EVSE power", 1e-3, 0, 0, "lines lw 2 lc rgb '#9467bd'"},
      {"ev_cars", "cars present", 1, 1, 0, "steps lw 1.5 dt 2 lc rgb '#7f7f7f'"}}},
    {"boiler",
     "Boiler tank temperature and its comfort minimum",
     "temperature (°C)",
     "boiler power (kW)",
     "boiler_temp_c,boiler_w",
     {{"boiler_temp_c", "tank", 1, 0, 0, "lines lw 2 lc rgb '#d62728'"},
      {"boiler_min_c", "comfort minimum", 1, 0, 0, "lines dt 2 lc rgb '#1f77b4'"},
      {"boiler_w", "boiler power", 1e-3, 1, 0, "lines lw 1 lc rgb '#bbbbbb'"}}},
    {"decision",
     "The strategy's decision terms (DecisionMetrics)",
     "power (W)",
     NULL,
     "target_w,error_w,raw_w",
     {{"target_w", "target", 1, 0, 0, "lines dt 2 lc rgb '#000000'"},
      {"error_w", "error", 1, 0, 0, "lines lw 1 lc rgb '#1f77b4'"},
      {"p_w", "P term", 1, 0, 0, "lines lw 1 lc rgb '#ff7f0e'"},
      {"i_w", "I term", 1, 0, 0, "lines lw 1.5 lc rgb '#2ca02c'"},
      {"d_w", "D term", 1, 0, 0, "lines lw 1 lc rgb '#d62728'"},
      {"raw_w", "output", 1, 0, 0, "lines lw 2 lc rgb '#9467bd'"}}},
    {"batteries",
     "Each battery: power and state of charge (sites with two or more)",
     "battery power (kW, + discharge)",
     "state of charge (%)",
     "bat2_w,bat2_soc",
     {{"bat1_w", "battery 1", 1e-3, 0, 0, "lines lw 1.5 lc rgb '#2ca02c'"},
      {"bat2_w", "battery 2", 1e-3, 0, 0, "lines lw 1.5 lc rgb '#1f77b4'"},
      {"bat3_w", "battery 3", 1e-3, 0, 0, "lines lw 1.5 lc rgb '#9467bd'"},
      {"bat4_w", "battery 4", 1e-3, 0, 0, "lines lw 1.5 lc rgb '#8c564b'"},
      {"bat1_soc", "SoC 1", 100, 1, 0, "lines dt 2 lc rgb '#2ca02c'"},
      {"bat2_soc", "SoC 2", 100, 1, 0, "lines dt 2 lc rgb '#1f77b4'"},
      {"bat3_soc", "SoC 3", 100, 1, 0, "lines dt 2 lc rgb '#9467bd'"},
      {"bat4_soc", "SoC 4", 100, 1, 0, "lines dt 2 lc rgb '#8c564b'"}}},
    {"field",
     "Replay against the field record (scenario \"field\" block)",
     "power (kW)",
     "state of charge (%)",
     "field_grid_w,field_soc,field_battery_w",
     {{"grid_w", "grid, replay", 1e-3, 0, 0, "lines lw 1.5 lc rgb '#1f77b4'"},
      {"field_grid_w", "grid, field", 1e-3, 0, 0, "lines lw 1.5 dt 2 lc rgb '#08306b'"},
      {"battery_w", "battery, replay", 1e-3, 0, 0, "lines lw 1.5 lc rgb '#2ca02c'"},
      {"field_battery_w", "battery, field", 1e-3, 0, 0, "lines lw 1.5 dt 2 lc rgb '#00441b'"},
      {"soc", "SoC, replay", 100, 1, 0, "lines lw 1 lc rgb '#ff7f0e'"},
      {"field_soc", "SoC, field", 100, 1, 0, "lines lw 1 dt 2 lc rgb '#7f2704'"}}},
};
#define N_PLOTS (sizeof plots / sizeof plots[0])

size_t plot_count(void)
{
    return N_PLOTS;
}

const char *plot_name(size_t i)
{
    return i < N_PLOTS ? plots[i].name : NULL;
}

const char *plot_caption(size_t i)
{
    return i < N_PLOTS ? plots[i].caption : NULL;
}

void plot_quote(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Which columns of a data.csv hold at least one number (has bit 1) and one that is not zero
 * (bit 2): index by header position (1-based in gnuplot terms). Returns the number of columns,
 * 0 when the file cannot be read. */
static size_t scan_columns(const char *path, char names[][32], int *has, size_t max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    size_t n = 0;
    if (fgets(line, sizeof line, f)) {
        for (char *save, *tok = strtok_r(line, ",\n", &save); tok && n < max;
             tok = strtok_r(NULL, ",\n", &save)) {
            snprintf(names[n], 32, "%s", tok);
            has[n++] = 0;
        }
    }
    while (fgets(line, sizeof line, f)) {
        size_t c = 0;
        for (char *p = line; c < n; c++) {
            char *end = strpbrk(p, ",\n");
            if (strncmp(p, "nan", 3) && p != end)
                has[c] |= 1 | (strtod(p, NULL) != 0 ? 2 : 0);
            if (!end || *end == '\n')
                break;
            p = end + 1;
        }
    }
    fclose(f);
    return n;
}

static int column_of(char names[][32], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return (int)i + 1;
    return 0;
}

int plot_data_column(const char *data_csv, const char *col, int *has_data)
{
    char names[64][32];
    int has[64];
    size_t n = scan_columns(data_csv, names, has, 64);
    int c = column_of(names, n, col);
    if (has_data)
        *has_data = c && (has[c - 1] & 1);
    return c;
}

/* Whether one of the comma-separated columns `needs` holds a non-zero number. */
static int needed(const char *needs, char names[][32], const int *has, size_t n)
{
    if (!needs)
        return 1;
    char buf[256], *save;
    snprintf(buf, sizeof buf, "%s", needs);
    for (char *c = strtok_r(buf, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        int k = column_of(names, n, c);
        if (k && (has[k - 1] & 2))
            return 1;
    }
    return 0;
}

int plot_run_gnuplot(const char *gnuplot, const char *script, const char *log_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    char *argv[] = {(char *)(gnuplot ? gnuplot : "gnuplot"), (char *)script, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc == ENOENT)
        return -ENOENT;
    if (rc != 0)
        return -EIO;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -EIO;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return -ENOENT;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static void terminal(FILE *f, int svg)
{
    if (svg)
        fputs("set terminal svg size 1100,420 font 'sans,11' background '#ffffff'\nset termoption "
              "noenhanced\n",
              f);
    else
        fputs("if (strstrt(GPVAL_TERMINALS, ' pngcairo ') > 0) {\n"
              "  set terminal pngcairo size 1100,420 font 'sans,10' background '#ffffff'\nset "
              "termoption noenhanced\n"
              "} else {\n  set terminal png size 1100,420\n}\nset termoption noenhanced\n",
              f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The decision terms' y range clipped to their 1st..99th percentiles (plus a margin): one
 * integral wind-up or a startup transient of a hundred kilowatts must not flatten the rest of
 * the plot into a line. Nothing is set when the data is within that range anyway. */
static void clip_terms(FILE *f, const char *data, char names[][32], size_t n,
                       const struct plot_def *p)
{
    int cols[8], nc = 0;
    for (size_t k = 0; k < 8 && p->s[k].col; k++)
        if ((cols[nc] = column_of(names, n, p->s[k].col)))
            nc++;
    FILE *in = fopen(data, "r");
    if (!in || !nc) {
        if (in)
            fclose(in);
        return;
    }
    size_t len = 0, cap = 4096;
    double *v = malloc(cap * sizeof *v);
    char line[4096];
    if (!fgets(line, sizeof line, in))
        line[0] = '\0';
    while (v && fgets(line, sizeof line, in)) {
        int c = 1;
        for (char *q = line; q; q = strchr(q, ','), q = q ? q + 1 : NULL, c++)
            for (int k = 0; k < nc; k++)
                if (cols[k] == c && strncmp(q, "nan", 3)) {
                    if (len == cap) {
                        double *nv = realloc(v, 2 * cap * sizeof *nv);
                        if (!nv)
                            break;
                        v = nv;
                        cap *= 2;
                    }
                    v[len++] = strtod(q, NULL);
                }
    }
    fclose(in);
    if (v && len >= 100) {
        qsort(v, len, sizeof *v, cmp_double);
        double lo = v[len / 100], hi = v[len - 1 - len / 100], m = 0.1 * (hi - lo) + 1;
        if (v[0] < lo - m || v[len - 1] > hi + m)
            fprintf(f,
                    "set yrange [%.6g:%.6g]\nset label 'terms clipped to their 1st-99th "
                    "percentiles' at graph 0.01, graph 0.95 tc rgb '#888888'\n",
                    lo - m, hi + m);
    }
    free(v);
}

/* The x axis in clock time: data.csv's time_s is seconds from the start, shown as the
 * scenario's clock (its "timezone", else UTC: gnuplot's time axes have no zones, so the zone's
 * offset at the start is added, and the label names zone and offset). Returns the offset to add
 * to time_s. */
static long long time_axis(FILE *f, const struct plot_opts *o)
{
    int local = o->tz_name && *o->tz_name;
    long long off = local ? o->tz_offset_s : 0;
    fprintf(f, "set xdata time\nset timefmt '%%s'\nset format x '%s'\n",
            o->duration_s > 86400      ? "%d/%m %H:%M"
            : o->duration_s > 3 * 3600 ? "%H:%M"
                                       : "%H:%M:%S");
    long long a = off < 0 ? -off : off;
    if (local)
        fprintf(f, "set xlabel 'time (%s UTC%c%02lld:%02lld)'\n", o->tz_name, off < 0 ? '-' : '+',
                a / 3600, a % 3600 / 60);
    else
        fputs("set xlabel 'time (UTC)'\n", f);
    return (long long)(o->start_unix_ms / 1000) + off;
}

/* Writes the script of plot p into path; returns the number of series drawn (0: skip it). */
static int write_script(const char *path, const struct plot_def *p, const char *dir,
                        const struct plot_opts *o)
{
    char names[64][32], bnames[64][32], data[1200], bdata[1200];
    int has[64], bhas[64];
    snprintf(data, sizeof data, "%s/plots/data.csv", dir);
    size_t n = scan_columns(data, names, has, 64), bn = 0;
    if (o->baseline_dir) {
        snprintf(bdata, sizeof bdata, "%s/plots/data.csv", o->baseline_dir);
        bn = scan_columns(bdata, bnames, bhas, 64);
    }
    if (!needed(p->needs, names, has, n))
        return 0; /* a device the site does not have, a record it does not carry */
    FILE *f = fopen(path, "w");
    if (!f)
        return -EIO;
    fputs("# generated by der-sim (reports/plot.c)\nset datafile separator ','\n"
          "set datafile missing 'nan'\nset grid\nset key outside bottom center horizontal\n",
          f);
    long long t0 = time_axis(f, o);
    fputs("set ylabel ", f);
    plot_quote(f, p->ylabel);
    fputs("\nset title ", f);
    char title[512];
    snprintf(title, sizeof title, "%s: %s", o->title ? o->title : "", p->caption);
    plot_quote(f, title);
    fputc('\n', f);
    if (p->y2label) {
        fputs("set y2tics\nset ytics nomirror\nset y2label ", f);
        plot_quote(f, p->y2label);
        fputc('\n', f);
    }
    if (!strcmp(p->name, "grid") && isfinite(o->peak_15m_kw))
        fprintf(f,
                "set arrow from graph 0, first %.6g to graph 1, first %.6g nohead dt 3 lw 2 "
                "lc rgb '#8c564b'\nset label 'peak 15-min mean %.3f kW' at graph 0.01, first "
                "%.6g offset 0,0.6 tc rgb '#8c564b'\n",
                o->peak_15m_kw, o->peak_15m_kw, o->peak_15m_kw, o->peak_15m_kw);
    /* the strategy's own limits, where it has them */
    double lim[2] = {o->import_limit_kw, -o->export_limit_kw};
    static const char *const lname[2] = {"import limit (strategy)", "export cap (strategy)"};
    for (int k = 0; k < 2 && (!strcmp(p->name, "grid") || !strcmp(p->name, "power")); k++)
        if (isfinite(lim[k]))
            fprintf(f,
                    "set arrow from graph 0, first %.6g to graph 1, first %.6g nohead dt 4 lw 2 "
                    "lc rgb '#e377c2'\nset label '%s %.3f kW' at graph 0.6, first %.6g offset "
                    "0,0.6 tc rgb '#e377c2'\n",
                    lim[k], lim[k], lname[k], fabs(lim[k]), lim[k]);
    if (!strcmp(p->name, "decision"))
        clip_terms(f, data, names, n, p);
    /* the plot command, kept in a variable so that both terminals draw the same thing */
    char cmd[4096];
    size_t len = 0;
    int drawn = 0;
    for (size_t k = 0; k < 8 && p->s[k].col; k++) {
        const struct series *s = &p->s[k];
        int c = s->baseline ? column_of(bnames, bn, s->col) : column_of(names, n, s->col);
        if (!c || !(s->baseline ? bhas[c - 1] : has[c - 1]))
            continue;
        char q[1300];
        snprintf(q, sizeof q, "%s", s->baseline ? bdata : data);
        len += (size_t)snprintf(
            cmd + len, sizeof cmd - len,
            "%s'%s' skip 1 using ($1+%lld):($%d*%g) axes x1y%d with %s title '%s'",
            drawn ? ", " : "plot ", q, t0, c, s->scale, s->y2 ? 2 : 1, s->style, s->title);
        drawn++;
    }
    if (drawn) {
        for (int svg = 0; svg <= 1; svg++) {
            terminal(f, svg);
            fprintf(f, "set output '%s/plots/%s.%s'\n%s\n", dir, p->name, svg ? "svg" : "png", cmd);
        }
        fputs("unset output\n", f);
    }
    fclose(f);
    return drawn;
}

int plot_render(const char *dir, const struct plot_opts *o, char *msg, size_t msglen)
{
    char script[1200], log[1200], failed[512] = "";
    snprintf(log, sizeof log, "%s/plots/gnuplot.log", dir);
    unlink(log);
    int drawn = 0, bad = 0;
    for (size_t i = 0; i < N_PLOTS; i++) {
        snprintf(script, sizeof script, "%s/plots/%s.gp", dir, plots[i].name);
        int n = write_script(script, &plots[i], dir, o);
        if (n < 0) {
            snprintf(msg, msglen, "plots: cannot write %s", script);
            return -EIO;
        }
        if (n == 0)
            continue; /* nothing to draw: no such device in this scenario */
        int rc = plot_run_gnuplot(o->gnuplot, script, log);
        if (rc == -ENOENT) {
            snprintf(msg, msglen,
                     "plots: gnuplot not found in PATH (Debian: apt-get install gnuplot-nox); "
                     "the run's other outputs are complete");
            return -ENOENT;
        }
        if (rc) {
            bad++;
            size_t l = strlen(failed);
            snprintf(failed + l, sizeof failed - l, " %s", plots[i].name);
        } else {
            drawn++;
        }
    }
    if (bad) {
        snprintf(msg, msglen, "plots: gnuplot failed for%s (see %s)", failed, log);
        return -EIO;
    }
    snprintf(msg, msglen, "plots: %d drawn in %s/plots (PNG and SVG)", drawn, dir);
    return 0;
}
