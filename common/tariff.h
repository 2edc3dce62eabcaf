/* tariff: the parts of an electricity bill that are not per kWh (docs/scenario-format.md,
 * "Tariff charges"): a standing charge per day and a demand charge, priced per kW of the highest
 * 15-minute mean import in each billing period (a calendar month, UTC, by default; or the whole
 * run), counted only in the 15-minute windows whose start lies in one of the given time windows
 * (HH:MM ranges on all days, weekdays or weekends, UTC), or in every window when none is given.
 * One parser for a scenario's sites and the gateway's site configuration. Plain values. */
#ifndef DERLOOP_TARIFF_H
#define DERLOOP_TARIFF_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define TARIFF_MAX_WINDOWS 8

enum tariff_period { TARIFF_PERIOD_MONTH = 0, TARIFF_PERIOD_RUN };
enum tariff_days { TARIFF_DAYS_ALL = 0, TARIFF_DAYS_WEEKDAYS, TARIFF_DAYS_WEEKEND };

struct tariff_window {
    int from_min, to_min; /* minutes of the day, from < to <= 1440 */
    enum tariff_days days;
};

struct tariff_charges {
    double standing_per_day; /* currency per day, >= 0; 0 = none */
    double demand_per_kw;    /* currency per kW and period, >= 0; 0 = no demand charge */
    enum tariff_period period;
    size_t n_windows; /* 0: every 15-minute window counts */
    struct tariff_window windows[TARIFF_MAX_WINDOWS];
};

/* Reads {"standing_charge_per_day": x, "demand_charge": {"price_per_kw": x, "period":
 * "month"|"run", "windows": [{"from": "HH:MM", "to": "HH:MM", "days": "all"|"weekdays"|
 * "weekend"}]}} (every key optional) into out (zeroed first; obj NULL leaves it zero).
 * Keys other than these two at obj's level are left to the caller (skip lists them, NULL-ended,
 * e.g. {"import", "export"}). Returns 0 or -EINVAL with "PATH.FIELD: message, got VALUE" in err. */
int tariff_charges_parse(const cJSON *obj, const char *path, const char *const *skip,
                         struct tariff_charges *out, char *err, size_t errlen);

/* The billing period of a 15-minute window starting at unix_ms: months since 1970 (or 0 for
 * TARIFF_PERIOD_RUN), or -1 when no time window covers that start or there is no demand
 * charge. */
long tariff_demand_period(const struct tariff_charges *c, int64_t unix_ms);

/* Writes c as tariff_charges_parse reads it into obj (nothing for a zero c). 0 or -ENOMEM. */
int tariff_charges_json(const struct tariff_charges *c, cJSON *obj);

#endif
