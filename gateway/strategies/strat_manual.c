/* strat_manual: the Manual strategy, a setpoint with an expiry. An operator (or, through the
 * uplink, the headend) sets a power for the site's batteries or for one asset, valid until an
 * absolute time on the cycle's clock; after that the command is gone and the request with it
 * (the arbiter then falls back to lower priorities or to the defaults: batteries 0 W). The
 * configuration may carry an initial command (power_w until expires). Requests are at
 * MANUAL priority, so the same strategy can run beside an optimising one. */
#include "gateway/strategies/strategy.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>

struct manual_cfg {
    double power_w;
    int64_t expires_ms;
};

struct manual_cmd {
    int active;
    double power_w;
    int64_t expires_ms;
};

/* Slot 0 is the site; slot i + 1 is device i. */
struct manual_state {
    struct manual_cmd cmd[PROCIMG_MAX_DEVICES + 1];
};

static const struct param_field manual_fields[] = {
    {"power_w", PARAM_DOUBLE, offsetof(struct manual_cfg, power_w), 0, -1e7, 1e7, "W",
     "initial site battery setpoint (+ discharge, - charge)"},
    {"expires", PARAM_DURATION_MS, offsetof(struct manual_cfg, expires_ms), 0, 0,
     100.0 * 365 * 86400000, "ms",
     "the initial setpoint holds until this time since the start (0s = no initial setpoint)"},
};

static int manual_init(void *state, const void *cfgp)
{
    struct manual_state *s = state;
    const struct manual_cfg *cfg = cfgp;
    if (cfg->expires_ms > 0)
        s->cmd[0] = (struct manual_cmd){1, cfg->power_w, cfg->expires_ms};
    return 0;
}

static int manual_dispatch(void *state, int asset, double power_w, int64_t expires_ms)
{
    struct manual_state *s = state;
    if (asset < DECISION_SITE || asset >= PROCIMG_MAX_DEVICES || !isfinite(power_w))
        return -EINVAL;
    s->cmd[asset + 1] = (struct manual_cmd){1, power_w, expires_ms};
    return 0;
}

static int manual_decide(void *state, const struct procimg *img, int64_t now_ms,
                         struct decision *dm)
{
    struct manual_state *s = state;
    int rc = 0;
    for (int slot = 0; slot <= PROCIMG_MAX_DEVICES; slot++) {
        struct manual_cmd *c = &s->cmd[slot];
        if (!c->active)
            continue;
        if (now_ms >= c->expires_ms) {
            c->active = 0; /* expired: forgotten, never resurrected by a clock step back */
            continue;
        }
        if (slot == 0)
            dm->raw_w = c->power_w;
        if (slot - 1 >= (int)img->n_devices)
            continue;
        int r = decision_request(dm, DSRC_MANUAL, slot - 1, c->power_w);
        if (r && !rc)
            rc = r;
    }
    return rc;
}

const struct strategy_ops strategy_manual_ops = {
    .name = "manual",
    .summary = "An operator or headend setpoint (site or asset) that holds until it expires.",
    .source = DSRC_MANUAL,
    .fields = manual_fields,
    .n_fields = sizeof manual_fields / sizeof manual_fields[0],
    .cfg_size = sizeof(struct manual_cfg),
    .state_size = sizeof(struct manual_state),
    .init = manual_init,
    .dispatch = manual_dispatch,
    .decide = manual_decide,
};
