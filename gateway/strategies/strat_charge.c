/* strat_charge: the Charge strategy, a scheduled programme that charges the site's batteries
 * at a fixed power until the site SoC reaches stop_soc, and resumes once it has fallen
 * resume_band below it (so it does not toggle on every SoC tick at the threshold). */
#include "gateway/strategies/strategy.h"

#include <errno.h>
#include <stddef.h>

struct charge_cfg {
    double power_w;
    double stop_soc;
    double resume_band;
};

struct charge_state {
    const struct charge_cfg *cfg;
    int stopped;
};

static const struct param_field charge_fields[] = {
    {"power_w", PARAM_DOUBLE, offsetof(struct charge_cfg, power_w), 1000, 0, 1e7, "W",
     "charge power asked of the site's batteries (split by capacity)"},
    {"stop_soc", PARAM_DOUBLE, offsetof(struct charge_cfg, stop_soc), 1.0, 0, 1, "0..1",
     "site SoC at which charging stops (the safety ceiling applies anyway)"},
    {"resume_band", PARAM_DOUBLE, offsetof(struct charge_cfg, resume_band), 0.02, 0, 0.5, "0..1",
     "charging resumes when the SoC falls this far below stop_soc"},
};

static int charge_init(void *state, const void *cfg)
{
    struct charge_state *s = state;
    s->cfg = cfg;
    return 0;
}

static int charge_decide(void *state, const struct procimg *img, int64_t now_ms,
                         struct decision *dm)
{
    struct charge_state *s = state;
    double soc = procimg_site_soc(img);
    /* An unknown SoC does not stop the programme: each battery's own SoC is checked by the
     * safety interlocks, which are the ones that must never be wrong. */
    if (soc >= s->cfg->stop_soc)
        s->stopped = 1;
    else if (soc < s->cfg->stop_soc - s->cfg->resume_band)
        s->stopped = 0;
    double w = s->stopped ? 0.0 : -s->cfg->power_w;
    dm->raw_w = w;
    return decision_request(dm, DSRC_SCHEDULED, DECISION_SITE, w);
}

const struct strategy_ops strategy_charge_ops = {
    .name = "charge",
    .summary = "Charge the batteries at a fixed power until a site SoC.",
    .source = DSRC_SCHEDULED,
    .fields = charge_fields,
    .n_fields = sizeof charge_fields / sizeof charge_fields[0],
    .cfg_size = sizeof(struct charge_cfg),
    .state_size = sizeof(struct charge_state),
    .init = charge_init,
    .decide = charge_decide,
};
