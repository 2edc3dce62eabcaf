/* plot: the run's plots. A recorder that the runner feeds every tick writes plots/data.csv, a
 * compact series (powers averaged over each sample period, states sampled at its end); the
 * renderer writes a gnuplot script and runs gnuplot, an external program, for the PNG and SVG
 * files. Neither is digested: plots never change a run's digest. plot_rec_open returns a
 * recorder the caller owns and ends with plot_rec_close. */
#ifndef DERLOOP_PLOT_H
#define DERLOOP_PLOT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PLOT_BATTERIES 4 /* batteries plotted one by one (the first site's first four) */

/* One tick of the whole scenario (powers summed over the sites, states of the first site). */
struct plot_point {
    double grid_w, pv_w, battery_w, load_w, evse_w, boiler_w; /* averaged per sample */
    double soc, soc_floor, soc_ceiling;
    double grid_limit_w;               /* the gateway's import limit; NaN when none */
    double import_15m_w;               /* mean import of the last completed 15-minute window */
    double import_price, export_price; /* NaN when none */
    double ev_cars, boiler_temp_c, boiler_min_c;
    double target_w, error_w, p_w, i_w, d_w, raw_w;        /* the strategy's terms (decision.h) */
    double field_grid_w, field_soc, field_battery_w;       /* the field record; NaN = none */
    double bat_w[PLOT_BATTERIES], bat_soc[PLOT_BATTERIES]; /* the first site's batteries, in file
                                                            * order; NaN past the last */
};

struct plot_rec;

/* Creates dir/plots and opens dir/plots/data.csv; sample_ms is the period of a row. Grid and
 * battery power also get their lowest and highest step of each row (grid_w_min, grid_w_max,
 * ...): a mean over a row hides an oscillation faster than it, the envelope does not. NULL with
 * errno set on failure. */
struct plot_rec *plot_rec_open(const char *dir, int64_t sample_ms);
/* The state after the step of dt_ms that ends at t_ms. */
void plot_rec_add(struct plot_rec *r, int64_t t_ms, int64_t dt_ms, const struct plot_point *p);
int plot_rec_close(struct plot_rec *r); /* 0 or -EIO */

/* A sample period that keeps a run at about 3000 rows: a multiple of step_ms. */
int64_t plot_sample_ms(int64_t duration_ms, int64_t step_ms);

struct plot_opts {
    const char *title;        /* e.g. the scenario's name and strategy */
    double duration_s;        /* picks the time axis unit (hours or minutes) */
    double peak_15m_kw;       /* drawn as a line on the grid plot; NaN = none */
    double import_limit_kw;   /* the strategy's import limit (peak_shaving); NaN = none */
    double export_limit_kw;   /* the strategy's export cap (self_consumption); NaN = none */
    int64_t start_unix_ms;    /* the scenario's start: the time axes show clock time */
    const char *tz_name;      /* the scenario's "timezone" (clock time there); NULL/"" = UTC */
    int32_t tz_offset_s;      /* its UTC offset at the start */
    const char *baseline_dir; /* a baseline run's directory with plots/data.csv, or NULL */
    const char *gnuplot;      /* program name; NULL = "gnuplot" from PATH */
};

/* Writes dir/plots/plots.gp and runs gnuplot on it (output in dir/plots/gnuplot.log). Returns
 * 0; -ENOENT when gnuplot is not installed (msg says so in one line); -EIO when it failed. */
int plot_render(const char *dir, const struct plot_opts *o, char *msg, size_t msglen);

/* The plots plot_render draws, in order: file stem and caption. */
size_t plot_count(void);
const char *plot_name(size_t i);
const char *plot_caption(size_t i);

/* The 1-based column named col in a plots/data.csv, 0 when the file or the column is missing;
 * *has_data (may be NULL) tells whether it holds a number (gnuplot refuses a series without). */
int plot_data_column(const char *data_csv, const char *col, int *has_data);

/* Runs gnuplot on `script` with its output in `log_path`. 0, -ENOENT (not found) or -EIO. */
int plot_run_gnuplot(const char *gnuplot, const char *script, const char *log_path);

/* Writes `s` into a gnuplot string literal between double quotes (escaping " and \). */
void plot_quote(FILE *f, const char *s);

#endif
