/* optimum_kpi: see optimum_kpi.h.
 *
 * The interval sums are kept per site in tick order, so a single site's sums are the same as
 * they were when the KPI accumulator kept them (a run's digest covers kpis.json). Like the KPI
 * accumulator, a pure function of what is fed in: no clock, no randomness. */
#include "reports/optimum_kpi.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* What the optimum needs of a site beyond its intervals. */
struct opt_site {
    double soc_last;  /* capacity-weighted SoC after the last step (NaN: none) */
    int prices_seen;  /* some step had an import or export price */
    int islanded;     /* some step was in a grid outage */
    double idle_cost; /* the idle-battery cost at the run's own steps (the baseline's footing) */
};

struct optimum_kpi {
    size_t n_sites;
    /* 15-minute interval sums per site and interval: n_iv rows of n_sites, row-major
     * (interval k, site i at k * n_sites + i), so a new interval appends rows */
    size_t n_iv, cap_iv;
    double *iv_net_wh, *iv_imp, *iv_exp; /* sums over the interval: Wh, price x ms */
    int64_t *iv_ms;    /* per interval: its covered length (the sites step together) */
    int64_t tick_t_ms; /* the start of the current step: the end of the last tick */
    int iv_dropped;    /* -E2BIG or -ENOMEM: past the store's bound, nothing kept */
    struct opt_site *os;
    /* sums over the sites solved; optimum_kpi_result decides what is null */
    size_t opt_sites, end_sites;
    int opt_failed;
    double opt_savings, opt_net_cost, end_value, opt_peak_w;
    size_t chunks;  /* the most chunks any site's solve took (1: exact) */
    char note[400]; /* why the optimum KPIs are null, or how they were solved; "" */
};

struct optimum_kpi *optimum_kpi_new(size_t n_sites)
{
    struct optimum_kpi *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->os = calloc(n_sites ? n_sites : 1, sizeof *o->os);
    if (!o->os) {
        free(o);
        return NULL;
    }
    for (size_t i = 0; i < n_sites; i++)
        o->os[i].soc_last = NAN;
    o->n_sites = n_sites;
    o->opt_peak_w = NAN;
    return o;
}

void optimum_kpi_free(struct optimum_kpi *o)
{
    if (!o)
        return;
    free(o->os);
    free(o->iv_net_wh);
    free(o->iv_imp);
    free(o->iv_exp);
    free(o->iv_ms);
    free(o);
}

/* Makes room for interval k, zeroed. The store grows by doubling up to its bound: no more
 * intervals than the optimum accepts, no more than KPI_OPTIMUM_MAX_ENTRIES sites x intervals
 * (a year of a fleet would take gigabytes). Past the bound, or out of memory, the store is
 * dropped for the rest of the run and the optimum says why (optimum_kpi_site_solve). */
static int iv_grow(struct optimum_kpi *a, size_t k)
{
    if (a->iv_dropped)
        return a->iv_dropped;
    size_t sites = a->n_sites ? a->n_sites : 1;
    size_t max = KPI_OPTIMUM_MAX_ENTRIES / sites;
    if (max > OPTIMUM_MAX_INTERVALS)
        max = OPTIMUM_MAX_INTERVALS;
    int rc = -E2BIG;
    if (k >= max)
        goto drop;
    if (k >= a->cap_iv) {
        size_t cap = a->cap_iv ? a->cap_iv * 2 : 128;
        while (cap <= k)
            cap *= 2;
        if (cap > max)
            cap = max;
        rc = -ENOMEM;
        double *n1 = realloc(a->iv_net_wh, cap * sites * sizeof *n1);
        if (!n1)
            goto drop;
        a->iv_net_wh = n1;
        double *n2 = realloc(a->iv_imp, cap * sites * sizeof *n2);
        if (!n2)
            goto drop;
        a->iv_imp = n2;
        double *n3 = realloc(a->iv_exp, cap * sites * sizeof *n3);
        if (!n3)
            goto drop;
        a->iv_exp = n3;
        int64_t *n4 = realloc(a->iv_ms, cap * sizeof *n4);
        if (!n4)
            goto drop;
        a->iv_ms = n4;
        a->cap_iv = cap;
    }
    size_t from = a->n_iv * sites, to = (k + 1) * sites;
    memset(a->iv_net_wh + from, 0, (to - from) * sizeof *a->iv_net_wh);
    memset(a->iv_imp + from, 0, (to - from) * sizeof *a->iv_imp);
    memset(a->iv_exp + from, 0, (to - from) * sizeof *a->iv_exp);
    memset(a->iv_ms + a->n_iv, 0, (k + 1 - a->n_iv) * sizeof *a->iv_ms);
    a->n_iv = k + 1;
    return 0;
drop:
    free(a->iv_net_wh);
    free(a->iv_imp);
    free(a->iv_exp);
    free(a->iv_ms);
    a->iv_net_wh = a->iv_imp = a->iv_exp = NULL;
    a->iv_ms = NULL;
    a->n_iv = a->cap_iv = 0;
    a->iv_dropped = rc;
    return rc;
}

/* One site's step in its 15-minute interval: the one holding the step's start, as for the peak
 * windows. Summed per site in tick order, so a single site's sums are the same as they were
 * when only site 0 was kept (a run's digest covers kpis.json). */
void optimum_kpi_site(struct optimum_kpi *a, size_t site, const struct kpi_sample *s, int64_t dt_ms)
{
    if (site >= a->n_sites)
        return;
    struct opt_site *o = &a->os[site];
    if (isfinite(s->soc_mean))
        o->soc_last = s->soc_mean;
    o->prices_seen |= !isnan(s->import_price) || !isnan(s->export_price);
    o->islanded |= s->islanded;
    /* what the site would pay with its batteries idle, step by step as the run's net_cost is
     * counted: the optimum's own baseline, on 15-minute means, is lower where import and export
     * alternate within an interval (cost is convex in grid power), so savings against it would
     * not bound a run's (docs/kpis.md) */
    double net_w = s->load_w + s->evse_w + s->boiler_w - fmax(s->pv_w, s->pv_avail_w);
    double kwh = net_w * (double)dt_ms * KPI_WH_PER_W_MS / 1000.0;
    double price = kwh > 0 ? s->import_price : s->export_price;
    o->idle_cost += isnan(price) ? 0 : price * kwh;
    size_t k = (size_t)(a->tick_t_ms / KPI_WINDOW_MS);
    if (k >= a->n_iv && iv_grow(a, k) != 0)
        return;
    size_t i = k * a->n_sites + site;
    a->iv_net_wh[i] += net_w * (double)dt_ms * KPI_WH_PER_W_MS;
    a->iv_imp[i] += (isnan(s->import_price) ? 0 : s->import_price) * (double)dt_ms;
    a->iv_exp[i] += (isnan(s->export_price) ? 0 : s->export_price) * (double)dt_ms;
}

void optimum_kpi_tick_end(struct optimum_kpi *a, int64_t t_ms, int64_t dt_ms)
{
    size_t k = (size_t)(a->tick_t_ms / KPI_WINDOW_MS);
    if (k < a->n_iv || iv_grow(a, k) == 0)
        a->iv_ms[k] += dt_ms;
    a->tick_t_ms = t_ms;
}

/* Site `site`'s interval means (site SIZE_MAX: the sum of every site's net load, no prices). */
static void iv_means(const struct optimum_kpi *a, size_t site, double *net, double *imp,
                     double *exp_)
{
    for (size_t k = 0; k < a->n_iv; k++) {
        double ms = a->iv_ms[k] > 0 ? (double)a->iv_ms[k] : 1;
        const size_t row = k * a->n_sites;
        if (site == SIZE_MAX) {
            double wh = 0;
            for (size_t i = 0; i < a->n_sites; i++)
                wh += a->iv_net_wh[row + i];
            net[k] = wh / (ms * KPI_WH_PER_W_MS);
            continue;
        }
        net[k] = a->iv_net_wh[row + site] / (ms * KPI_WH_PER_W_MS);
        imp[k] = a->iv_imp[row + site] / ms;
        exp_[k] = a->iv_exp[row + site] / ms;
    }
}

/* The price the end of a run is valued at (optimum_terminal_value): the site's cheapest
 * 15-minute import price of the run (a refill cannot cost less, a surplus displaces at least
 * that). The run's end_energy_value and the optimum's objective both use it. */
static double terminal_price(const double *imp, size_t n)
{
    double p_min = INFINITY;
    for (size_t i = 0; i < n; i++)
        p_min = fmin(p_min, imp[i]);
    return isfinite(p_min) ? fmax(p_min, 0.0) : 0.0;
}

/* KPI_END_ENERGY_VALUE of one site; NaN when the site has no SoC to value. */
static double end_value(double soc_last, const struct optimum_battery *b, size_t nb, double price)
{
    double cap = 0;
    for (size_t k = 0; k < nb; k++)
        cap += b[k].capacity_wh;
    if (!(cap > 0) || !isfinite(soc_last))
        return NAN;
    return optimum_terminal_value(b, nb, soc_last * cap, price);
}

/* The LP over the stored intervals (their means in net, imp, exp_; prices may be NULL). */
static int solve(const struct optimum_kpi *a, enum optimum_objective objective, const double *net,
                 const double *imp, const double *exp_, const struct optimum_battery *b,
                 size_t n_batteries, const struct optimum_long_opts *lo, struct optimum_result *res,
                 char *err, size_t errlen)
{
    struct optimum_problem pb = {.objective = objective,
                                 .n = a->n_iv,
                                 .dt_s = KPI_WINDOW_MS / 1000.0,
                                 .last_dt_s = a->iv_ms[a->n_iv - 1] / 1000.0,
                                 .net_load_w = net,
                                 .import_price = imp,
                                 .export_price = exp_,
                                 .batteries = b,
                                 .n_batteries = n_batteries,
                                 .terminal_valued = imp != NULL,
                                 .terminal_price = imp ? terminal_price(imp, a->n_iv) : 0};
    return optimum_solve_long(&pb, lo, res, NULL, err, errlen);
}

static int opt_fail(struct optimum_kpi *a, int rc)
{
    a->opt_failed = 1;
    return rc;
}

int optimum_kpi_site_solve(struct optimum_kpi *a, size_t site, const struct optimum_battery *b,
                           size_t n_batteries, const struct optimum_long_opts *lo, char *err,
                           size_t errlen)
{
    if (a->opt_failed || site >= a->n_sites || n_batteries == 0 || !a->os[site].prices_seen)
        return 0; /* nothing to save here */
    if (a->os[site].islanded) {
        /* islanded, the batteries serve the load and nothing is bought: the LP knows no
         * outage, so its figure would compare nothing (docs/kpis.md) */
        snprintf(err, errlen,
                 "optimum: the site was islanded by a grid outage, which the optimum does not "
                 "model");
        return opt_fail(a, -EDOM);
    }
    if (n_batteries > OPTIMUM_MAX_BATTERIES) {
        snprintf(err, errlen, "optimum: %zu batteries at the site, at most %d", n_batteries,
                 OPTIMUM_MAX_BATTERIES);
        return opt_fail(a, -E2BIG);
    }
    if (a->iv_dropped == -E2BIG)
        snprintf(err, errlen,
                 "optimum: %zu sites x %lld 15-minute intervals, over %d intervals or %u "
                 "sites x intervals",
                 a->n_sites, (long long)((a->tick_t_ms + KPI_WINDOW_MS - 1) / KPI_WINDOW_MS),
                 OPTIMUM_MAX_INTERVALS, KPI_OPTIMUM_MAX_ENTRIES);
    else if (a->iv_dropped)
        snprintf(err, errlen, "optimum: out of memory for the 15-minute intervals");
    if (a->iv_dropped)
        return opt_fail(a, a->iv_dropped);
    if (a->n_iv == 0)
        return 0;
    size_t n = a->n_iv;
    double *net = malloc(n * sizeof *net), *imp = malloc(n * sizeof *imp),
           *exp_ = malloc(n * sizeof *exp_);
    int rc = -ENOMEM;
    if (!net || !imp || !exp_) {
        snprintf(err, errlen, "optimum: out of memory");
        goto out;
    }
    iv_means(a, site, net, imp, exp_);
    struct optimum_result res;
    if ((rc = solve(a, OPTIMUM_MIN_COST, net, imp, exp_, b, n_batteries, lo, &res, err, errlen)) !=
        0)
        goto out;
    /* the lowest net_cost - end_energy_value any controller could reach, against the idle
     * cost at the run's steps */
    double opt_net = res.optimal_cost - res.end_value;
    a->opt_net_cost += opt_net;
    a->opt_savings += a->os[site].idle_cost - opt_net;
    a->opt_sites++;
    if (res.chunks > a->chunks)
        a->chunks = res.chunks;
    double ev = end_value(a->os[site].soc_last, b, n_batteries, terminal_price(imp, n));
    if (isfinite(ev)) {
        a->end_value += ev;
        a->end_sites++;
    }
out:
    free(net);
    free(imp);
    free(exp_);
    return rc ? opt_fail(a, rc) : 0;
}

int optimum_kpi_peak(struct optimum_kpi *a, const struct optimum_battery *b, size_t n_batteries,
                     const struct optimum_long_opts *lo, char *err, size_t errlen)
{
    if (a->opt_failed || a->opt_sites == 0 || n_batteries == 0 ||
        n_batteries > OPTIMUM_MAX_BATTERIES || a->n_iv == 0)
        return 0;
    size_t n = a->n_iv;
    /* one site: its prices too, for the cheapest schedule that holds the peak (the peak is the
     * same without; the solve is the one single-site runs have always had) */
    int one = a->n_sites == 1;
    double *net = malloc(n * sizeof *net), *imp = one ? malloc(n * sizeof *imp) : NULL,
           *exp_ = one ? malloc(n * sizeof *exp_) : NULL;
    int rc = -ENOMEM;
    if (!net || (one && (!imp || !exp_))) {
        snprintf(err, errlen, "optimum: out of memory");
        goto out;
    }
    iv_means(a, one ? 0 : SIZE_MAX, net, imp, exp_);
    struct optimum_result res;
    if ((rc = solve(a, OPTIMUM_MIN_PEAK, net, imp, exp_, b, n_batteries, lo, &res, err, errlen)) ==
        0)
        a->opt_peak_w = res.peak_w;
out:
    free(net);
    free(imp);
    free(exp_);
    return rc;
}

void optimum_kpi_solve_run(struct optimum_kpi *o, const struct scenario *sc, double soc_floor,
                           double soc_ceiling, const struct optimum_long_opts *lo,
                           void (*failed)(void *ctx, const char *line), void *ctx)
{
    struct optimum_battery all[OPTIMUM_MAX_BATTERIES], ob[OPTIMUM_MAX_BATTERIES];
    size_t n_all = 0;
    char err[256], line[400];
    for (size_t i = 0; i < sc->n_sites; i++) {
        const struct site_cfg *cfg = &sc->sites[i];
        size_t nb = 0; /* past the limit optimum_kpi_site_solve refuses the site, reading none */
        for (size_t k = 0; k < cfg->n_assets; k++) {
            if (cfg->assets[k].type != ASSET_BATTERY || nb++ >= OPTIMUM_MAX_BATTERIES)
                continue;
            optimum_battery_from_params(&ob[nb - 1], &cfg->assets[k].u.battery);
            ob[nb - 1].soc_min = soc_floor;
            ob[nb - 1].soc_max = soc_ceiling;
        }
        if (optimum_kpi_site_solve(o, i, ob, nb, lo, err, sizeof err) != 0) {
            snprintf(line, sizeof line, "site=%s event=optimum_failed reason=\"%s\"", cfg->id, err);
            snprintf(o->note, sizeof o->note, "site %s: %s", cfg->id, err);
            if (failed)
                failed(ctx, line);
            return;
        }
        for (size_t k = 0; k < nb; k++, n_all++)
            if (n_all < OPTIMUM_MAX_BATTERIES)
                all[n_all] = ob[k];
    }
    if (n_all <= OPTIMUM_MAX_BATTERIES &&
        optimum_kpi_peak(o, all, n_all, lo, err, sizeof err) != 0) {
        snprintf(line, sizeof line, "event=optimum_failed objective=min_peak reason=\"%s\"", err);
        snprintf(o->note, sizeof o->note, "optimal_peak_15m_kw: %s", err);
        if (failed)
            failed(ctx, line);
        return;
    }
    if (o->chunks > 1)
        snprintf(o->note, sizeof o->note,
                 "the optimum was solved in %zu chunks of %zu 15-minute intervals with %zu more "
                 "looked ahead: a near-optimum, not a proven bound (docs/kpis.md)",
                 o->chunks, lo && lo->chunk_n ? lo->chunk_n : (size_t)OPTIMUM_CHUNK_N,
                 lo && lo->lookahead_n ? lo->lookahead_n : (size_t)OPTIMUM_LOOKAHEAD_N);
}

void optimum_kpi_skip(struct optimum_kpi *o, const char *why)
{
    o->opt_failed = 1;
    snprintf(o->note, sizeof o->note, "%s", why);
}

const char *optimum_kpi_note(const struct optimum_kpi *o)
{
    return o->note;
}

void optimum_kpi_result(const struct optimum_kpi *o, struct kpi_set *out)
{
    int opt = !o->opt_failed && o->opt_sites > 0;
    out->v[KPI_OPTIMAL_SAVINGS] = opt ? o->opt_savings : NAN;
    out->v[KPI_OPTIMAL_NET_COST] = opt ? o->opt_net_cost : NAN;
    out->v[KPI_OPTIMAL_PEAK_15M_KW] = opt ? o->opt_peak_w / 1000.0 : NAN;
    out->v[KPI_END_ENERGY_VALUE] = opt && o->end_sites > 0 ? o->end_value : NAN;
}
