/* gwmetrics: der-gateway's optional Prometheus endpoint (`--metrics-listen HOST:PORT`, off by
 * default; docs/operations.md, "Gateway metrics"). One object per process, whatever the number
 * of sites: every series carries the label site. What it shows of each site: cycle time (a
 * histogram), cycles and late cycles, the Modbus counters of each endpoint and the breaker
 * state of each device (from the transport, which der-gateway owns), the devices' online flag,
 * the uplink's state, memory queue and spool depth, and the strategy's output.
 *
 * Who waits on whom: the thread that ran a site's cycle copies its figures into the site's
 * published snapshot with pthread_mutex_trylock; when a scrape holds that lock (for a memcpy)
 * the cycle skips publishing and the next cycle publishes. So the control loop never waits on
 * a scrape, and a scrape sees each site as it was after one of its cycles (at most one cycle
 * old, or two when it collided). The HTTP side is libmicrohttpd on a thread of its own (epoll:
 * the descriptor numbers of a big multi-site process may pass 1024).
 * The caller owns the object (gwmetrics_free, after the sites' cycles have stopped). */
#ifndef DERLOOP_GWMETRICS_H
#define DERLOOP_GWMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/control/controller.h"
#include "gateway/control/decision.h"
#include "gateway/control/siteconf.h"

struct uplink;

/* One device's Modbus view as the transport reports it: its endpoint's counters (a connection
 * is shared by the devices behind one host:port) and its unit's breaker. */
struct gwmetrics_modbus {
    uint64_t requests, ok, timeouts, exceptions, conn_errors, proto_errors, retries;
    uint64_t breaker_opens;
    int breaker_state; /* 0 closed, 1 open, 2 half-open (enum breaker_state); -1 unknown */
};

/* The transport's reader of a device's figures (0, or -errno: no figures this time). Called by
 * the thread that just ran the site's cycle, never during one. */
typedef int (*gwmetrics_modbus_fn)(void *transport, const struct device_cfg *d,
                                   struct gwmetrics_modbus *out);

struct gwmetrics;

/* version and commit: der_gateway_build_info's labels (copied). NULL on out of memory. */
struct gwmetrics *gwmetrics_new(const char *version, const char *commit);

/* Serves GET /metrics on listen ("HOST:PORT", IPv4 or [IPv6], port 0: any free one, in *port).
 * 0, -EINVAL (bad address, err says why) or -EADDRINUSE (cannot listen). */
int gwmetrics_listen(struct gwmetrics *m, const char *listen, int *port, char *err, size_t errlen);

/* Site index i (0, 1, ...; each once, before its first cycle): its configuration (which must
 * outlive m's use of it), and how to read its devices' Modbus figures (fn may be NULL).
 * 0 or -ENOMEM. */
int gwmetrics_site(struct gwmetrics *m, size_t i, const struct siteconf *cfg,
                   gwmetrics_modbus_fn fn, void *transport);

/* After site i's cycle: it took cycle_us, started late or not; dm is its decision, up its
 * uplink (NULL: none). Reads the controller's image, the uplink's counters and the transport's
 * figures, then publishes them unless a scrape holds the site (never blocks on one). */
void gwmetrics_cycle(struct gwmetrics *m, size_t i, const struct controller *ctl, struct uplink *up,
                     const struct decision *dm, int64_t cycle_us, int late);

/* The text of a scrape (Prometheus text format 0.0.4), malloc'd, NUL-terminated; NULL on out of
 * memory. What GET /metrics answers; for tests. */
char *gwmetrics_render(struct gwmetrics *m, size_t *len);

/* Stops the listener and frees everything. m NULL: nothing. */
void gwmetrics_free(struct gwmetrics *m);

#endif
