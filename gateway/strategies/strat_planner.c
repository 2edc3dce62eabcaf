/* strat_planner: the Planner strategy: a rolling-horizon plan of the batteries' power by linear
 * programming (GLPK), from the site's net-load forecast (sitectx.forecast, forecast.h) and its
 * tariff, re-planned at every slot boundary; between plan points the batteries hold the plan's
 * grid power with NetZero's loop (or, with follow_grid false, its battery power). The
 * formulation (docs/strategies.md, `planner`), per slot k of length h_k hours:
 *
 *   minimise  sum_k (p_imp,k gi_k + (p_imp,k + penalty) gx_k - p_exp,k ge_k) h_k / 1000
 *             + demand_price x P / 1000 - terminal value
 *   gi_k + gx_k - ge_k - c_k + d_k - cu_k = net_k     (the site balance; cu: PV curtailed)
 *   e_k = e_k-1 + eta_c c_k h_k - d_k h_k / eta_d     (e_-1 = the measured energy now)
 *   P >= gi_k + gx_k for the billed slots, P >= the billing period's peak so far
 *   0 <= gi <= import_limit_w, gx, ge <= export_limit_w, c <= max charge, d <= max discharge,
 *   cu <= the slot's surplus, e within [max(soc_min, reserve_soc), soc_max] x capacity
 *
 * The energy left at the horizon's end counts against the energy now by the rule the KPIs value
 * a run's end with (a surplus at eta_d x the horizon's cheapest import price, a deficit at that
 * price / eta_c), so the plan neither dumps nor hoards at its end. Pure and deterministic: the
 * same image, forecast and state give the same plan. */
#include "gateway/strategies/strat_util.h"
#include "gateway/strategies/strategy.h"

#include <errno.h>
#include <glpk.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define PLAN_MAX_SLOTS   (7 * 96)
#define PLAN_MAX_PERIODS 4
#define WINDOW_MS        900000 /* the demand charge's 15-minute window (common/tariff.h) */
#define COLS_PER_SLOT    7

struct plan_cfg {
    int64_t horizon_ms, slot_ms;
    double eta_charge, eta_discharge, soc_min, soc_max, reserve_soc, low_band, high_band;
    double max_charge_w, max_discharge_w;
    double import_limit_w, limit_penalty, export_limit_w, margin_w;
    int follow_grid;
    double kp, ki_per_s, deadband_w, import_bias_w;
};

struct plan_state {
    const struct plan_cfg *cfg;
    struct pid pid;
    int has_plan, no_forecast;
    int64_t plan_at;      /* when a plan was last tried */
    int64_t slot_end;     /* end of the plan's first slot: the next plan */
    double grid_w, bat_w; /* the first slot's planned grid and battery power */
    size_t n_slots;
    /* the demand charge's measured peak: 15-minute windows of the grid import */
    int64_t win_idx, last_ms;
    double win_wh;
    long period;
    double peak_w;
    size_t solves;
    /* the horizon's slots (boundaries), forecast net load, prices and billing periods */
    int64_t t[PLAN_MAX_SLOTS + 1];
    double net[PLAN_MAX_SLOTS], pi[PLAN_MAX_SLOTS], pe[PLAN_MAX_SLOTS];
    long per[PLAN_MAX_SLOTS];
};

#define F(m) offsetof(struct plan_cfg, m)
static const struct param_field plan_fields[] = {
    {"horizon", PARAM_DURATION_MS, F(horizon_ms), 86400000, 3600000, 7 * 86400000LL, "ms",
     "how far ahead the plan looks (as far as the forecast goes)"},
    {"slot", PARAM_DURATION_MS, F(slot_ms), 900000, 60000, 3600000, "ms",
     "slot length of the plan; a new plan at every slot boundary"},
    {"eta_charge", PARAM_DOUBLE, F(eta_charge), 0.95, 0.1, 1, "0..1",
     "energy stored / energy taken when charging"},
    {"eta_discharge", PARAM_DOUBLE, F(eta_discharge), 0.95, 0.1, 1, "0..1",
     "energy delivered / energy taken from storage when discharging"},
    {"soc_min", PARAM_DOUBLE, F(soc_min), 0.05, 0, 1, "0..1",
     "lowest planned site SoC (the safety floor by default)"},
    {"soc_max", PARAM_DOUBLE, F(soc_max), 0.95, 0, 1, "0..1",
     "highest planned site SoC (the safety ceiling by default)"},
    {"soc_low_band", PARAM_DOUBLE, F(low_band), 0.05, 0, 0.5, "0..1",
     "below this SoC the batteries' discharge power tapers linearly to 0 at empty (0 = none)"},
    {"soc_high_band", PARAM_DOUBLE, F(high_band), 0.9, 0.5, 1, "0..1",
     "above this SoC the batteries' charge power tapers linearly to 0 at full (1 = none)"},
    {"reserve_soc", PARAM_DOUBLE, F(reserve_soc), 0, 0, 1, "0..1",
     "a backup reserve the plan keeps (as a backup_power constraint does; 0 = none)"},
    {"max_charge_w", PARAM_DOUBLE, F(max_charge_w), 1e5, 0, 1e7, "W",
     "largest planned charge (the batteries' own limits apply too)"},
    {"max_discharge_w", PARAM_DOUBLE, F(max_discharge_w), 1e5, 0, 1e7, "W",
     "largest planned discharge"},
    {"import_limit_w", PARAM_DOUBLE, F(import_limit_w), 0, 0, 1e8, "W",
     "grid import the plan stays under, a soft limit (a peak-shaving constraint's); 0 = none"},
    {"limit_penalty", PARAM_DOUBLE, F(limit_penalty), 10, 0, 1000, "currency/kWh",
     "cost per kWh imported above import_limit_w in the plan"},
    {"export_limit_w", PARAM_DOUBLE, F(export_limit_w), 1e9, 0, 1e9, "W",
     "largest planned export (PV above it is curtailed)"},
    {"margin_w", PARAM_DOUBLE, F(margin_w), 200, 0, 1e5, "W",
     "the plan's export stays this far inside export_limit_w (curtailment acts at the limit)"},
    {"follow_grid", PARAM_BOOL, F(follow_grid), 1, 0, 1, "",
     "between plan points hold the planned grid power (false: the planned battery power)"},
    {"kp", PARAM_DOUBLE, F(kp), 0.5, 0, 100, "W/W", "proportional gain of the grid loop"},
    {"ki_per_s", PARAM_DOUBLE, F(ki_per_s), 0.2, 0, 100, "1/s", "integral gain of the grid loop"},
    {"deadband_w", PARAM_DOUBLE, F(deadband_w), 20, 0, 1000, "W",
     "grid error within +/- this counts as zero in the grid loop"},
    {"import_bias_w", PARAM_DOUBLE, F(import_bias_w), 50, 0, 10000, "W",
     "while a discharge covers the load (planned import >= 0), the loop aims this much above "
     "the planned import, so that the load's fast noise is not exported from the battery"},
};
#undef F

static int plan_check(const void *cfgp, const char *path, char *err, size_t errlen)
{
    const struct plan_cfg *c = cfgp;
    if (!(c->soc_min < c->soc_max)) {
        snprintf(err, errlen, "%s.soc_min: must be below soc_max (%g), got %g", path, c->soc_max,
                 c->soc_min);
        return -EINVAL;
    }
    if (c->horizon_ms / c->slot_ms > PLAN_MAX_SLOTS) {
        snprintf(err, errlen, "%s.horizon: at most %d slots, got %lld", path, PLAN_MAX_SLOTS,
                 (long long)(c->horizon_ms / c->slot_ms));
        return -EINVAL;
    }
    return 0;
}

static int plan_init(void *state, const void *cfg)
{
    struct plan_state *s = state;
    s->cfg = cfg;
    s->win_idx = INT64_MIN;
    s->period = -2;
    s->slot_end = INT64_MIN; /* plan at the first cycle */
    int rc = strat_follow_init(&s->pid, s->cfg->kp, s->cfg->ki_per_s);
    s->pid.cfg.deadband_w = s->cfg->deadband_w;
    return rc;
}

/* Calendar time of now_ms (run time without a calendar). */
static int64_t plan_unix(const struct procimg *img, int64_t now_ms)
{
    int64_t u;
    return sitectx_calendar(img->ctx, now_ms, &u) == 0 ? u : now_ms;
}

static long plan_period(const struct procimg *img, int64_t now_ms)
{
    if (!img->ctx || !(img->ctx->charges.demand_per_kw > 0))
        return -1;
    return tariff_demand_period(&img->ctx->charges, plan_unix(img, now_ms));
}

/* The measured 15-minute mean imports: the billing period's peak so far, the current window's
 * energy. */
static void plan_meter(struct plan_state *s, const struct procimg *img, int64_t now_ms)
{
    int64_t idx = plan_unix(img, now_ms) / WINDOW_MS;
    if (idx != s->win_idx) {
        if (s->win_idx != INT64_MIN) {
            /* the billing period of the window that just ended */
            long p = img->ctx && img->ctx->charges.demand_per_kw > 0
                         ? tariff_demand_period(&img->ctx->charges, s->win_idx * WINDOW_MS)
                         : -1;
            if (p != s->period) {
                s->period = p;
                s->peak_w = 0;
            }
            if (p >= 0)
                s->peak_w = fmax(s->peak_w, s->win_wh * 3600000.0 / WINDOW_MS);
        }
        s->win_idx = idx;
        s->win_wh = 0;
    } else if (now_ms > s->last_ms && img->grid_ok && isfinite(img->grid_w)) {
        s->win_wh += fmax(img->grid_w, 0) * (double)(now_ms - s->last_ms) / 3600000.0;
    }
    s->last_ms = now_ms;
}

/* The sum of the usable batteries' reported limits, capped by the parameter. */
static double plan_limit(const struct procimg *img, double cap_w, int charge)
{
    double sum = 0;
    int all = 1;
    for (size_t i = 0; i < img->n_devices; i++) {
        const struct procimg_dev *d = &img->dev[i];
        if (d->type != PROCIMG_BATTERY || !procimg_dev_usable(d))
            continue;
        double v = charge ? d->max_charge_w : d->max_discharge_w;
        if (isfinite(v) && v >= 0)
            sum += v;
        else
            all = 0;
    }
    return all ? fmin(sum, cap_w) : cap_w;
}

/* Builds and solves the LP from now_ms; fills the first slot's plan. 0, or -1 without prices,
 * a capacity or a solution. */
static int plan_solve(struct plan_state *s, const struct procimg *img, int64_t now_ms)
{
    const struct plan_cfg *c = s->cfg;
    double cap = procimg_capacity_wh(img), soc = procimg_site_soc(img);
    if (!img->ctx || !(cap > 0) || isnan(soc))
        return -1;
    const struct forecast *fc = &img->ctx->forecast;
    double base = strat_base_w(img);
    int64_t unix0 = plan_unix(img, now_ms), off = unix0 - now_ms;
    int64_t end = now_ms + c->horizon_ms, fend = forecast_end_ms(fc);
    s->no_forecast = fc->n == 0;
    if (!s->no_forecast && fend < end)
        end = fend;
    /* slots aligned to the calendar: the first is what is left of the current one */
    int64_t *t = s->t;
    double *net = s->net, *pi = s->pi, *pe = s->pe;
    long *per = s->per;
    size_t n = 0;
    int64_t tk = now_ms;
    double p_term = INFINITY;
    while (tk < end && n < PLAN_MAX_SLOTS) {
        int64_t r = (tk + off) % c->slot_ms;
        int64_t te = tk + c->slot_ms - (r < 0 ? r + c->slot_ms : r);
        if (te > end)
            te = end;
        double f = s->no_forecast ? base : forecast_net_w(fc, tk, te);
        double b = sitectx_price(img->ctx, 0, tk), q = sitectx_price(img->ctx, 1, tk);
        if (isnan(f) || isnan(b))
            break;
        t[n] = tk;
        net[n] = f;
        pi[n] = b;
        pe[n] = isnan(q) ? 0 : q;
        per[n] = plan_period(img, tk);
        p_term = fmin(p_term, b);
        n++;
        tk = te;
    }
    t[n] = tk;
    if (n == 0)
        return -1;
    /* the price the horizon's end is valued at: the cheapest import of a whole horizon back
     * from its end, so a plan cut short by the forecast's end still sees the cheap hours the
     * horizon would have held (the KPIs value a run's end at the run's cheapest price) */
    for (int64_t tb = now_ms - c->slot_ms; tb >= tk - c->horizon_ms; tb -= c->slot_ms) {
        double b = sitectx_price(img->ctx, 0, tb);
        if (!isnan(b))
            p_term = fmin(p_term, b);
    }
    p_term = fmax(p_term, 0);
    double cmax = plan_limit(img, c->max_charge_w, 1),
           dmax = plan_limit(img, c->max_discharge_w, 0);
    double e0 = soc * cap, elo = fmax(c->soc_min, c->reserve_soc) * cap, ehi = c->soc_max * cap;
    elo = fmin(elo, e0); /* never infeasible from where the battery is */
    ehi = fmax(ehi, e0);
    if (elo > ehi)
        elo = ehi;
    /* the billing periods in sight, each with its peak variable */
    long pids[PLAN_MAX_PERIODS] = {0};
    size_t np = 0;
    long cur = plan_period(img, now_ms);
    for (size_t k = 0; k < n; k++) {
        if (per[k] < 0)
            continue;
        size_t j = 0;
        while (j < np && pids[j] != per[k])
            j++;
        if (j == np && np < PLAN_MAX_PERIODS)
            pids[np++] = per[k];
    }
    glp_prob *g = glp_create_prob();
    glp_set_obj_dir(g, GLP_MIN);
    int cols = (int)(COLS_PER_SLOT * n + 2 + np);
    glp_add_cols(g, cols);
    /* columns per slot: gi, gx, ge, c, d, e, cu (1-based: 1 + 7k + i) */
    int rows = 0;
    size_t nz_cap = 20 * n + 8, nz = 0;
    int *ia = malloc((nz_cap + 1) * sizeof *ia), *ja = malloc((nz_cap + 1) * sizeof *ja);
    double *ar = malloc((nz_cap + 1) * sizeof *ar);
    if (!ia || !ja || !ar) {
        free(ia);
        free(ja);
        free(ar);
        glp_delete_prob(g);
        return -1;
    }
#define COL(k, i)      (1 + COLS_PER_SLOT * (int)(k) + (i))
#define NZ(r, cidx, v) (++nz, ia[nz] = (r), ja[nz] = (cidx), ar[nz] = (v))
    int up = COLS_PER_SLOT * (int)n + 1, dn = up + 1, pcol = up + 2;
    double lim = c->import_limit_w > 0 ? c->import_limit_w : 1e9;
    /* planned export stays margin_w inside the limit, where PV curtailment (a self_consumption
     * constraint) does not act yet: the two loops never share a target */
    double elim = fmax(c->export_limit_w - c->margin_w, 0);
    for (size_t k = 0; k < n; k++) {
        double h = (double)(t[k + 1] - t[k]) / 3600000.0;
        glp_set_col_bnds(g, COL(k, 0), GLP_DB, 0, lim);
        glp_set_col_bnds(g, COL(k, 1), GLP_LO, 0, 0);
        glp_set_col_bnds(g, COL(k, 2), GLP_DB, 0, elim);
        glp_set_col_bnds(g, COL(k, 3), cmax > 0 ? GLP_DB : GLP_FX, 0, cmax);
        glp_set_col_bnds(g, COL(k, 4), dmax > 0 ? GLP_DB : GLP_FX, 0, dmax);
        glp_set_col_bnds(g, COL(k, 5), ehi > elo ? GLP_DB : GLP_FX, elo, ehi);
        double surplus = fmax(-net[k], 0);
        glp_set_col_bnds(g, COL(k, 6), surplus > 0 ? GLP_DB : GLP_FX, 0, surplus);
        /* the objective in milli-currency (per W and hour = per kWh): GLPK's optimality
         * tolerance (1e-7 on reduced costs) would otherwise swallow the tie-breaks */
        glp_set_obj_coef(g, COL(k, 0), pi[k] * h);
        glp_set_obj_coef(g, COL(k, 1), (pi[k] + c->limit_penalty) * h);
        glp_set_obj_coef(g, COL(k, 2), -pe[k] * h);
        /* a hair of cost on throughput and curtailment: of equal plans the calmer one; and
         * on charging later: of equal prices the earlier charge leaves room for the taper
         * near full and for what the forecast missed */
        glp_set_obj_coef(g, COL(k, 3), (1e-4 + 1e-5 * fmin((double)k, 96)) * h);
        glp_set_obj_coef(g, COL(k, 4), 1e-4 * h);
        glp_set_obj_coef(g, COL(k, 6), 1e-4 * h);
        rows = glp_add_rows(g, 2) - 1;
        glp_set_row_bnds(g, rows + 1, GLP_FX, net[k], net[k]); /* balance */
        NZ(rows + 1, COL(k, 0), 1);
        NZ(rows + 1, COL(k, 1), 1);
        NZ(rows + 1, COL(k, 2), -1);
        NZ(rows + 1, COL(k, 3), -1);
        NZ(rows + 1, COL(k, 4), 1);
        NZ(rows + 1, COL(k, 6), -1);
        double rhs = k == 0 ? e0 : 0; /* energy */
        glp_set_row_bnds(g, rows + 2, GLP_FX, rhs, rhs);
        NZ(rows + 2, COL(k, 5), 1);
        if (k > 0)
            NZ(rows + 2, COL(k - 1, 5), -1);
        NZ(rows + 2, COL(k, 3), -c->eta_charge * h);
        NZ(rows + 2, COL(k, 4), h / c->eta_discharge);
        /* the batteries' power derates near the SoC ends (docs/physics.md), linear in the
         * energy at the slot's start, as the optimum models them */
        if (c->high_band < 1 && cmax > 0) {
            double a = cmax / (cap * (1 - c->high_band)), top = cmax / (1 - c->high_band);
            int r = glp_add_rows(g, 1);
            NZ(r, COL(k, 3), 1);
            if (k > 0)
                NZ(r, COL(k - 1, 5), a);
            glp_set_row_bnds(g, r, GLP_UP, 0, k > 0 ? top : fmax(top - a * e0, 0));
        }
        if (c->low_band > 0 && dmax > 0) {
            double a = dmax / (cap * c->low_band);
            int r = glp_add_rows(g, 1);
            NZ(r, COL(k, 4), 1);
            if (k > 0)
                NZ(r, COL(k - 1, 5), -a);
            glp_set_row_bnds(g, r, GLP_UP, 0, k > 0 ? 0 : a * e0);
        }
        if (per[k] >= 0) { /* the peak of its billing period */
            size_t j = 0;
            while (j < np && pids[j] != per[k])
                j++;
            if (j < np) {
                int r = glp_add_rows(g, 1);
                /* the first slot shares its 15-minute window with the energy already imported */
                double share = 1, lo = 0;
                if (k == 0 && per[k] == cur && c->slot_ms == WINDOW_MS) {
                    share = (double)(t[1] - t[0]) / WINDOW_MS;
                    lo = s->win_wh * 3600000.0 / WINDOW_MS;
                }
                glp_set_row_bnds(g, r, GLP_LO, lo, 0);
                NZ(r, pcol + (int)j, 1);
                NZ(r, COL(k, 0), -share);
                NZ(r, COL(k, 1), -share);
            }
        }
    }
    /* the horizon's end against now: e_end - up + dn = e0 */
    int r = glp_add_rows(g, 1);
    glp_set_row_bnds(g, r, GLP_FX, e0, e0);
    NZ(r, COL(n - 1, 5), 1);
    NZ(r, up, -1);
    NZ(r, dn, 1);
    glp_set_col_bnds(g, up, GLP_LO, 0, 0);
    glp_set_col_bnds(g, dn, GLP_LO, 0, 0);
    glp_set_obj_coef(g, up, -p_term * c->eta_discharge);
    glp_set_obj_coef(g, dn, p_term / c->eta_charge);
    for (size_t j = 0; j < np; j++) {
        double floor_w = pids[j] == s->period ? s->peak_w : 0;
        glp_set_col_bnds(g, pcol + (int)j, GLP_LO, floor_w, 0);
        glp_set_obj_coef(g, pcol + (int)j, img->ctx->charges.demand_per_kw);
    }
#undef NZ
#undef COL
    glp_load_matrix(g, (int)nz, ia, ja, ar);
    free(ia);
    free(ja);
    free(ar);
    glp_smcp parm;
    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    parm.presolve = GLP_ON;
    int rc = glp_simplex(g, &parm);
    int ok = rc == 0 && glp_get_status(g) == GLP_OPT;
    if (ok) {
        s->grid_w = glp_get_col_prim(g, 1) + glp_get_col_prim(g, 2) - glp_get_col_prim(g, 3);
        s->bat_w = glp_get_col_prim(g, 5) - glp_get_col_prim(g, 4);
        s->slot_end = t[1];
        s->n_slots = n;
        s->solves++;
    }
    glp_delete_prob(g);
    return ok ? 0 : -1;
}

static int plan_decide(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm)
{
    struct plan_state *s = state;
    const struct plan_cfg *c = s->cfg;
    plan_meter(s, img, now_ms);
    if (now_ms >= s->slot_end || now_ms < s->plan_at) {
        s->plan_at = now_ms;
        double was = s->has_plan ? s->bat_w : 0;
        s->has_plan = plan_solve(s, img, now_ms) == 0;
        /* a new slot that turns the battery around starts the loop from the planned power
         * rather than winding through zero at its rate limit */
        if (s->has_plan && was * s->bat_w < 0)
            pid_preset(&s->pid, s->bat_w);
        if (!s->has_plan)
            s->slot_end = now_ms + 60000; /* try again in a minute */
    }
    double w = 0, soc = procimg_site_soc(img);
    if (!s->has_plan) {
        pid_reset(&s->pid);
        strat_mode(dm, "no_plan");
    } else {
        /* only the plan's direction: a slot planned to charge never discharges (a cloud
         * would otherwise have the battery export what the plan stored), and the other way */
        double floor_soc = fmax(c->soc_min, c->reserve_soc);
        double hi = soc <= floor_soc || s->bat_w < 1 ? 0 : c->max_discharge_w;
        double lo = soc >= c->soc_max || s->bat_w > -1 ? 0 : -c->max_charge_w;
        double target = s->grid_w;
        /* A discharge that covers the load (planned import 0 or more) is followed by a loop a
         * few seconds behind the load's noise: aimed at the plan itself it sends about half of
         * that noise out at the export price, battery energy that the plan meant for the dear
         * hours. Aimed a little higher, the noise is drawn from the grid instead and the energy
         * stays in the battery for the next cycles of the same slot (the re-plan sees the SoC).
         * On the time-of-use planner scenario: 94.8 % of the optimum at 0 W, 96.8 % at 50 W
         * (docs/strategies.md). A planned export is followed as planned. */
        if (s->bat_w > 1 && target > -1 && target < c->import_bias_w)
            target = c->import_bias_w;
        if (c->follow_grid && img->grid_ok) {
            w = strat_follow(&s->pid, img, target, lo, hi, now_ms, dm);
        } else {
            pid_reset(&s->pid);
            w = strat_clamp(s->bat_w, lo, hi);
            dm->target_w = s->bat_w;
        }
        strat_mode(dm, s->bat_w < -1 ? "charge" : s->bat_w > 1 ? "discharge" : "hold");
    }
    dm->raw_w = w;
    return decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, w);
}

const struct strategy_ops strategy_planner_ops = {
    .name = "planner",
    .summary = "A rolling-horizon plan by linear programming over the site's forecast and "
               "tariff (energy and demand charges), re-planned every slot; between plan points "
               "the batteries hold the planned grid power.",
    .source = DSRC_OPTIMISATION,
    .fields = plan_fields,
    .n_fields = sizeof plan_fields / sizeof plan_fields[0],
    .cfg_size = sizeof(struct plan_cfg),
    .state_size = sizeof(struct plan_state),
    .check = plan_check,
    .init = plan_init,
    .decide = plan_decide,
};
