/* strat_arbitrage: the Arbitrage strategy: buy low, sell high on a price series (spot prices
 * in the site's tariff: import to buy, export - or import when there is none - to sell).
 *
 * Once a minute the prices of the next `horizon` are sampled every `scan_step` and sorted.
 * Filling the batteries from soc_min to soc_max at power_w takes k samples; the k-th lowest
 * buy price is the charge threshold and the k-th highest sell price the discharge threshold,
 * so the strategy charges in the cheapest k slots and sells in the dearest k. A cycle must pay
 * after losses: sell x eta_round_trip - buy >= min_spread, judged between the threshold of
 * the other side and the price now. Discharged energy is counted per calendar day (per 24 h
 * of run time without a calendar); once it reaches cycles_per_day x capacity the strategy
 * stops trading until the next day. Charging and selling run at full power_w (selling
 * exports). The branch taken is in decisions.csv (arbitrage/buy, /sell, /idle, /budget). */
#include "gateway/strat_util.h"
#include "gateway/strategy.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define PLAN_EVERY_MS 60000
#define MAX_SAMPLES   1024

struct arb_cfg {
    double power_w, eta_round_trip, min_spread, cycles_per_day;
    double soc_min, soc_max;
    int64_t horizon_ms, scan_step_ms;
};

struct arb_state {
    const struct arb_cfg *cfg;
    int has_plan;
    int64_t plan_at;
    double buy_now, sell_now, buy_lo, sell_hi;
    int64_t day;
    double discharged_wh;
    int64_t last_ms;
    double last_battery_w;
    double buy[MAX_SAMPLES], sell[MAX_SAMPLES]; /* the look-ahead, sorted */
};

#define F(m) offsetof(struct arb_cfg, m)
static const struct param_field arb_fields[] = {
    {"power_w", PARAM_DOUBLE, F(power_w), 5000, 0, 1e7, "W", "charge and discharge power"},
    {"eta_round_trip", PARAM_DOUBLE, F(eta_round_trip), 0.9, 0.1, 1, "0..1",
     "energy out / energy in of a cycle"},
    {"min_spread", PARAM_DOUBLE, F(min_spread), 0.02, 0, 100, "currency/kWh",
     "least gain per kWh after losses for a trade"},
    {"cycles_per_day", PARAM_DOUBLE, F(cycles_per_day), 1, 0, 24, "cycles",
     "discharged energy per day, in battery capacities, before trading stops"},
    {"soc_min", PARAM_DOUBLE, F(soc_min), 0.1, 0, 1, "0..1", "no selling at or below this SoC"},
    {"soc_max", PARAM_DOUBLE, F(soc_max), 0.95, 0, 1, "0..1", "no buying at or above this SoC"},
    {"horizon", PARAM_DURATION_MS, F(horizon_ms), 86400000, 3600000, 7 * 86400000LL, "ms",
     "how far ahead prices are compared"},
    {"scan_step", PARAM_DURATION_MS, F(scan_step_ms), 900000, 60000, 3600000, "ms",
     "resolution of the look-ahead (the price series' period)"},
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int arb_plan(struct arb_state *s, const struct procimg *img, int64_t now_ms)
{
    const struct arb_cfg *c = s->cfg;
    int sell_side = img->ctx && img->ctx->export.kind != TARIFF_NONE;
    double *buy = s->buy, *sell = s->sell;
    size_t n = 0;
    for (int64_t t = now_ms; t < now_ms + c->horizon_ms && n < MAX_SAMPLES; t += c->scan_step_ms) {
        double b = sitectx_price(img->ctx, 0, t);
        double q = sell_side ? sitectx_price(img->ctx, 1, t) : b;
        if (isnan(b) || isnan(q))
            continue;
        buy[n] = b;
        sell[n] = q;
        n++;
    }
    s->buy_now = sitectx_price(img->ctx, 0, now_ms);
    s->sell_now = sell_side ? sitectx_price(img->ctx, 1, now_ms) : s->buy_now;
    if (n == 0 || isnan(s->buy_now) || isnan(s->sell_now))
        return -1;
    qsort(buy, n, sizeof buy[0], cmp_double);
    qsort(sell, n, sizeof sell[0], cmp_double);
    double fill_wh = (c->soc_max - c->soc_min) * procimg_capacity_wh(img);
    double slot_wh = c->power_w * (double)c->scan_step_ms / 3600000.0;
    size_t k = slot_wh > 0 ? (size_t)ceil(fill_wh / slot_wh) : 1;
    k = k < 1 ? 1 : k > n ? n : k;
    s->buy_lo = buy[k - 1];
    s->sell_hi = sell[n - k];
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
    if (!s->has_plan || now_ms - s->plan_at >= PLAN_EVERY_MS || now_ms < s->plan_at) {
        s->has_plan = arb_plan(s, img, now_ms) == 0;
        s->plan_at = now_ms;
    }
    double soc = procimg_site_soc(img), w = 0;
    double budget_wh = c->cycles_per_day * procimg_capacity_wh(img);
    if (!s->has_plan || isnan(soc)) {
        strat_mode(dm, "no_price");
    } else if (s->discharged_wh >= budget_wh) {
        strat_mode(dm, "budget");
    } else if (s->buy_now <= s->buy_lo &&
               s->sell_hi * c->eta_round_trip - s->buy_now >= c->min_spread && soc < c->soc_max) {
        w = -c->power_w;
        strat_mode(dm, "buy");
    } else if (s->sell_now >= s->sell_hi &&
               s->sell_now * c->eta_round_trip - s->buy_lo >= c->min_spread && soc > c->soc_min) {
        w = c->power_w;
        strat_mode(dm, "sell");
    } else {
        strat_mode(dm, "idle");
    }
    dm->raw_w = w;
    return decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, w);
}

const struct strategy_ops strategy_arbitrage_ops = {
    .name = "arbitrage",
    .summary = "Buy low, sell high on a price series, with a minimum spread after losses and a "
               "daily cycle budget.",
    .source = DSRC_OPTIMISATION,
    .fields = arb_fields,
    .n_fields = sizeof arb_fields / sizeof arb_fields[0],
    .cfg_size = sizeof(struct arb_cfg),
    .state_size = sizeof(struct arb_state),
    .check = arb_check,
    .init = arb_init,
    .decide = arb_decide,
};
