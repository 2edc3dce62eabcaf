/* schedule: a site's scheduled windows (docs/gateway-config.md, "schedules"): by time of day
 * and day of week on the site calendar (UTC, like the tariff bands), an action: charge or
 * discharge the site's batteries at a power, hold their state of charge (0 W), or cap the
 * site's grid import or export. Applied at the scheduled priority (arbiter.h: above the
 * strategies, below manual commands and the emergency stop). A plain value struct parsed from
 * the configuration (schedule_parse) and read by the cycle (schedule_decide). */
#ifndef DERLOOP_SCHEDULE_H
#define DERLOOP_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gateway/control/decision.h"
#include "gateway/control/procimg.h"

#define SCHEDULE_MAX_WINDOWS 32

enum schedule_action {
    SCHED_CHARGE,     /* the batteries charge at power_w */
    SCHED_DISCHARGE,  /* the batteries discharge at power_w */
    SCHED_HOLD_SOC,   /* the batteries hold their SoC (0 W), or go to soc and hold it there */
    SCHED_IMPORT_CAP, /* the batteries keep the site's import at or below power_w */
    SCHED_EXPORT_CAP, /* the batteries keep the site's export at or below power_w */
};

struct schedule_window {
    uint8_t days;         /* bit d: the window starts on weekday d (0 = Sunday) */
    int from_min, to_min; /* minutes of the UTC day; from > to crosses midnight */
    enum schedule_action action;
    double power_w; /* >= 0; for hold_soc with a target: the most it moves toward it */
    double soc;     /* hold_soc's target, 0..1; NaN: hold where it is (0 W) */
};

/* hold_soc with a target: within SCHEDULE_SOC_BAND of it the batteries rest; further away they
 * move toward it with the power that would close the gap in SCHEDULE_SOC_HORIZON_S (so they
 * slow down as they come near, without overshoot from one cycle's lag), at most power_w. */
#define SCHEDULE_SOC_BAND      0.005
#define SCHEDULE_SOC_HORIZON_S 900.0

struct schedule {
    size_t n;
    struct schedule_window w[SCHEDULE_MAX_WINDOWS];
};

/* The "schedules" array (NULL or absent: none). Errors name path[i].key and the value
 * ("schedules[0].from: must be a time of day ..., got \"7:30\""). 0 or -EINVAL. */
int schedule_parse(const cJSON *arr, const char *path, struct schedule *out, char *err,
                   size_t errlen);

/* Whether window w runs at the calendar instant unix_ms (a window that crosses midnight
 * belongs to the day it starts). */
int schedule_window_active(const struct schedule_window *w, int64_t unix_ms);

/* The site battery power (W, site signs) that hold_soc window w asks at the image's state:
 * 0 without a target or a SoC reading. */
double schedule_hold_soc_w(const struct schedule_window *w, const struct procimg *img);

/* Adds the scheduled site request of this cycle to dm: the windows running at img->now_ms
 * (on the calendar of img->ctx; none without one) in file order: the last charge, discharge
 * or hold_soc window sets the battery power (else the strategies' site request stands: the last
 * of the highest class they used, optimisation or scheduled), then
 * every cap moves it as far as needed to hold the limit, predicted from the grid meter. Adds
 * nothing when no window changes the strategies' request; else records DC_SCHEDULE (site,
 * from what the strategies asked to what the schedule asks). */
void schedule_decide(const struct schedule *s, const struct procimg *img, struct decision *dm);

#endif
