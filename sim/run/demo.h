/* demo: `der-sim demo`, a fleet live on one machine with one command. It writes the fleet's
 * headend inventory (inventory.h) into a temporary directory, then starts, each as its real
 * binary in its own process group (child.h): der-headend (in-memory store, the inventory),
 * `der-sim serve` for the scenario (any free ports, one gateway configuration per site) and the
 * gateways (one der-gateway --config-dir for all sites, or one der-gateway per site), all
 * talking real Modbus TCP and gRPC. It prints the console URL, the children's pids and a
 * status line every few seconds, and on *stop (SIGINT/SIGTERM) stops the gateways, the
 * simulator and the headend in that order and removes the directory. */
#ifndef DERLOOP_DEMO_H
#define DERLOOP_DEMO_H

#include <signal.h>
#include <stdio.h>

#include "sim/scenario/scenario.h"

struct demo_opts {
    const char *scenario;    /* the file, as der-sim serve will load it */
    const char *const *sets; /* the --set overrides sc was loaded with */
    size_t n_sets;
    double speed;            /* > 0 */
    const char *http_listen; /* the headend's REST listener; NULL = 127.0.0.1:0 */
    int per_site;            /* 1: one der-gateway per site */
    int workers;             /* der-gateway --workers; 0 = its default */
    int status_every_s;      /* status line period (default 5) */
    FILE *out;               /* URL, pids, status (stdout) */
};

/* sc: the scenario as loaded with o->sets (for the inventory). Returns 0 after a clean stop,
 * or -errno with the reason printed to stderr (a child failed to start or died). */
int demo_run(const struct scenario *sc, const struct demo_opts *o, volatile sig_atomic_t *stop);

#endif
