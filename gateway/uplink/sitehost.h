/* sitehost: the sites one der-gateway process runs, one or many (`--config-dir`). Each site is
 * what a single-site gateway is: its configuration, controller, Modbus transport, its own
 * uplink (one gRPC stream per site), dispatcher and configuration sync. The host runs their
 * cycles on a small pool of threads: the site due first goes to the first free thread, and a
 * site is run by one thread at a time. So a site whose devices time out holds one thread for
 * its own cycle and never shifts another site's schedule (unless more sites stall at once than
 * there are threads). It lives beside the uplink because it owns uplinks; the transport comes
 * from the caller (der-gateway's gateway/bus/tcp_pool.c), so the library never opens a socket
 * of its own choosing. The caller owns the host (sitehost_free). */
#ifndef DERLOOP_SITEHOST_H
#define DERLOOP_SITEHOST_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gateway/control/controller.h"
#include "gateway/control/siteconf.h"
#include "gateway/uplink/gwmetrics.h"

/* A site's device transport: open builds it for cfg (NULL on failure), bus gives a device its
 * bus (controller_opts.open_bus), close frees it; modbus (may be NULL) reads a device's Modbus
 * counters and breaker for the metrics (gwmetrics.h). */
struct sitehost_transport {
    void *(*open)(const struct siteconf *cfg, void (*log)(void *, const char *), void *log_ctx);
    struct bus *(*bus)(void *t, const struct device_cfg *d, char *err, size_t errlen);
    void (*close)(void *t);
    gwmetrics_modbus_fn modbus;
};

struct sitehost_opts {
    struct sitehost_transport transport;
    void (*log)(void *ctx, const char *line); /* library lines "site=S event=E k=v" */
    void *log_ctx;
    const char *headend;       /* HOST:PORT for every site (overrides uplink.target); NULL */
    int legacy;                /* single-asset agents (uplink.legacy) */
    double speed;              /* controller time runs speed x the wall clock: poll periods (and
                                  every duration in controller time) pass speed times faster; 0 = 1 */
    int workers;               /* cycle threads; 0 = min(sites, SITEHOST_WORKERS) */
    FILE *rows;                /* one decision CSV row per cycle (--verbose); NULL = none */
    const char *software;      /* "der-gateway VERSION (commit C)", sent at registration */
    struct gwmetrics *metrics; /* every site's figures after each cycle (--metrics-listen);
                                  NULL = none; the caller frees it after sitehost_run */
};

#define SITEHOST_WORKERS 8

struct sitehost;

struct sitehost *sitehost_new(const struct sitehost_opts *o);
/* Loads a site configuration and builds its controller (nothing connects yet). 0, or -errno
 * with err ("FILE: field: message" as siteconf and the controller give it). */
int sitehost_add(struct sitehost *h, const char *config_path, char *err, size_t errlen);
/* Every *.json file of dir, in name order. 0 (at least one site), or -errno with err. */
int sitehost_add_dir(struct sitehost *h, const char *dir, char *err, size_t errlen);
size_t sitehost_count(const struct sitehost *h);
/* "ok FILE: site=... devices=... strategy=... uplink=..." for site i (--check). */
void sitehost_describe(const struct sitehost *h, size_t i, FILE *out);

/* Starts the uplinks and runs every site's cycles until *stop, or for duration_ms of wall
 * time (< 0: no limit); *hup (SIGHUP) reloads every site's configuration file's policy and
 * its uplink's TLS files, each between two of its cycles. Logs one stop line per site (cycles,
 * late cycles, writes). 0, or -errno with err (an uplink or a thread could not start). */
int sitehost_run(struct sitehost *h, int64_t duration_ms, volatile sig_atomic_t *stop,
                 volatile sig_atomic_t *hup, char *err, size_t errlen);

void sitehost_free(struct sitehost *h);

#endif
