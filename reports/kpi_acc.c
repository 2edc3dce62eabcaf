/* kpi_acc: the KPI accumulator of kpi.h (kpi_acc_*).
 *
 * Everything here is a pure function of what the runner feeds in, in the order it feeds it:
 * no clock, no randomness, sums in tick order. Energies are integrated per step as power x
 * step length, which is exact for the simulator's piecewise-constant powers. Import, export
 * and their prices are metered per site (each site has its own connection point); peaks are
 * taken over the sum of the sites, the load the scenario puts on the grid as a whole. */
#include "reports/kpi.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/control/procimg.h"
#include "reports/freqresp.h"
#include "reports/oscill.h"

#define CLAMP_SLOTS (PROCIMG_MAX_DEVICES + 1) /* + the site-level slot (DECISION_SITE) */

/* the clamp reasons of one asset in one cycle are a bit set */
_Static_assert(DR_COUNT <= 32, "interlock reasons must fit a uint32_t mask");

/* One site's demand charge, streamed: its import in the current 15-minute window, the billing
 * period being counted, its peak so far and the periods already closed. */
struct site_bill {
    struct tariff_charges c;
    int64_t start_unix_ms;
    double win_wh;
    long period; /* -1 = none yet */
    double peak_w, billed;
};

struct kpi_acc {
    size_t n_sites;
    struct site_bill *bill; /* per site */
    int64_t win_start_ms;   /* the start of the current 15-minute window */
    int64_t run_ms;         /* steps so far (the standing charge) */
    double soc_floor, soc_ceiling;
    double v[KPI_COUNT]; /* integrals kept in Wh and W; converted in kpi_acc_result */
    int have_soc;
    double tick_grid_w; /* sum over sites of this tick */
    double win_import_wh;
    int64_t win_ms; /* covered length of the current 15-minute window */
    double last_win_w;
    double peak_win_w;
    double capacity_wh;
    /* step response (KPI_STEP_*) */
    double tick_net_w, prev_net_w;
    int have_prev_net, step_open;
    double step_w, step_overshoot_w, step_sq_w2, step_rebound_w;
    int64_t step_t_ms, step_last_out_ms, step_sq_ms;
    int64_t step_t90_ms, step_t98_ms; /* -1 until reached */
    uint32_t (*clamped)[CLAMP_SLOTS]; /* per site: reasons clamped in the previous cycle */
    struct freqresp *fr;              /* per site: frequency response */
    double island_demand_wh;          /* demand during islanded steps (KPI_ISLAND_SUPPLY_PCT) */
    struct oscill *osc;               /* the oscillation KPIs */
    int64_t t_ms;                     /* the end of the last tick: where the next step starts */
};

struct kpi_acc *kpi_acc_new(size_t n_sites, double soc_floor, double soc_ceiling)
{
    struct kpi_acc *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->clamped = calloc(n_sites ? n_sites : 1, sizeof *a->clamped);
    a->fr = calloc(n_sites ? n_sites : 1, sizeof *a->fr);
    a->bill = calloc(n_sites ? n_sites : 1, sizeof *a->bill);
    a->osc = oscill_new(n_sites);
    if (!a->clamped || !a->fr || !a->bill || !a->osc) {
        kpi_acc_free(a);
        return NULL;
    }
    for (size_t i = 0; i < n_sites; i++)
        a->bill[i].period = -1;
    a->n_sites = n_sites;
    a->soc_floor = soc_floor;
    a->soc_ceiling = soc_ceiling;
    a->v[KPI_SOC_MIN] = NAN;
    a->v[KPI_SOC_MAX] = NAN;
    a->v[KPI_TELEMETRY_DROPPED] = NAN; /* no headend in the loop until told */
    return a;
}

void kpi_acc_free(struct kpi_acc *a)
{
    if (!a)
        return;
    free(a->clamped);
    free(a->fr);
    free(a->bill);
    oscill_free(a->osc);
    free(a);
}

void kpi_acc_tariff(struct kpi_acc *a, size_t site, const struct tariff_charges *c,
                    int64_t start_unix_ms)
{
    if (site >= a->n_sites)
        return;
    a->bill[site].c = *c;
    a->bill[site].start_unix_ms = start_unix_ms;
}

void kpi_acc_freq_params(struct kpi_acc *a, size_t site, const struct gridsvc_contract *p)
{
    if (site < a->n_sites)
        freqresp_contract(&a->fr[site], p);
}

void kpi_acc_site(struct kpi_acc *a, size_t site, const struct kpi_sample *s, int64_t dt_ms)
{
    if (site < a->n_sites)
        freqresp_step(&a->fr[site], s->freq_hz, s->battery_w, dt_ms);
    oscill_grid(a->osc, site, s->grid_w, a->t_ms + dt_ms, dt_ms);
    const double h = (double)dt_ms * KPI_WH_PER_W_MS; /* W -> Wh over this step */
    double imp = s->grid_w > 0 ? s->grid_w : 0, exp = s->grid_w < 0 ? -s->grid_w : 0;
    a->v[KPI_ENERGY_IMPORT_KWH] += imp * h;
    a->v[KPI_ENERGY_EXPORT_KWH] += exp * h;
    if (site < a->n_sites)
        a->bill[site].win_wh += imp * h;
    a->v[KPI_PV_ENERGY_KWH] += s->pv_w * h;
    a->v[KPI_CONSUMPTION_KWH] += (s->load_w + s->evse_w + s->boiler_w) * h;
    if (!isnan(s->import_price)) {
        a->v[KPI_PRICES_KNOWN] = 1;
        a->v[KPI_ENERGY_COST] += imp * h / 1000.0 * s->import_price;
    }
    if (!isnan(s->export_price)) {
        a->v[KPI_PRICES_KNOWN] = 1;
        a->v[KPI_EXPORT_REVENUE] += exp * h / 1000.0 * s->export_price;
    }
    if (s->battery_w < 0)
        a->v[KPI_BATTERY_CHARGE_KWH] += -s->battery_w * h;
    else
        a->v[KPI_BATTERY_DISCHARGE_KWH] += s->battery_w * h;
    if (!isnan(s->soc_lo)) {
        if (!a->have_soc || s->soc_lo < a->v[KPI_SOC_MIN])
            a->v[KPI_SOC_MIN] = s->soc_lo;
        if (!a->have_soc || s->soc_hi > a->v[KPI_SOC_MAX])
            a->v[KPI_SOC_MAX] = s->soc_hi;
        a->have_soc = 1;
        if (s->soc_lo < a->soc_floor || s->soc_hi > a->soc_ceiling)
            a->v[KPI_SOC_OUTSIDE_LIMITS_S] += dt_ms / 1000.0;
    }
    a->v[KPI_BOILER_BELOW_MIN_S] += s->boilers_below_min * (dt_ms / 1000.0);
    if (s->islanded) {
        a->v[KPI_OUTAGE_S] += dt_ms / 1000.0;
        a->v[KPI_UNSERVED_ENERGY_KWH] += s->unserved_w * h;
        a->island_demand_wh += (s->load_w + s->evse_w + s->boiler_w) * h;
    }
    a->tick_grid_w += s->grid_w;
    a->tick_net_w += s->load_w + s->evse_w + s->boiler_w - s->pv_w;
}

/* The step response, streamed: a new largest step restarts the measurement; a later change
 * of more than half of it ends the window (the loop is answering something else then). */
static void step_response(struct kpi_acc *a, int64_t t_ms, int64_t dt_ms)
{
    double grid = a->tick_grid_w, net = a->tick_net_w;
    if (a->have_prev_net) {
        double d = net - a->prev_net_w;
        if (fabs(d) >= 100 && fabs(d) > fabs(a->step_w)) {
            a->step_w = d;
            a->step_t_ms = t_ms - dt_ms;
            a->step_last_out_ms = a->step_t_ms;
            a->step_overshoot_w = 0;
            a->step_sq_w2 = 0;
            a->step_sq_ms = 0;
            a->step_t90_ms = a->step_t98_ms = -1;
            a->step_rebound_w = 0;
            a->step_open = 1;
        } else if (a->step_open && fabs(d) > fabs(a->step_w) / 2) {
            a->step_open = 0;
        }
    }
    a->prev_net_w = net;
    a->have_prev_net = 1;
    if (!a->step_open)
        return;
    double band = fmax(0.05 * fabs(a->step_w), 50.0);
    if (fabs(grid) > band)
        a->step_last_out_ms = t_ms;
    double opposite = a->step_w > 0 ? -grid : grid;
    if (opposite > a->step_overshoot_w)
        a->step_overshoot_w = opposite;
    /* left: what remains in the step's direction; a rebound is a rise of it after t90 */
    double left = -opposite, size = fabs(a->step_w);
    if (a->step_t90_ms >= 0 && left > a->step_rebound_w)
        a->step_rebound_w = left;
    if (a->step_t90_ms < 0 && left <= 0.10 * size)
        a->step_t90_ms = t_ms;
    if (a->step_t98_ms < 0 && left <= 0.02 * size)
        a->step_t98_ms = t_ms;
    if (t_ms - dt_ms >= a->step_t_ms + 5 * 60 * 1000) {
        a->step_sq_w2 += grid * grid * (double)dt_ms;
        a->step_sq_ms += dt_ms;
    }
}

/* The demand charge of b with the window [win_start_ms, + win_ms) holding win_wh added:
 * (*period, *peak_w, *billed) as they stand after it. Pure, so kpi_acc_result can close the
 * last, partial window without touching the accumulator. */
static void bill_window(const struct kpi_acc *a, const struct site_bill *b, long *period,
                        double *peak_w, double *billed)
{
    *period = b->period;
    *peak_w = b->peak_w;
    *billed = b->billed;
    if (a->win_ms <= 0)
        return;
    long key = tariff_demand_period(&b->c, b->start_unix_ms + a->win_start_ms);
    if (key < 0)
        return;
    if (key != *period) { /* a new billing period: the last one's peak is billed */
        *billed += b->c.demand_per_kw * *peak_w / 1000.0;
        *peak_w = 0;
        *period = key;
    }
    *peak_w = fmax(*peak_w, b->win_wh / ((double)a->win_ms * KPI_WH_PER_W_MS));
}

static void close_window(struct kpi_acc *a)
{
    for (size_t i = 0; i < a->n_sites; i++) {
        struct site_bill *b = &a->bill[i];
        bill_window(a, b, &b->period, &b->peak_w, &b->billed);
        b->win_wh = 0;
    }
    if (a->win_ms <= 0)
        return;
    a->last_win_w = a->win_import_wh / ((double)a->win_ms * KPI_WH_PER_W_MS);
    if (a->last_win_w > a->peak_win_w)
        a->peak_win_w = a->last_win_w;
    a->win_import_wh = 0;
    a->win_ms = 0;
}

void kpi_acc_tick_end(struct kpi_acc *a, int64_t t_ms, int64_t dt_ms)
{
    double imp = a->tick_grid_w > 0 ? a->tick_grid_w : 0;
    if (imp > a->v[KPI_PEAK_IMPORT_KW])
        a->v[KPI_PEAK_IMPORT_KW] = imp;
    a->win_import_wh += imp * (double)dt_ms * KPI_WH_PER_W_MS;
    if (a->win_ms == 0)
        a->win_start_ms = t_ms - dt_ms;
    a->win_ms += dt_ms;
    a->run_ms += dt_ms;
    /* a step belongs to the window holding its start */
    if ((t_ms - dt_ms) / KPI_WINDOW_MS != t_ms / KPI_WINDOW_MS)
        close_window(a);
    step_response(a, t_ms, dt_ms);
    oscill_tick_end(a->osc, t_ms);
    a->t_ms = t_ms;
    a->tick_grid_w = 0;
    a->tick_net_w = 0;
}

double kpi_acc_window_import_w(const struct kpi_acc *a)
{
    return a->last_win_w;
}

void kpi_acc_decision(struct kpi_acc *a, size_t site, const struct decision *dm)
{
    if (site >= a->n_sites)
        return;
    oscill_decision(a->osc, site, dm);
    uint32_t now[CLAMP_SLOTS] = {0};
    for (size_t i = 0; i < dm->n_clamps; i++) {
        const struct decision_clamp *c = &dm->clamp[i];
        int slot = c->asset >= 0 && c->asset < PROCIMG_MAX_DEVICES ? c->asset : PROCIMG_MAX_DEVICES;
        if (c->reason < DR_COUNT)
            now[slot] |= 1u << c->reason;
    }
    uint32_t *prev = a->clamped[site];
    for (int s = 0; s < CLAMP_SLOTS; s++) {
        uint32_t rising = now[s] & ~prev[s];
        for (int r = 0; rising && r < DR_COUNT; r++)
            if (rising & (1u << r)) {
                a->v[KPI_INTERLOCK_FIRST + r] += 1;
                a->v[KPI_INTERLOCK_TOTAL] += 1;
            }
        prev[s] = now[s];
    }
}

void kpi_acc_site_totals(struct kpi_acc *a, const struct kpi_site_totals *t)
{
    a->capacity_wh += t->battery_capacity_wh;
    a->v[KPI_EV_ENERGY_DELIVERED_KWH] += t->ev_delivered_wh;
    a->v[KPI_EV_ENERGY_REQUESTED_KWH] += t->ev_requested_wh;
    a->v[KPI_EV_SHORTFALL_KWH] += t->ev_shortfall_wh;
    a->v[KPI_EV_SESSIONS_COMPLETED] += t->ev_sessions_done;
    a->v[KPI_EV_SESSIONS_FULL] += t->ev_sessions_full;
    a->v[KPI_BOILER_ENERGY_KWH] += t->boiler_energy_wh;
}

void kpi_acc_bus(struct kpi_acc *a, const struct bus_stats *st)
{
    a->v[KPI_MODBUS_REQUESTS] += (double)st->requests;
    a->v[KPI_MODBUS_TIMEOUTS] += (double)st->timeouts;
    a->v[KPI_MODBUS_EXCEPTIONS] += (double)st->exceptions;
    a->v[KPI_MODBUS_CONN_ERRORS] += (double)st->conn_errors;
    a->v[KPI_MODBUS_PROTO_ERRORS] += (double)st->proto_errors;
    a->v[KPI_MODBUS_RETRIES] += (double)st->retries;
    a->v[KPI_MODBUS_BREAKER_OPENS] += (double)st->breaker_opens;
    a->v[KPI_MODBUS_BREAKER_REJECTS] += (double)st->breaker_rejects;
}

void kpi_acc_counters(struct kpi_acc *a, uint64_t writes, uint64_t cycles, unsigned checks,
                      unsigned view_mismatches)
{
    a->v[KPI_SETPOINT_WRITES] = (double)writes;
    a->v[KPI_GATEWAY_CYCLES] = (double)cycles;
    a->v[KPI_CHECK_FAILURES] = checks;
    a->v[KPI_VIEW_MISMATCHES] = view_mismatches;
}

void kpi_acc_telemetry_dropped(struct kpi_acc *a, double dropped)
{
    a->v[KPI_TELEMETRY_DROPPED] = dropped;
}

static double ratio_left(double part, double whole)
{
    if (!(whole > 0))
        return 0;
    double r = 1.0 - part / whole;
    return r < 0 ? 0 : r > 1 ? 1 : r;
}

void kpi_acc_result(const struct kpi_acc *a, struct kpi_set *out)
{
    struct kpi_acc tmp = *a; /* closing the last, partial window must not change a */
    tmp.n_sites = 0;         /* (the sites' bills are shared: closed by bill_window below) */
    close_window(&tmp);
    memcpy(out->v, a->v, sizeof out->v);
    static const int wh[] = {KPI_ENERGY_IMPORT_KWH,       KPI_ENERGY_EXPORT_KWH,
                             KPI_PV_ENERGY_KWH,           KPI_CONSUMPTION_KWH,
                             KPI_BATTERY_CHARGE_KWH,      KPI_BATTERY_DISCHARGE_KWH,
                             KPI_EV_ENERGY_DELIVERED_KWH, KPI_EV_ENERGY_REQUESTED_KWH,
                             KPI_EV_SHORTFALL_KWH,        KPI_BOILER_ENERGY_KWH};
    for (size_t i = 0; i < sizeof wh / sizeof wh[0]; i++)
        out->v[wh[i]] /= 1000.0;
    out->v[KPI_NET_COST] = out->v[KPI_ENERGY_COST] - out->v[KPI_EXPORT_REVENUE];
    out->v[KPI_BILL_ENERGY] = out->v[KPI_NET_COST];
    out->v[KPI_BILL_DEMAND] = out->v[KPI_BILL_FIXED] = 0;
    for (size_t i = 0; i < a->n_sites; i++) {
        const struct site_bill *b = &a->bill[i];
        long period;
        double peak_w, billed;
        bill_window(a, b, &period, &peak_w, &billed);
        out->v[KPI_BILL_DEMAND] += billed + b->c.demand_per_kw * peak_w / 1000.0;
        out->v[KPI_BILL_FIXED] += b->c.standing_per_day * (double)a->run_ms / 86400000.0;
    }
    out->v[KPI_BILL_TOTAL] =
        out->v[KPI_BILL_ENERGY] + out->v[KPI_BILL_DEMAND] + out->v[KPI_BILL_FIXED];
    out->v[KPI_PEAK_IMPORT_KW] /= 1000.0;
    out->v[KPI_PEAK_IMPORT_15M_KW] = tmp.peak_win_w / 1000.0;
    out->v[KPI_SELF_CONSUMPTION_RATIO] =
        ratio_left(out->v[KPI_ENERGY_EXPORT_KWH], out->v[KPI_PV_ENERGY_KWH]);
    out->v[KPI_SELF_SUFFICIENCY_RATIO] =
        ratio_left(out->v[KPI_ENERGY_IMPORT_KWH], out->v[KPI_CONSUMPTION_KWH]);
    out->v[KPI_BATTERY_THROUGHPUT_KWH] =
        out->v[KPI_BATTERY_CHARGE_KWH] + out->v[KPI_BATTERY_DISCHARGE_KWH];
    out->v[KPI_BATTERY_EQUIVALENT_CYCLES] =
        a->capacity_wh > 0 ? out->v[KPI_BATTERY_THROUGHPUT_KWH] * 1000.0 / (2 * a->capacity_wh) : 0;
    out->v[KPI_OPTIMAL_SAVINGS] = NAN; /* optimum_kpi.h fills these */
    out->v[KPI_OPTIMAL_NET_COST] = NAN;
    out->v[KPI_OPTIMAL_PEAK_15M_KW] = NAN;
    out->v[KPI_END_ENERGY_VALUE] = NAN;
    int step = a->step_w != 0;
    out->v[KPI_STEP_SIZE_W] = step ? fabs(a->step_w) : NAN;
    out->v[KPI_STEP_SETTLING_S] = step ? (a->step_last_out_ms - a->step_t_ms) / 1000.0 : NAN;
    out->v[KPI_STEP_OVERSHOOT_PCT] = step ? 100.0 * a->step_overshoot_w / fabs(a->step_w) : NAN;
    out->v[KPI_STEP_T90_S] =
        step && a->step_t90_ms >= 0 ? (a->step_t90_ms - a->step_t_ms) / 1000.0 : NAN;
    out->v[KPI_STEP_T98_S] =
        step && a->step_t98_ms >= 0 ? (a->step_t98_ms - a->step_t_ms) / 1000.0 : NAN;
    out->v[KPI_STEP_REBOUND_PCT] =
        step && a->step_t90_ms >= 0 ? 100.0 * a->step_rebound_w / fabs(a->step_w) : NAN;
    out->v[KPI_STEP_RESIDUAL_RMS_W] =
        step && a->step_sq_ms > 0 ? sqrt(a->step_sq_w2 / (double)a->step_sq_ms) : NAN;
    double fcr_req = 0, fcr_del = 0;
    out->v[KPI_FCR_ACTIVATION_S] = out->v[KPI_FFR_ACTIVATION_S] = NAN;
    out->v[KPI_FFR_SUPPORT_PCT] = NAN;
    for (size_t i = 0; i < a->n_sites; i++) {
        struct freqresp_totals f;
        if (!freqresp_totals(&a->fr[i], &f))
            continue;
        out->v[KPI_FCR_ACTIVATION_S] = fmax(out->v[KPI_FCR_ACTIVATION_S], f.fcr_worst_s);
        out->v[KPI_FFR_ACTIVATION_S] = fmax(out->v[KPI_FFR_ACTIVATION_S], f.ffr_worst_s);
        out->v[KPI_FFR_SUPPORT_PCT] = fmin(out->v[KPI_FFR_SUPPORT_PCT], f.ffr_support_worst);
        fcr_req += f.fcr_req_wh;
        fcr_del += f.fcr_del_wh;
    }
    out->v[KPI_FCR_ENERGY_PCT] = fcr_req > 0 ? 100.0 * fcr_del / fcr_req : NAN;
    out->v[KPI_UNSERVED_ENERGY_KWH] /= 1000.0;
    out->v[KPI_ISLAND_SUPPLY_PCT] =
        a->island_demand_wh > 0
            ? 100.0 * (1.0 - a->v[KPI_UNSERVED_ENERGY_KWH] / a->island_demand_wh)
            : NAN;
    struct oscill_totals ot;
    oscill_result(a->osc, &ot);
    out->v[KPI_SETPOINT_REVERSALS_PER_H] = ot.battery_reversals_per_h;
    out->v[KPI_SITE_SETPOINT_REVERSALS_PER_H] = ot.site_reversals_per_h;
    out->v[KPI_GRID_TARGET_RMS_W] = ot.grid_target_rms_w;
    out->v[KPI_GRID_OSC_PERIOD_S] = ot.period_s;
    out->v[KPI_GRID_OSC_AMPLITUDE_W] = ot.amplitude_w;
    out->v[KPI_GRID_OSC_TIME_S] = ot.osc_time_s;
    out->v[KPI_GRID_OSC_SHARE] = ot.osc_share;
    for (int i = KPI_VS_FIRST; i < KPI_COUNT; i++)
        out->v[i] = NAN;
}
