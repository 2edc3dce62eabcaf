/* strat_tou: the TimeOfUse strategy: charge in the cheap tariff bands, discharge in the
 * expensive ones, never cycling for a loss. Prices come from the site's import tariff
 * (sitectx.h: time-of-use bands for weekdays and weekends, or a price series).
 *
 * Once a minute the strategy samples the prices of the next `horizon` every `scan_step` and
 * works out, from the last sample back to now, where it would use stored energy and where it
 * would refill. The two rules below are the same inequality read from either end, so the
 * strategy never buys energy for a period in which it would then refuse to sell it:
 *   - a sample "sells" (stored energy goes out there) when using a stored kWh beats keeping
 *     it: if the battery will be refilled later in sight, at price r, when p x eta_round_trip
 *     - r >= min_spread (selling and buying back pays the losses); if no refill is in sight,
 *     when p - (the lowest price after it) >= min_spread (the energy would only displace a
 *     cheaper purchase later; no round trip, so no loss to pay). Sunk cost is sunk: what the
 *     energy cost does not matter, only what it can still earn. On a flat tariff nothing
 *     sells: the battery holds, keeping the energy for whatever lies beyond the horizon;
 *   - a sample is a refill when its price is the lowest from there to the horizon's end and a
 *     later sample that sells pays for it: q x eta_round_trip - its price >= min_spread.
 * Then, now:
 *   - charge at charge_power_w when p_now is the horizon's lowest price, up to what the site
 *     is expected to draw (expected_load_w) in the later periods that sell and pay for a
 *     charge now (q x eta_round_trip - p_now >= min_spread), until the price is back down to
 *     p_now (the next refill at that price) - so energy is only bought for a use that pays,
 *     weekday or weekend, and not beyond charge_to_soc (full; resumes resume_band below);
 *   - discharge, covering the site's load but never exporting (NetZero's grid loop, discharge
 *     only), when now sells and the stored energy above discharge_min_soc exceeds what the site
 *     is expected to need in the dearer periods still ahead before the next refill - so a
 *     battery is not emptied at 0.32 just before a 0.40 evening (save_for_peak);
 *   - otherwise hold (0 W).
 * The end of the look-ahead: prices beyond it are unknown, so a sample there neither sells nor
 * pays for a charge until it comes into sight (the last sample never sells: nothing after it
 * is known). Each decision's branch is in decisions.csv's strategy column (time_of_use/charge,
 * /full, /discharge, /save_for_peak, /hold, /no_price). Without a calendar or tariff the
 * strategy holds. */
#include "gateway/strategies/strat_util.h"
#include "gateway/strategies/strategy.h"

#include <math.h>
#include <stddef.h>

#define PLAN_EVERY_MS 60000
#define PRICE_EPS     1e-9
#define MAX_SAMPLES   (7 * 24 * 60) /* the longest horizon (7 d) at the finest scan_step (1 min) */

struct tou_cfg {
    double charge_power_w, max_discharge_w;
    double charge_to_soc, resume_band, discharge_min_soc;
    double eta_round_trip, min_spread;
    double expected_load_w;
    int64_t horizon_ms, scan_step_ms;
    double kp, ki_per_s;
};

struct tou_plan {
    double p_now;
    int charge_time; /* p_now is the lowest price in sight */
    double need_wh;  /* expected draw in the later periods that pay for a charge now */
    int sells;       /* using stored energy now beats keeping it */
    double hold_wh;  /* energy to keep for dearer periods before the next refill */
};

struct tou_state {
    const struct tou_cfg *cfg;
    struct pid pid;
    int64_t plan_at;
    int has_plan;
    struct tou_plan plan;
    int full; /* charged to the target; resumes resume_band below */
    /* the look-ahead, scratch for tou_make_plan: prices (NaN unknown), and whether stored
     * energy would go out at each sample */
    double q[MAX_SAMPLES];
    unsigned char sells[MAX_SAMPLES];
};

#define F(m) offsetof(struct tou_cfg, m)
static const struct param_field tou_fields[] = {
    {"charge_power_w", PARAM_DOUBLE, F(charge_power_w), 3000, 0, 1e7, "W",
     "charge power in the cheap band"},
    {"max_discharge_w", PARAM_DOUBLE, F(max_discharge_w), 1e5, 0, 1e7, "W",
     "largest discharge (it covers the load, never exports)"},
    {"charge_to_soc", PARAM_DOUBLE, F(charge_to_soc), 0.95, 0, 1, "0..1",
     "charging stops at this site SoC"},
    {"resume_band", PARAM_DOUBLE, F(resume_band), 0.02, 0, 0.5, "0..1",
     "charging resumes this far below charge_to_soc"},
    {"discharge_min_soc", PARAM_DOUBLE, F(discharge_min_soc), 0.1, 0, 1, "0..1",
     "no discharge at or below this site SoC"},
    {"eta_round_trip", PARAM_DOUBLE, F(eta_round_trip), 0.9, 0.1, 1, "0..1",
     "energy out / energy in of a charge-discharge cycle"},
    {"min_spread", PARAM_DOUBLE, F(min_spread), 0.01, 0, 100, "currency/kWh",
     "least gain per kWh after losses for a cycle to be worth it"},
    {"expected_load_w", PARAM_DOUBLE, F(expected_load_w), 500, 0, 1e7, "W",
     "mean site load assumed when sizing the charge and saving energy for dearer periods ahead"},
    {"horizon", PARAM_DURATION_MS, F(horizon_ms), 86400000, 3600000, 7 * 86400000LL, "ms",
     "how far ahead prices are compared"},
    {"scan_step", PARAM_DURATION_MS, F(scan_step_ms), 900000, 60000, 3600000, "ms",
     "resolution of the look-ahead"},
    {"kp", PARAM_DOUBLE, F(kp), 0.5, 0, 100, "W/W", "proportional gain of the grid loop"},
    {"ki_per_s", PARAM_DOUBLE, F(ki_per_s), 0.2, 0, 100, "1/s", "integral gain of the grid loop"},
};
#undef F

static int tou_init(void *state, const void *cfg)
{
    struct tou_state *s = state;
    const struct tou_cfg *c = cfg;
    s->cfg = c;
    return strat_follow_init(&s->pid, c->kp, c->ki_per_s);
}

/* The look-ahead, from the last sample back to now (see the top of the file): after_min is the
 * lowest price after sample k, sell_max the highest price after k at which stored energy would
 * go out, next_refill the first refill after k. Then, from now forward, the energy a charge now
 * is for (need_wh) and the energy to keep for dearer periods (hold_wh). */
static int tou_make_plan(struct tou_state *s, const struct procimg *img, int64_t now_ms,
                         struct tou_plan *p)
{
    const struct tou_cfg *c = s->cfg;
    int64_t n = (c->horizon_ms + c->scan_step_ms - 1) / c->scan_step_ms;
    n = n < 1 ? 1 : n > MAX_SAMPLES ? MAX_SAMPLES : n;
    for (int64_t k = 0; k < n; k++)
        s->q[k] = sitectx_price(img->ctx, 0, now_ms + k * c->scan_step_ms);
    p->p_now = s->q[0];
    if (isnan(p->p_now))
        return -1;
    double eta = c->eta_round_trip, spread = c->min_spread;
    double after_min = INFINITY, sell_max = -INFINITY;
    int64_t next_refill = -1, refill_after_now = -1;
    for (int64_t k = n - 1; k >= 0; k--) {
        double x = s->q[k];
        s->sells[k] = 0;
        if (k == 0)
            refill_after_now = next_refill;
        if (isnan(x))
            continue;
        if (next_refill >= 0)
            s->sells[k] = x * eta - s->q[next_refill] >= spread;
        else
            s->sells[k] = x - after_min >= spread;
        int cheapest = x <= after_min + PRICE_EPS;
        int refill = cheapest && sell_max * eta - x >= spread;
        if (k == 0)
            p->charge_time = cheapest;
        if (s->sells[k] && x > sell_max)
            sell_max = x;
        if (x < after_min)
            after_min = x;
        if (refill)
            next_refill = k;
    }
    p->sells = s->sells[0];
    double step_wh = c->expected_load_w * (double)c->scan_step_ms / 3600000.0;
    p->need_wh = 0;
    if (p->charge_time) {
        int rose = 0;
        for (int64_t k = 1; k < n; k++) {
            double x = s->q[k];
            if (isnan(x))
                continue;
            if (x > p->p_now + PRICE_EPS)
                rose = 1;
            else if (rose)
                break; /* as cheap as now again: the battery is refilled there */
            if (s->sells[k] && x * eta - p->p_now >= spread)
                p->need_wh += step_wh;
        }
    }
    p->hold_wh = 0;
    int64_t end = refill_after_now >= 0 ? refill_after_now : n;
    for (int64_t k = 1; k < end; k++)
        if (s->q[k] > p->p_now + PRICE_EPS) /* false for NaN */
            p->hold_wh += step_wh;
    return 0;
}

static int tou_decide(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm)
{
    struct tou_state *s = state;
    const struct tou_cfg *c = s->cfg;
    if (!s->has_plan || now_ms - s->plan_at >= PLAN_EVERY_MS || now_ms < s->plan_at) {
        s->has_plan = tou_make_plan(s, img, now_ms, &s->plan) == 0;
        s->plan_at = now_ms;
    }
    double soc = procimg_site_soc(img), base = strat_base_w(img), w = 0;
    double cap_wh = procimg_capacity_wh(img);
    const struct tou_plan *p = &s->plan;
    int charging = s->has_plan && p->charge_time && p->need_wh > 0;
    /* in a charge window, only what the paying periods ahead will draw (when the capacity is
     * known); charge_to_soc caps it */
    double target = c->charge_to_soc;
    if (charging && cap_wh > 0 && c->discharge_min_soc + p->need_wh / cap_wh < target)
        target = c->discharge_min_soc + p->need_wh / cap_wh;
    if (soc >= target)
        s->full = 1;
    else if (soc < target - c->resume_band)
        s->full = 0;
    if (!s->has_plan) {
        strat_mode(dm, "no_price");
    } else if (charging) {
        w = s->full ? 0 : -c->charge_power_w;
        strat_mode(dm, s->full ? "full" : "charge");
    } else if (p->sells && !isnan(base) && soc > c->discharge_min_soc) {
        double stored_wh = (soc - c->discharge_min_soc) * cap_wh;
        if (stored_wh > p->hold_wh) {
            w = strat_follow(&s->pid, img, 0, 0, c->max_discharge_w, now_ms, dm);
            strat_mode(dm, "discharge");
        } else {
            strat_mode(dm, "save_for_peak");
        }
    } else {
        strat_mode(dm, "hold");
    }
    if (!strstr(dm->strategy, "/discharge"))
        pid_reset(&s->pid); /* the next discharge starts from what the batteries were given */
    dm->raw_w = w;
    return decision_request(dm, DSRC_SCHEDULED, DECISION_SITE, w);
}

const struct strategy_ops strategy_time_of_use_ops = {
    .name = "time_of_use",
    .summary = "Charge in cheap tariff bands, cover the load in dear ones; never cycles for a "
               "loss.",
    .source = DSRC_SCHEDULED,
    .fields = tou_fields,
    .n_fields = sizeof tou_fields / sizeof tou_fields[0],
    .cfg_size = sizeof(struct tou_cfg),
    .state_size = sizeof(struct tou_state),
    .init = tou_init,
    .decide = tou_decide,
};
