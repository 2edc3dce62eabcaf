/* controller: see controller.h.
 *
 * Writes go out only when a final setpoint differs from the last one written by more than
 * half a watt (the finest resolution of the registers we drive), or when a device came back
 * online (it may have rebooted and forgotten its setpoint). A device that safety releases is
 * sent one "release" write (NaN) and then left alone. */
#include "gateway/control/controller.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gateway/bus/breaker.h"
#include "gateway/control/arbiter.h"
#include "gateway/control/safety.h"
#include "gateway/control/schedule.h"
#include "gateway/strategies/strategy.h"

#define WRITE_EPSILON_W 0.5

struct command {
    int active;
    double power_w;
    int64_t expires_ms;
};

struct controller {
    const struct siteconf *cfg;
    struct controller_opts opts;
    struct strategy *strategy;
    struct arbiter_cfg arbiter;
    struct safety_cfg safety;
    struct schedule schedule;
    int estop; /* controller_set_estop */

    size_t n_dev;
    struct device *dev[SITECONF_MAX_DEVICES];
    struct bus *bus[SITECONF_MAX_DEVICES]; /* per device, not owned (the caller's factory) */

    struct procimg img;
    struct command site_cmd;
    struct command cmd[PROCIMG_MAX_DEVICES];
    uint8_t written[PROCIMG_MAX_DEVICES];  /* a setpoint (or release) was written */
    uint8_t released[PROCIMG_MAX_DEVICES]; /* the last write was a release */
    uint8_t was_online[PROCIMG_MAX_DEVICES];
    int last_rc[PROCIMG_MAX_DEVICES];
    int write_rc[PROCIMG_MAX_DEVICES]; /* of the last cycle's write, 0 = none failed */
    uint64_t writes;
};

/* one line to the caller's log callback (common/log.h) */
#define logf_(x, ...) log_to((x)->opts.log, (x)->opts.log_ctx, __VA_ARGS__)

/* The strategy-facing sections, built in one place: controller_new and a configuration
 * pushed or reloaded at run time (gateway/control/confsync.c) go through the same checks. */
struct controller_policy {
    struct strategy *strategy;
    struct arbiter_cfg arbiter;
    struct safety_cfg safety;
    struct schedule schedule;
};

/* split.priority names assets: they must be the site's. */
static int check_split_assets(const struct siteconf *cfg, const struct arbiter_cfg *a, char *err,
                              size_t errlen)
{
    const char *ids[SITECONF_MAX_DEVICES];
    for (size_t i = 0; i < cfg->n_devices; i++)
        ids[i] = cfg->devices[i].asset_id;
    return arbiter_cfg_check_assets(a, "split", ids, cfg->n_devices, err, errlen);
}

struct controller_policy *controller_policy_new(const struct siteconf *cfg, char *err,
                                                size_t errlen)
{
    struct controller_policy *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "%s: out of memory", cfg->path);
        return NULL;
    }
    char sub[256];
    p->strategy = strategy_new(cfg->strategy, cfg->params, "params", sub, sizeof sub);
    if (!p->strategy) {
        snprintf(err, errlen, "%s: %s%s", cfg->path,
                 strategy_find(cfg->strategy) ? "" : "strategy: ", sub);
        goto fail;
    }
    if (strategy_add_constraints(p->strategy, cfg->constraints, "constraints", sub, sizeof sub) ||
        safety_cfg_load(cfg->safety, "safety", &p->safety, sub, sizeof sub) ||
        arbiter_cfg_load(cfg->split, "split", &p->arbiter, sub, sizeof sub) ||
        check_split_assets(cfg, &p->arbiter, sub, sizeof sub)) {
        snprintf(err, errlen, "%s: %s", cfg->path, sub);
        goto fail;
    }
    p->schedule = cfg->schedule; /* validated by siteconf */
    return p;
fail:
    controller_policy_free(p);
    return NULL;
}

void controller_policy_free(struct controller_policy *p)
{
    if (!p)
        return;
    strategy_free(p->strategy);
    free(p);
}

/* The new strategy starts from a fresh state (integrators, hysteresis): the old state
 * belonged to other parameters. Devices, commands and written setpoints carry over. */
void controller_set_policy(struct controller *c, struct controller_policy *p)
{
    strategy_free(c->strategy);
    c->strategy = p->strategy;
    c->arbiter = p->arbiter;
    c->safety = p->safety;
    c->schedule = p->schedule;
    free(p);
}

struct controller *controller_new(const struct siteconf *cfg, const struct controller_opts *opts,
                                  char *err, size_t errlen)
{
    struct controller *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "%s: out of memory", cfg->path);
        return NULL;
    }
    c->cfg = cfg;
    if (opts)
        c->opts = *opts;
    char sub[256];
    struct controller_policy *pol = controller_policy_new(cfg, err, errlen);
    if (!pol)
        goto fail;
    controller_set_policy(c, pol);
    if (cfg->n_devices > PROCIMG_MAX_DEVICES) {
        snprintf(err, errlen, "%s: devices: at most %d, got %zu", cfg->path, PROCIMG_MAX_DEVICES,
                 cfg->n_devices);
        goto fail;
    }
    if (cfg->n_devices > 0 && !c->opts.open_bus) {
        snprintf(err, errlen, "%s: devices: no transport to reach them (controller_opts.open_bus)",
                 cfg->path);
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_devices; i++) {
        const struct device_cfg *d = &cfg->devices[i];
        struct bus *b = c->opts.open_bus(c->opts.bus_ctx, d, sub, sizeof sub);
        if (!b) {
            snprintf(err, errlen, "%s: devices[%zu]: %s", cfg->path, i, sub);
            goto fail;
        }
        /* the asset id in the bus's log lines, whichever transport */
        int rc = bus_set_device(b, d->unit_id, d->asset_id);
        if (rc) {
            snprintf(err, errlen, "%s: devices[%zu]: unit_id %d on its bus: %s", cfg->path, i,
                     d->unit_id, strerror(-rc));
            goto fail;
        }
        c->bus[i] = b;
        c->dev[i] = device_new(d, b, sub, sizeof sub);
        if (!c->dev[i]) {
            snprintf(err, errlen, "%s: devices[%zu]: %s", cfg->path, i, sub);
            goto fail;
        }
        c->n_dev++;
        c->was_online[i] = 1; /* so that a device absent from the start is logged once */
    }
    c->img.n_devices = c->n_dev;
    c->img.ctx = &cfg->ctx; /* calendar, tariffs, departures for the strategies */
    for (size_t i = 0; i < c->n_dev; i++) {
        struct procimg_dev *o = &c->img.dev[i];
        snprintf(o->asset_id, sizeof o->asset_id, "%s", cfg->devices[i].asset_id);
        o->last_ok_ms = -1;
        o->power_w = o->soc = o->soc_min = o->soc_max = NAN;
        o->temperature_c = o->voltage_v = o->max_charge_w = o->max_discharge_w = NAN;
        o->capacity_wh = o->rated_w = o->pv_available_w = o->pv_limit_w = NAN;
        o->evse_current_a = o->boiler_temperature_c = NAN;
    }
    return c;
fail:
    controller_free(c);
    return NULL;
}

void controller_free(struct controller *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_dev; i++)
        device_free(c->dev[i]);
    strategy_free(c->strategy);
    free(c);
}

static void read_devices(struct controller *c, int64_t now_ms, int *errors)
{
    const char *site = c->cfg->site_id;
    c->img.now_ms = now_ms;
    c->img.grid_ok = 0;
    c->img.grid_w = NAN;
    for (size_t i = 0; i < c->n_dev; i++) {
        struct procimg_dev *o = &c->img.dev[i];
        int rc = device_poll(c->dev[i], now_ms, o);
        if (rc) {
            (*errors)++;
            if (c->was_online[i] || rc != c->last_rc[i])
                logf_(c, "site=%s asset=%s event=offline rc=%d reason=\"%s\"", site, o->asset_id,
                      rc, bus_strerror(rc));
            c->was_online[i] = 0;
        } else if (!c->was_online[i]) {
            logf_(c, "site=%s asset=%s event=online", site, o->asset_id);
            c->was_online[i] = 1;
            c->written[i] = 0; /* it may have rebooted: send its setpoint again */
        }
        c->last_rc[i] = rc;
        struct bus_unit_stats us;
        int unit = c->cfg->devices[i].unit_id;
        bus_get_unit_stats(c->bus[i], unit, &us);
        o->bus_requests = us.requests;
        o->bus_errors = us.errors;
        o->bus_timeouts = us.timeouts;
        int bs = bus_breaker_state(c->bus[i], unit);
        snprintf(o->breaker, sizeof o->breaker, "%s",
                 bs < 0 ? "" : breaker_state_name((enum breaker_state)bs));
        o->stale = o->last_ok_ms < 0 || now_ms - o->last_ok_ms > c->cfg->stale_after_ms;
        if (o->type == PROCIMG_METER_GRID && procimg_dev_usable(o) && isfinite(o->power_w)) {
            c->img.grid_w = o->power_w;
            c->img.grid_ok = 1;
        }
    }
}

static void add_commands(struct controller *c, int64_t now_ms, struct decision *dm)
{
    if (c->site_cmd.active && now_ms >= c->site_cmd.expires_ms)
        c->site_cmd.active = 0;
    if (c->site_cmd.active)
        decision_request(dm, DSRC_MANUAL, DECISION_SITE, c->site_cmd.power_w);
    for (size_t i = 0; i < c->n_dev; i++) {
        struct command *k = &c->cmd[i];
        if (k->active && now_ms >= k->expires_ms)
            k->active = 0;
        if (k->active)
            decision_request(dm, DSRC_MANUAL, (int)i, k->power_w);
    }
}

static int write_setpoints(struct controller *c, int64_t now_ms, const struct decision *dm)
{
    int errors = 0;
    memset(c->write_rc, 0, sizeof c->write_rc);
    for (size_t i = 0; i < c->n_dev && i < dm->n_assets; i++) {
        struct procimg_dev *o = &c->img.dev[i];
        const struct decision_asset *a = &dm->asset[i];
        if (!o->online)
            continue;
        double w = a->set ? a->final_w : NAN;
        if (!a->set && (!c->written[i] || c->released[i]))
            continue; /* nothing of ours to undo */
        if (a->set && c->written[i] && !c->released[i] && o->has_prev_setpoint &&
            fabs(w - o->prev_setpoint_w) <= WRITE_EPSILON_W)
            continue;
        if (o->type == PROCIMG_METER_GRID || o->type == PROCIMG_METER_LOAD)
            continue;
        int rc = device_write(c->dev[i], w, now_ms);
        if (rc) {
            errors++;
            c->write_rc[i] = rc;
            logf_(c, "site=%s asset=%s event=write_failed setpoint_w=%.1f reason=\"%s\"",
                  c->cfg->site_id, o->asset_id, w, bus_strerror(rc));
            continue;
        }
        c->writes++;
        c->written[i] = 1;
        c->released[i] = !a->set;
        o->has_prev_setpoint = a->set;
        o->prev_setpoint_w = a->set ? w : 0;
        o->prev_setpoint_ms = now_ms;
    }
    return errors;
}

int controller_cycle(struct controller *c, int64_t now_ms, struct decision *out)
{
    struct decision local = {0};
    struct decision *dm = out ? out : &local;
    int errors = 0;
    read_devices(c, now_ms, &errors);
    double lo[PROCIMG_MAX_DEVICES], hi[PROCIMG_MAX_DEVICES];
    safety_limits(&c->safety, &c->img, lo, hi);
    for (size_t i = 0; i < c->img.n_devices; i++) {
        c->img.dev[i].has_envelope = 1;
        c->img.dev[i].envelope_lo_w = lo[i];
        c->img.dev[i].envelope_hi_w = hi[i];
    }
    decision_init(dm, &c->img, strategy_ops_of(c->strategy)->name);
    strategy_decide(c->strategy, &c->img, now_ms, dm);
    schedule_decide(&c->schedule, &c->img, dm);
    add_commands(c, now_ms, dm);
    arbiter_resolve(&c->arbiter, &c->img, lo, hi, dm);
    if (c->estop)
        arbiter_estop(&c->img, c->safety.estop_pv_limit_w, dm);
    safety_apply(&c->safety, &c->img, dm);
    errors += write_setpoints(c, now_ms, dm);
    return -errors;
}

void controller_set_estop(struct controller *c, int active)
{
    c->estop = !!active;
}

int controller_estop(const struct controller *c)
{
    return c->estop;
}

int controller_command(struct controller *c, const char *asset_id, double power_w,
                       int64_t expires_ms)
{
    struct command *k = NULL;
    if (!asset_id) {
        k = &c->site_cmd;
    } else {
        for (size_t i = 0; i < c->n_dev; i++)
            if (!strcmp(c->img.dev[i].asset_id, asset_id))
                k = &c->cmd[i];
    }
    if (!k)
        return -ENOENT;
    k->active = 1;
    k->power_w = power_w;
    k->expires_ms = expires_ms;
    return 0;
}

const struct procimg *controller_image(const struct controller *c)
{
    return &c->img;
}

size_t controller_n_devices(const struct controller *c)
{
    return c->n_dev;
}

struct device *controller_device(struct controller *c, size_t i)
{
    return i < c->n_dev ? c->dev[i] : NULL;
}

const char *controller_strategy(const struct controller *c)
{
    return strategy_ops_of(c->strategy)->name;
}

uint64_t controller_transactions(const struct controller *c)
{
    uint64_t n = 0;
    for (size_t i = 0; i < c->n_dev; i++)
        n += device_transactions(c->dev[i]);
    return n;
}

uint64_t controller_writes(const struct controller *c)
{
    return c->writes;
}

int controller_write_rc(const struct controller *c, size_t i)
{
    return i < c->n_dev ? c->write_rc[i] : 0;
}
