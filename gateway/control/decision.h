/* decision: DecisionMetrics, the record of one control cycle and the bus between its stages.
 * The strategy writes its inputs, PID terms and requests; the arbiter the winning request per
 * asset; safety the final setpoint per asset and a reason for every clamp. A plain value
 * struct owned by the cycle (no allocation); decision_csv_* format it deterministically. */
#ifndef DERLOOP_DECISION_H
#define DERLOOP_DECISION_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/control/procimg.h"

#define DECISION_MAX_REQUESTS 16
#define DECISION_MAX_CLAMPS   64
#define DECISION_SITE         (-1) /* a request for the site's batteries, split among them */

/* Who asked. Higher value = higher priority (arbiter.h). */
enum decision_source {
    DSRC_NONE = 0,     /* nobody asked: the default for the device type */
    DSRC_OPTIMISATION, /* optimising strategies: net_zero, self-consumption, arbitrage... */
    DSRC_SCHEDULED,    /* scheduled programmes: charge/discharge windows, time of use */
    DSRC_MANUAL,       /* an operator or the headend */
    DSRC_SAFETY,       /* a protective request: the emergency stop (estop.h) */
    DSRC_COUNT
};

/* Why safety changed a setpoint; the order is the order in which the interlocks run
 * (docs/safety.md). */
enum decision_reason {
    DR_NONFINITE = 0, /* the request was NaN or infinite */
    DR_OFFLINE,       /* the device did not answer: safe state */
    DR_STALE,         /* its data is older than the stale limit: safe state */
    DR_SOC_INVALID,   /* SoC missing or outside [0, 1] */
    DR_POWER_DEVICE,  /* the device's reported power limit */
    DR_POWER_CONFIG,  /* the configured power limit */
    DR_CURRENT,       /* the configured current limit at the measured voltage */
    DR_SOC_FLOOR,     /* discharge limited at/near the SoC floor */
    DR_SOC_CEILING,   /* charge limited at/near the SoC ceiling */
    DR_TEMP_STOP,     /* at or above the stop temperature */
    DR_TEMP_DERATE,   /* between derate and stop temperature */
    DR_TEMP_COLD,     /* charging below the minimum charge temperature */
    DR_RATING,        /* outside [0, rated] for pv, evse, boiler */
    DR_RAMP,          /* change from the previous setpoint faster than the ramp limit */
    DR_GRID_IMPORT,   /* battery pushed to keep the site inside the import limit */
    DR_GRID_EXPORT,   /* battery pushed to keep the site inside the export limit */
    DR_COUNT
};

/* Conflicts between stacked strategies (docs/strategies.md, Stacking): a constraint that
 * overrode the site battery request of the strategies before it. Recorded like clamps
 * (asset DECISION_SITE, from the request it overrode to what it set, "site:reserve:..." in
 * decisions.csv) but they are not interlocks: their codes lie above DR_COUNT, so interlock
 * counters that loop to DR_COUNT skip them. */
enum decision_conflict {
    DC_FIRST = 32,
    DC_RESERVE = DC_FIRST, /* backup_power: energy held back for outages, or recharged */
    DC_PEAK_LIMIT,         /* peak_shaving: discharge raised to hold the import limit */
    DC_EXPORT_LIMIT,       /* self_consumption: charge raised to hold the export limit */
    DC_GRID_SERVICE,       /* grid_services: frequency or demand response added */
    DC_EV_BATTERY,         /* ev_charging: the battery may not discharge into the car */
    DC_ESTOP,              /* the emergency stop took the asset to its safe state (estop.h) */
    DC_SCHEDULE,           /* a schedule window overrode the site request (schedule.h) */
    DC_END
};

struct decision_request {
    int16_t asset; /* device index in the process image, or DECISION_SITE */
    uint8_t source;
    double power_w;
};

/* One per device of the process image, same index. */
struct decision_asset {
    char asset_id[PROCIMG_ID_LEN];
    uint8_t type;       /* enum procimg_type */
    uint8_t source;     /* the request that won (DSRC_NONE: the default) */
    uint8_t set;        /* safety decided to command it (0: leave the device alone) */
    double requested_w; /* after arbitration (and the site split); NaN when none */
    double final_w;     /* after safety: what may be written when set */
};

struct decision_clamp {
    int16_t asset;
    uint8_t reason; /* enum decision_reason */
    double from_w, to_w;
};

struct decision {
    int64_t now_ms;
    char strategy[32];
    /* inputs */
    double grid_w, soc, battery_w, pv_w;
    /* the strategy's controller, NaN where it has none */
    double target_w, error_w, p_w, i_w, d_w;
    double raw_w; /* the strategy's own (site-level) output before arbitration */

    size_t n_requests;
    struct decision_request req[DECISION_MAX_REQUESTS];
    unsigned requests_dropped;

    size_t n_assets;
    struct decision_asset asset[PROCIMG_MAX_DEVICES];

    size_t n_clamps;
    struct decision_clamp clamp[DECISION_MAX_CLAMPS];
    unsigned clamps_dropped;
};

/* Starts the record of a cycle: copies the ids and site inputs from img, NaN for the
 * controller fields, no requests, no clamps. strategy may be NULL. */
void decision_init(struct decision *dm, const struct procimg *img, const char *strategy);

/* Appends a request. Returns 0, -EINVAL for a bad source or asset index, -ENOSPC when full
 * (counted in requests_dropped). NaN/Inf power is accepted: safety turns it into the safe
 * state and records why. */
int decision_request(struct decision *dm, int source, int asset, double power_w);

/* Appends a clamp record; when full, counts it in clamps_dropped. */
void decision_clamp(struct decision *dm, int asset, int reason, double from_w, double to_w);

/* Number of clamps recorded with this reason (for tests and KPIs). */
size_t decision_count(const struct decision *dm, int reason);

const char *decision_source_name(int source);
const char *decision_reason_name(int reason);

/* The CSV header line and one row (each ending in '\n'), with fixed precision: watts %.3f,
 * SoC %.6f. Per-asset values go into two fields: `setpoints` as id=final@source;... (only
 * assets that are set) and `clamps` as id:reason:from>to;... Returns the length written, or
 * -ENOSPC when buf is too small (buf then holds a truncated string). */
int decision_csv_header(char *buf, size_t len);
int decision_csv_row(const struct decision *dm, char *buf, size_t len);

#endif
