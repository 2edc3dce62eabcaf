/* optimum: see optimum.h.
 *
 * The linear program, per interval t = 0..n-1 (length dt_h(t) hours) and battery k, in kW and
 * kWh inside (the header speaks W and Wh; kW keeps every coefficient near 1 for the simplex):
 *
 *   columns   c[t,k] in [0, Cmax_k]       charge power (AC)
 *             d[t,k] in [0, Dmax_k]       discharge power (AC)
 *             e[t,k] in [Elo_k, Ehi_k]    stored energy at the end of t; the last interval's
 *                                         lower bound is max(Elo_k, Efinal_k)
 *             gi[t]  in [0, Ui(t)]        grid import
 *             ge[t]  in [0, Ue(t)]        grid export
 *             P      >= 0                 peak import (OPTIMUM_MIN_PEAK only)
 *   rows      gi[t] - ge[t] + sum_k (d[t,k] - c[t,k]) = net[t]                (balance)
 *             e[t,k] - e[t-1,k] - eta_c dt_h c[t,k] + dt_h / eta_d d[t,k] = 0  (energy;
 *                                         e[-1,k] = E0_k, moved to the right-hand side)
 *             d[t,k] - Dmax_k / (cap_k low_k) e[t-1,k] <= 0                  (low SoC derate)
 *             c[t,k] + Cmax_k / (cap_k (1 - high_k)) e[t-1,k] <= Cmax_k / (1 - high_k)
 *                                                                             (high SoC taper)
 *             gi[t] - P <= 0                                                  (peak)
 *   cost      sum_t (p_imp[t] gi[t] - p_exp[t] ge[t]) dt_h(t)
 *
 * Ui(t) is the import limit when set, and always at most max(net, 0) + sum Cmax: the most the
 * site can draw. Ue(t) likewise. These bounds cost nothing and keep the LP bounded whatever the
 * prices do. At t = 0 the derates use E0 and become column bounds.
 *
 * OPTIMUM_MIN_COST minimises the cost. OPTIMUM_MIN_PEAK solves twice: min P, then the cost with
 * P held at that minimum, so the schedule it returns is the cheapest among the lowest-peak
 * ones (a single weighted objective would need a big-M weight and lose precision).
 *
 * Why charge and discharge need no constraint against each other, usually: using both in one
 * interval moves no more power than their difference does, and loses (1/eta_d - eta_c) dt_h per
 * kW of overlap. While stored energy is worth something (prices >= 0, import dearer than or
 * equal to export) that loss is never profitable, so an optimum has c d = 0. A tiny throughput
 * cost, THROUGHPUT_EPS of the largest price per kWh, makes it strict where it would be a tie
 * (zero prices, a spread that only just pays the losses) and is left out of the reported cost.
 * The same holds for import and export: both at once only adds (p_imp - p_exp) per kWh.
 *
 * When it is not: with negative prices energy has a negative value, and an LP would burn it by
 * charging and discharging at once (the battery as a resistor), or import and export at once
 * when export pays more than import. Neither is what a meter or a battery setpoint can do. So
 * after each solve every (interval, battery) that uses both directions (and every interval that
 * both imports and exports) gets a binary b with c <= Cmax b, d <= Dmax (1 - b) (gi <= Ui b,
 * ge <= Ue (1 - b)), and the problem is solved again as a MIP (glp_intopt, exact branch and
 * bound, no time limit) until no interval uses both. Only the intervals that need it pay for a
 * binary; with ordinary prices the first LP is the answer. (A 1 s controller could still
 * alternate within an interval; the reference chooses not to count that as a strategy.)
 *
 * Determinism: GLPK's simplex and branch and bound are deterministic for the same input and
 * library; no time limits, which would make the answer depend on the machine. Terminal output is
 * switched off for the call and restored. */
#include "reports/optimum.h"
#include "common/rtclock.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glpk.h>

/* Tie-break cost of battery throughput, relative to the largest |price|: far below any spread
 * worth a strategy's while, far above the simplex's reduced-cost tolerance (1e-7). */
#define THROUGHPUT_EPS 1e-5
/* The same on grid flows, smaller than THROUGHPUT_EPS so that it can never pay for battery use:
 * it only settles ties such as import and export at one price. */
#define GRID_EPS 1e-6
/* A direction counts as used above 1 mW: well above simplex noise, below any real setpoint. */
#define USED_EPS_KW 1e-6
/* Rounds of "add binaries where both directions are used, solve again"; each round only adds,
 * so this bounds pathological cases, not ordinary ones (which need 0 or 1). */
#define MAX_ROUNDS 16
/* Up to this many intervals x (batteries + 1) the LP goes to the simplex with presolve (an
 * exact vertex; a day at 1 minute in about 0.3 s). Above, GLPK's simplex grows about
 * quadratically on this chain-shaped LP (a year at 15 min: 137 s) while the interior-point
 * method grows about linearly (banded normal equations) and takes over; it agrees with the
 * simplex to about 1e-9 of the cost and 1e-6 of the peak (bench_optimum, notes in the report). */
#define SIMPLEX_MAX_CELLS 3000
/* Slack on the minimum peak when it becomes the bound of the cost stage: the solvers'
 * feasibility tolerance (1e-7 simplex, about 1e-8 x scale interior point), not a margin. */
#define PEAK_SLACK_REL(interior) ((interior) ? 1e-6 : 1e-9)
#define PEAK_SLACK_KW            1e-7

struct lp {
    glp_prob *g;
    const struct optimum_problem *pb;
    size_t nb;               /* batteries */
    size_t stride;           /* columns per interval: 3 per battery + import + export */
    int peak_col;            /* 0 = no peak column; else the (first) peak column */
    int term_col;            /* 0 = no terminal valuation; else surplus, term_col + 1 deficit */
    double deadline_s;       /* now_s() past which GLPK stops (tm_lim); 0 = none */
    double term_e0_kwh;      /* the energy the end is valued against (a chunk: the run's) */
    int interior;            /* solve LPs with the interior-point method (large problems) */
    int mip;                 /* a binary was added: read MIP values */
    int exclusive;           /* run() adds binaries where both directions are used */
    unsigned char *bin_bat;  /* [n * nb] has a direction binary */
    unsigned char *bin_grid; /* [n] */
    size_t n_bin;
    double price_scale;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* solve_s only (logs and the benchmark): through rtclock.c, never into results */
static double now_s(void)
{
    return rtclock_monotonic_us() / 1e6;
}

static double dt_h(const struct optimum_problem *pb, size_t t)
{
    double s = (t + 1 == pb->n && pb->last_dt_s > 0.0) ? pb->last_dt_s : pb->dt_s;
    return s / 3600.0;
}

static double price(const double *p, size_t t)
{
    return p ? p[t] : 0.0;
}

/* Currency for grid power g_w held over interval t: the KPIs' energy_cost - export_revenue. */
static double interval_cost(const struct optimum_problem *pb, size_t t, double g_w)
{
    double kwh = g_w * dt_h(pb, t) / 1000.0;
    return kwh > 0.0 ? price(pb->import_price, t) * kwh : price(pb->export_price, t) * kwh;
}

static int col_c(const struct lp *l, size_t t, size_t k)
{
    return (int)(1 + t * l->stride + 3 * k);
}
static int col_d(const struct lp *l, size_t t, size_t k)
{
    return col_c(l, t, k) + 1;
}
static int col_e(const struct lp *l, size_t t, size_t k)
{
    return col_c(l, t, k) + 2;
}
static int col_gi(const struct lp *l, size_t t)
{
    return (int)(1 + t * l->stride + 3 * l->nb);
}
static int col_ge(const struct lp *l, size_t t)
{
    return col_gi(l, t) + 1;
}

/* GLPK wants GLP_FX for a point interval; a double bound with lb == ub is not portable. */
static void set_col(glp_prob *g, int j, double lo, double hi)
{
    glp_set_col_bnds(g, j, hi > lo ? GLP_DB : GLP_FX, lo, hi > lo ? hi : lo);
}

static double soc_lo(const struct optimum_battery *b)
{
    return fmin(b->soc_min, b->soc_init);
}
static double soc_hi(const struct optimum_battery *b)
{
    return fmax(b->soc_max, b->soc_init);
}
static double soc_final(const struct optimum_battery *b)
{
    return fmax(b->soc_final_set ? b->soc_final_min : b->soc_init, soc_lo(b));
}

/* Capacity-weighted means of the efficiencies, and the total energies, in Wh. */
struct bat_totals {
    double cap_wh, e0_wh, eta_c, eta_d;
};
static struct bat_totals bat_totals(const struct optimum_battery *b, size_t nb)
{
    struct bat_totals t = {0};
    for (size_t k = 0; k < nb; k++) {
        t.cap_wh += b[k].capacity_wh;
        t.e0_wh += b[k].soc_init * b[k].capacity_wh;
        t.eta_c += b[k].eta_charge * b[k].capacity_wh;
        t.eta_d += b[k].eta_discharge * b[k].capacity_wh;
    }
    if (t.cap_wh > 0) {
        t.eta_c /= t.cap_wh;
        t.eta_d /= t.cap_wh;
    }
    return t;
}

/* Per kWh stored: what a surplus is worth, what a deficit costs (optimum_terminal_value). */
static double surplus_price(const struct bat_totals *t, double price)
{
    return fmax(price, 0.0) * t->eta_d;
}
static double deficit_price(const struct bat_totals *t, double price)
{
    return t->eta_c > 0 ? fmax(price, 0.0) / t->eta_c : 0.0;
}

double optimum_terminal_value(const struct optimum_battery *b, size_t nb, double e_end_wh,
                              double price)
{
    struct bat_totals t = bat_totals(b, nb);
    double d_kwh = (e_end_wh - t.e0_wh) / 1000.0;
    return d_kwh > 0 ? d_kwh * surplus_price(&t, price) : d_kwh * deficit_price(&t, price);
}
static int high_band_on(const struct optimum_battery *b)
{
    return b->soc_high_band > 0.0 && b->soc_high_band < 1.0;
}

static int finite_in(double x, double lo, double hi)
{
    return isfinite(x) && x >= lo && x <= hi;
}

static int validate(const struct optimum_problem *pb, char *err, size_t errlen)
{
    if (pb->n == 0 || pb->n > OPTIMUM_MAX_INTERVALS) {
        set_err(err, errlen,
                "optimum: n=%zu intervals, allowed 1..%d (aggregate to a coarser "
                "interval)",
                pb->n, OPTIMUM_MAX_INTERVALS);
        return pb->n ? -E2BIG : -EINVAL;
    }
    if (pb->n_batteries > OPTIMUM_MAX_BATTERIES) {
        set_err(err, errlen, "optimum: %zu batteries, at most %d", pb->n_batteries,
                OPTIMUM_MAX_BATTERIES);
        return -E2BIG;
    }
    if (!(isfinite(pb->dt_s) && pb->dt_s > 0.0) ||
        !(isfinite(pb->last_dt_s) && pb->last_dt_s >= 0.0)) {
        set_err(err, errlen, "optimum: dt_s=%g last_dt_s=%g, need dt_s > 0, last_dt_s >= 0",
                pb->dt_s, pb->last_dt_s);
        return -EINVAL;
    }
    if (pb->objective != OPTIMUM_MIN_COST && pb->objective != OPTIMUM_MIN_PEAK) {
        set_err(err, errlen, "optimum: unknown objective %d", (int)pb->objective);
        return -EINVAL;
    }
    if (!pb->net_load_w || (pb->n_batteries && !pb->batteries)) {
        set_err(err, errlen, "optimum: net_load_w%s is NULL",
                pb->net_load_w ? " is set but batteries" : "");
        return -EINVAL;
    }
    for (size_t t = 0; t < pb->n; t++) {
        const char *bad = !isfinite(pb->net_load_w[t])            ? "net_load_w"
                          : !isfinite(price(pb->import_price, t)) ? "import_price"
                          : !isfinite(price(pb->export_price, t)) ? "export_price"
                                                                  : NULL;
        if (bad) {
            set_err(err, errlen, "optimum: %s[%zu] is not finite", bad, t);
            return -EINVAL;
        }
    }
    if ((pb->terminal_valued && !finite_in(pb->terminal_price, 0.0, INFINITY)) ||
        !finite_in(pb->peak_floor_w, 0.0, INFINITY)) {
        set_err(err, errlen, "optimum: terminal_price=%g peak_floor_w=%g, need finite >= 0",
                pb->terminal_price, pb->peak_floor_w);
        return -EINVAL;
    }
    if ((pb->has_import_limit && !finite_in(pb->import_limit_w, 0.0, INFINITY)) ||
        (pb->has_export_limit && !finite_in(pb->export_limit_w, 0.0, INFINITY))) {
        set_err(err, errlen, "optimum: import_limit_w=%g export_limit_w=%g, need >= 0",
                pb->import_limit_w, pb->export_limit_w);
        return -EINVAL;
    }
    for (size_t k = 0; k < pb->n_batteries; k++) {
        const struct optimum_battery *b = &pb->batteries[k];
        const char *bad =
            !(isfinite(b->capacity_wh) && b->capacity_wh > 0.0) ? "capacity_wh > 0"
            : !finite_in(b->soc_init, 0.0, 1.0)                 ? "soc_init in [0, 1]"
            : !(finite_in(b->soc_min, 0.0, 1.0) && finite_in(b->soc_max, b->soc_min, 1.0))
                ? "0 <= soc_min <= soc_max <= 1"
            : (b->soc_final_set && !finite_in(b->soc_final_min, 0.0, soc_hi(b)))
                ? "soc_final_min in [0, max(soc_max, soc_init)]"
            : !finite_in(b->max_charge_w, 0.0, INFINITY)                   ? "max_charge_w >= 0"
            : !finite_in(b->max_discharge_w, 0.0, INFINITY)                ? "max_discharge_w >= 0"
            : !(finite_in(b->eta_charge, 0.0, 1.0) && b->eta_charge > 0.0) ? "eta_charge in (0, 1]"
            : !(finite_in(b->eta_discharge, 0.0, 1.0) && b->eta_discharge > 0.0)
                ? "eta_discharge in (0, 1]"
            : !(finite_in(b->soc_low_band, 0.0, 1.0) && b->soc_low_band < 1.0)
                ? "soc_low_band in [0, 1)"
            : !finite_in(b->soc_high_band, 0.0, 1.0) ? "soc_high_band in [0, 1]"
                                                     : NULL;
        if (bad) {
            set_err(err, errlen, "optimum: batteries[%zu]: need %s", k, bad);
            return -EINVAL;
        }
    }
    return 0;
}

/* Builds the LP of the header comment, without objective (set per stage). */
static int build(struct lp *l, int with_peak)
{
    const struct optimum_problem *pb = l->pb;
    size_t n = pb->n, nb = l->nb;
    double sum_c = 0.0, sum_d = 0.0;
    for (size_t k = 0; k < nb; k++) {
        sum_c += pb->batteries[k].max_charge_w / 1000.0;
        sum_d += pb->batteries[k].max_discharge_w / 1000.0;
    }
    size_t rows_per_t = 1 + nb + (with_peak ? 1 : 0);
    size_t derate_rows = 0;
    for (size_t k = 0; k < nb; k++)
        derate_rows += (pb->batteries[k].soc_low_band > 0.0) + high_band_on(&pb->batteries[k]);
    /* The interior-point method factorises A D A': one peak column in every row would make
     * that dense, so there the peak is a chain P[t] = P[t-1] of n columns (still sparse).
     * Measured: the chain converges up to half a year at 15 min (17,280 intervals, 2 s); at a
     * year the first stage stops with GLP_ENOCVG and the simplex takes over (minutes). A tree
     * of columns (fan-out 4 or 32) got the first stage through a year but made the second
     * unstable (GLP_EINSTAB) already at 90 days, so the chain stays. */
    size_t peak_cols = with_peak ? (l->interior ? n : 1) : 0;
    /* terminal valuation: sum_k e[n-1,k] - surplus + deficit = E0, one row, two columns */
    int term = pb->terminal_valued && nb > 0;
    size_t m =
        n * rows_per_t + (n - 1) * derate_rows + (peak_cols ? peak_cols - 1 : 0) + (size_t)term;
    size_t cols = n * l->stride + peak_cols + 2 * (size_t)term;
    /* nonzeros: balance 2 + 2 nb, energy 4, derate 2, peak 2, chain 2; terminal nb + 2 */
    size_t nnz = n * (2 + 2 * nb + 4 * nb + 2 * derate_rows + 4) + nb + 2;
    int *ia = malloc((nnz + 1) * sizeof *ia);
    int *ja = malloc((nnz + 1) * sizeof *ja);
    double *ar = malloc((nnz + 1) * sizeof *ar);
    if (!ia || !ja || !ar) {
        free(ia);
        free(ja);
        free(ar);
        return -ENOMEM;
    }
    glp_prob *g = l->g;
    glp_set_obj_dir(g, GLP_MIN);
    glp_add_rows(g, (int)m);
    glp_add_cols(g, (int)cols);
    l->peak_col = with_peak ? (int)(n * l->stride + 1) : 0;
    for (size_t j = 0; j < peak_cols; j++) /* an earlier chunk's peak is already paid for */
        glp_set_col_bnds(g, l->peak_col + (int)j, GLP_LO, pb->peak_floor_w / 1000.0, 0.0);
    l->term_col = term ? (int)(n * l->stride + peak_cols + 1) : 0;

    size_t z = 0;
    int row = 0;
#define NZ(r, c, v) (z++, ia[z] = (r), ja[z] = (c), ar[z] = (v))
    for (size_t t = 0; t < n; t++) {
        double h = dt_h(pb, t), net = pb->net_load_w[t] / 1000.0;
        double ui = fmax(net, 0.0) + sum_c, ue = fmax(-net, 0.0) + sum_d;
        if (pb->has_import_limit)
            ui = fmin(ui, pb->import_limit_w / 1000.0);
        if (pb->has_export_limit)
            ue = fmin(ue, pb->export_limit_w / 1000.0);
        set_col(g, col_gi(l, t), 0.0, ui);
        set_col(g, col_ge(l, t), 0.0, ue);

        glp_set_row_bnds(g, ++row, GLP_FX, net, net); /* balance */
        NZ(row, col_gi(l, t), 1.0);
        NZ(row, col_ge(l, t), -1.0);
        for (size_t k = 0; k < nb; k++) {
            NZ(row, col_d(l, t, k), 1.0);
            NZ(row, col_c(l, t, k), -1.0);
        }
        if (with_peak) {
            int pc = l->peak_col + (peak_cols > 1 ? (int)t : 0);
            glp_set_row_bnds(g, ++row, GLP_UP, 0.0, 0.0);
            NZ(row, col_gi(l, t), 1.0);
            NZ(row, pc, -1.0);
            if (peak_cols > 1 && t > 0) {
                glp_set_row_bnds(g, ++row, GLP_FX, 0.0, 0.0);
                NZ(row, pc, 1.0);
                NZ(row, pc - 1, -1.0);
            }
        }
        for (size_t k = 0; k < nb; k++) {
            const struct optimum_battery *b = &pb->batteries[k];
            double cap = b->capacity_wh / 1000.0, e0 = b->soc_init * cap;
            double cmax = b->max_charge_w / 1000.0, dmax = b->max_discharge_w / 1000.0;
            double elo = soc_lo(b) * cap, ehi = soc_hi(b) * cap;
            if (t + 1 == n && !term)
                elo = fmax(elo, soc_final(b) * cap);
            if (t == 0) { /* derates at E0 are plain bounds */
                if (b->soc_low_band > 0.0)
                    dmax = fmin(dmax, dmax * b->soc_init / b->soc_low_band);
                if (high_band_on(b))
                    cmax = fmin(cmax, cmax * (1.0 - b->soc_init) / (1.0 - b->soc_high_band));
            }
            set_col(g, col_c(l, t, k), 0.0, cmax);
            set_col(g, col_d(l, t, k), 0.0, dmax);
            set_col(g, col_e(l, t, k), elo, ehi);

            double rhs = t == 0 ? e0 : 0.0;
            glp_set_row_bnds(g, ++row, GLP_FX, rhs, rhs); /* energy */
            NZ(row, col_e(l, t, k), 1.0);
            if (t > 0)
                NZ(row, col_e(l, t - 1, k), -1.0);
            NZ(row, col_c(l, t, k), -b->eta_charge * h);
            NZ(row, col_d(l, t, k), h / b->eta_discharge);
            if (t == 0)
                continue;
            if (b->soc_low_band > 0.0) {
                glp_set_row_bnds(g, ++row, GLP_UP, 0.0, 0.0);
                NZ(row, col_d(l, t, k), 1.0);
                NZ(row, col_e(l, t - 1, k), -dmax / (cap * b->soc_low_band));
            }
            if (high_band_on(b)) {
                double top = cmax / (1.0 - b->soc_high_band);
                glp_set_row_bnds(g, ++row, GLP_UP, 0.0, top);
                NZ(row, col_c(l, t, k), 1.0);
                NZ(row, col_e(l, t - 1, k), top / cap);
            }
        }
    }
    if (term) {
        struct bat_totals bt = bat_totals(pb->batteries, nb);
        set_col(g, l->term_col, 0.0, bt.cap_wh / 1000.0);
        set_col(g, l->term_col + 1, 0.0, l->term_e0_kwh);
        glp_set_row_bnds(g, ++row, GLP_FX, l->term_e0_kwh, l->term_e0_kwh);
        for (size_t k = 0; k < nb; k++)
            NZ(row, col_e(l, n - 1, k), 1.0);
        NZ(row, l->term_col, -1.0);
        NZ(row, l->term_col + 1, 1.0);
    }
#undef NZ
    glp_load_matrix(g, (int)z, ia, ja, ar);
    free(ia);
    free(ja);
    free(ar);
    return 0;
}

/* Cost objective, normalised by the largest |price| so coefficients are about 1 per kWh. */
static void set_cost_objective(struct lp *l)
{
    const struct optimum_problem *pb = l->pb;
    double eps = THROUGHPUT_EPS;
    for (size_t t = 0; t < pb->n; t++) {
        double h = dt_h(pb, t);
        glp_set_obj_coef(l->g, col_gi(l, t),
                         (price(pb->import_price, t) / l->price_scale + GRID_EPS) * h);
        glp_set_obj_coef(l->g, col_ge(l, t),
                         (-price(pb->export_price, t) / l->price_scale + GRID_EPS) * h);
        for (size_t k = 0; k < l->nb; k++) {
            glp_set_obj_coef(l->g, col_c(l, t, k), eps * h);
            glp_set_obj_coef(l->g, col_d(l, t, k), eps * h);
        }
    }
    if (l->term_col) {
        /* the end's value as the run's end_energy_value counts it: a surplus earns less per
         * kWh than a deficit costs (efficiencies <= 1), so the LP never uses both */
        struct bat_totals bt = bat_totals(pb->batteries, l->nb);
        glp_set_obj_coef(l->g, l->term_col,
                         -surplus_price(&bt, pb->terminal_price) / l->price_scale);
        glp_set_obj_coef(l->g, l->term_col + 1,
                         deficit_price(&bt, pb->terminal_price) / l->price_scale);
    }
}

static double val(const struct lp *l, int j)
{
    if (l->mip)
        return glp_mip_col_val(l->g, j);
    return l->interior ? glp_ipt_col_prim(l->g, j) : glp_get_col_prim(l->g, j);
}

/* Adds a direction binary: x_on <= u_on b and x_off <= u_off (1 - b). */
static void add_binary(struct lp *l, int j_on, int j_off)
{
    glp_prob *g = l->g;
    int jb = glp_add_cols(g, 1);
    glp_set_col_kind(g, jb, GLP_BV);
    int r = glp_add_rows(g, 2);
    double u_on = glp_get_col_ub(g, j_on), u_off = glp_get_col_ub(g, j_off);
    int ind[3] = {0, j_on, jb};
    double v[3] = {0, 1.0, -u_on};
    glp_set_mat_row(g, r, 2, ind, v);
    glp_set_row_bnds(g, r, GLP_UP, 0.0, 0.0);
    ind[1] = j_off;
    v[2] = u_off;
    glp_set_mat_row(g, r + 1, 2, ind, v);
    glp_set_row_bnds(g, r + 1, GLP_UP, 0.0, u_off);
    l->n_bin++;
    l->mip = 1;
}

/* Binaries for every pair that used both directions in the last solution; returns how many. */
static size_t add_binaries(struct lp *l)
{
    size_t added = 0, n = l->pb->n;
    double *cv = malloc(2 * n * (l->nb + 1) * sizeof *cv);
    if (!cv)
        return (size_t)-1;
    /* read all values first: adding rows and columns invalidates the MIP solution */
    for (size_t t = 0; t < n; t++) {
        for (size_t k = 0; k < l->nb; k++) {
            cv[2 * (t * (l->nb + 1) + k)] = val(l, col_c(l, t, k));
            cv[2 * (t * (l->nb + 1) + k) + 1] = val(l, col_d(l, t, k));
        }
        cv[2 * (t * (l->nb + 1) + l->nb)] = val(l, col_gi(l, t));
        cv[2 * (t * (l->nb + 1) + l->nb) + 1] = val(l, col_ge(l, t));
    }
    for (size_t t = 0; t < n; t++) {
        for (size_t k = 0; k <= l->nb; k++) {
            const double *x = &cv[2 * (t * (l->nb + 1) + k)];
            if (x[0] <= USED_EPS_KW || x[1] <= USED_EPS_KW)
                continue;
            if (k < l->nb && !l->bin_bat[t * l->nb + k]) {
                l->bin_bat[t * l->nb + k] = 1;
                add_binary(l, col_c(l, t, k), col_d(l, t, k));
                added++;
            } else if (k == l->nb && !l->bin_grid[t]) {
                l->bin_grid[t] = 1;
                add_binary(l, col_gi(l, t), col_ge(l, t));
                added++;
            }
        }
    }
    free(cv);
    return added;
}

/* GLPK's time limit (ms) for what is left of the deadline; INT_MAX without one. */
static int tm_lim(const struct lp *l)
{
    if (l->deadline_s <= 0)
        return INT_MAX;
    double left_ms = (l->deadline_s - now_s()) * 1000.0;
    return left_ms < 1 ? 1 : left_ms > INT_MAX ? INT_MAX : (int)left_ms;
}

/* One solve of the current problem: 0, -EDOM (infeasible), -ETIME (past the deadline) or
 * -EIO. */
static int run_once(struct lp *l, char *err, size_t errlen)
{
    int ret = 0, status = 0;
    if (l->deadline_s > 0 && now_s() >= l->deadline_s) {
        set_err(err, errlen, "optimum: time budget spent");
        return -ETIME;
    }
    const char *what = "glp_simplex";
    if (l->mip) {
        glp_iocp parm;
        glp_init_iocp(&parm);
        parm.msg_lev = GLP_MSG_OFF;
        parm.presolve = GLP_ON;
        parm.tm_lim = tm_lim(l);
        what = "glp_intopt";
        ret = glp_intopt(l->g, &parm);
        status = ret == 0 ? glp_mip_status(l->g) : 0;
    } else {
        if (l->interior) {
            glp_iptcp parm;
            glp_init_iptcp(&parm);
            parm.msg_lev = GLP_MSG_OFF;
            ret = glp_interior(l->g, &parm);
            status = ret == 0 ? glp_ipt_status(l->g) : 0;
            /* The interior-point method does not tell "infeasible" from "did not converge"
             * reliably; the simplex does (slowly), and its answer stands. */
            if (ret != 0 || status != GLP_OPT)
                l->interior = 0;
        }
        if (!l->interior) {
            glp_smcp parm;
            glp_init_smcp(&parm);
            parm.msg_lev = GLP_MSG_OFF;
            parm.presolve = GLP_ON;
            parm.tm_lim = tm_lim(l);
            ret = glp_simplex(l->g, &parm);
            status = ret == 0 ? glp_get_status(l->g) : 0;
        }
    }
    if (ret == GLP_ENOPFS || status == GLP_NOFEAS)
        return -EDOM;
    if (ret == GLP_ETMLIM) {
        set_err(err, errlen, "optimum: time budget spent in %s", what);
        return -ETIME;
    }
    if (ret != 0 || status != GLP_OPT) {
        set_err(err, errlen, "optimum: GLPK %s failed (return code %d, status %d)", what, ret,
                status);
        return -EIO;
    }
    return 0;
}

/* Solves, then adds binaries wherever both directions were used and solves again. */
static int run(struct lp *l, char *err, size_t errlen)
{
    for (int round = 0;; round++) {
        int rc = run_once(l, err, errlen);
        if (rc)
            return rc;
        if (!l->exclusive)
            return 0;
        size_t added = add_binaries(l);
        if (added == (size_t)-1)
            return -ENOMEM;
        if (added == 0)
            return 0;
        if (round + 1 == MAX_ROUNDS) {
            set_err(err, errlen,
                    "optimum: still using both directions after %d rounds (%zu "
                    "binaries)",
                    MAX_ROUNDS, l->n_bin);
            return -EIO;
        }
    }
}

static void lp_free(struct lp *l)
{
    if (l->g)
        glp_delete_prob(l->g);
    free(l->bin_bat);
    free(l->bin_grid);
    l->g = NULL;
    l->bin_bat = NULL;
    l->bin_grid = NULL;
}

/* term_e0_wh: the terminal valuation's reference, NaN = the batteries' start. */
static int lp_init(struct lp *l, const struct optimum_problem *pb, int with_peak, double term_e0_wh)
{
    memset(l, 0, sizeof *l);
    l->pb = pb;
    if (isnan(term_e0_wh))
        term_e0_wh = bat_totals(pb->batteries, pb->n_batteries).e0_wh;
    l->term_e0_kwh = term_e0_wh / 1000.0;
    l->nb = pb->n_batteries;
    l->stride = 3 * l->nb + 2;
    l->interior = pb->n * (l->nb + 1) > SIMPLEX_MAX_CELLS;
    l->exclusive = 1;
    l->price_scale = 0.0;
    for (size_t t = 0; t < pb->n; t++)
        l->price_scale = fmax(l->price_scale, fmax(fabs(price(pb->import_price, t)),
                                                   fabs(price(pb->export_price, t))));
    if (pb->terminal_valued)
        l->price_scale = fmax(l->price_scale, pb->terminal_price);
    if (l->price_scale == 0.0)
        l->price_scale = 1.0;
    l->bin_bat = calloc(pb->n * (l->nb ? l->nb : 1), 1);
    l->bin_grid = calloc(pb->n, 1);
    l->g = glp_create_prob();
    if (!l->bin_bat || !l->bin_grid || !l->g) {
        lp_free(l);
        return -ENOMEM;
    }
    int rc = build(l, with_peak);
    if (rc) {
        lp_free(l);
        return rc;
    }
    glp_scale_prob(l->g, GLP_SF_AUTO);
    return 0;
}

/* The lowest peak import (kW) the constraints allow, or -EDOM / -EIO. Without the
 * one-direction guard: using both directions only burns energy, which never lowers an import
 * (the surplus it would burn can be discharged instead), so the guard cannot change the
 * minimum, except where an export limit could only be held by burning; then the cost stage
 * that follows says -EDOM. The guard here would cost a MIP for nothing, or worse with the
 * interior point, whose answer sits in the middle of the optimal face. */
static int solve_min_peak(struct lp *l, double *peak_kw, char *err, size_t errlen)
{
    l->exclusive = 0;
    glp_set_obj_coef(l->g, l->peak_col, 1.0);
    int rc = run(l, err, errlen);
    l->exclusive = 1;
    if (rc)
        return rc;
    *peak_kw = val(l, l->peak_col);
    glp_set_obj_coef(l->g, l->peak_col, 0.0);
    return 0;
}

/* Why the problem is infeasible, in words, for -EDOM. */
static void explain_infeasible(const struct optimum_problem *pb, char *err, size_t errlen)
{
    for (size_t k = 0; k < pb->n_batteries; k++) {
        const struct optimum_battery *b = &pb->batteries[k];
        double gain_wh = 0.0;
        for (size_t t = 0; t < pb->n; t++)
            gain_wh += b->max_charge_w * b->eta_charge * dt_h(pb, t);
        double need_wh = (soc_final(b) - b->soc_init) * b->capacity_wh;
        if (need_wh > gain_wh) {
            set_err(err, errlen,
                    "optimum: infeasible: batteries[%zu] cannot reach "
                    "soc_final_min %.4f (needs %.1f Wh, can store at most %.1f Wh)",
                    k, soc_final(b), need_wh, gain_wh);
            return;
        }
    }
    set_err(err, errlen,
            "optimum: infeasible: the %s%s%s cannot be held with the batteries' "
            "power, energy and soc_final_min",
            pb->has_import_limit ? "import limit" : "",
            pb->has_import_limit && pb->has_export_limit ? " or the " : "",
            pb->has_export_limit ? "export limit" : "grid limits");
}

static void fill(const struct lp *l, struct optimum_result *res,
                 const struct optimum_schedule *sched)
{
    const struct optimum_problem *pb = l->pb;
    double cost = 0.0, peak = 0.0;
    for (size_t t = 0; t < pb->n; t++) {
        double bat_w = 0.0, h = dt_h(pb, t);
        for (size_t k = 0; k < l->nb; k++) {
            double c_w = val(l, col_c(l, t, k)) * 1000.0, d_w = val(l, col_d(l, t, k)) * 1000.0;
            bat_w += d_w - c_w;
            res->charged_wh += c_w * h;
            res->discharged_wh += d_w * h;
            if (sched && sched->battery_w)
                sched->battery_w[t * l->nb + k] = d_w - c_w;
            if (sched && sched->energy_wh)
                sched->energy_wh[t * l->nb + k] = val(l, col_e(l, t, k)) * 1000.0;
        }
        /* the grid follows from the balance, as the meter would see it */
        double g_w = pb->net_load_w[t] - bat_w;
        if (sched && sched->grid_w)
            sched->grid_w[t] = g_w;
        cost += interval_cost(pb, t, g_w);
        peak = fmax(peak, g_w);
    }
    res->optimal_cost = cost;
    if (l->term_col) {
        double e_end = 0.0;
        for (size_t k = 0; k < l->nb; k++)
            e_end += val(l, col_e(l, pb->n - 1, k)) * 1000.0;
        res->end_value = optimum_terminal_value(pb->batteries, l->nb, e_end, pb->terminal_price);
    }
    res->peak_w = peak;
    res->n_binaries = l->n_bin;
    res->interior_point = l->interior;
}

/* optimum_solve with GLPK stopped at deadline (now_s(); 0 = none). */
static int solve_until(const struct optimum_problem *pb, double deadline, double term_e0_wh,
                       struct optimum_result *res, const struct optimum_schedule *sched, char *err,
                       size_t errlen)
{
    if (!pb || !res) {
        set_err(err, errlen, "optimum: no problem or no result");
        return -EINVAL;
    }
    memset(res, 0, sizeof *res);
    int rc = validate(pb, err, errlen);
    if (rc)
        return rc;
    double t0 = now_s();
    for (size_t t = 0; t < pb->n; t++) {
        res->baseline_cost += interval_cost(pb, t, pb->net_load_w[t]);
        res->baseline_peak_w = fmax(res->baseline_peak_w, pb->net_load_w[t]);
    }

    int term = glp_term_out(GLP_OFF);
    struct lp l;
    int peak_mode = pb->objective == OPTIMUM_MIN_PEAK;
    rc = lp_init(&l, pb, peak_mode, term_e0_wh);
    if (rc) {
        set_err(err, errlen, "optimum: out of memory building the LP (n=%zu)", pb->n);
        goto out;
    }
    l.deadline_s = deadline;
    if (peak_mode) {
        double peak_kw;
        rc = solve_min_peak(&l, &peak_kw, err, errlen);
        if (rc)
            goto fail;
        /* hold the peak (plus the simplex's tolerance) and find the cheapest such schedule */
        glp_set_col_bnds(l.g, l.peak_col, GLP_DB, 0.0,
                         peak_kw * (1.0 + PEAK_SLACK_REL(l.interior)) + PEAK_SLACK_KW);
    }
    set_cost_objective(&l);
    rc = run(&l, err, errlen);
    if (rc)
        goto fail;
    fill(&l, res, sched);
    res->optimal_savings = res->baseline_cost - res->optimal_cost + res->end_value;
    res->chunks = 1;
    goto done;

fail:
    if (rc == -EDOM) {
        explain_infeasible(pb, err, errlen);
        if (!peak_mode && pb->has_import_limit) {
            /* which peak could have been held? the same problem without the import limit */
            struct optimum_problem relaxed = *pb;
            struct lp lr;
            double peak_kw;
            relaxed.has_import_limit = 0;
            if (lp_init(&lr, &relaxed, 1, term_e0_wh) == 0) {
                lr.deadline_s = deadline;
                char tmp[16];
                if (solve_min_peak(&lr, &peak_kw, tmp, sizeof tmp) == 0) {
                    res->peak_w = peak_kw * 1000.0;
                    set_err(err, errlen,
                            "optimum: infeasible: the import limit %.1f W cannot "
                            "be held; the lowest peak the batteries allow is %.1f W",
                            pb->import_limit_w, res->peak_w);
                }
                lp_free(&lr);
            }
        }
    }
done:
    lp_free(&l);
out:
    glp_term_out(term);
    res->solve_s = now_s() - t0;
    return rc;
}

int optimum_solve(const struct optimum_problem *pb, struct optimum_result *res,
                  const struct optimum_schedule *sched, char *err, size_t errlen)
{
    return solve_until(pb, 0, NAN, res, sched, err, errlen);
}

/* One chunk of optimum_solve_long: sub covers [s, s + sub->n) of pb; the first keep intervals
 * go into res and sched, the batteries' energies after them into bats (the next chunk's start). */
static int solve_chunk(const struct optimum_problem *pb, struct optimum_problem *sub, size_t s,
                       size_t keep, struct optimum_battery *bats, double deadline,
                       struct optimum_result *res, const struct optimum_schedule *sched, double *bw,
                       double *ew, double *gw, char *err, size_t errlen)
{
    size_t nb = pb->n_batteries;
    struct optimum_schedule ss = {.battery_w = bw, .energy_wh = ew, .grid_w = gw};
    struct optimum_result r;
    double e0 = bat_totals(pb->batteries, nb).e0_wh;
    int rc = solve_until(sub, deadline, e0, &r, &ss, err, errlen);
    if (rc)
        return rc;
    for (size_t t = 0; t < keep; t++) {
        double h = dt_h(pb, s + t);
        for (size_t k = 0; k < nb; k++) {
            double p = bw[t * nb + k];
            res->charged_wh += fmax(-p, 0.0) * h;
            res->discharged_wh += fmax(p, 0.0) * h;
            if (sched && sched->battery_w)
                sched->battery_w[(s + t) * nb + k] = p;
            if (sched && sched->energy_wh)
                sched->energy_wh[(s + t) * nb + k] = ew[t * nb + k];
        }
        if (sched && sched->grid_w)
            sched->grid_w[s + t] = gw[t];
        res->optimal_cost += interval_cost(pb, s + t, gw[t]);
        res->peak_w = fmax(res->peak_w, gw[t]);
    }
    for (size_t k = 0; k < nb; k++)
        bats[k].soc_init = fmin(1.0, fmax(0.0, ew[(keep - 1) * nb + k] / bats[k].capacity_wh));
    res->n_binaries += r.n_binaries;
    res->interior_point |= r.interior_point;
    res->chunks++;
    return 0;
}

int optimum_solve_long(const struct optimum_problem *pb, const struct optimum_long_opts *o,
                       struct optimum_result *res, const struct optimum_schedule *sched, char *err,
                       size_t errlen)
{
    struct optimum_long_opts d = {0};
    if (o)
        d = *o;
    size_t chunk = d.chunk_n ? d.chunk_n : OPTIMUM_CHUNK_N;
    size_t look = d.lookahead_n ? d.lookahead_n : OPTIMUM_LOOKAHEAD_N;
    double t0 = now_s(), deadline = d.budget_s > 0 ? t0 + d.budget_s : 0;
    if (!pb || !res || pb->n <= chunk) {
        int rc = solve_until(pb, deadline, NAN, res, sched, err, errlen);
        if (rc == 0 && d.progress)
            d.progress(d.ctx, pb->n, pb->n);
        return rc;
    }
    memset(res, 0, sizeof *res);
    int rc = validate(pb, err, errlen);
    if (rc)
        return rc;
    size_t n = pb->n, nb = pb->n_batteries, win = chunk + look;
    for (size_t t = 0; t < n; t++) {
        res->baseline_cost += interval_cost(pb, t, pb->net_load_w[t]);
        res->baseline_peak_w = fmax(res->baseline_peak_w, pb->net_load_w[t]);
    }
    /* every chunk keeps the run's window and end rule, from where the last one left off */
    struct optimum_battery bats[OPTIMUM_MAX_BATTERIES];
    for (size_t k = 0; k < nb; k++) {
        bats[k] = pb->batteries[k];
        bats[k].soc_min = soc_lo(&pb->batteries[k]);
        bats[k].soc_max = soc_hi(&pb->batteries[k]);
        bats[k].soc_final_set = 1;
        bats[k].soc_final_min = soc_final(&pb->batteries[k]);
    }
    double *bw = malloc((win * nb + 1) * sizeof *bw), *ew = malloc((win * nb + 1) * sizeof *ew),
           *gw = malloc(win * sizeof *gw);
    rc = -ENOMEM;
    if (!bw || !ew || !gw) {
        set_err(err, errlen, "optimum: out of memory");
        goto out;
    }
    rc = 0;
    for (size_t s = 0; s < n && rc == 0; s += chunk) {
        if (deadline > 0 && now_s() >= deadline) {
            rc = -ETIME;
            break;
        }
        size_t len = n - s < win ? n - s : win, keep = n - s < chunk ? n - s : chunk;
        struct optimum_problem sub = *pb;
        sub.n = len;
        sub.net_load_w = pb->net_load_w + s;
        sub.import_price = pb->import_price ? pb->import_price + s : NULL;
        sub.export_price = pb->export_price ? pb->export_price + s : NULL;
        sub.last_dt_s = s + len == n ? pb->last_dt_s : 0;
        sub.batteries = bats;
        sub.peak_floor_w = fmax(pb->peak_floor_w, res->peak_w);
        for (size_t k = 0; k < nb; k++) /* a floor the carried start may already be above */
            bats[k].soc_final_min = fmin(soc_final(&pb->batteries[k]), soc_hi(&bats[k]));
        rc = solve_chunk(pb, &sub, s, keep, bats, deadline, res, sched, bw, ew, gw, err, errlen);
        if (rc == 0 && d.progress)
            d.progress(d.ctx, s + keep, n);
    }
    if (rc == -ETIME)
        set_err(err, errlen,
                "optimum: time budget %.0f s spent after %zu of %zu intervals (%zu chunks)",
                d.budget_s, res->chunks * chunk < n ? res->chunks * chunk : n, n, res->chunks);
    if (rc == 0) {
        double e_end = 0.0;
        for (size_t k = 0; k < nb; k++)
            e_end += bats[k].soc_init * bats[k].capacity_wh;
        if (pb->terminal_valued)
            res->end_value = optimum_terminal_value(pb->batteries, nb, e_end, pb->terminal_price);
        res->optimal_savings = res->baseline_cost - res->optimal_cost + res->end_value;
    }
out:
    free(bw);
    free(ew);
    free(gw);
    res->solve_s = now_s() - t0;
    return rc;
}

double optimum_savings_vs_optimal_pct(double achieved_savings, double optimal_savings)
{
    if (!(optimal_savings > OPTIMUM_SAVINGS_EPS))
        return achieved_savings >= -OPTIMUM_SAVINGS_EPS ? 100.0 : 0.0;
    return 100.0 * achieved_savings / optimal_savings;
}

size_t optimum_aggregate_len(size_t n_in, size_t factor)
{
    return factor ? (n_in + factor - 1) / factor : 0;
}

int optimum_aggregate(const double *in, size_t n_in, size_t factor, double *out, size_t n_out)
{
    if (!in || !out || factor == 0 || n_out != optimum_aggregate_len(n_in, factor))
        return -EINVAL;
    for (size_t i = 0; i < n_out; i++) {
        size_t a = i * factor, b = a + factor < n_in ? a + factor : n_in;
        double sum = 0.0;
        for (size_t j = a; j < b; j++)
            sum += in[j];
        out[i] = sum / (double)(b - a);
    }
    return 0;
}

void optimum_battery_from_params(struct optimum_battery *ob, const struct battery_params *p)
{
    memset(ob, 0, sizeof *ob);
    ob->capacity_wh = p->capacity_wh;
    ob->soc_init = p->soc_init;
    ob->soc_min = 0.0;
    ob->soc_max = 1.0;
    ob->max_charge_w = p->max_charge_w;
    ob->max_discharge_w = p->max_discharge_w;
    ob->eta_charge = p->eta_charge;
    ob->eta_discharge = p->eta_discharge;
    ob->soc_low_band = p->soc_low_band;
    ob->soc_high_band = p->soc_high_band;
}
