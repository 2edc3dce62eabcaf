/* runner: see runner.h.
 *
 * Determinism: everything written to the three digested files is a function of the scenario,
 * its seed and the build. Transport-level log lines (TCP connects, peer ports) go to a
 * separate, undigested log. The TCP transport's server thread only touches a register image
 * while it answers a request, and requests happen only inside a gateway cycle, which is
 * synchronous: physics never steps while a request is in flight. The gateway's breakers and
 * backoff run on simulated time (and never sleep), so TCP and in-process runs make the same
 * decisions. */
#define _GNU_SOURCE /* sched_getcpu, sched_setaffinity */
#include "sim/run/runner.h"

#include <errno.h>
#include <sched.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/bus/tcp_pool.h"
#include "gateway/control/controller.h"
#include "common/fmtnum.h"
#include "common/sha256.h"
#include "gateway/control/siteconf.h"
#include "sim/wire/bus_inproc.h"
#include "sim/run/headend_loop.h"
#include "sim/wire/mbserver.h"
#include "common/rtclock.h"
#include "sim/run/site.h"
#include "sim/run/sitecfg.h"

#define MAX_REPORTED 20 /* check failures described one by one in events.log */

struct runner;
struct sampler;
static void sampler_free(struct sampler *m);

struct rsite {
    struct runner *r;
    struct site *site;
    struct siteconf *conf;
    struct controller *ctl;
    struct bus *inproc;   /* owned; RUNNER_INPROC only */
    struct tcp_pool pool; /* RUNNER_TCP only: the site's transport */
    struct bus *tcp;      /* its bus (one endpoint per site), for the statistics */
    int port;
    size_t n_dev;
    struct sim_asset *asset_of[SITECONF_MAX_DEVICES]; /* the simulated twin of device i */
};

struct runner {
    const struct scenario *sc;
    const struct runner_opts *o;
    struct rsite *s;
    size_t n;
    int64_t now_ms; /* simulated: the gateways' clock */
    struct mbserver *srv;
    pthread_t thread;
    int thread_started;
    atomic_int stop;
    FILE *ts, *dec, *ev;
    size_t cur_site; /* for log lines */
    struct runner_result *res;
    int8_t *ev_state;        /* per (event, site): 0 pending, 1 active, 2 ended */
    struct headend_loop *hl; /* the scenario's dispatch events, through a headend or not */
    struct decision *dm;     /* the last cycle's (30 KB: on the heap) */
    int hook_started;
    int64_t t0_us; /* wall clock at the first tick: progress and wall_s only */
    /* timeseries.csv's per-battery columns: the union of the sites' battery ids in order of
     * first appearance (replicas share ids, so a column holds each site's battery of that
     * name; other sites' rows leave it empty) */
    size_t n_bat;
    const char **bat_id;
    /* a timeseries row's per-battery values (n_bat each) and its text (line_cap bytes) */
    double *bsoc, *bp;
    uint8_t *bhas;
    const struct sim_asset **bat_of; /* [site * n_bat + j]: the site's battery of id j, or NULL */
    char *line;
    size_t line_cap;
    struct sampler *smp; /* --sample: the aggregated rows (NULL: every step and cycle) */
};

static int64_t sim_now(void *ctx)
{
    return ((struct runner *)ctx)->now_ms;
}

static void on_log(void *ctx, const char *line)
{
    struct runner *r = ctx;
    if (strstr(line, " bus=")) { /* transport detail: ports differ run to run */
        if (r->o->log)
            fprintf(r->o->log, "t=%.3f %s\n", r->now_ms / 1000.0, line);
        return;
    }
    fprintf(r->ev, "t=%.3f %s\n", r->now_ms / 1000.0, line);
}

static struct bus *open_inproc(void *ctx, const struct device_cfg *d, char *err, size_t errlen)
{
    struct rsite *rs = ctx;
    (void)d;
    if (!rs->inproc)
        snprintf(err, errlen, "no in-process bus");
    return rs->inproc;
}

/* The bus's log lines, named by site, go to the transport log (on_log). */
static void on_bus_log(void *ctx, const char *line)
{
    struct rsite *rs = ctx;
    char buf[600];
    snprintf(buf, sizeof buf, "site=%s %s", site_cfg(rs->site)->id, line);
    on_log(rs->r, buf);
}

static struct bus *open_tcp(void *ctx, const struct device_cfg *d, char *err, size_t errlen)
{
    struct rsite *rs = ctx;
    rs->tcp = tcp_pool_bus(&rs->pool, d->host, d->port, (int)d->timeout_ms, err, errlen);
    return rs->tcp;
}

static void *server_main(void *arg)
{
    struct runner *r = arg;
    while (!atomic_load(&r->stop))
        mbserver_poll(r->srv, 20);
    return NULL;
}

static int mkdir_p(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int open_site(struct runner *r, size_t i, char *err, size_t errlen)
{
    struct rsite *rs = &r->s[i];
    rs->r = r;
    rs->site = site_new(r->sc, i, err, errlen);
    if (!rs->site)
        return -EINVAL;
    /* Both transports: the simulated clock (breakers; no sleeping, so runs replay) and the
     * transport log. */
    struct bus_config bus;
    bus_config_default(&bus);
    bus.name = site_cfg(rs->site)->id;
    bus.clock.now_ms = sim_now;
    bus.clock.ctx = r;
    bus.log = on_bus_log;
    bus.log_ctx = rs;
    if (r->o->transport == RUNNER_TCP) {
        int ep = mbserver_listen(r->srv, "127.0.0.1", 0, &rs->port);
        if (ep < 0) {
            snprintf(err, errlen, "site %s: cannot listen on 127.0.0.1: %s", site_cfg(rs->site)->id,
                     strerror(-ep));
            return ep;
        }
        mbserver_set_endpoint_name(r->srv, ep, site_cfg(rs->site)->id);
        tcp_pool_init(&rs->pool, &bus);
        for (size_t k = 0; k < site_n_assets(rs->site); k++) {
            struct sim_asset *a = site_asset(rs->site, k);
            if (a->img)
                mbserver_add_unit(r->srv, ep, a->cfg->unit_id, a->img, &a->wire);
        }
    } else {
        struct bus_inproc_config bc;
        bus_inproc_config_default(&bc);
        bc.bus = bus;
        int rc = bus_inproc_new(&bc, &rs->inproc);
        if (rc) {
            snprintf(err, errlen, "in-process bus: %s", strerror(-rc));
            return rc;
        }
        for (size_t k = 0; k < site_n_assets(rs->site); k++) {
            struct sim_asset *a = site_asset(rs->site, k);
            if (a->img)
                bus_inproc_add_unit(rs->inproc, a->cfg->unit_id, a->img, &a->wire);
        }
    }
    /* the same configuration a real deployment would get from `der-sim serve`, and the one
     * `der-sim check` validates (sitecfg_check) */
    char sub[800];
    int rc = sitecfg_siteconf(r->sc, rs->site, rs->port > 0 ? rs->port : 1, &rs->conf, err, errlen);
    if (rc)
        return rc;
    struct controller_opts co = {.log = on_log, .log_ctx = r};
    co.open_bus = r->o->transport == RUNNER_INPROC ? open_inproc : open_tcp;
    co.bus_ctx = rs;
    rs->ctl = controller_new(rs->conf, &co, sub, sizeof sub);
    if (!rs->ctl) {
        snprintf(err, errlen, "%s", sub);
        return -EINVAL;
    }
    rs->n_dev = controller_n_devices(rs->ctl);
    for (size_t d = 0; d < rs->n_dev; d++)
        rs->asset_of[d] =
            site_find_asset(rs->site, device_cfg(controller_device(rs->ctl, d))->asset_id);
    return headend_loop_add_site(r->hl, site_cfg(rs->site)->id, site_cfg(rs->site)->base_id,
                                 rs->conf, rs->ctl, err, errlen);
}

static void close_all(struct runner *r)
{
    headend_loop_free(r->hl); /* stops the headend child before the gateways go */
    if (r->thread_started) {
        atomic_store(&r->stop, 1);
        pthread_join(r->thread, NULL);
    }
    for (size_t i = 0; r->s && i < r->n; i++) {
        controller_free(r->s[i].ctl);
        siteconf_free(r->s[i].conf);
        bus_close(r->s[i].inproc);
        tcp_pool_release(&r->s[i].pool);
    }
    mbserver_free(r->srv);
    for (size_t i = 0; r->s && i < r->n; i++)
        site_free(r->s[i].site);
    free(r->s);
    free(r->ev_state);
    free(r->dm);
    free(r->bat_id);
    free(r->bsoc);
    free(r->bp);
    free(r->bhas);
    free(r->line);
    free(r->bat_of);
    sampler_free(r->smp);
}

/* Scenario events as they begin and end, with the same rule as site_step: at the first tick
 * whose start is at or after the event's time. */
static void log_events(struct runner *r, int64_t t)
{
    const struct scenario *sc = r->sc;
    for (size_t e = 0; e < sc->n_events; e++) {
        const struct event *ev = &sc->events[e];
        for (size_t i = 0; i < r->n; i++) {
            int8_t *st = &r->ev_state[e * r->n + i];
            if (strcmp(site_cfg(r->s[i].site)->base_id, ev->site_id))
                continue;
            if (*st == 0 && t >= ev->at_ms) {
                *st = 1;
                fprintf(r->ev, "t=%.3f site=%s asset=%s event=fault_begin fault=%s\n", t / 1000.0,
                        site_cfg(r->s[i].site)->id, ev->asset_id, fault_kind_name(ev->fault));
            }
            if (*st == 1 && ev->duration_ms > 0 && t >= ev->at_ms + ev->duration_ms) {
                *st = 2;
                fprintf(r->ev, "t=%.3f site=%s asset=%s event=fault_end fault=%s\n", t / 1000.0,
                        site_cfg(r->s[i].site)->id, ev->asset_id, fault_kind_name(ev->fault));
            }
        }
    }
    /* Grid outages: the first tick at or after the start, and after the end (site.c's rule). */
    for (size_t e = 0; e < sc->n_outages; e++) {
        const struct event *ev = &sc->outages[e];
        int64_t end = ev->at_ms + ev->duration_ms;
        int begin = t >= ev->at_ms && t - sc->step_ms < ev->at_ms;
        int over = t >= end && t - sc->step_ms < end;
        for (size_t i = 0; (begin || over) && i < r->n; i++) {
            if (strcmp(site_cfg(r->s[i].site)->base_id, ev->site_id))
                continue;
            if (begin)
                fprintf(r->ev, "t=%.3f site=%s event=grid_outage_begin duration_s=%.3f\n",
                        t / 1000.0, site_cfg(r->s[i].site)->id, ev->duration_ms / 1000.0);
            else
                fprintf(r->ev, "t=%.3f site=%s event=grid_outage_end\n", t / 1000.0,
                        site_cfg(r->s[i].site)->id);
        }
    }
}

/* Collects the battery ids for timeseries.csv's per-battery columns (see struct runner). */
static int collect_battery_ids(struct runner *r)
{
    size_t cap = 0;
    for (size_t s = 0; s < r->sc->n_sites; s++)
        cap += r->sc->sites[s].n_assets;
    r->bat_id = calloc(cap ? cap : 1, sizeof *r->bat_id);
    if (!r->bat_id)
        return -ENOMEM;
    for (size_t s = 0; s < r->sc->n_sites; s++) {
        const struct site_cfg *sc = &r->sc->sites[s];
        for (size_t k = 0; k < sc->n_assets; k++) {
            if (sc->assets[k].type != ASSET_BATTERY)
                continue;
            size_t j = 0;
            while (j < r->n_bat && strcmp(r->bat_id[j], sc->assets[k].id))
                j++;
            if (j == r->n_bat)
                r->bat_id[r->n_bat++] = sc->assets[k].id;
        }
    }
    size_t nb = r->n_bat ? r->n_bat : 1;
    r->bsoc = calloc(nb, sizeof *r->bsoc);
    r->bp = calloc(nb, sizeof *r->bp);
    r->bhas = calloc(nb, 1);
    r->line_cap = 1024 + (r->n_bat + 4) * 2 * (FMTNUM_MAX + 1) + SCN_ID_MAX;
    r->line = malloc(r->line_cap);
    r->bat_of = calloc(r->n * nb, sizeof *r->bat_of);
    if (!r->bsoc || !r->bp || !r->bhas || !r->line || !r->bat_of)
        return -ENOMEM;
    /* each site's battery of each column, found once (not by name every step) */
    for (size_t i = 0; i < r->n; i++)
        for (size_t j = 0; j < r->n_bat; j++)
            for (size_t k = 0; k < site_n_assets(r->s[i].site) && !r->bat_of[i * nb + j]; k++) {
                const struct sim_asset *a = site_asset(r->s[i].site, k);
                if (a->type == ASSET_BATTERY && !strcmp(a->cfg->id, r->bat_id[j]))
                    r->bat_of[i * nb + j] = a;
            }
    return 0;
}

/* One site's timeseries.csv row before formatting: the numeric columns in file order (balance,
 * SoC, battery setpoint and temperature, PV limit, EVSE current, boiler temperature, unserved),
 * the states, and per column of r->bat_id this site's battery of that id (has 0: empty). */
enum {
    TS_GRID,
    TS_LOAD,
    TS_PV,
    TS_BAT,
    TS_EVSE,
    TS_BOILER,
    TS_SOC,
    TS_BAT_SET,
    TS_BAT_TEMP,
    TS_PV_LIM,
    TS_EV_A,
    TS_BO_T,
    TS_UNSERVED,
    TS_N
};
struct ts_row {
    double v[TS_N];
    char ev_state;
    const char *bo_state;
    int islanded;
};

/* Fills row and, per column j of r->bat_id, soc[j], p[j], has[j]. */
static void timeseries_values(struct runner *r, struct rsite *rs, struct ts_row *row, double *soc,
                              double *p, uint8_t *has)
{
    struct site_balance b = site_balance(rs->site);
    double soc_e = 0, cap = 0, bat_set = 0, bat_temp = NAN, pv_lim = NAN, ev_a = NAN, bo_t = NAN;
    row->ev_state = '-';
    row->bo_state = "-";
    for (size_t k = 0; k < site_n_assets(rs->site); k++) {
        const struct sim_asset *a = site_asset(rs->site, k);
        switch (a->type) {
        case ASSET_BATTERY:
            soc_e += a->m.battery.energy_wh;
            cap += a->m.battery.p.capacity_wh;
            bat_set += a->m.battery.setpoint_w;
            if (isnan(bat_temp) || a->m.battery.temp_c > bat_temp)
                bat_temp = a->m.battery.temp_c;
            break;
        case ASSET_PV:
            if (isnan(pv_lim))
                pv_lim = a->m.pv.limit_pct;
            break;
        case ASSET_EVSE:
            if (row->ev_state == '-') {
                row->ev_state = a->m.evse.state;
                ev_a = a->m.evse.current_a;
            }
            break;
        case ASSET_BOILER:
            if (isnan(bo_t)) {
                bo_t = a->m.boiler.temp_c;
                row->bo_state = opstate_name(a->m.boiler.op.state);
            }
            break;
        default:
            break;
        }
    }
    const double v[TS_N] = {
        b.grid_w, b.load_w, b.pv_w, b.battery_w, b.evse_w, b.boiler_w,  cap > 0 ? soc_e / cap : NAN,
        bat_set,  bat_temp, pv_lim, ev_a,        bo_t,     b.unserved_w};
    memcpy(row->v, v, sizeof v);
    row->islanded = b.islanded;
    const struct sim_asset **bat_of = r->bat_of + (size_t)(rs - r->s) * r->n_bat;
    for (size_t j = 0; j < r->n_bat; j++) {
        const struct sim_asset *bat = bat_of[j];
        has[j] = bat != NULL;
        if (bat) {
            const struct battery *m = &bat->m.battery;
            soc[j] = m->p.capacity_wh > 0 ? m->energy_wh / m->p.capacity_wh : NAN;
            p[j] = m->power_w;
        }
    }
}

/* Formats a row (without the newline) into r->line: time, site, the columns of ts_row, and
 * ",soc,p_w" per column of r->bat_id (empty fields where has[j] is 0). */
static size_t timeseries_format(struct runner *r, struct rsite *rs, int64_t t,
                                const struct ts_row *row, const double *soc, const double *p,
                                const uint8_t *has)
{
    char *line = r->line;
    /* fmt_fixed instead of fprintf: this line is written every tick of every site */
    char *q = line;
    q += fmt_fixed(q, t / 1000.0, 3);
    *q++ = ',';
    q += snprintf(q, SCN_ID_MAX + 1, "%s", site_cfg(rs->site)->id);
    for (size_t i = 0; i <= TS_PV_LIM; i++) {
        *q++ = ',';
        q += fmt_fixed(q, row->v[i], i == TS_SOC ? 6 : 3); /* SoC with 6 decimals, watts 3 */
    }
    *q++ = ',';
    *q++ = row->ev_state;
    *q++ = ',';
    q += fmt_fixed(q, row->v[TS_EV_A], 3);
    q += snprintf(q, 16, ",%s,", row->bo_state);
    q += fmt_fixed(q, row->v[TS_BO_T], 3);
    q += snprintf(q, 4, ",%d,", row->islanded);
    q += fmt_fixed(q, row->v[TS_UNSERVED], 3);
    for (size_t j = 0; j < r->n_bat; j++) {
        *q++ = ',';
        if (has[j]) {
            q += fmt_fixed(q, soc[j], 6);
            *q++ = ',';
            q += fmt_fixed(q, p[j], 3);
        } else {
            *q++ = ',';
        }
    }
    return (size_t)(q - line);
}

/* ---- --sample: aggregated rows -------------------------------------------------------------
 * One row per site and interval of o->sample_ms, aligned to the run's start, written when the
 * interval's last tick ends (time_s: the end of that tick). timeseries.csv: the mean of every
 * numeric column over the interval's ticks (the states as at its last tick, islanded 1 when the
 * site was islanded at any of them), then the tick count and the lowest and highest step of grid
 * and battery power (per battery too): an oscillation faster than the interval shows there.
 * decisions.csv: the interval's last cycle (time, strategy, setpoints, clamps) with the means of
 * the numeric fields over its cycles (NaN ignored), dropped summed, then the cycle count, the
 * cycles with a clamp, and the lowest and highest grid_w and raw_w. The KPIs never read these
 * files (reports/measure.c sees every step), so sampling changes no KPI. */
enum {
    DEC_GRID,
    DEC_SOC,
    DEC_BAT,
    DEC_PV,
    DEC_TARGET,
    DEC_ERR,
    DEC_P,
    DEC_I,
    DEC_D,
    DEC_RAW,
    DEC_N
};

struct ts_acc {
    int64_t n;
    double sum[TS_N], gmin, gmax, bmin, bmax;
    struct ts_row last;
    int islanded;
    double *soc, *p, *pmin, *pmax; /* per column of r->bat_id */
    uint8_t *has;
};

struct dec_acc {
    uint64_t cycles, clamped;
    double sum[DEC_N], gmin, gmax, rmin, rmax;
    uint32_t cnt[DEC_N];
    unsigned long dropped;
    struct decision *last; /* the interval's last cycle (the parts decision_csv_row reads) */
};

struct sampler {
    size_t n_sites, n_bat;
    struct ts_acc *ts;
    struct dec_acc *dec;
};

static void sampler_free(struct sampler *m)
{
    if (!m)
        return;
    for (size_t i = 0; m->ts && i < m->n_sites; i++) {
        free(m->ts[i].soc);
        free(m->ts[i].has);
        free(m->dec[i].last);
    }
    free(m->ts);
    free(m->dec);
    free(m);
}

static void ts_acc_reset(struct ts_acc *a, size_t n_bat)
{
    a->n = 0;
    memset(a->sum, 0, sizeof a->sum);
    a->gmin = a->bmin = INFINITY;
    a->gmax = a->bmax = -INFINITY;
    a->islanded = 0;
    for (size_t j = 0; j < n_bat; j++) {
        a->soc[j] = a->p[j] = 0;
        a->pmin[j] = INFINITY;
        a->pmax[j] = -INFINITY;
    }
}

static void dec_acc_reset(struct dec_acc *a)
{
    struct decision *last = a->last;
    memset(a, 0, sizeof *a);
    a->last = last;
    a->gmin = a->rmin = INFINITY;
    a->gmax = a->rmax = -INFINITY;
}

static int sampler_new(struct runner *r)
{
    struct sampler *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    r->smp = m;
    m->n_sites = r->n;
    m->n_bat = r->n_bat;
    m->ts = calloc(r->n ? r->n : 1, sizeof *m->ts);
    m->dec = calloc(r->n ? r->n : 1, sizeof *m->dec);
    if (!m->ts || !m->dec)
        return -ENOMEM;
    size_t nb = r->n_bat ? r->n_bat : 1;
    for (size_t i = 0; i < r->n; i++) {
        struct ts_acc *a = &m->ts[i];
        a->soc = calloc(4 * nb, sizeof *a->soc);
        a->has = calloc(nb, 1);
        m->dec[i].last = calloc(1, sizeof *m->dec[i].last);
        if (!a->soc || !a->has || !m->dec[i].last)
            return -ENOMEM;
        a->p = a->soc + nb;
        a->pmin = a->p + nb;
        a->pmax = a->pmin + nb;
        ts_acc_reset(a, r->n_bat);
        dec_acc_reset(&m->dec[i]);
    }
    return 0;
}

static void sampler_timeseries(struct runner *r, size_t i)
{
    struct ts_acc *a = &r->smp->ts[i];
    timeseries_values(r, &r->s[i], &a->last, r->bsoc, r->bp, r->bhas);
    const double *v = a->last.v;
    for (size_t c = 0; c < TS_N; c++)
        a->sum[c] += v[c];
    a->gmin = fmin(a->gmin, v[TS_GRID]);
    a->gmax = fmax(a->gmax, v[TS_GRID]);
    a->bmin = fmin(a->bmin, v[TS_BAT]);
    a->bmax = fmax(a->bmax, v[TS_BAT]);
    a->islanded |= a->last.islanded;
    for (size_t j = 0; j < r->n_bat; j++) {
        a->has[j] = r->bhas[j];
        if (!r->bhas[j])
            continue;
        a->soc[j] += r->bsoc[j];
        a->p[j] += r->bp[j];
        a->pmin[j] = fmin(a->pmin[j], r->bp[j]);
        a->pmax[j] = fmax(a->pmax[j], r->bp[j]);
    }
    a->n++;
}

static void sampler_decision(struct runner *r, size_t i, const struct decision *dm)
{
    struct dec_acc *a = &r->smp->dec[i];
    const double v[DEC_N] = {dm->grid_w,  dm->soc, dm->battery_w, dm->pv_w, dm->target_w,
                             dm->error_w, dm->p_w, dm->i_w,       dm->d_w,  dm->raw_w};
    for (size_t c = 0; c < DEC_N; c++) {
        if (isnan(v[c]))
            continue;
        a->sum[c] += v[c];
        a->cnt[c]++;
    }
    if (!isnan(dm->grid_w)) {
        a->gmin = fmin(a->gmin, dm->grid_w);
        a->gmax = fmax(a->gmax, dm->grid_w);
    }
    if (!isnan(dm->raw_w)) {
        a->rmin = fmin(a->rmin, dm->raw_w);
        a->rmax = fmax(a->rmax, dm->raw_w);
    }
    a->cycles++;
    a->clamped += dm->n_clamps > 0 || dm->clamps_dropped > 0;
    a->dropped += dm->requests_dropped + dm->clamps_dropped;
    /* only what decision_csv_row reads: a whole struct decision is kilobytes */
    struct decision *l = a->last;
    l->now_ms = dm->now_ms;
    memcpy(l->strategy, dm->strategy, sizeof l->strategy);
    l->n_assets = dm->n_assets;
    memcpy(l->asset, dm->asset, dm->n_assets * sizeof dm->asset[0]);
    l->n_clamps = dm->n_clamps;
    memcpy(l->clamp, dm->clamp, dm->n_clamps * sizeof dm->clamp[0]);
}

/* ",V" with 3 decimals; an empty set of values (inf) is nan. */
static char *put_extreme(char *q, double v)
{
    *q++ = ',';
    return q + fmt_fixed(q, isinf(v) ? NAN : v, 3);
}

static void sampler_flush_site(struct runner *r, size_t i, int64_t t1)
{
    struct sampler *m = r->smp;
    struct ts_acc *a = &m->ts[i];
    if (a->n > 0) {
        struct ts_row row = a->last;
        for (size_t c = 0; c < TS_N; c++)
            row.v[c] = a->sum[c] / (double)a->n;
        row.islanded = a->islanded;
        for (size_t j = 0; j < r->n_bat; j++) {
            r->bhas[j] = a->has[j];
            r->bsoc[j] = a->soc[j] / (double)a->n;
            r->bp[j] = a->p[j] / (double)a->n;
        }
        size_t n = timeseries_format(r, &r->s[i], t1, &row, r->bsoc, r->bp, r->bhas);
        char *q = r->line + n;
        q += snprintf(q, 24, ",%lld", (long long)a->n);
        q = put_extreme(q, a->gmin);
        q = put_extreme(q, a->gmax);
        q = put_extreme(q, a->bmin);
        q = put_extreme(q, a->bmax);
        for (size_t j = 0; j < r->n_bat; j++) {
            if (a->has[j]) {
                q = put_extreme(q, a->pmin[j]);
                q = put_extreme(q, a->pmax[j]);
            } else {
                *q++ = ',';
                *q++ = ',';
            }
        }
        *q++ = '\n';
        fwrite(r->line, 1, (size_t)(q - r->line), r->ts);
        ts_acc_reset(a, r->n_bat);
    }
    struct dec_acc *d = &m->dec[i];
    if (d->cycles > 0) {
        struct decision *l = d->last;
        double *mean[DEC_N] = {&l->grid_w,  &l->soc, &l->battery_w, &l->pv_w, &l->target_w,
                               &l->error_w, &l->p_w, &l->i_w,       &l->d_w,  &l->raw_w};
        for (size_t c = 0; c < DEC_N; c++)
            *mean[c] = d->cnt[c] ? d->sum[c] / d->cnt[c] : NAN;
        l->requests_dropped = (unsigned)d->dropped;
        l->clamps_dropped = 0;
        char row[8192];
        int n = decision_csv_row(l, row, sizeof row - 160);
        if (n > 0) {
            char *q = row + n - 1; /* over the newline */
            q += snprintf(q, 48, ",%llu,%llu", (unsigned long long)d->cycles,
                          (unsigned long long)d->clamped);
            q = put_extreme(q, d->gmin);
            q = put_extreme(q, d->gmax);
            q = put_extreme(q, d->rmin);
            q = put_extreme(q, d->rmax);
            *q++ = '\n';
            *q = '\0';
            fprintf(r->dec, "%s,%s", site_cfg(r->s[i].site)->id, row);
        }
        dec_acc_reset(d);
    }
}

/* After tick k (ending at t1): the rows of an interval that ends here (or of the last tick). */
static void sampler_tick_end(struct runner *r, int64_t k, int64_t ticks, int64_t t1, int64_t step)
{
    int64_t ms = r->o->sample_ms;
    if (k + 1 < ticks && (t1 - 1) / ms == (t1 + step - 1) / ms)
        return;
    for (size_t i = 0; i < r->n; i++)
        sampler_flush_site(r, i, t1);
}

int64_t runner_default_sample_ms(const struct scenario *sc)
{
    static const int64_t choice_ms[] = {60000, 300000, 900000, 3600000};
    int64_t step = sc->step_ms > 0 ? sc->step_ms : 1;
    if (sc->duration_ms / step <= RUNNER_FULL_RATE_MAX_TICKS)
        return 0;
    size_t i = 0;
    while (i + 1 < sizeof choice_ms / sizeof choice_ms[0] &&
           sc->duration_ms / choice_ms[i] > RUNNER_SAMPLED_MAX_ROWS)
        i++;
    return choice_ms[i];
}

static void write_timeseries(struct runner *r, struct rsite *rs, int64_t t)
{
    struct ts_row row;
    timeseries_values(r, rs, &row, r->bsoc, r->bp, r->bhas);
    size_t n = timeseries_format(r, rs, t, &row, r->bsoc, r->bp, r->bhas);
    r->line[n++] = '\n';
    fwrite(r->line, 1, n, r->ts);
}

/* The gateway's view of every register it polls must equal the simulator's image right after
 * a cycle (nothing moves in between). */
static void check_view(struct runner *r, struct rsite *rs, int64_t t)
{
    const struct procimg *img = controller_image(rs->ctl);
    for (size_t d = 0; d < rs->n_dev; d++) {
        const struct sim_asset *a = rs->asset_of[d];
        if (!a || !a->img || !img->dev[d].online || img->dev[d].last_ok_ms != t)
            continue;
        const struct device *dev = controller_device(rs->ctl, d);
        uint16_t start, baddr[8], bn[8];
        size_t count;
        const uint16_t *m = device_mirror(dev, &start, &count, NULL);
        size_t nb = m ? device_polled_blocks(dev, baddr, bn, 8) : 0;
        const uint16_t *sim = a->img->map->tab_registers;
        for (size_t k = 0; k < nb && k < 8; k++) {
            long lo = (long)baddr[k] - a->img->start, hi = lo + bn[k];
            if (lo < 0 || hi > a->img->count || (long)baddr[k] < start ||
                (size_t)(baddr[k] - start) + bn[k] > count)
                continue; /* outside the image: the device answers exception 2 there */
            const uint16_t *mv = m + (baddr[k] - start);
            if (!memcmp(mv, sim + lo, bn[k] * sizeof(uint16_t)))
                continue; /* the common case, one memcmp a block */
            for (long j = 0; j < bn[k]; j++) {
                if (sim[lo + j] == mv[j] || r->res->view_mismatches++ >= MAX_REPORTED)
                    continue;
                fprintf(r->ev,
                        "t=%.3f site=%s asset=%s event=check_failed check=register_view "
                        "addr=%ld gateway=%u simulator=%u\n",
                        t / 1000.0, site_cfg(rs->site)->id, a->cfg->id, (long)baddr[k] + j, mv[j],
                        sim[lo + j]);
            }
        }
    }
}

int runner_hash_file(struct sha256 *h, const char *dir, const char *name)
{
    char path[1200], buf[65536];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    sha256_update(h, name, strlen(name) + 1);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(h, buf, n);
    fclose(f);
    return 0;
}

static FILE *open_out(const char *dir, const char *name, char *err, size_t errlen)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    return f;
}

static void progress(struct runner *r, int64_t tick, int64_t ticks, int64_t t0_us, int done)
{
    double el = (rtclock_monotonic_us() - t0_us) / 1e6;
    fprintf(stderr, "\r%s [%3d%%] t=%.0fs ticks=%lld %.0f ticks/s%s", r->sc->name,
            (int)(100 * tick / (ticks ? ticks : 1)), (double)tick * r->sc->step_ms / 1000.0,
            (long long)tick, el > 0 ? tick / el : 0.0, done ? "\n" : "");
    fflush(stderr);
}

size_t runner_n_sites(const struct runner *r)
{
    return r->n;
}

struct site *runner_site(struct runner *r, size_t i)
{
    return i < r->n ? r->s[i].site : NULL;
}

int runner_bus_stats(const struct runner *r, size_t i, struct bus_stats *st)
{
    struct bus *b = i < r->n ? (r->s[i].inproc ? r->s[i].inproc : r->s[i].tcp) : NULL;
    if (!b)
        return -ENOENT;
    bus_get_stats(b, st);
    return 0;
}

double runner_telemetry_dropped(const struct runner *r)
{
    return headend_loop_telemetry_dropped(r->hl);
}

void runner_event(struct runner *r, const char *line)
{
    fprintf(r->ev, "t=%.3f %s\n", r->now_ms / 1000.0, line);
}

/* The output directory and files, the tables, the Modbus server, the headend loop. */
static int open_run(struct runner *r, char *err, size_t errlen)
{
    const struct runner_opts *o = r->o;
    int rc = mkdir_p(o->out_dir);
    if (rc) {
        snprintf(err, errlen, "%s: cannot create: %s", o->out_dir, strerror(-rc));
        return rc;
    }
    r->s = calloc(r->n, sizeof *r->s);
    r->ev_state = calloc(r->sc->n_events * r->n + 1, 1);
    r->dm = malloc(sizeof *r->dm);
    if (!r->s || !r->ev_state || !r->dm) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (!(r->ts = open_out(o->out_dir, "timeseries.csv", err, errlen)) ||
        !(r->dec = open_out(o->out_dir, "decisions.csv", err, errlen)) ||
        !(r->ev = open_out(o->out_dir, "events.log", err, errlen)))
        return -EIO;
    if (o->transport == RUNNER_TCP) {
        r->srv = mbserver_new(NULL);
        if (!r->srv) {
            snprintf(err, errlen, "cannot create the Modbus server");
            return -ENOMEM;
        }
        mbserver_set_log(r->srv, o->log, o->log ? MBSERVER_LOG_CONN : MBSERVER_LOG_QUIET);
    }
    /* before any gRPC starts and before the CPU pin: it may spawn der-headend */
    return headend_loop_new(r->sc, r->ev, o->log, &r->hl, err, errlen);
}

/* Every site and its gateway, then the observer, which may read them from now on. */
static int open_sites(struct runner *r, char *err, size_t errlen)
{
    for (size_t i = 0; i < r->n; i++) {
        r->cur_site = i;
        int rc = open_site(r, i, err, errlen);
        if (rc)
            return rc;
    }
    const struct runner_observer *ob = r->o->observer;
    return ob && ob->start ? ob->start(ob->ctx, r, err, errlen) : 0;
}

/* TCP: the CPU pin and the server thread; then the hook. */
static int start_run(struct runner *r, char *err, size_t errlen)
{
    const struct runner_opts *o = r->o;
    if (o->transport == RUNNER_TCP) {
        /* Every request wakes the server thread and every reply the gateway: on two cores
         * that is a cross-core wake-up each way, about three times the cost of the same
         * exchange on one core (docs/bus.md: 85-100 us against 28 us per transaction).
         * Lockstep I/O is strictly alternating, so one core loses nothing. */
        int cpu = sched_getcpu();
        if (!o->no_pin && cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
            sched_setaffinity(0, sizeof set, &set);
        }
        if (pthread_create(&r->thread, NULL, server_main, r) != 0) {
            snprintf(err, errlen, "cannot start the server thread");
            return -EAGAIN;
        }
        r->thread_started = 1;
    }
    if (o->hook) {
        int rc = o->hook->start ? o->hook->start(o->hook->ctx, r->n, err, errlen) : 0;
        if (rc)
            return rc;
        r->hook_started = 1;
    }
    return 0;
}

static void write_headers(struct runner *r)
{
    const struct scenario *sc = r->sc;
    fprintf(r->ts, "time_s,site,grid_w,load_w,pv_w,battery_w,evse_w,boiler_w,soc,"
                   "battery_setpoint_w,battery_temp_c,pv_limit_pct,evse_state,evse_current_a,"
                   "boiler_state,boiler_temp_c,islanded,unserved_w");
    for (size_t k = 0; k < r->n_bat; k++)
        fprintf(r->ts, ",soc_%s,p_%s_w", r->bat_id[k], r->bat_id[k]);
    if (r->smp) {
        fputs(",ticks,grid_w_min,grid_w_max,battery_w_min,battery_w_max", r->ts);
        for (size_t k = 0; k < r->n_bat; k++)
            fprintf(r->ts, ",p_%s_w_min,p_%s_w_max", r->bat_id[k], r->bat_id[k]);
    }
    fputc('\n', r->ts);
    char row[8192];
    int n = decision_csv_header(row, sizeof row);
    if (r->smp && n > 0)
        snprintf(row + n - 1, sizeof row - (size_t)n + 1,
                 ",cycles,clamped_cycles,grid_w_min,grid_w_max,raw_w_min,raw_w_max\n");
    fprintf(r->dec, "site,%s", row);
    fprintf(r->ev, "t=0.000 event=run_start scenario=%s seed=%llu sha256=%s sites=%zu\n", sc->name,
            (unsigned long long)sc->seed, sc->sha256, sc->n_sites);
}

/* The physics of every site for the step [t, t + step), its checks, and the observer. */
static void step_sites(struct runner *r, int64_t t, int64_t step)
{
    const struct runner_observer *ob = r->o->observer;
    char msg[512];
    r->now_ms = t;
    for (size_t i = 0; i < r->n; i++) {
        site_step(r->s[i].site, t, step);
        if (site_check(r->s[i].site, msg, sizeof msg) != 0 &&
            r->res->check_failures++ < MAX_REPORTED)
            fprintf(r->ev, "t=%.3f event=check_failed check=site %s\n", (t + step) / 1000.0, msg);
        if (ob && ob->site_step)
            ob->site_step(ob->ctx, i, r->s[i].site, t, step);
    }
    if (ob && ob->tick_end)
        ob->tick_end(ob->ctx, t + step, step);
}

/* Every site's gateway at t1 (the first tick cycles them all; then each on its poll period),
 * the register view check after it, and every site's timeseries row. */
static int cycle_sites(struct runner *r, int64_t k, int64_t t1, char *err, size_t errlen)
{
    const struct runner_opts *o = r->o;
    const struct runner_observer *ob = o->observer;
    char row[8192];
    for (size_t i = 0; i < r->n; i++) {
        struct rsite *rs = &r->s[i];
        r->cur_site = i;
        int rc = o->hook && o->hook->before_cycle
                     ? o->hook->before_cycle(o->hook->ctx, i, rs->ctl, t1, err, errlen)
                     : 0;
        if (rc)
            return rc;
        if (t1 % rs->conf->poll_period_ms == 0 || k == 0) {
            controller_cycle(rs->ctl, t1, r->dm);
            headend_loop_after_cycle(r->hl, i, r->dm, t1);
            r->res->cycles++;
            if (ob && ob->cycle)
                ob->cycle(ob->ctx, i, r->dm);
            if (r->smp)
                sampler_decision(r, i, r->dm);
            else if (decision_csv_row(r->dm, row, sizeof row) > 0)
                fprintf(r->dec, "%s,%s", site_cfg(rs->site)->id, row);
            if (o->hook && o->hook->after_cycle)
                o->hook->after_cycle(o->hook->ctx, i, rs->ctl, t1);
            check_view(r, rs, t1);
        }
        if (r->smp)
            sampler_timeseries(r, i);
        else
            write_timeseries(r, rs, t1);
    }
    return 0;
}

static int run_ticks(struct runner *r, char *err, size_t errlen)
{
    const struct runner_observer *ob = r->o->observer;
    const int64_t step = r->sc->step_ms, ticks = r->sc->duration_ms / r->sc->step_ms;
    int64_t last_us = r->t0_us = rtclock_monotonic_us();
    for (int64_t k = 0; k < ticks; k++) {
        int64_t t = k * step, t1 = t + step;
        log_events(r, t);
        step_sites(r, t, step);
        r->now_ms = t1;
        int rc = headend_loop_tick(r->hl, t, t1, err, errlen);
        if (rc || (rc = cycle_sites(r, k, t1, err, errlen)) != 0)
            return rc;
        if (r->smp)
            sampler_tick_end(r, k, ticks, t1, step);
        if (ob && ob->tick_done)
            ob->tick_done(ob->ctx, t1, step);
        if (r->o->stop && *r->o->stop && (k & 255) == 0) {
            snprintf(err, errlen, "interrupted at t=%.0f s", (double)t1 / 1000.0);
            return -EINTR;
        }
        if (r->o->on_progress && (k & 255) == 0)
            r->o->on_progress(r->o->progress_ctx, k, ticks);
        else if (r->o->progress && (k & 255) == 0) {
            int64_t now_us = rtclock_monotonic_us();
            if (now_us - last_us > 500000) {
                progress(r, k, ticks, r->t0_us, 0);
                last_us = now_us;
            }
        }
    }
    r->res->ticks = ticks;
    return 0;
}

/* The run's totals, the observer's last word, run_end. */
static void end_run(struct runner *r)
{
    struct runner_result *res = r->res;
    const struct runner_observer *ob = r->o->observer;
    for (size_t i = 0; i < r->n; i++) {
        res->transactions += controller_transactions(r->s[i].ctl);
        res->setpoint_writes += controller_writes(r->s[i].ctl);
    }
    if (ob && ob->finish)
        ob->finish(ob->ctx, r, res);
    fprintf(r->ev,
            "t=%.3f event=run_end ticks=%lld cycles=%llu writes=%llu check_failures=%u "
            "view_mismatches=%u\n",
            r->now_ms / 1000.0, (long long)res->ticks, (unsigned long long)res->cycles,
            (unsigned long long)res->setpoint_writes, res->check_failures, res->view_mismatches);
    res->wall_s = (rtclock_monotonic_us() - r->t0_us) / 1e6;
    if (r->o->on_progress)
        r->o->on_progress(r->o->progress_ctx, res->ticks, res->ticks);
    else if (r->o->progress)
        progress(r, res->ticks, res->ticks, r->t0_us, 1);
}

/* Stops and frees everything; when the run completed, the digest of the three files. */
static int close_run(struct runner *r, int rc, char *err, size_t errlen)
{
    const struct runner_opts *o = r->o;
    if (r->hook_started && o->hook->stop)
        o->hook->stop(o->hook->ctx);
    if (rc != 0 && r->ev) { /* events.log says how it ended, whatever happened */
        fprintf(r->ev, "t=%.3f event=run_failed error=\"", r->now_ms / 1000.0);
        for (const char *c = err; *c; c++)
            fputc(*c == '"' || *c == '\n' ? '\'' : *c, r->ev);
        fputs("\"\n", r->ev);
    }
    close_all(r);
    int io = 0;
    if (r->ts)
        io |= fclose(r->ts);
    if (r->dec)
        io |= fclose(r->dec);
    if (r->ev)
        io |= fclose(r->ev);
    if (rc == 0 && io) {
        snprintf(err, errlen, "%s: write error", o->out_dir);
        rc = -EIO;
    }
    if (rc)
        return rc;
    struct sha256 h;
    uint8_t d[32];
    sha256_init(&h);
    if (runner_hash_file(&h, o->out_dir, "timeseries.csv") ||
        runner_hash_file(&h, o->out_dir, "decisions.csv") ||
        runner_hash_file(&h, o->out_dir, "events.log")) {
        snprintf(err, errlen, "%s: cannot read the outputs back", o->out_dir);
        return -EIO;
    }
    r->res->digest_ctx = h; /* the caller may go on hashing more outputs */
    sha256_final(&h, d);
    sha256_to_hex(d, r->res->digest);
    return 0;
}

int runner_run(const struct scenario *sc, const struct runner_opts *o, struct runner_result *res,
               char *err, size_t errlen)
{
    struct runner r = {.sc = sc, .o = o, .res = res, .n = sc->n_sites};
    memset(res, 0, sizeof *res);
    int rc = open_run(&r, err, errlen);
    if (rc == 0)
        rc = open_sites(&r, err, errlen);
    if (rc == 0)
        rc = start_run(&r, err, errlen);
    if (rc == 0)
        rc = collect_battery_ids(&r);
    if (rc == 0 && o->sample_ms > 0 && (rc = sampler_new(&r)) != 0)
        snprintf(err, errlen, "out of memory");
    if (rc == 0) {
        write_headers(&r);
        rc = run_ticks(&r, err, errlen);
    }
    if (rc == 0)
        end_run(&r);
    return close_run(&r, rc, err, errlen);
}
