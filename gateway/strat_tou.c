/* strat_tou: the TimeOfUse strategy: charge in the cheap tariff bands, discharge in the
 * expensive ones, never cycling for a loss. Prices come from the site's import tariff
 * (sitectx.h: time-of-use bands for weekdays and weekends, or a price series).
 *
 * Once a minute the strategy looks at the prices of the next `horizon` (sampled every
 * `scan_step`): p_now, the lowest p_min and the highest p_max. Then:
 *   - charge at charge_power_w when p_now is the horizon's lowest price and the round trip
 *     pays: p_max x eta_round_trip - p_now >= min_spread (up to charge_to_soc);
 *   - discharge, covering the site's load but never exporting (NetZero's grid loop, discharge
 *     only), when selling stored energy now
 *     beats buying it back at the next cheap price: p_now x eta_round_trip - p_min >=
 *     min_spread, and the stored energy above discharge_min_soc exceeds what the site is
 *     expected to need (expected_load_w) in the dearer periods still ahead before the next
 *     cheap one - so a battery is not emptied at 0.32 just before a 0.40 evening band;
 *   - otherwise hold (0 W).
 * Each decision's branch is in decisions.csv's strategy column (time_of_use/charge, /discharge,
 * /hold, /save_for_peak, /no_price). Without a calendar or tariff the strategy holds. */
#include "gateway/strat_util.h"
#include "gateway/strategy.h"

#include <math.h>
#include <stddef.h>

#define PLAN_EVERY_MS 60000
#define PRICE_EPS     1e-9

struct tou_cfg {
    double charge_power_w, max_discharge_w;
    double charge_to_soc, resume_band, discharge_min_soc;
    double eta_round_trip, min_spread;
    double expected_load_w;
    int64_t horizon_ms, scan_step_ms;
    double kp, ki_per_s;
};

struct tou_plan {
    double p_now, p_min, p_max;
    double hold_wh; /* energy to keep for dearer periods before the next cheap one */
};

struct tou_state {
    const struct tou_cfg *cfg;
    struct pid pid;
    int64_t plan_at;
    int has_plan;
    struct tou_plan plan;
    int full; /* charged to charge_to_soc; resumes resume_band below */
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
     "mean site load assumed when saving energy for dearer periods ahead"},
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

static int tou_make_plan(const struct tou_cfg *c, const struct procimg *img, int64_t now_ms,
                         struct tou_plan *p)
{
    p->p_now = sitectx_price(img->ctx, 0, now_ms);
    if (isnan(p->p_now) || sitectx_price_range(img->ctx, 0, now_ms, c->horizon_ms, c->scan_step_ms,
                                               &p->p_min, &p->p_max))
        return -1;
    p->hold_wh = 0;
    double step_h = (double)c->scan_step_ms / 3600000.0;
    for (int64_t t = now_ms + c->scan_step_ms; t < now_ms + c->horizon_ms; t += c->scan_step_ms) {
        double q = sitectx_price(img->ctx, 0, t);
        if (isnan(q))
            continue;
        if (q <= p->p_min + PRICE_EPS)
            break; /* the next cheap period: the battery can be refilled there */
        if (q > p->p_now + PRICE_EPS)
            p->hold_wh += c->expected_load_w * step_h;
    }
    return 0;
}

static int tou_decide(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm)
{
    struct tou_state *s = state;
    const struct tou_cfg *c = s->cfg;
    if (!s->has_plan || now_ms - s->plan_at >= PLAN_EVERY_MS || now_ms < s->plan_at) {
        s->has_plan = tou_make_plan(c, img, now_ms, &s->plan) == 0;
        s->plan_at = now_ms;
    }
    double soc = procimg_site_soc(img), base = strat_base_w(img), w = 0;
    const struct tou_plan *p = &s->plan;
    if (soc >= c->charge_to_soc)
        s->full = 1;
    else if (soc < c->charge_to_soc - c->resume_band)
        s->full = 0;
    if (!s->has_plan) {
        strat_mode(dm, "no_price");
    } else if (p->p_now <= p->p_min + PRICE_EPS &&
               p->p_max * c->eta_round_trip - p->p_now >= c->min_spread) {
        w = s->full ? 0 : -c->charge_power_w;
        strat_mode(dm, s->full ? "full" : "charge");
    } else if (p->p_now * c->eta_round_trip - p->p_min >= c->min_spread && !isnan(base) &&
               soc > c->discharge_min_soc) {
        double stored_wh = (soc - c->discharge_min_soc) * procimg_capacity_wh(img);
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
