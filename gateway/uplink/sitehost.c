/* sitehost: see sitehost.h.
 *
 * Scheduling: a min-heap of sites by due time (monotonic microseconds) under one mutex. A
 * worker takes the top site when it is due, runs its cycle without the lock, and puts it back
 * with its next due time: one poll period (divided by the speed) after the last, or, after a
 * slow cycle, one period from now (missed periods are skipped, not bursted: the single-site
 * gateway always did this). A cycle that starts more than half a period late counts as late:
 * the stop line says how many, the measure of a host that cannot keep up. Waits are capped at
 * WAIT_CAP_US so that a stop or a SIGHUP is seen promptly; nothing waits on the network (the
 * uplink's calls never block, the Modbus timeouts bound a cycle). */
#include "gateway/uplink/sitehost.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/rtclock.h"
#include "gateway/control/confsync.h"
#include "gateway/control/estop.h"
#include "gateway/uplink/command.h"
#include "gateway/control/decision.h"
#include "gateway/uplink/dispatch.h"
#include "gateway/uplink/remote.h"
#include "gateway/uplink/uplink.h"

#define WAIT_CAP_US 100000
/* libmodbus waits for a reply with select(), and glibc aborts the process when select() is
 * given a descriptor >= FD_SETSIZE (1024). A host must therefore stay under that many open
 * descriptors; FDS_PER_UPLINK is what one gRPC channel takes (its socket and its poller's),
 * FDS_BASE the process's own (stdio, the log, libraries). */
#define FDS_LIMIT      1024
#define FDS_PER_UPLINK 2
#define FDS_BASE       32

struct hsite {
    char path[1024];
    struct siteconf *cfg;
    void *transport;
    struct controller *ctl;
    struct uplink_cfg ucfg;
    struct uplink_identity ident;
    struct confsync *cs;
    struct estop *es;     /* the emergency stop, persisted next to the spool */
    struct command *cmds; /* per-asset commands from the headend (gateway/uplink/command.h) */
    struct remote *rem;
    struct uplink *up;
    struct dispatch *disp;
    struct decision dm;
    int64_t due_us, period_us;
    uint64_t cycles, late;
    unsigned hup_seen;
};

struct sitehost {
    struct sitehost_opts o;
    struct hsite **s;
    size_t n, cap;
    /* the run */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t *heap, n_heap;
    int64_t t0_us, end_us;
    unsigned hup_gen;
    volatile sig_atomic_t *stop, *hup;
    int done;
};

/* one line to the caller's log callback (common/log.h) */
#define logf_(x, ...) log_to((x)->o.log, (x)->o.log_ctx, __VA_ARGS__)

struct sitehost *sitehost_new(const struct sitehost_opts *o)
{
    struct sitehost *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->o = *o;
    if (!(h->o.speed > 0))
        h->o.speed = 1.0;
    return h;
}

static void site_free(struct sitehost *h, struct hsite *s)
{
    if (!s)
        return;
    dispatch_free(s->disp);
    uplink_free(s->up);
    remote_free(s->rem); /* after the uplink, whose thread used it */
    command_free(s->cmds);
    estop_free(s->es);
    confsync_free(s->cs);
    controller_free(s->ctl);
    if (s->transport)
        h->o.transport.close(s->transport);
    siteconf_free(s->cfg);
    free(s);
}

int sitehost_add(struct sitehost *h, const char *path, char *err, size_t errlen)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct hsite **g = realloc(h->s, cap * sizeof *g);
        if (!g)
            goto oom;
        h->s = g;
        h->cap = cap;
    }
    struct hsite *s = calloc(1, sizeof *s);
    if (!s)
        goto oom;
    snprintf(s->path, sizeof s->path, "%s", path);
    char sub[1024];
    int rc = siteconf_load_file(path, &s->cfg, err, errlen);
    if (rc)
        goto fail;
    for (size_t i = 0; i < h->n; i++)
        if (!strcmp(h->s[i]->cfg->site_id, s->cfg->site_id)) {
            snprintf(err, errlen, "%s: site_id \"%s\" is also the site of %s", path,
                     s->cfg->site_id, h->s[i]->path);
            rc = -EINVAL;
            goto fail;
        }
    s->transport = h->o.transport.open(s->cfg, h->o.log, h->o.log_ctx);
    if (!s->transport) {
        rc = -ENOMEM;
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    struct controller_opts co = {.open_bus = h->o.transport.bus,
                                 .bus_ctx = s->transport,
                                 .log = h->o.log,
                                 .log_ctx = h->o.log_ctx};
    if (!(s->ctl = controller_new(s->cfg, &co, err, errlen))) {
        rc = -EINVAL;
        goto fail;
    }
    if (uplink_cfg_load(s->cfg->uplink, "uplink", &s->ucfg, sub, sizeof sub) != 0) {
        snprintf(err, errlen, "%s: %s", path, sub);
        rc = -EINVAL;
        goto fail;
    }
    /* estop.json and desired-config.json in the spool directory are one site's: a second
     * site there would start with the first one's stop and pushed policy (and a release of
     * either would delete both), so each site needs its own (trailing slashes aside) */
    for (size_t i = 0; s->ucfg.spool_dir[0] && i < h->n; i++) {
        const char *a = s->ucfg.spool_dir, *b = h->s[i]->ucfg.spool_dir;
        size_t la = strlen(a), lb = strlen(b);
        while (la > 1 && a[la - 1] == '/')
            la--;
        while (lb > 1 && b[lb - 1] == '/')
            lb--;
        if (la == lb && !strncmp(a, b, la)) {
            snprintf(err, errlen,
                     "%s: uplink.spool_dir \"%s\" is also the spool of %s (its estop.json and "
                     "desired-config.json belong to one site)",
                     path, a, h->s[i]->path);
            rc = -EINVAL;
            goto fail;
        }
    }
    if (h->o.headend)
        snprintf(s->ucfg.target, sizeof s->ucfg.target, "%s", h->o.headend);
    if (h->o.legacy)
        s->ucfg.legacy = 1;
    /* A poll period in controller time is period / speed of wall time. */
    s->period_us = (int64_t)((double)s->cfg->poll_period_ms * 1000.0 / h->o.speed);
    if (s->period_us < 1000)
        s->period_us = 1000;
    h->s[h->n++] = s;
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", path);
    return -ENOMEM;
fail:
    site_free(h, s);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sitehost_add_dir(struct sitehost *h, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(e));
        return -e;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") || e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **g = realloc(names, cap * sizeof *g);
            if (!g) {
                rc = -ENOMEM;
                break;
            }
            names = g;
        }
        if (!(names[n] = malloc(strlen(dir) + len + 2))) {
            rc = -ENOMEM;
            break;
        }
        sprintf(names[n++], "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (rc)
        snprintf(err, errlen, "%s: out of memory", dir);
    else if (!n) {
        snprintf(err, errlen, "%s: no site configuration (*.json) in the directory", dir);
        rc = -ENOENT;
    }
    qsort(names, n, sizeof *names, by_name); /* readdir's order is the file system's */
    for (size_t i = 0; i < n && !rc; i++)
        rc = sitehost_add(h, names[i], err, errlen);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

size_t sitehost_count(const struct sitehost *h)
{
    return h->n;
}

void sitehost_describe(const struct sitehost *h, size_t i, FILE *out)
{
    const struct hsite *s = h->s[i];
    fprintf(out, "ok %s: site=%s devices=%zu strategy=%s uplink=%s\n", s->path, s->cfg->site_id,
            s->cfg->n_devices, controller_strategy(s->ctl),
            s->ucfg.target[0] ? s->ucfg.target : "-");
}

/* The dispatcher's acks go to the headend through the site's uplink. */
static void ack_to_uplink(void *ctx, const struct agentmsg_ack *a)
{
    uplink_ack(ctx, a);
}

static int start_site(struct sitehost *h, struct hsite *s, size_t i, char *err, size_t errlen)
{
    /* confsync: the pushed configuration persisted next to the spool wins over the file's
     * policy from the first cycle (gateway/control/confsync.h) */
    s->cs = confsync_new(s->ctl, s->path, s->ucfg.spool_dir, h->o.log, h->o.log_ctx);
    s->rem = s->ucfg.target[0] ? remote_new(h->o.log, h->o.log_ctx) : NULL;
    if (!s->cs || (s->ucfg.target[0] && !s->rem)) {
        snprintf(err, errlen, "%s: out of memory", s->path);
        return -ENOMEM;
    }
    remote_set_version(s->rem, confsync_start(s->cs));
    /* a stop persisted next to the spool holds from the first cycle (gateway/control/estop.h) */
    if (!(s->es = estop_new(s->ctl, s->ucfg.spool_dir, h->o.log, h->o.log_ctx))) {
        snprintf(err, errlen, "%s: out of memory", s->path);
        return -ENOMEM;
    }
    remote_set_estop(s->rem, estop_start(s->es));
    if (!s->cfg->ctx.has_start) { /* the calendar of controller time: the wall clock's now */
        s->cfg->ctx.start_unix_ms = rtclock_wall_ms();
        s->cfg->ctx.has_start = 1;
    }
    if (h->o.metrics &&
        gwmetrics_site(h->o.metrics, i, s->cfg, h->o.transport.modbus, s->transport) != 0) {
        snprintf(err, errlen, "%s: out of memory", s->path);
        return -ENOMEM;
    }
    logf_(h, "event=start site=%s gateway=%s devices=%zu strategy=%s poll_ms=%lld speed=%g",
          s->cfg->site_id, s->cfg->gateway_id, s->cfg->n_devices, controller_strategy(s->ctl),
          (long long)s->cfg->poll_period_ms, h->o.speed);
    if (!s->ucfg.target[0])
        return 0;
    uplink_identity_from_site(s->cfg, h->o.software ? h->o.software : "der-gateway", &s->ident);
    if (!(s->cmds = command_new(s->ctl, s->cfg->site_id, h->o.log, h->o.log_ctx))) {
        snprintf(err, errlen, "%s: out of memory", s->path);
        return -ENOMEM;
    }
    struct uplink_opts uo = {.log = h->o.log,
                             .log_ctx = h->o.log_ctx,
                             .seed = (uint64_t)rtclock_wall_ms() + i,
                             .remote = s->rem,
                             .commands = s->cmds};
    s->up = uplink_new(&s->ucfg, &s->ident, &uo, err, errlen);
    if (!s->up)
        return -EINVAL;
    struct dispatch_opts dopt = {.site_id = s->cfg->site_id,
                                 .primary_asset_id = s->ident.primary_asset_id,
                                 .ack = ack_to_uplink,
                                 .ack_ctx = s->up,
                                 .log = h->o.log,
                                 .log_ctx = h->o.log_ctx};
    if (!(s->disp = dispatch_new(s->ctl, &dopt))) {
        snprintf(err, errlen, "%s: out of memory", s->path);
        return -ENOMEM;
    }
    return 0;
}

/* One cycle of s at monotonic time now_us (what the single-site loop did, per site). */
static void run_cycle(struct sitehost *h, struct hsite *s, int64_t now_us, int reload)
{
    char err[1024];
    int64_t now = (int64_t)((double)(now_us - h->t0_us) * h->o.speed / 1000.0);
    if (reload) {
        logf_(h, "event=sighup site=%s reason=\"%s\"", s->cfg->site_id,
              s->up ? "reloading the configuration file and the uplink's TLS files"
                    : "reloading the configuration file");
        confsync_reload(s->cs, err, sizeof err); /* logs what it did */
        if (s->up)
            uplink_reload(s->up);
    }
    uint64_t cver; /* a pushed configuration, between two cycles */
    char *cjson;
    while (remote_take_push(s->rem, &cver, &cjson)) {
        int crc = confsync_push(s->cs, cver, cjson, err, sizeof err);
        remote_report(s->rem, cver, crc == 0, crc ? err : "");
        free(cjson);
    }
    int eon; /* an emergency stop engaged or released by the headend, between two cycles */
    char eid[ESTOP_ID_MAX], ewhy[ESTOP_REASON_MAX];
    while (remote_take_estop(s->rem, &eon, eid, sizeof eid, ewhy, sizeof ewhy)) {
        estop_set(s->es, eon, eid, ewhy, "headend");
        remote_estop_report(s->rem, eon, estop_state(s->es)->id, estop_state(s->es)->reason);
    }
    struct agentmsg_setpoint sp;
    while (s->up && uplink_poll_setpoint(s->up, &sp))
        dispatch_setpoint(s->disp, &sp, now, rtclock_wall_ms());
    command_apply(s->cmds, now, rtclock_wall_ms()); /* between two cycles */
    controller_cycle(s->ctl, now, &s->dm);
    s->cycles++;
    if (s->up) {
        dispatch_after_cycle(s->disp, &s->dm);
        command_after_cycle(s->cmds, &s->dm);
        uplink_publish(s->up, controller_image(s->ctl), &s->dm, now);
    }
    char row[4096];
    if (h->o.rows && decision_csv_row(&s->dm, row, sizeof row) > 0) {
        flockfile(h->o.rows);
        fputs(row, h->o.rows);
        fflush(h->o.rows);
        funlockfile(h->o.rows);
    }
}

/* ---- the heap of due times ------------------------------------------------------------------ */

static int earlier(struct sitehost *h, size_t a, size_t b)
{
    int64_t x = h->s[h->heap[a]]->due_us, y = h->s[h->heap[b]]->due_us;
    return x < y || (x == y && h->heap[a] < h->heap[b]); /* ties: file order */
}

static void swap(struct sitehost *h, size_t a, size_t b)
{
    size_t t = h->heap[a];
    h->heap[a] = h->heap[b];
    h->heap[b] = t;
}

static void heap_push(struct sitehost *h, size_t site)
{
    size_t i = h->n_heap++;
    h->heap[i] = site;
    while (i > 0 && earlier(h, i, (i - 1) / 2)) {
        swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static size_t heap_pop(struct sitehost *h)
{
    size_t top = h->heap[0], i = 0;
    h->heap[0] = h->heap[--h->n_heap];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n_heap && earlier(h, l, m))
            m = l;
        if (r < h->n_heap && earlier(h, r, m))
            m = r;
        if (m == i)
            return top;
        swap(h, i, m);
        i = m;
    }
}

/* ---- the workers ---------------------------------------------------------------------------- */

static void wait_until(struct sitehost *h, int64_t until_us)
{
    int64_t now = rtclock_monotonic_us();
    int64_t d = until_us - now;
    if (d > WAIT_CAP_US)
        d = WAIT_CAP_US;
    if (d <= 0)
        return;
    struct timespec ts;
    rtclock_monotonic_deadline(d, &ts); /* the condition variable's clock (sitehost_run) */
    pthread_cond_timedwait(&h->cv, &h->mu, &ts);
}

static void *worker(void *arg)
{
    struct sitehost *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->done) {
        int64_t now = rtclock_monotonic_us();
        if (*h->stop || (h->end_us >= 0 && now >= h->end_us)) {
            h->done = 1;
            pthread_cond_broadcast(&h->cv);
            break;
        }
        if (h->hup && *h->hup) {
            *h->hup = 0;
            h->hup_gen++;
        }
        if (!h->n_heap || h->s[h->heap[0]]->due_us > now) {
            wait_until(h, h->n_heap ? h->s[h->heap[0]]->due_us : now + WAIT_CAP_US);
            continue;
        }
        size_t i = heap_pop(h);
        struct hsite *s = h->s[i];
        int reload = s->hup_seen != h->hup_gen;
        s->hup_seen = h->hup_gen;
        pthread_mutex_unlock(&h->mu);

        int late = now - s->due_us > s->period_us / 2;
        s->late += late;
        run_cycle(h, s, now, reload);
        int64_t after = rtclock_monotonic_us();
        if (h->o.metrics) /* never waits on a scrape (gwmetrics.h) */
            gwmetrics_cycle(h->o.metrics, i, s->ctl, s->up, &s->dm, after - now, late);

        pthread_mutex_lock(&h->mu);
        s->due_us += s->period_us;
        if (s->due_us < after) /* a slow cycle: skip the missed periods instead of bursting */
            s->due_us = after + s->period_us;
        heap_push(h, i);
        pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* The descriptors the sites will hold: one Modbus connection per endpoint, the uplinks'. */
static size_t fds_needed(const struct sitehost *h)
{
    size_t n = FDS_BASE;
    for (size_t i = 0; i < h->n; i++) {
        const struct siteconf *c = h->s[i]->cfg;
        for (size_t d = 0; d < c->n_devices; d++) {
            size_t k = 0;
            while (k < d && (strcmp(c->devices[k].host, c->devices[d].host) ||
                             c->devices[k].port != c->devices[d].port))
                k++;
            n += k == d; /* the first device on its endpoint */
        }
        n += h->s[i]->ucfg.target[0] ? FDS_PER_UPLINK : 0;
    }
    return n;
}

int sitehost_run(struct sitehost *h, int64_t duration_ms, volatile sig_atomic_t *stop,
                 volatile sig_atomic_t *hup, char *err, size_t errlen)
{
    static volatile sig_atomic_t never;
    int rc = 0;
    size_t fds = fds_needed(h);
    if (fds >= FDS_LIMIT) {
        snprintf(err, errlen,
                 "%zu sites need about %zu file descriptors; libmodbus cannot wait on one past "
                 "%d (select): split the sites over several processes",
                 h->n, fds, FDS_LIMIT);
        return -EMFILE;
    }
    for (size_t i = 0; i < h->n && !rc; i++)
        rc = start_site(h, h->s[i], i, err, errlen);
    if (rc)
        return rc;
    size_t nw = h->o.workers > 0 ? (size_t)h->o.workers : SITEHOST_WORKERS;
    if (nw > h->n)
        nw = h->n;
    pthread_t *th = calloc(nw ? nw : 1, sizeof *th);
    if (!(h->heap = calloc(h->n ? h->n : 1, sizeof *h->heap)) || !th) {
        free(th);
        snprintf(err, errlen, "sites: out of memory");
        return -ENOMEM;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&h->mu, NULL);
    h->stop = stop ? stop : &never;
    h->hup = hup;
    h->t0_us = rtclock_monotonic_us();
    h->end_us = duration_ms >= 0 ? h->t0_us + duration_ms * 1000 : -1;
    /* First cycles spread over one period: a thousand sites discovering their devices at
     * the same instant would make the last of them late from the start. */
    for (size_t i = 0; i < h->n; i++) {
        h->s[i]->due_us = h->t0_us + h->s[i]->period_us * (int64_t)i / (int64_t)h->n;
        heap_push(h, i);
    }
    /* The calling thread is worker 0: a single site runs on it alone, as it always did. */
    size_t started = 1;
    for (; started < nw; started++)
        if ((rc = pthread_create(&th[started], NULL, worker, h))) {
            snprintf(err, errlen, "sites: cannot start a worker thread: %s", strerror(rc));
            pthread_mutex_lock(&h->mu);
            h->done = 1;
            pthread_cond_broadcast(&h->cv);
            pthread_mutex_unlock(&h->mu);
            rc = -rc;
            break;
        }
    if (!rc)
        worker(h);
    for (size_t i = 1; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    for (size_t i = 0; i < h->n; i++) {
        const struct hsite *s = h->s[i];
        logf_(h, "event=stop site=%s cycles=%llu late=%llu writes=%llu reason=%s", s->cfg->site_id,
              (unsigned long long)s->cycles, (unsigned long long)s->late,
              (unsigned long long)controller_writes(s->ctl), *h->stop ? "signal" : "duration");
    }
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    return rc;
}

void sitehost_free(struct sitehost *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        site_free(h, h->s[i]);
    free(h->s);
    free(h->heap);
    free(h);
}
