/* alerts: the headend's alert rules and their state (docs/operations.md, "Alerts"). A
 * condition rule (gateway offline or stale, asset FAULT, SoC below the reserve, telemetry lag)
 * is raised when its condition starts to hold and cleared when it stops; an event rule
 * (a dispatch FAILED or EXPIRED) is raised once and cleared when an operator acknowledges it.
 * Each change (raised, cleared, acked) goes to the notify callback (the webhook, and the hub
 * stores the alert). After a restart the hub puts the stored alerts back (alerts_restore):
 * active ones, acknowledgements and the history survive, ids go on after the highest, and the
 * condition rules then clear what no longer holds. Pure data and functions of their
 * arguments: the hub evaluates, tests call the same. Not thread-safe: the hub's lock covers
 * it. */
#ifndef HEADEND_ALERTS_H
#define HEADEND_ALERTS_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

enum alert_rule {
    ALERT_GATEWAY_OFFLINE,
    ALERT_GATEWAY_STALE,
    ALERT_ASSET_FAULT,
    ALERT_SOC_LOW,
    ALERT_DISPATCH_FAILED,
    ALERT_TELEMETRY_LAG,
    ALERT_MODBUS_ERRORS,
    ALERT_RULES
};

/* "gateway_offline", ...; NULL out of range. alert_rule_parse: -EINVAL when unknown. */
const char *alert_rule_name(int rule);
int alert_rule_parse(const char *name);

/* The rules' thresholds (headend/config.c options; 0 turns a rule off). */
struct alert_limits {
    int64_t offline_after_ms; /* no live session for this long */
    int64_t stale_after_ms;   /* a live session silent this long */
    int64_t lag_max_ms;       /* latest sample received this long after its timestamp */
    double soc_reserve;       /* 0..1; cleared at soc_reserve + SOC_HYSTERESIS */
    int fault;                /* asset status containing "fault" */
    int dispatch;             /* dispatch FAILED or EXPIRED */
    double modbus_error_pct;  /* modbus_errors: failed calls / calls over the window, % */
    int64_t modbus_window_ms; /* ... over this window */
    int modbus_min_requests;  /* ... when the window holds at least this many calls */
};
#define ALERT_SOC_HYSTERESIS 0.02

#define ALERT_ID_MAX   64
#define ALERT_TEXT_MAX 160

struct alert {
    uint64_t id; /* 1, 2, ... in order raised */
    int rule;
    char site_id[ALERT_ID_MAX];
    char subject[ALERT_ID_MAX]; /* the site, asset or setpoint the alert is about */
    int active;
    int64_t raised_ms, cleared_ms, acked_ms; /* 0 = not (yet) */
    char acked_by[ALERT_ID_MAX];
    double value; /* what crossed the threshold: ms, SoC, ... (NaN when none) */
    char detail[ALERT_TEXT_MAX];
};

/* The predicates, one per condition rule: does it hold now? *value gets the observed value.
 * active: the alert is raised (the SoC rule clears only above the reserve + hysteresis). */
int alert_offline_holds(const struct alert_limits *l, int connected, int64_t last_seen_ms,
                        int64_t now_ms, double *value);
int alert_stale_holds(const struct alert_limits *l, int connected, int64_t last_seen_ms,
                      int64_t now_ms, double *value);
/* FAULT: the operating state the gateway reports (Telemetry.state) is FAULT. Only when it
 * reports none (a gateway that predates it; op_state "" or NULL) the older signs count: the
 * status contains "fault" (any case), or the device state is FAULT (a boiler) or F (an EV
 * charger's IEC 61851 error state). */
int alert_fault_holds(const struct alert_limits *l, const char *op_state, const char *status,
                      const char *device_state);
int alert_soc_holds(const struct alert_limits *l, double soc, int active);
int alert_lag_holds(const struct alert_limits *l, int connected, double lag_ms);

/* A device's Modbus error rate over a sliding window, from the cumulative counters its gateway
 * reports in telemetry (Telemetry.modbus_requests, modbus_errors). Checkpoints of the counters
 * are kept every window/(ALERT_RATE_POINTS-1) at most; the rate is taken between the latest
 * counters and the oldest checkpoint still inside the window (so over 7/8 to all of it).
 * Counters that go down (the gateway restarted) start the window again. Plain data, zeroed to
 * begin. */
#define ALERT_RATE_POINTS 9
struct alert_rate {
    struct {
        int64_t t_ms;
        uint64_t requests, errors;
    } pt[ALERT_RATE_POINTS]; /* ring, oldest at head */
    size_t head, n;
    int64_t cur_ms;
    uint64_t cur_requests, cur_errors;
    int has_cur;
};
/* The counters of a new sample received at now_ms. */
void alert_rate_push(struct alert_rate *r, int64_t window_ms, uint64_t requests, uint64_t errors,
                     int64_t now_ms);
/* Does the modbus_errors rule hold at now_ms? *pct: the rate in % (NaN when the window holds
 * fewer than min_requests calls: then it does not hold); *calls, *errors: the window's counts. */
int alert_modbus_holds(const struct alert_limits *l, const struct alert_rate *r, int64_t now_ms,
                       double *pct, uint64_t *calls, uint64_t *errors);

struct alerts;
typedef void (*alert_notify_fn)(void *ctx, const struct alert *a, const char *change);

/* history_max: cleared alerts kept for GET /alerts (the oldest dropped beyond it). */
struct alerts *alerts_new(size_t history_max, alert_notify_fn notify, void *ctx);
void alerts_free(struct alerts *a);
/* Where new alert ids come from: fn (0 and *id, or -errno) when set, e.g. the store's shared
 * counter, so headends sharing one database never give two alerts one id; an id not above
 * the last one used (or fn failing) gives the next local number instead. NULL: local only. */
typedef int (*alert_id_fn)(void *ctx, uint64_t *id);
void alerts_set_ids(struct alerts *a, alert_id_fn fn, void *ctx);

/* A condition rule's observation: raises (1) on a rising edge, clears (-1) on a falling one,
 * else 0 (an active alert gets its value and detail refreshed). -ENOMEM. */
int alerts_observe(struct alerts *a, int rule, const char *site_id, const char *subject, int holds,
                   double value, const char *detail, int64_t now_ms);
/* An event rule: raised (1), or 0 when one for the same subject is active already. */
int alerts_event(struct alerts *a, int rule, const char *site_id, const char *subject, double value,
                 const char *detail, int64_t now_ms);
/* Acknowledges alert id: 0, -ENOENT (no such alert), -EALREADY (acknowledged before). An
 * event alert is cleared by it. */
int alerts_ack(struct alerts *a, uint64_t id, const char *who, int64_t now_ms);
/* The active alert of (rule, subject), or NULL. */
const struct alert *alerts_find(const struct alerts *a, int rule, const char *subject);

/* Active ones first (oldest first), then the history (newest first). */
size_t alerts_count(const struct alerts *a);
const struct alert *alerts_at(const struct alerts *a, size_t i);
size_t alerts_active(const struct alerts *a, int rule);
uint64_t alerts_raised(const struct alerts *a, int rule);

/* The JSON of an alert (REST and webhook bodies, and the store's). NULL on out of memory. */
cJSON *alert_json(const struct alert *a);
/* The alert of an alert_json object (a stored one): 0, or -EINVAL naming nothing (the store
 * wrote it; a row that does not read back is skipped). */
int alert_from_json(const cJSON *o, struct alert *out);
/* Puts a stored alert back: an active one in the active list (unless one of its rule and
 * subject is there), a cleared one in the history; ids go on after the highest seen. Neither
 * notified nor counted as raised. 0 or -ENOMEM. */
int alerts_restore(struct alerts *a, const struct alert *al);
/* Clears every active condition alert (not dispatch_failed) whose subject `known` says is
 * gone (an alert restored for a site or asset no longer in the inventory: nothing would ever
 * observe it again). Returns how many it cleared. */
size_t alerts_clear_unknown(struct alerts *a,
                            int (*known)(void *ctx, int rule, const char *subject), void *ctx,
                            int64_t now_ms);

#endif
