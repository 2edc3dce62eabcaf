/* serve: `der-sim serve`: every site of a scenario in real time (scaled by speed), each site on
 * its own TCP port, each asset on its own unit id. Prints the endpoints, writes one gateway site
 * configuration per site (docs/gateway-config.md), and runs until *stop is set (SIGINT/SIGTERM
 * in main) or the scenario's duration has passed in simulated time. */
#ifndef DERLOOP_SERVE_H
#define DERLOOP_SERVE_H

#include <signal.h>
#include <stdio.h>

#include "sim/scenario/scenario.h"

struct serve_opts {
    double speed;           /* simulated seconds per wall second, > 0 (default 1) */
    const char *bind_addr;  /* default "127.0.0.1" */
    int port_base;          /* 0 = each site's "port" from the file, else any free port;
                               > 0 = site i listens on port_base + i;
                               < 0 = any free port for every site, whatever the file says */
    const char *config_dir; /* where site configurations are written; NULL = don't */
    int loop;               /* 1 = restart the scenario clock at the end instead of stopping
                               (as implemented: the sites stop stepping and their last state
                               stays on the wire until *stop; docs/gateway-config.md) */
    FILE *out;              /* endpoints and progress (stdout) */
    int shard_k, shard_n;   /* --shard K/N: only the sites i with i % N == K - 1 (1 <= K <= N);
                               0/0 = every site */
};

/* --shard K/N (docs/operations.md, "Several headends"): the sites of a scenario are dealt out
 * to N shards by their index in the scenario after replication (site i, counted from 0, goes
 * to shard i % N + 1), so the shards of one scenario cover every site once, whatever machine
 * runs which shard. Parses "K/N" (1 <= K <= N <= 65536): 0, or -EINVAL with err naming the
 * option and the value. */
int serve_shard_parse(const char *text, int *k, int *n, char *err, size_t errlen);
/* 1 when site index i belongs to shard k of n (always 1 for n == 0). */
int serve_in_shard(size_t i, int k, int n);

/* Returns 0 on a clean stop, or -errno with a message printed to stderr. */
int serve_run(const struct scenario *sc, const struct serve_opts *o, volatile sig_atomic_t *stop);

#endif
