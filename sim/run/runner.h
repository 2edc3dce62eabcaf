/* runner: the lockstep runner under `der-sim run`. Each tick steps the physics of every site,
 * then runs one cycle of the real gateway library (controller.h) against the simulator's
 * register images, over loopback Modbus TCP (mbserver in a second thread, all I/O synchronous)
 * or the in-process bus; both must give byte-identical outputs. Writes timeseries.csv,
 * decisions.csv and events.log into the output directory and their SHA-256 digest. Checks the
 * invariants every tick: the site balance, SoC range, and that the gateway's view of every
 * register it polls equals the simulator's. What the run means (KPIs, plots) is not measured
 * here: an observer (reports/) is handed every site after every step and every decision. The
 * caller owns everything it passes in. */
#ifndef DERLOOP_RUNNER_H
#define DERLOOP_RUNNER_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "gateway/control/controller.h"
#include "common/sha256.h"
#include "sim/scenario/scenario.h"

enum runner_transport { RUNNER_INPROC, RUNNER_TCP };

/* An optional participant in every tick, called after the physics step and before the
 * gateway cycles (e.g. a headend in the loop delivering dispatches through
 * controller_command). start/stop may be NULL; a non-zero return from any of them stops the
 * run with that code and the hook's message in err. */
struct runner_hook {
    void *ctx;
    int (*start)(void *ctx, size_t n_sites, char *err, size_t errlen);
    int (*before_cycle)(void *ctx, size_t site, struct controller *ctl, int64_t now_ms, char *err,
                        size_t errlen);
    /* Right after a site's gateway cycle, before the register-view check (optional; tests use
     * it to corrupt the gateway's view and see the check catch it). */
    void (*after_cycle)(void *ctx, size_t site, struct controller *ctl, int64_t now_ms);
    void (*stop)(void *ctx);
};

struct runner;
struct runner_result;
struct site;      /* sim/run/site.h */
struct bus_stats; /* gateway/bus/bus.h */

/* An observer of the run, which reads and never changes it (reports/measure.h measures it).
 * Every member may be NULL. start: once, every site open, before the first tick; a non-zero
 * return stops the run with that code and err. Every tick: site_step for each site after its
 * physics step [t_ms, t_ms + dt_ms) and check, tick_end after the last, then cycle after each
 * gateway cycle of a site, then tick_done once every site has cycled. finish: once, after the
 * last tick of a run that completed, with the run's counters; lines it logs through
 * runner_event come before run_end in events.log (which is digested). */
struct runner_observer {
    void *ctx;
    int (*start)(void *ctx, struct runner *r, char *err, size_t errlen);
    void (*site_step)(void *ctx, size_t site, struct site *s, int64_t t_ms, int64_t dt_ms);
    void (*tick_end)(void *ctx, int64_t t_ms, int64_t dt_ms); /* t_ms: the step's end */
    void (*cycle)(void *ctx, size_t site, const struct decision *dm);
    void (*tick_done)(void *ctx, int64_t t_ms, int64_t dt_ms);
    void (*finish)(void *ctx, struct runner *r, const struct runner_result *res);
};

/* What an observer may read of the run during its calls. */
size_t runner_n_sites(const struct runner *r);
struct site *runner_site(struct runner *r, size_t i);
/* The register bus statistics of site i's gateway; 0, or -ENOENT when it has no bus. */
int runner_bus_stats(const struct runner *r, size_t i, struct bus_stats *st);
/* The telemetry the gateways' uplinks dropped during headend outages (headend_loop.h); NaN
 * when the run has no headend in the loop. */
double runner_telemetry_dropped(const struct runner *r);
/* A line in events.log at the current simulated time ("t=SECONDS " and the text). */
void runner_event(struct runner *r, const char *line);

struct runner_opts {
    enum runner_transport transport;
    const char *out_dir; /* created if missing */
    int progress;        /* a progress line on stderr (when it is a terminal) */
    FILE *log;           /* transport-level log lines (connects etc.); NULL = discarded */
    int no_pin;          /* tcp: do not pin the process to one CPU (see runner.c) */
    const struct runner_hook *hook;         /* NULL = none */
    const struct runner_observer *observer; /* NULL = none */
    /* timeseries.csv and decisions.csv: one row per site and interval of this length (means,
     * the lowest and highest step of grid and battery power; runner.c, "--sample"), 0 = every
     * step and every cycle. The observer sees every step either way. */
    int64_t sample_ms;
    /* called every 256 steps and after the last (tick of ticks), when set (e.g.
     * reports/progress.h); the run's own progress line is then not printed */
    void (*on_progress)(void *ctx, int64_t tick, int64_t ticks);
    void *progress_ctx;
    /* when set and non-zero (e.g. by SIGINT), the run stops within 256 steps with -EINTR, and
     * events.log still ends with its run_failed line */
    const volatile sig_atomic_t *stop;
};

/* The default sample_ms of a scenario (`--sample auto`): every step up to
 * RUNNER_FULL_RATE_MAX_TICKS ticks (two days at 1 s: about 50 MB of CSVs with the baseline's),
 * beyond the shortest of 1 min, 5 min, 15 min and 1 h that gives at most RUNNER_SAMPLED_MAX_ROWS
 * rows per site (a month at 1 s: 1 min; a year: 5 min, about 80 MB with the baseline's). */
#define RUNNER_FULL_RATE_MAX_TICKS 200000
#define RUNNER_SAMPLED_MAX_ROWS    120000
int64_t runner_default_sample_ms(const struct scenario *sc);

struct runner_result {
    char digest[65];          /* SHA-256 of the three output files */
    struct sha256 digest_ctx; /* the hash state after them (not final): extend it, no re-read */
    int64_t ticks;            /* steps run */
    uint64_t cycles;          /* gateway cycles, all sites */
    uint64_t transactions;    /* register reads and writes by the gateways */
    uint64_t setpoint_writes;
    unsigned check_failures;  /* balance, SoC range */
    unsigned view_mismatches; /* gateway view != simulator register */
    double wall_s;
};

/* Runs the whole scenario. Returns 0 when it ran (check the result's failure counts), or
 * -errno with err filled when it could not run (bad gateway section, I/O error, ...). */
int runner_run(const struct scenario *sc, const struct runner_opts *o, struct runner_result *res,
               char *err, size_t errlen);

/* Feeds "name\0" and the file dir/name into h (the digest's framing). 0 or -errno. */
int runner_hash_file(struct sha256 *h, const char *dir, const char *name);

#endif
