/* strat_discharge: the Discharge strategy, a scheduled programme that discharges the batteries
 * at a fixed power until the site SoC falls to stop_soc, and resumes once it has risen
 * resume_band above it (so it does not toggle on every SoC tick at the threshold). */
#include "gateway/strategies/strategy.h"

#include <errno.h>
#include <stddef.h>

struct discharge_cfg {
    double power_w;
    double stop_soc;
    double resume_band;
};

struct discharge_state {
    const struct discharge_cfg *cfg;
    int stopped;
};

static const struct param_field discharge_fields[] = {
    {"power_w", PARAM_DOUBLE, offsetof(struct discharge_cfg, power_w), 1000, 0, 1e7, "W",
     "discharge power asked of the site's batteries (split by capacity)"},
    {"stop_soc", PARAM_DOUBLE, offsetof(struct discharge_cfg, stop_soc), 0.0, 0, 1, "0..1",
     "site SoC at which discharging stops (the safety floor applies anyway)"},
    {"resume_band", PARAM_DOUBLE, offsetof(struct discharge_cfg, resume_band), 0.02, 0, 0.5, "0..1",
     "discharging resumes when the SoC rises this far above stop_soc"},
};

static int discharge_init(void *state, const void *cfg)
{
    struct discharge_state *s = state;
    s->cfg = cfg;
    return 0;
}

static int discharge_decide(void *state, const struct procimg *img, int64_t now_ms,
                            struct decision *dm)
{
    struct discharge_state *s = state;
    double soc = procimg_site_soc(img);
    /* An unknown SoC does not stop the programme: each battery's own SoC is checked by the
     * safety interlocks, which are the ones that must never be wrong. */
    if (soc <= s->cfg->stop_soc)
        s->stopped = 1;
    else if (soc > s->cfg->stop_soc + s->cfg->resume_band)
        s->stopped = 0;
    double w = s->stopped ? 0.0 : s->cfg->power_w;
    dm->raw_w = w;
    return decision_request(dm, DSRC_SCHEDULED, DECISION_SITE, w);
}

const struct strategy_ops strategy_discharge_ops = {
    .name = "discharge",
    .summary = "Discharge the batteries at a fixed power down to a site SoC.",
    .source = DSRC_SCHEDULED,
    .fields = discharge_fields,
    .n_fields = sizeof discharge_fields / sizeof discharge_fields[0],
    .cfg_size = sizeof(struct discharge_cfg),
    .state_size = sizeof(struct discharge_state),
    .init = discharge_init,
    .decide = discharge_decide,
};
