/* siteconf: a gateway's site configuration (docs/gateway-config.md): the site, its devices
 * (endpoint, unit id, driver, ratings), the poll period, the schedules, and the strategy,
 * safety and split sections, which their own modules validate. The caller owns the result
 * (siteconf_free). */
#ifndef DERLOOP_SITECONF_H
#define DERLOOP_SITECONF_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/devtype.h"
#include "gateway/control/schedule.h"
#include "gateway/control/sitectx.h"

#define SITECONF_ID_MAX      48 /* as PROCIMG_ID_LEN: ids travel into the process image */
#define SITECONF_MAX_DEVICES 64

/* Duration bounds (docs/gateway-config.md): a poll period of at most an hour (3 x it, the
 * default stale_after, stays well inside int64), data stale after at most a day, a Modbus
 * response timeout of 10 ms to a minute. */
#define SITECONF_POLL_PERIOD_MAX_MS 3600000LL
#define SITECONF_STALE_AFTER_MAX_MS 86400000LL
#define SITECONF_TIMEOUT_MIN_MS     10LL
#define SITECONF_TIMEOUT_MAX_MS     60000LL

/* The device types of common/devtype.h: DEV_BATTERY, ... */
enum dev_type {
#define DEV_TYPE_(NAME, name, proto, driver) DEV_##NAME,
    DEVTYPE_LIST(DEV_TYPE_)
#undef DEV_TYPE_
};
enum dev_role { ROLE_NONE, ROLE_GRID, ROLE_LOAD };

const char *dev_type_name(enum dev_type t);

struct device_cfg {
    char asset_id[SITECONF_ID_MAX];
    enum dev_type type;
    enum dev_role role; /* meters only */
    char driver[32];    /* "sunspec", "derloop-evse", "derloop-boiler" */
    char host[128];
    int port;           /* 1..65535 */
    int unit_id;        /* 0..255 */
    int64_t timeout_ms; /* response (and connect) timeout, default 500; 10 ms .. 1 min */
    int invert_sign;    /* meters: the device reports the opposite sign (203 leaves it to
                           vendors) */
    /* ratings (0 = unknown) */
    double capacity_wh, max_charge_w, max_discharge_w; /* battery */
    double peak_w;                                     /* pv */
    double min_current_a, max_current_a;               /* evse */
    int phases;                                        /* evse */
    double rated_w;                                    /* boiler */
};

struct siteconf {
    char path[512];
    char site_id[SITECONF_ID_MAX];
    char gateway_id[SITECONF_ID_MAX]; /* default "gw-<site_id>" */
    int64_t poll_period_ms;           /* default 1000; 1 ms .. 1 h */
    int64_t stale_after_ms;           /* data older than this is stale; default 3 poll periods;
                                         1 ms .. 1 d */
    size_t n_devices;
    struct device_cfg devices[SITECONF_MAX_DEVICES];
    char strategy[32];                             /* default "null" */
    const cJSON *params, *safety, *split, *uplink; /* inside root; NULL when absent */
    /* Stacked strategies: an array of {"strategy": NAME, "params": {...}} run after the
     * primary (docs/strategies.md, Stacking); inside root, NULL when absent. */
    const cJSON *constraints;
    /* "schedules": windows run at the scheduled priority (gateway/control/schedule.h). */
    struct schedule schedule;
    /* "start", "tariff", "ev_departures": the calendar, prices and departures. der-gateway
     * sets ctx.start_unix_ms from the wall clock when the file has no "start". */
    struct sitectx ctx;
    cJSON *root; /* owned */
};

/* Parses and validates a configuration. origin names it in messages (a file path).
 * Errors: "ORIGIN: json.path: message, got VALUE". Returns 0 or -EINVAL/-ENOENT/-ENOMEM. */
int siteconf_load_file(const char *path, struct siteconf **out, char *err, size_t errlen);
int siteconf_parse(const char *text, const char *origin, struct siteconf **out, char *err,
                   size_t errlen);
void siteconf_free(struct siteconf *c);
const struct device_cfg *siteconf_find(const struct siteconf *c, const char *asset_id);

#endif
