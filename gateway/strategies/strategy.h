/* strategy: the control strategies behind one interface, a registry by name, and the
 * declarative parameter tables (name, type, default, bounds, help) from which every
 * component's configuration is validated, defaulted and documented (safety.c uses them too).
 * strategy_new returns an object the caller owns and frees with strategy_free; the ops tables
 * and parameter tables are static and owned by the library. */
#ifndef DERLOOP_STRATEGY_H
#define DERLOOP_STRATEGY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "gateway/control/decision.h"
#include "gateway/control/procimg.h"

/* ---- parameter tables ---------------------------------------------------------------------- */

enum param_type {
    PARAM_DOUBLE,      /* double; JSON number */
    PARAM_INT,         /* int; JSON number without fraction */
    PARAM_BOOL,        /* int 0/1; JSON true/false */
    PARAM_DURATION_MS, /* int64_t ms; JSON "15m" (duration_parse) or a number of ms */
};

struct param_field {
    const char *name;
    enum param_type type;
    size_t offset;        /* offsetof the member in the component's config struct */
    double def, min, max; /* bounds inclusive; ignored for PARAM_BOOL */
    const char *unit;     /* shown in docs ("W", "1/s", "0..1"); "" for none */
    const char *help;
};

/* Fills cfg with every field's default. */
void param_defaults(const struct param_field *f, size_t n, void *cfg);

/* Defaults, then the members of obj (a JSON object, or NULL for all defaults). Unknown keys,
 * duplicate keys, wrong types and out-of-bounds values are rejected with a message in err
 * naming path.key and the value, e.g. "gateway.params.kp: must be in [0, 100], got -1".
 * Returns 0 or -EINVAL. */
int param_load(const struct param_field *f, size_t n, const cJSON *obj, const char *path, void *cfg,
               char *err, size_t errlen);

/* The table as Markdown (a table with name, type, default, range, unit, help) or as --help
 * text (one line per field). Returns 0 or -EIO. */
int param_print_markdown(const struct param_field *f, size_t n, FILE *out);
int param_print_help(const struct param_field *f, size_t n, const char *prefix, FILE *out);

/* ---- the strategy interface ---------------------------------------------------------------- */

/* A constraint's bounds on the site battery request (W, + discharge), and the conflict code
 * (enum decision_conflict) recorded when they change it. */
struct strategy_window {
    double lo_w, hi_w;
    int conflict;
};

/* One strategy. The framework allocates cfg_size bytes of configuration (filled from fields)
 * and state_size bytes of zeroed state; init may keep pointers to cfg, which lives as long as
 * the state. decide reads the process image and writes to dm: its inputs and controller
 * terms (target_w, error_w, p_w, i_w, d_w, raw_w) and its requests, with decision_request at
 * the strategy's `source` priority. decide must not fail for bad data: stale or missing
 * measurements mean a safe request (or none), recorded in dm. */
struct strategy_ops {
    const char *name;    /* registry key, as in the site configuration */
    const char *summary; /* one line for --help and docs */
    int source;          /* enum decision_source of its requests */
    const struct param_field *fields;
    size_t n_fields;
    size_t cfg_size;
    size_t state_size;
    /* Cross-field validation after the table checks (optional): 0 or -EINVAL with err. */
    int (*check)(const void *cfg, const char *path, char *err, size_t errlen);
    int (*init)(void *state, const void *cfg);
    int (*decide)(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm);
    /* An operator/headend command (optional): asset is a device index or DECISION_SITE;
     * the command holds until expires_ms (absolute, same clock as now_ms). */
    int (*dispatch)(void *state, int asset, double power_w, int64_t expires_ms);
    void (*fini)(void *state); /* optional: releases what init acquired */
    /* Its behaviour as a constraint stacked after another strategy (optional; without it the
     * strategy's decide runs, adding its own requests): it fills win with the bounds it puts
     * on the site battery request (win comes as [-inf, +inf] with no conflict code) and may
     * add requests for other devices; the stack intersects and applies the windows. */
    int (*constrain)(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm,
                     struct strategy_window *win);
    /* An additive constraint's own response (optional): the power (W, + discharge) its last
     * constrain added to the site battery request on top of what the strategies asked. The
     * stack hides its effect from the grid loops: the primary and the stacked strategies
     * without constrain see grid_w raised by it (so a self-consumption loop does not undo a
     * frequency response); the windows see the real grid. */
    double (*added_w)(const void *state);
};

extern const struct strategy_ops strategy_null_ops;
extern const struct strategy_ops strategy_charge_ops;
extern const struct strategy_ops strategy_discharge_ops;
extern const struct strategy_ops strategy_net_zero_ops;
extern const struct strategy_ops strategy_manual_ops;
extern const struct strategy_ops strategy_peak_shaving_ops;
extern const struct strategy_ops strategy_time_of_use_ops;
extern const struct strategy_ops strategy_self_consumption_ops;
extern const struct strategy_ops strategy_arbitrage_ops;
extern const struct strategy_ops strategy_backup_power_ops;
extern const struct strategy_ops strategy_grid_services_ops;
extern const struct strategy_ops strategy_ev_charging_ops;
extern const struct strategy_ops strategy_boiler_ops;
extern const struct strategy_ops strategy_planner_ops;

/* The registry, in a fixed order. strategy_find returns NULL for an unknown name. */
const struct strategy_ops *strategy_find(const char *name);
size_t strategy_count(void);
const struct strategy_ops *strategy_at(size_t i);

struct strategy;

/* Looks up `name`, validates params (a JSON object or NULL) with path as the prefix of error
 * messages (e.g. "gateway.params"), and initialises it. Returns NULL with err filled on
 * failure (unknown strategy, bad parameter, out of memory). */
struct strategy *strategy_new(const char *name, const cJSON *params, const char *path, char *err,
                              size_t errlen);
void strategy_free(struct strategy *s);

const struct strategy_ops *strategy_ops_of(const struct strategy *s);
const void *strategy_cfg(const struct strategy *s); /* the validated configuration */

/* Runs the strategy for one cycle: sets dm->strategy to its name and calls decide. dm must
 * have been started with decision_init. Returns what decide returns (0 or -errno). */
int strategy_decide(struct strategy *s, const struct procimg *img, int64_t now_ms,
                    struct decision *dm);

/* Forwards an operator/headend command; -ENOTSUP when the strategy takes none. */
int strategy_dispatch(struct strategy *s, int asset, double power_w, int64_t expires_ms);

/* ---- stacking (docs/strategies.md, Stacking) ------------------------------------------------ */

#define STRATEGY_MAX_CONSTRAINTS 8

/* Stacks constraints after s: arr is the site configuration's "constraints" array of
 * {"strategy": NAME, "params": {...}} (NULL: none). Each is created like a strategy, with
 * errors naming path[i].params. strategy_decide then runs s, then each constraint in order:
 * its constrain op gives a window for the site battery request, intersected with the windows
 * of the constraints before it (when they do not overlap, the earlier constraint wins and the
 * later one's loss is recorded as its conflict), and the request is narrowed into the result
 * (strategy_narrow_site); a strategy without constrain runs its decide. The controller terms
 * (target_w, p_w, ...) of s are kept. Returns 0 or -EINVAL/-ENOMEM with err. */
int strategy_add_constraints(struct strategy *s, const cJSON *arr, const char *path, char *err,
                             size_t errlen);
size_t strategy_n_constraints(const struct strategy *s);

/* The site battery request the arbiter would pick from dm's requests so far (the highest
 * class, the last of that class), and its class in *source; 0 W and DSRC_NONE when nobody
 * asked (the batteries' default). */
double strategy_site_request(const struct decision *dm, int *source);

/* Narrows the site battery request into [lo_w, hi_w] (lo_w <= hi_w; +-INFINITY for no bound):
 * when the current request lies outside, adds a site request clamped into the window at the
 * higher of `source` and the current request's class (so the arbiter takes it) and records
 * the conflict (code, enum decision_conflict) as a site clamp. Returns the resulting request. */
double strategy_narrow_site(struct decision *dm, int source, double lo_w, double hi_w,
                            int conflict);

#endif
