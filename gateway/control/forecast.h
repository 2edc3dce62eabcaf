/* forecast: the site's expected net load (load + EV + boiler - PV, W, + import) per slot over
 * the coming hours, as a planning strategy asks for it (docs/strategies.md, `planner`). Given in
 * the site configuration's "forecast" key, inline or as a CSV file (docs/gateway-config.md,
 * "forecast"); the simulator writes it inline from a scenario's "forecast" section with the
 * chosen quality (perfect, persistence, noisy). Prices are not here: they come from the tariff
 * (sitectx_price). A plain value struct owned by its sitectx (forecast_free). */
#ifndef DERLOOP_FORECAST_H
#define DERLOOP_FORECAST_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct forecast {
    size_t n;        /* slots; 0 = no forecast */
    int64_t t0_ms;   /* start of slot 0, now_ms time (ms since the start) */
    int64_t step_ms; /* slot length, > 0 */
    double *net_w;   /* [n] mean net load of each slot, W, + import */
};

/* Reads {"step": "15m", "from": "0s", "net_load_w": [..]} (inline; "from" optional, the start
 * of slot 0 as a duration since the start) or {"file": "PATH.csv"} (a CSV with a header row
 * "time,net_load_w": time in seconds since the start, or an ISO instant when the site has a
 * start (start_unix_ms, has_start); rows evenly spaced, at least two) into f (zeroed first).
 * path names the key in errors ("forecast"). Returns 0 or -EINVAL/-ENOENT/-ENOMEM with
 * "PATH.FIELD: message, got VALUE" (or "FILE:LINE: message") in err. */
int forecast_parse(struct forecast *f, const cJSON *obj, const char *path, int has_start,
                   int64_t start_unix_ms, char *err, size_t errlen);
void forecast_free(struct forecast *f);

/* The mean forecast net load over [from_ms, to_ms) (now_ms time), weighting the slots it
 * overlaps; NaN when f has no slot covering all of it (or from_ms >= to_ms). */
double forecast_net_w(const struct forecast *f, int64_t from_ms, int64_t to_ms);

/* The end of the forecast's coverage (now_ms time); INT64_MIN without a forecast. */
int64_t forecast_end_ms(const struct forecast *f);

#endif
