/* strat_gridsvc: the GridServices strategy: frequency response and demand response with the
 * site's batteries (figures from docs/physics.md, "Grid services").
 *
 * - FCR (frequency containment, proportional): from the grid meter's frequency f, deviation
 *   df = f - nominal_hz; inside +-fcr_deadband_hz nothing, beyond it the response grows
 *   linearly to fcr_power_w at +-fcr_full_hz and holds there: discharge for under-frequency,
 *   charge for over-frequency. Continental Europe's FCR: 10 mHz deadband, full at 200 mHz;
 *   GB Dynamic Containment: 15 mHz, full at 500 mHz.
 * - FFR (fast frequency reserve, a trigger): when f falls to ffr_trigger_hz the batteries
 *   discharge ffr_power_w at once (the next cycle: the activation time is the poll period
 *   plus the inverter's latency - 2 s at a 1 s poll, so the Nordic 1.3 s at 49.7 Hz needs a
 *   poll period of 0.5 s or less; ffr_activation_s measures it) for ffr_duration, then the reserve
 *   re-arms after ffr_rearm.
 * - Demand response: every day between dr_from and dr_to (UTC time of day) the import is
 *   reduced by dr_reduce_w below what it was at the event's start (the baseline): the
 *   batteries deliver whatever it takes to hold baseline - dr_reduce_w (but not to export).
 * Between activations the batteries drift back to soc_target at soc_recovery_w, so there is
 * headroom both ways. As a constraint the responses are added to the request of the
 * strategies before it (a `grid_service` conflict in decisions.csv), and the FCR and FFR part
 * is hidden from their grid loops (added_w), which would otherwise take it back. The branch taken
 * is in the strategy column: grid_services/fcr, /ffr, /dr, /recover, /idle. */
#include "gateway/strategies/strat_gridsvc.h"
#include "gateway/strategies/strat_util.h"
#include "gateway/strategies/strategy.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>

struct gs_cfg {
    double nominal_hz;
    double fcr_power_w, fcr_deadband_hz, fcr_full_hz;
    double ffr_power_w, ffr_trigger_hz;
    int64_t ffr_duration_ms, ffr_rearm_ms;
    double dr_reduce_w;
    int64_t dr_from_ms, dr_to_ms;
    double soc_target, soc_band, soc_recovery_w;
};

enum ffr_phase { FFR_ARMED, FFR_ACTIVE, FFR_REARMING };

struct gs_state {
    const struct gs_cfg *cfg;
    enum ffr_phase ffr;
    int64_t ffr_since;
    int dr_active;
    double dr_baseline_w;
    double added_w; /* as a constraint: the FCR + FFR response added in the last cycle */
};

#define F(m) offsetof(struct gs_cfg, m)
static const struct param_field gs_fields[] = {
    {"nominal_hz", PARAM_DOUBLE, F(nominal_hz), 50, 45, 65, "Hz", "the grid's nominal frequency"},
    {"fcr_power_w", PARAM_DOUBLE, F(fcr_power_w), 0, 0, 1e7, "W",
     "FCR full activation power (0 = no FCR)"},
    {"fcr_deadband_hz", PARAM_DOUBLE, F(fcr_deadband_hz), 0.01, 0, 1, "Hz",
     "no response within +- this deviation"},
    {"fcr_full_hz", PARAM_DOUBLE, F(fcr_full_hz), 0.2, 0.001, 5, "Hz",
     "deviation of full activation"},
    {"ffr_power_w", PARAM_DOUBLE, F(ffr_power_w), 0, 0, 1e7, "W",
     "FFR discharge when triggered (0 = no FFR)"},
    {"ffr_trigger_hz", PARAM_DOUBLE, F(ffr_trigger_hz), 49.7, 40, 65, "Hz",
     "FFR triggers at or below this frequency"},
    {"ffr_duration", PARAM_DURATION_MS, F(ffr_duration_ms), 30000, 1000, 3600000, "ms",
     "support duration"},
    {"ffr_rearm", PARAM_DURATION_MS, F(ffr_rearm_ms), 900000, 0, 86400000, "ms",
     "after the support, time before FFR can trigger again"},
    {"dr_reduce_w", PARAM_DOUBLE, F(dr_reduce_w), 0, 0, 1e8, "W",
     "demand response: import reduction below the event's baseline (0 = none)"},
    {"dr_from", PARAM_DURATION_MS, F(dr_from_ms), 0, 0, 86400000, "ms",
     "demand response event start, time of day (UTC), e.g. 17h"},
    {"dr_to", PARAM_DURATION_MS, F(dr_to_ms), 0, 0, 86400000, "ms",
     "demand response event end, time of day (UTC)"},
    {"soc_target", PARAM_DOUBLE, F(soc_target), 0.5, 0, 1, "0..1",
     "SoC restored between activations"},
    {"soc_band", PARAM_DOUBLE, F(soc_band), 0.05, 0, 0.5, "0..1",
     "no recovery within +- this band around soc_target"},
    {"soc_recovery_w", PARAM_DOUBLE, F(soc_recovery_w), 500, 0, 1e7, "W",
     "recovery power between activations (0 = none)"},
};
#undef F

static int gs_check(const void *cfgp, const char *path, char *err, size_t errlen)
{
    const struct gs_cfg *c = cfgp;
    if (c->fcr_deadband_hz >= c->fcr_full_hz) {
        snprintf(err, errlen, "%s.fcr_deadband_hz: must be below fcr_full_hz (%g), got %g", path,
                 c->fcr_full_hz, c->fcr_deadband_hz);
        return -EINVAL;
    }
    return 0;
}

static int gs_init(void *state, const void *cfg)
{
    struct gs_state *s = state;
    s->cfg = cfg;
    s->ffr = FFR_ARMED;
    return 0;
}

struct gs_response {
    double fcr_w, ffr_w, dr_w; /* dr_w: the least battery power for the event, or -INFINITY */
    double df_hz;
};

static struct gs_response gs_respond(struct gs_state *s, const struct procimg *img, int64_t now_ms)
{
    const struct gs_cfg *c = s->cfg;
    struct gs_response r = {0, 0, -INFINITY, NAN};
    const struct procimg_dev *m = procimg_grid_meter(img);
    double f = m ? m->freq_hz : NAN;
    if (f > 0 && isfinite(f)) {
        r.df_hz = f - c->nominal_hz;
        double mag = (fabs(r.df_hz) - c->fcr_deadband_hz) / (c->fcr_full_hz - c->fcr_deadband_hz);
        r.fcr_w = (r.df_hz < 0 ? 1 : -1) * c->fcr_power_w * strat_clamp(mag, 0, 1);
    }
    if (s->ffr == FFR_ACTIVE && now_ms - s->ffr_since >= c->ffr_duration_ms) {
        s->ffr = FFR_REARMING;
        s->ffr_since = now_ms;
    }
    if (s->ffr == FFR_REARMING && now_ms - s->ffr_since >= c->ffr_rearm_ms)
        s->ffr = FFR_ARMED;
    if (s->ffr == FFR_ARMED && c->ffr_power_w > 0 && f <= c->ffr_trigger_hz) {
        s->ffr = FFR_ACTIVE; /* f NaN compares false: no trigger without a reading */
        s->ffr_since = now_ms;
    }
    if (s->ffr == FFR_ACTIVE)
        r.ffr_w = c->ffr_power_w;
    int64_t tod = strat_time_of_day_ms(img, now_ms);
    int in_event = c->dr_reduce_w > 0 && tod >= 0 &&
                   (c->dr_from_ms <= c->dr_to_ms ? tod >= c->dr_from_ms && tod < c->dr_to_ms
                                                 : tod >= c->dr_from_ms || tod < c->dr_to_ms);
    double base = strat_base_w(img);
    if (in_event && !s->dr_active && !isnan(base)) {
        s->dr_active = 1;
        s->dr_baseline_w = base; /* the import without batteries when the event begins */
    } else if (!in_event) {
        s->dr_active = 0;
    }
    if (s->dr_active && !isnan(base))
        r.dr_w = base - fmax(s->dr_baseline_w - c->dr_reduce_w, 0); /* never export for it */
    return r;
}

static int gs_decide(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm)
{
    struct gs_state *s = state;
    const struct gs_cfg *c = s->cfg;
    struct gs_response r = gs_respond(s, img, now_ms);
    double w = r.fcr_w + r.ffr_w + (isfinite(r.dr_w) ? fmax(r.dr_w, 0) : 0);
    dm->p_w = r.fcr_w; /* the proportional (droop) part; raw_w is the whole response */
    if (r.ffr_w > 0)
        strat_mode(dm, "ffr");
    else if (isfinite(r.dr_w))
        strat_mode(dm, "dr");
    else if (r.fcr_w != 0)
        strat_mode(dm, "fcr");
    else {
        double soc = procimg_site_soc(img);
        if (soc < c->soc_target - c->soc_band)
            w = -c->soc_recovery_w;
        else if (soc > c->soc_target + c->soc_band)
            w = c->soc_recovery_w;
        strat_mode(dm, w != 0 ? "recover" : "idle");
    }
    dm->raw_w = w;
    return decision_request(dm, DSRC_SCHEDULED, DECISION_SITE, w);
}

static double gs_added_w(const void *state)
{
    return ((const struct gs_state *)state)->added_w;
}

static int gs_constrain(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm,
                        struct strategy_window *win)
{
    struct gs_state *s = state;
    struct gs_response r = gs_respond(s, img, now_ms);
    /* the response comes on top of what the batteries can actually do of the request (a
     * charge request to a full battery is 0 W, and the droop must move the battery from 0) */
    double w = strategy_site_request(dm, NULL), env_lo, env_hi;
    procimg_battery_envelope(img, &env_lo, &env_hi);
    double base = isfinite(w) ? strat_clamp(w, env_lo, env_hi) : w;
    double want = fmax(base, r.dr_w) + r.fcr_w + r.ffr_w;
    s->added_w = isfinite(want) ? r.fcr_w + r.ffr_w : 0;
    if (isfinite(want) && want != w) {
        win->lo_w = win->hi_w = want;
        win->conflict = DC_GRID_SERVICE;
    }
    return 0;
}

const struct strategy_ops strategy_grid_services_ops = {
    .name = "grid_services",
    .summary = "Frequency response (FCR droop, FFR trigger) and demand-response events with "
               "the batteries.",
    .source = DSRC_SCHEDULED,
    .fields = gs_fields,
    .n_fields = sizeof gs_fields / sizeof gs_fields[0],
    .cfg_size = sizeof(struct gs_cfg),
    .state_size = sizeof(struct gs_state),
    .check = gs_check,
    .init = gs_init,
    .decide = gs_decide,
    .constrain = gs_constrain,
    .added_w = gs_added_w,
};

int gridsvc_contract_load(const cJSON *params, const char *path, struct gridsvc_contract *out,
                          char *err, size_t errlen)
{
    struct gs_cfg c;
    int rc = param_load(gs_fields, sizeof gs_fields / sizeof gs_fields[0], params, path, &c, err,
                        errlen);
    if (rc || (rc = gs_check(&c, path, err, errlen)) != 0)
        return rc;
    *out = (struct gridsvc_contract){.nominal_hz = c.nominal_hz,
                                     .fcr_power_w = c.fcr_power_w,
                                     .fcr_deadband_hz = c.fcr_deadband_hz,
                                     .fcr_full_hz = c.fcr_full_hz,
                                     .ffr_power_w = c.ffr_power_w,
                                     .ffr_trigger_hz = c.ffr_trigger_hz,
                                     .ffr_duration_ms = c.ffr_duration_ms,
                                     .ffr_rearm_ms = c.ffr_rearm_ms};
    return 0;
}
