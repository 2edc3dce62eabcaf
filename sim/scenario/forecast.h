/* forecast (simulator side): the scenario's "forecast" section (docs/scenario-format.md,
 * "Forecast"): the quality of the net-load forecast the simulator hands to each site's gateway
 * (gateway/control/forecast.h): perfect (the truth's slot means), persistence (yesterday's same
 * slot) or noisy (the truth with seeded AR(1) relative errors on load and PV). Deterministic: a
 * function of the scenario and its seed. Plain values; the JSON it builds is the caller's. */
#ifndef DERLOOP_SCN_FORECAST_H
#define DERLOOP_SCN_FORECAST_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct scenario;

enum forecast_quality {
    FORECAST_NONE = 0, /* no "forecast" section: the gateway gets none */
    FORECAST_PERFECT,
    FORECAST_PERSISTENCE,
    FORECAST_NOISY,
};

struct forecast_cfg {
    enum forecast_quality quality;
    double error_pct;   /* noisy: the errors' standard deviation, % of the slot's load and PV */
    double phi;         /* noisy: AR(1) coefficient of the errors from one slot to the next */
    int64_t step_ms;    /* slot length */
    int64_t horizon_ms; /* forecast beyond the run's end, so a plan near the end sees ahead */
};

/* "perfect", "persistence", "noisy" (NULL for none). */
const char *forecast_quality_name(enum forecast_quality q);

/* The forecast of site `site` of sc as the gateway configuration's "forecast" object
 * ({"step": ms, "net_load_w": [..]}, slot 0 at the run's start), or NULL without a forecast
 * section (or out of memory: *oom is then 1). */
cJSON *scenario_forecast_json(const struct scenario *sc, size_t site, int *oom);

#endif
