/* sitectx: the site inputs that are configuration rather than measurements: the calendar
 * (the instant of now_ms = 0), the import and export tariffs (time-of-use bands or a price
 * series), the standing and demand charges (common/tariff.h) and EV departure times
 * (docs/gateway-config.md, "start", "tariff", "ev_departures"). Parsed by siteconf.c into a struct
 * it owns (sitectx_free); the process image points at it (procimg.ctx) so strategies can ask for
 * prices and departures. Pure functions of now_ms. */
#ifndef DERLOOP_SITECTX_H
#define DERLOOP_SITECTX_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/tariff.h"
#include "gateway/control/forecast.h"

#define SITECTX_MAX_BANDS 48

enum tariff_kind { TARIFF_NONE = 0, TARIFF_TOU, TARIFF_SERIES };

struct tariff_band {
    int from_min, to_min; /* minutes of the UTC day, [from, to); to may be 1440 */
    double price;         /* currency/kWh */
};

struct tariff {
    enum tariff_kind kind;
    /* TARIFF_TOU: bands cover the day, sorted; weekend = Saturday and Sunday */
    size_t n_weekday, n_weekend;
    struct tariff_band weekday[SITECTX_MAX_BANDS], weekend[SITECTX_MAX_BANDS];
    /* TARIFF_SERIES: (t, price), t strictly increasing; absolute: t is Unix ms (points given
     * as ISO instants), else ms since the start (durations) */
    int absolute;
    int step;          /* 1: each price holds until the next point; 0: linear */
    int64_t period_ms; /* > 0: repeats (t taken modulo the period) */
    size_t n;
    int64_t *t_ms;
    double *price;
};

struct ev_departure {
    char asset_id[48];
    int daily; /* 1: every day at minute_of_day (UTC); 0: once, at at_unix_ms */
    int minute_of_day;
    int64_t at_unix_ms;
};

struct sitectx {
    int has_start;
    int64_t start_unix_ms; /* the calendar instant of now_ms = 0 */
    struct tariff import, export;
    struct tariff_charges charges; /* tariff.standing_charge_per_day, tariff.demand_charge */
    size_t n_departures;
    struct ev_departure *departures;
    struct forecast forecast; /* "forecast": the expected net load (forecast.h); n 0 = none */
};

/* Reads "start", "tariff", "ev_departures" and "forecast" from a site configuration's root object
 * (each optional). On error err gets "json.path: message, got VALUE" and the result is -EINVAL (or
 * -ENOMEM); c is then empty. */
int sitectx_parse(struct sitectx *c, const cJSON *root, char *err, size_t errlen);
void sitectx_free(struct sitectx *c);

/* The calendar instant (Unix ms) of now_ms; -ENOENT when the site has no start (or c NULL). */
int sitectx_calendar(const struct sitectx *c, int64_t now_ms, int64_t *unix_ms);

/* The price of a tariff at now_ms; NaN when there is no such tariff or no calendar for a
 * time-of-use tariff. `which`: 0 import, 1 export. */
double sitectx_price(const struct sitectx *c, int which, int64_t now_ms);

/* Minimum and maximum price over [now_ms, now_ms + horizon_ms), sampled every step_ms (and at
 * now_ms). Returns 0, or -ENOENT when no price is known. */
int sitectx_price_range(const struct sitectx *c, int which, int64_t now_ms, int64_t horizon_ms,
                        int64_t step_ms, double *min, double *max);

/* The first departure of asset_id strictly after now_ms, as now_ms-time (ms since start) in
 * *dep_ms. Returns 0, or -ENOENT (none, or no calendar). */
int sitectx_next_departure(const struct sitectx *c, const char *asset_id, int64_t now_ms,
                           int64_t *dep_ms);

#endif
