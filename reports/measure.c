/* measure: see measure.h.
 *
 * Everything fed to the KPIs is read from the simulator's models after each step (the truth),
 * never from the gateway's view or the CSV files; the order of the calls is the runner's tick
 * order, so the sums, and kpis.json, are a function of the scenario alone. */
#include "reports/measure.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/bus/bus.h"
#include "gateway/control/safety.h"
#include "reports/fidelity.h"
#include "reports/optimum_kpi.h"
#include "reports/plot.h"
#include "sim/run/site.h"

struct measure {
    const struct scenario *sc;
    struct measure_opts o;
    struct runner_observer ob;
    struct runner *r;         /* from start on */
    struct safety_cfg safety; /* the gateway's limits, for the KPIs and plots */
    struct kpi_acc *kpi;
    struct optimum_kpi *opt;
    struct kpi_sample *ks; /* per site: the last step's sample */
    struct decision *dm0;  /* the first site's last cycle, for the plots */
    struct plot_rec *plot;
    struct fidelity *fid; /* the field record; NULL = none */
    struct kpi_set kpis;
};

/* What the KPIs need of a site after the step [t, t + dt). */
static void sample_site(struct site *s, int64_t t, struct kpi_sample *k)
{
    struct site_balance b = site_balance(s);
    const struct site_cfg *cfg = site_cfg(s);
    double soc_e = 0, cap = 0;
    *k = (struct kpi_sample){.grid_w = b.grid_w,
                             .load_w = b.load_w,
                             .pv_w = b.pv_w,
                             .battery_w = b.battery_w,
                             .evse_w = b.evse_w,
                             .boiler_w = b.boiler_w,
                             .soc_lo = NAN,
                             .soc_hi = NAN,
                             .soc_mean = NAN,
                             .boiler_temp_c = NAN,
                             .freq_hz = NAN,
                             .islanded = b.islanded,
                             .unserved_w = b.unserved_w};
    k->import_price = cfg->import_price ? profile_value(cfg->import_price, t) : NAN;
    k->export_price = cfg->export_price ? profile_value(cfg->export_price, t) : NAN;
    for (size_t i = 0; i < site_n_assets(s); i++) {
        const struct sim_asset *a = site_asset(s, i);
        switch (a->type) {
        case ASSET_BATTERY: {
            double soc = a->m.battery.soc;
            if (isnan(k->soc_lo) || soc < k->soc_lo)
                k->soc_lo = soc;
            if (isnan(k->soc_hi) || soc > k->soc_hi)
                k->soc_hi = soc;
            soc_e += a->m.battery.energy_wh;
            cap += a->m.battery.p.capacity_wh;
            break;
        }
        case ASSET_BOILER:
            k->boilers_below_min += a->m.boiler.temp_c < a->m.boiler.p.temp_min_c;
            if (isnan(k->boiler_temp_c))
                k->boiler_temp_c = a->m.boiler.temp_c;
            break;
        case ASSET_EVSE:
            k->ev_cars += a->m.evse.session >= 0;
            break;
        case ASSET_PV:
            k->pv_avail_w += a->m.pv.available_w;
            break;
        case ASSET_METER:
            /* the true frequency during the step, not the meter's held display: the KPIs time
             * the whole chain from the grid to the battery, the meter's refresh included */
            if (a->m.meter.p.role == METER_GRID && isnan(k->freq_hz))
                k->freq_hz = a->m.meter.p.frequency ? profile_value(a->m.meter.p.frequency, t)
                                                    : a->m.meter.p.nominal_hz;
            break;
        default:
            break;
        }
    }
    if (cap > 0)
        k->soc_mean = soc_e / cap;
}

/* The grid_services parameters of a gateway section and their path: the primary strategy's,
 * or the first stacked constraint's. NULL when neither is grid_services (*found 0). */
static const cJSON *gridsvc_params(const cJSON *gw, int *found, char *path, size_t pathlen)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(gw, "strategy"), *c;
    *found = 1;
    snprintf(path, pathlen, "gateway.params");
    if (cJSON_IsString(st) && !strcmp(st->valuestring, "grid_services"))
        return cJSON_GetObjectItemCaseSensitive(gw, "params");
    int k = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(gw, "constraints"))
    {
        st = cJSON_GetObjectItemCaseSensitive(c, "strategy");
        snprintf(path, pathlen, "gateway.constraints[%d].params", k++);
        if (cJSON_IsString(st) && !strcmp(st->valuestring, "grid_services"))
            return cJSON_GetObjectItemCaseSensitive(c, "params");
    }
    *found = 0;
    return NULL;
}

/* The frequency-response requirement the KPIs hold every site to: the gateway section's
 * grid_services contract, read by the strategy itself (gridsvc_contract_load), around the
 * nominal frequency of the site's grid meter (the grid's, not what the gateway believes). A
 * baseline run is judged by the original scenario's section (measure_opts.kpi_gateway), so a
 * baseline that does nothing shows as never activating. */
static int freq_requirements(struct measure *m, char *err, size_t errlen)
{
    const cJSON *gw = m->o.kpi_gateway ? m->o.kpi_gateway : m->sc->gateway;
    int found;
    char path[64];
    const cJSON *params = gridsvc_params(gw, &found, path, sizeof path);
    struct gridsvc_contract c;
    int rc = found ? gridsvc_contract_load(params, path, &c, err, errlen) : 0;
    for (size_t i = 0; found && rc == 0 && i < m->sc->n_sites; i++) {
        struct site *s = runner_site(m->r, i);
        for (size_t k = 0; k < site_n_assets(s); k++) {
            const struct sim_asset *a = site_asset(s, k);
            if (a->type == ASSET_METER && a->m.meter.p.role == METER_GRID) {
                c.nominal_hz = a->m.meter.p.nominal_hz;
                kpi_acc_freq_params(m->kpi, i, &c);
                break;
            }
        }
    }
    return rc;
}

/* What the models accumulated themselves, at the end of the run. */
static void site_totals(struct site *s, int64_t duration_ms, struct kpi_site_totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < site_n_assets(s); i++) {
        const struct sim_asset *a = site_asset(s, i);
        if (a->type == ASSET_BATTERY) {
            t->battery_capacity_wh += a->m.battery.p.capacity_wh;
        } else if (a->type == ASSET_BOILER) {
            t->boiler_energy_wh += a->m.boiler.energy_wh;
        } else if (a->type == ASSET_EVSE) {
            const struct evse *e = &a->m.evse;
            t->ev_delivered_wh += e->total_energy_wh;
            t->ev_shortfall_wh += e->shortfall_wh;
            t->ev_sessions_done += e->sessions_done;
            t->ev_sessions_full += e->sessions_full;
            const struct profile *p = e->p.sessions;
            for (size_t j = 0; p && j < p->n_sessions; j++)
                if (p->sessions[j].arrive_ms < duration_ms)
                    t->ev_requested_wh += p->sessions[j].energy_wh;
        }
    }
}

/* The plot row of a tick: powers summed over the sites, states and decision terms of the
 * first site (plots show one site; the KPIs cover all). */
static void plot_tick(struct measure *m, int64_t t1, int64_t step)
{
    const struct kpi_sample *k = m->ks;
    const struct decision *dm0 = m->dm0;
    struct site *s0 = runner_site(m->r, 0);
    struct plot_point p = {
        .soc = k[0].soc_mean,
        .soc_floor = m->safety.soc_floor,
        .soc_ceiling = m->safety.soc_ceiling,
        .grid_limit_w = m->safety.grid_import_max_w < 1e9 ? m->safety.grid_import_max_w : NAN,
        .import_15m_w = kpi_acc_window_import_w(m->kpi),
        .import_price = k[0].import_price,
        .export_price = k[0].export_price,
        .ev_cars = k[0].ev_cars,
        .boiler_temp_c = k[0].boiler_temp_c,
        .boiler_min_c = NAN,
        .target_w = dm0->target_w,
        .error_w = dm0->error_w,
        .p_w = dm0->p_w,
        .i_w = dm0->i_w,
        .d_w = dm0->d_w,
        .raw_w = dm0->raw_w,
        .field_grid_w = m->fid ? fidelity_field_at(m->fid, FID_GRID_W, t1) : NAN,
        .field_soc = m->fid ? fidelity_field_at(m->fid, FID_SOC, t1) : NAN,
        .field_battery_w = m->fid ? fidelity_field_at(m->fid, FID_BATTERY_W, t1) : NAN};
    for (size_t i = 0; i < m->sc->n_sites; i++) {
        p.grid_w += k[i].grid_w;
        p.pv_w += k[i].pv_w;
        p.battery_w += k[i].battery_w;
        p.load_w += k[i].load_w;
        p.evse_w += k[i].evse_w;
        p.boiler_w += k[i].boiler_w;
    }
    int nb = 0;
    for (int b = 0; b < PLOT_BATTERIES; b++)
        p.bat_w[b] = p.bat_soc[b] = NAN;
    for (size_t a = 0; a < site_n_assets(s0); a++) {
        const struct sim_asset *as = site_asset(s0, a);
        if (as->type == ASSET_BOILER && isnan(p.boiler_min_c))
            p.boiler_min_c = as->m.boiler.p.temp_min_c;
        if (as->type == ASSET_BATTERY && nb < PLOT_BATTERIES) {
            p.bat_w[nb] = as->m.battery.power_w;
            p.bat_soc[nb++] = as->m.battery.soc;
        }
    }
    plot_rec_add(m->plot, t1, step, &p);
}

static int on_start(void *ctx, struct runner *r, char *err, size_t errlen)
{
    struct measure *m = ctx;
    m->r = r;
    if (m->o.plot_dir &&
        !(m->plot =
              plot_rec_open(m->o.plot_dir, plot_sample_ms(m->sc->duration_ms, m->sc->step_ms)))) {
        int e = errno;
        snprintf(err, errlen, "%s/plots: cannot write: %s", m->o.plot_dir, strerror(e));
        return -e;
    }
    return freq_requirements(m, err, errlen);
}

static void on_site_step(void *ctx, size_t i, struct site *s, int64_t t_ms, int64_t dt_ms)
{
    struct measure *m = ctx;
    sample_site(s, t_ms, &m->ks[i]);
    kpi_acc_site(m->kpi, i, &m->ks[i], dt_ms);
    optimum_kpi_site(m->opt, i, &m->ks[i], dt_ms);
}

static void on_tick_end(void *ctx, int64_t t_ms, int64_t dt_ms)
{
    struct measure *m = ctx;
    kpi_acc_tick_end(m->kpi, t_ms, dt_ms);
    optimum_kpi_tick_end(m->opt, t_ms, dt_ms);
    if (m->fid) {
        /* the sites' sum, as the plots show it; SoC of the first site */
        double sim[FID_COUNT] = {0, m->ks[0].soc_mean, 0};
        for (size_t i = 0; i < m->sc->n_sites; i++) {
            sim[FID_GRID_W] += m->ks[i].grid_w;
            sim[FID_BATTERY_W] += m->ks[i].battery_w;
        }
        fidelity_step(m->fid, t_ms, sim);
    }
}

static void on_cycle(void *ctx, size_t i, const struct decision *dm)
{
    struct measure *m = ctx;
    kpi_acc_decision(m->kpi, i, dm);
    if (i == 0 && m->plot)
        *m->dm0 = *dm; /* 30 KB: only when the plots need it */
}

static void on_tick_done(void *ctx, int64_t t_ms, int64_t dt_ms)
{
    struct measure *m = ctx;
    if (m->plot)
        plot_tick(m, t_ms, dt_ms);
}

static void optimum_failed(void *ctx, const char *line)
{
    runner_event(ctx, line);
}

static void on_finish(void *ctx, struct runner *r, const struct runner_result *res)
{
    struct measure *m = ctx;
    for (size_t i = 0; i < m->sc->n_sites; i++) {
        struct kpi_site_totals tot;
        site_totals(runner_site(r, i), m->sc->duration_ms, &tot);
        kpi_acc_site_totals(m->kpi, &tot);
        struct bus_stats st;
        if (runner_bus_stats(r, i, &st) == 0)
            kpi_acc_bus(m->kpi, &st);
    }
    kpi_acc_counters(m->kpi, res->setpoint_writes, res->cycles, res->check_failures,
                     res->view_mismatches);
    kpi_acc_telemetry_dropped(m->kpi, runner_telemetry_dropped(r));
    if (m->o.no_optimum)
        optimum_kpi_skip(m->opt, m->o.no_optimum);
    else
        optimum_kpi_solve_run(m->opt, m->sc, m->safety.soc_floor, m->safety.soc_ceiling,
                              m->o.optimum, optimum_failed, r);
    kpi_acc_result(m->kpi, &m->kpis);
    optimum_kpi_result(m->opt, &m->kpis);
    fidelity_result(m->fid, &m->kpis);
}

struct measure *measure_new(const struct scenario *sc, const struct measure_opts *o, char *err,
                            size_t errlen)
{
    struct measure *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->sc = sc;
    m->o = *o;
    /* the limits the KPIs judge SoC by: the gateway's own (defaults when it names none; a bad
     * section fails in controller_new with a better message) */
    char sub[256];
    if (safety_cfg_load(cJSON_GetObjectItemCaseSensitive(sc->gateway, "safety"), "safety",
                        &m->safety, sub, sizeof sub) != 0)
        safety_cfg_load(NULL, "safety", &m->safety, sub, sizeof sub);
    m->kpi = kpi_acc_new(sc->n_sites, m->safety.soc_floor, m->safety.soc_ceiling);
    m->opt = optimum_kpi_new(sc->n_sites);
    m->ks = calloc(sc->n_sites ? sc->n_sites : 1, sizeof *m->ks);
    m->dm0 = malloc(sizeof *m->dm0);
    if (!m->kpi || !m->opt || !m->ks || !m->dm0) {
        measure_free(m);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (fidelity_open(sc, o->field_csv, &m->fid, err, errlen)) {
        measure_free(m);
        return NULL;
    }
    decision_init(m->dm0, &(struct procimg){0}, NULL);
    for (size_t i = 0; i < sc->n_sites; i++) /* the bill's demand and standing charges */
        kpi_acc_tariff(m->kpi, i, &sc->sites[i].charges, sc->start_unix_ms);
    m->ob = (struct runner_observer){.ctx = m,
                                     .start = on_start,
                                     .site_step = on_site_step,
                                     .tick_end = on_tick_end,
                                     .cycle = on_cycle,
                                     .tick_done = on_tick_done,
                                     .finish = on_finish};
    return m;
}

const struct runner_observer *measure_observer(struct measure *m)
{
    return &m->ob;
}

int measure_end(struct measure *m, struct kpi_set *out, char *err, size_t errlen)
{
    *out = m->kpis;
    int rc = plot_rec_close(m->plot);
    m->plot = NULL;
    if (rc)
        snprintf(err, errlen, "%s/plots/data.csv: write error", m->o.plot_dir);
    return rc;
}

const char *measure_optimum_note(const struct measure *m)
{
    return optimum_kpi_note(m->opt);
}

void measure_free(struct measure *m)
{
    if (!m)
        return;
    plot_rec_close(m->plot);
    kpi_acc_free(m->kpi);
    optimum_kpi_free(m->opt);
    fidelity_free(m->fid);
    free(m->ks);
    free(m->dm0);
    free(m);
}
