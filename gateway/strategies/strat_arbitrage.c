/* strat_arbitrage: the Arbitrage strategy: buy low, sell high on a price series (spot prices
 * in the site's tariff: import to buy, export - or import when there is none - to sell).
 *
 * A rolling-horizon plan by dynamic programming, recomputed once a minute and at every price
 * slot boundary: the next `horizon` is cut into slots of `scan_step` (aligned to the calendar,
 * the first slot is what is left of the current one) priced at their start; the stored energy
 * between soc_min and soc_max is a grid of ARB_LEVELS + 1 levels; charging at power_w stores
 * eta_c per kWh bought, discharging delivers eta_d per kWh taken (eta_c = eta_d =
 * sqrt(eta_round_trip)), and every kWh sold must earn min_spread more than its price (the
 * hurdle after losses). Backward induction over the slots gives the value of each level; the
 * plan is the stored energy that maximises this slot's cash flow plus the value of where it
 * ends. Energy left at the horizon is valued at the lowest buy price of the horizon (what
 * refilling it would cost at best), so the plan neither dumps the battery at the horizon's end
 * nor hoards it. Every cycle then steers the battery toward the planned energy by the end of
 * the slot at the plan's mean power for it, at most power_w (buy: charging, sell: discharging
 * and exporting what the site does not use), and stops once it is there. This is the optimum of the
 * horizon within the grid's resolution: several cycles a day when the prices have several peaks,
 * none when the spread does not pay the losses.
 *
 * Discharged energy is counted per calendar day (per 24 h of run time without a calendar);
 * once it reaches cycles_per_day x capacity the strategy stops trading until the next day.
 * The branch taken is in decisions.csv (arbitrage/buy, /sell, /idle, /budget, /no_price);
 * target_w is the slot's planned mean power. */
#include "gateway/strategies/strat_util.h"
#include "gateway/strategies/strategy.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define PLAN_EVERY_MS 60000
#define MAX_SLOTS     1024
#define ARB_LEVELS    100

struct arb_cfg {
    double power_w, eta_round_trip, min_spread, cycles_per_day;
    double soc_min, soc_max;
    int64_t horizon_ms, scan_step_ms;
};

struct arb_state {
    const struct arb_cfg *cfg;
    int has_plan;
    int64_t plan_at, slot_end; /* the plan's time and the end of its first slot */
    double target_wh;          /* the planned stored energy at slot_end */
    double lambda;             /* the budget's shadow price (currency/kWh sold), per slot */
    int64_t lambda_from, lambda_until;
    double plan_w; /* the planned mean power of the first slot, + discharge */
    int64_t day;
    double discharged_wh;
    int64_t last_ms;
    double last_battery_w;
    int64_t t[MAX_SLOTS + 1]; /* slot boundaries */
    double buy[MAX_SLOTS], sell[MAX_SLOTS];
    double v[ARB_LEVELS + 1], vn[ARB_LEVELS + 1]; /* value of each level: slot k, k + 1 */
    uint8_t pol[MAX_SLOTS][ARB_LEVELS + 1];       /* the level each level moves to, per slot */
};

#define F(m) offsetof(struct arb_cfg, m)
static const struct param_field arb_fields[] = {
    {"power_w", PARAM_DOUBLE, F(power_w), 5000, 0, 1e7, "W", "charge and discharge power"},
    {"eta_round_trip", PARAM_DOUBLE, F(eta_round_trip), 0.9, 0.1, 1, "0..1",
     "energy out / energy in of a cycle"},
    {"min_spread", PARAM_DOUBLE, F(min_spread), 0.02, 0, 100, "currency/kWh",
     "least gain per kWh sold after losses for a trade"},
    {"cycles_per_day", PARAM_DOUBLE, F(cycles_per_day), 1, 0, 24, "cycles",
     "discharged energy per day, in battery capacities, before trading stops"},
    {"soc_min", PARAM_DOUBLE, F(soc_min), 0.1, 0, 1, "0..1", "no selling at or below this SoC"},
    {"soc_max", PARAM_DOUBLE, F(soc_max), 0.95, 0, 1, "0..1", "no buying at or above this SoC"},
    {"horizon", PARAM_DURATION_MS, F(horizon_ms), 86400000, 3600000, 7 * 86400000LL, "ms",
     "how far ahead the plan looks"},
    {"scan_step", PARAM_DURATION_MS, F(scan_step_ms), 900000, 60000, 3600000, "ms",
     "slot length of the plan (the price series' period)"},
};
#undef F

static int arb_check(const void *cfgp, const char *path, char *err, size_t errlen)
{
    const struct arb_cfg *c = cfgp;
    if (!(c->soc_min < c->soc_max)) {
        snprintf(err, errlen, "%s.soc_min: must be below soc_max (%g), got %g", path, c->soc_max,
                 c->soc_min);
        return -EINVAL;
    }
    return 0;
}

static int arb_init(void *state, const void *cfg)
{
    struct arb_state *s = state;
    s->cfg = cfg;
    s->day = INT64_MIN;
    return 0;
}

/* The slots of the horizon from now_ms: boundaries aligned to scan_step on the calendar (on
 * run time without one), prices at each slot's start. Returns the number of slots, 0 when a
 * price is unknown. */
static size_t arb_slots(struct arb_state *s, const struct procimg *img, int64_t now_ms)
{
    const struct arb_cfg *c = s->cfg;
    int sell_side = img->ctx && img->ctx->export.kind != TARIFF_NONE;
    int64_t unix_ms, off = 0, step = c->scan_step_ms, end = now_ms + c->horizon_ms;
    if (sitectx_calendar(img->ctx, now_ms, &unix_ms) == 0)
        off = unix_ms - now_ms;
    int64_t r = (now_ms + off) % step;
    if (r < 0)
        r += step;
    size_t n = 0;
    int64_t t = now_ms;
    while (t < end && n < MAX_SLOTS) {
        double b = sitectx_price(img->ctx, 0, t);
        double q = sell_side ? sitectx_price(img->ctx, 1, t) : b;
        if (isnan(b) || isnan(q))
            return 0;
        /* a tie-break of 1e-7 per slot: of two equal prices the earlier one is the better
         * trade (buy and sell early, leaving room for what the plan did not foresee) */
        s->t[n] = t;
        s->buy[n] = b + 1e-7 * (double)n;
        s->sell[n] = q - 1e-7 * (double)n;
        n++;
        int64_t next = n == 1 ? now_ms - r + step : t + step;
        t = next < end ? next : end;
    }
    s->t[n] = t;
    return n;
}

/* The cash flow (currency) of moving the stored energy by d_wh in slot k: + selling, which
 * must also clear the hurdle (min_spread plus the budget's shadow price). */
static double arb_flow(const struct arb_state *s, size_t k, double d_wh, double eta, double hurdle)
{
    if (d_wh > 0)
        return -d_wh / eta / 1000.0 * s->buy[k];
    return -d_wh * eta / 1000.0 * (s->sell[k] - hurdle);
}

/* Linear interpolation of the level values at stored energy e_wh. */
static double arb_value_at(const double *v, double lo, double de, double e_wh)
{
    double x = (e_wh - lo) / de;
    if (x <= 0)
        return v[0];
    if (x >= ARB_LEVELS)
        return v[ARB_LEVELS];
    int i = (int)x;
    double f = x - i;
    return i >= ARB_LEVELS ? v[ARB_LEVELS] : v[i] * (1 - f) + v[i + 1] * f;
}

struct arb_grid {
    size_t n;             /* slots */
    double lo, de, e_now; /* Wh: the lowest level, the level step, the measured energy */
    double eta;           /* one-way efficiency */
    int64_t day_end;      /* discharge before this counts against today's budget */
};

/* One solve with the given hurdle: the value of every level by backward induction, the
 * policy of slots 1.., the first slot's target from the measured energy (into s->target_wh
 * and s->plan_w). Returns the planned discharge (AC Wh) before g->day_end. */
static double arb_solve(struct arb_state *s, const struct arb_grid *g, double hurdle)
{
    const struct arb_cfg *c = s->cfg;
    double p_term = s->buy[0];
    for (size_t k = 1; k < g->n; k++)
        p_term = fmin(p_term, s->buy[k]);
    for (int i = 0; i <= ARB_LEVELS; i++)
        s->v[i] = i * g->de / 1000.0 * p_term / g->eta;
    /* backward over slots n-1 .. 1: s->v holds the value at the end of slot k */
    for (size_t k = g->n - 1; k >= 1; k--) {
        double h = (double)(s->t[k + 1] - s->t[k]) / 3600000.0;
        int up = (int)floor(c->power_w * h * g->eta / g->de + 1e-9);
        int down = (int)floor(c->power_w * h / g->eta / g->de + 1e-9);
        /* The level values are concave (linear cash flows over a convex set of moves), so
         * the best move is toward one target: up to jb, the first level that maximises the
         * value less what buying up to it costs, or down to js, the last that maximises the
         * value less what selling down to it earns (jb <= js while a kWh sold earns less than
         * it costs to buy, cs <= cb); in between the battery holds. O(levels) a slot; when
         * selling pays more than buying costs (negative prices), every move is tried. */
        double cb = g->de / g->eta / 1000.0 * s->buy[k];
        double cs = g->de * g->eta / 1000.0 * (s->sell[k] - hurdle);
        int jb = 0, js = 0;
        for (int j = 1; j <= ARB_LEVELS; j++) {
            if (s->v[j] - j * cb > s->v[jb] - jb * cb + 1e-12)
                jb = j;
            if (s->v[j] - j * cs >= s->v[js] - js * cs - 1e-12)
                js = j;
        }
        for (int i = 0; i <= ARB_LEVELS; i++) {
            int j = i;
            if (jb > js) {
                int jlo = i - down < 0 ? 0 : i - down;
                int jhi = i + up > ARB_LEVELS ? ARB_LEVELS : i + up;
                double best = s->v[i];
                for (int m = jlo; m <= jhi; m++) {
                    double val = s->v[m] - (m - i) * (m > i ? cb : cs);
                    if (val > best + 1e-12) {
                        best = val;
                        j = m;
                    }
                }
            } else if (i < jb) {
                j = i + up < jb ? i + up : jb;
            } else if (i > js) {
                j = i - down > js ? i - down : js;
            }
            s->vn[i] = s->v[j] - (j - i) * (j > i ? cb : cs);
            s->pol[k][i] = (uint8_t)j;
        }
        for (int i = 0; i <= ARB_LEVELS; i++)
            s->v[i] = s->vn[i];
    }
    /* the first slot, from the measured energy: stay, or move to a reachable level */
    double e_now = g->e_now, top = g->lo + ARB_LEVELS * g->de;
    double h0 = (double)(s->t[1] - s->t[0]) / 3600000.0;
    double e_hi = e_now + c->power_w * h0 * g->eta, e_lo = e_now - c->power_w * h0 / g->eta;
    double best = arb_value_at(s->v, g->lo, g->de, e_now), best_e = e_now;
    /* the levels, and full power either way (the grid's step would shave it otherwise) */
    for (int j = -2; j <= ARB_LEVELS; j++) {
        double e = j == -2 ? fmin(e_hi, top) : j == -1 ? fmax(e_lo, g->lo) : g->lo + j * g->de;
        if (e > e_hi || e < e_lo || (e > e_now && e_now >= top) || (e < e_now && e_now <= g->lo))
            continue;
        double val = arb_flow(s, 0, e - e_now, g->eta, hurdle) +
                     (j < 0 ? arb_value_at(s->v, g->lo, g->de, e) : s->v[j]);
        if (val > best + 1e-12) {
            best = val;
            best_e = e;
        }
    }
    s->target_wh = best_e;
    double d = best_e - e_now;
    s->plan_w = h0 > 0 ? (d > 0 ? -d / g->eta : -d * g->eta) / h0 : 0;
    /* today's planned discharge: the first slot, then the policy from the nearest level */
    double out_wh = d < 0 ? -d * g->eta : 0;
    double x = (best_e - g->lo) / g->de;
    int i = x <= 0 ? 0 : x >= ARB_LEVELS ? ARB_LEVELS : (int)lround(x);
    for (size_t k = 1; k < g->n && s->t[k] < g->day_end; k++) {
        int j = s->pol[k][i];
        if (j < i)
            out_wh += (i - j) * g->de * g->eta;
        i = j;
    }
    return out_wh;
}

/* The plan: the unconstrained optimum, or - when it would discharge more today than the
 * budget has left - the one whose extra hurdle per kWh sold (the budget's shadow price, found
 * by bisection) brings today's discharge within what is left, so the budget goes to the best
 * trades of the day instead of the first ones. The shadow price is found once per slot (and
 * day) and kept for the plans within it. */
static int arb_plan(struct arb_state *s, const struct procimg *img, int64_t now_ms, double soc,
                    double left_wh)
{
    const struct arb_cfg *c = s->cfg;
    double cap = procimg_capacity_wh(img);
    struct arb_grid g = {.n = arb_slots(s, img, now_ms)};
    if (g.n == 0 || !(cap > 0) || isnan(soc))
        return -1;
    g.eta = sqrt(c->eta_round_trip);
    g.lo = c->soc_min * cap;
    g.de = (c->soc_max - c->soc_min) * cap / ARB_LEVELS;
    g.e_now = soc * cap;
    s->slot_end = s->t[1];
    int64_t tod = strat_time_of_day_ms(img, now_ms);
    g.day_end = tod >= 0 ? now_ms - tod + 86400000LL : (now_ms / 86400000 + 1) * 86400000;
    if (now_ms < s->lambda_until && now_ms >= s->lambda_from) {
        arb_solve(s, &g, c->min_spread + s->lambda);
        return 0;
    }
    /* a new slot (or day): find the budget's shadow price again */
    s->lambda_from = now_ms;
    s->lambda_until = s->slot_end;
    s->lambda = 0;
    if (arb_solve(s, &g, c->min_spread) <= left_wh + g.de)
        return 0;
    double lo = 0, hi = 0;
    for (size_t k = 0; k < g.n; k++)
        hi = fmax(hi, fabs(s->sell[k]) + fabs(s->buy[k]));
    for (int it = 0; it < 16; it++) {
        double mid = 0.5 * (lo + hi);
        if (arb_solve(s, &g, c->min_spread + mid) > left_wh + g.de)
            lo = mid;
        else
            hi = mid;
    }
    s->lambda = hi;
    arb_solve(s, &g, c->min_spread + hi);
    return 0;
}

/* Counts the energy discharged since the last cycle into the day's budget. */
static void arb_count(struct arb_state *s, const struct procimg *img, int64_t now_ms)
{
    struct caltm tm;
    int64_t day = strat_calendar(img, now_ms, &tm) == 0
                      ? caltime_from_civil(tm.year, tm.month, tm.day)
                      : now_ms / 86400000;
    if (day != s->day) {
        s->day = day;
        s->discharged_wh = 0;
        s->lambda_until = INT64_MIN; /* a fresh budget */
    } else if (now_ms > s->last_ms && s->last_battery_w > 0) {
        s->discharged_wh += s->last_battery_w * (double)(now_ms - s->last_ms) / 3600000.0;
    }
    s->last_ms = now_ms;
    s->last_battery_w = procimg_sum_w(img, PROCIMG_BATTERY);
}

static int arb_decide(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm)
{
    struct arb_state *s = state;
    const struct arb_cfg *c = s->cfg;
    arb_count(s, img, now_ms);
    double soc = procimg_site_soc(img), cap = procimg_capacity_wh(img), w = 0;
    if (!s->has_plan || now_ms - s->plan_at >= PLAN_EVERY_MS || now_ms < s->plan_at ||
        now_ms >= s->slot_end) {
        double left_wh = c->cycles_per_day * cap - (s->day == INT64_MIN ? 0 : s->discharged_wh);
        s->has_plan = arb_plan(s, img, now_ms, soc, left_wh) == 0;
        s->plan_at = now_ms;
    }
    double budget_wh = c->cycles_per_day * cap;
    if (!s->has_plan || isnan(soc)) {
        strat_mode(dm, "no_price");
    } else if (s->discharged_wh >= budget_wh) {
        strat_mode(dm, "budget");
    } else {
        /* the plan's mean power until the slot ends (constant between plans, so one write a
         * minute at most), until the planned energy is reached */
        double tol = 0.25 * (c->soc_max - c->soc_min) * cap / ARB_LEVELS;
        double d = s->target_wh - soc * cap;
        if (s->plan_w < 0 && d > tol && soc < c->soc_max)
            w = fmax(s->plan_w, -c->power_w);
        else if (s->plan_w > 0 && d < -tol && soc > c->soc_min)
            w = fmin(s->plan_w, c->power_w);
        strat_mode(dm, w < 0 ? "buy" : w > 0 ? "sell" : "idle");
    }
    dm->target_w = s->has_plan ? s->plan_w : 0;
    dm->raw_w = w;
    return decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, w);
}

const struct strategy_ops strategy_arbitrage_ops = {
    .name = "arbitrage",
    .summary = "Buy low, sell high on a price series: a rolling dynamic-programming plan with a "
               "minimum spread after losses and a daily cycle budget.",
    .source = DSRC_OPTIMISATION,
    .fields = arb_fields,
    .n_fields = sizeof arb_fields / sizeof arb_fields[0],
    .cfg_size = sizeof(struct arb_cfg),
    .state_size = sizeof(struct arb_state),
    .check = arb_check,
    .init = arb_init,
    .decide = arb_decide,
};
