/* serve: `der-sim serve`, a whole scenario in (scaled) real time.
 *
 * One thread. Every site gets a listening socket on the one mbserver, every asset with an
 * image a unit id on it. Simulated time is the monotonic clock since start times the speed;
 * when it crosses a step boundary k*step, every site steps over [(k-1)*step, k*step), so the
 * images always show the state at the last boundary passed (what a clock-driven device would
 * show) and a write made during a step is applied from that step. Between boundaries the
 * server polls with the time left to the next one (at most 50 ms, so a stop request or a slow
 * reply is never late by more than that).
 *
 * At the end of the scenario the sites stop stepping. Without --loop serving stops too; with
 * --loop the last state stays on the wire until SIGINT/SIGTERM (restarting the physics would
 * mean rebuilding the images the server serves, and a gateway under test would see every
 * counter jump back; a frozen site is the honest reading of "the scenario is over"). */
#include "sim/run/serve.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/duration.h"
#include "common/log.h"
#include "gateway/control/siteconf.h"
#include "sim/wire/mbserver.h"
#include "common/rtclock.h"
#include "sim/run/site.h"
#include "sim/run/sitecfg.h"

#define POLL_CAP_MS 50
/* Late steps are caught up in slices of at most this much wall time, with requests served
 * between slices, so sites that cannot keep up still answer their clients promptly. */
#define CATCHUP_SLICE_US 50000
/* Behind by more than this much wall time: "lagging" (printed at most once a second). */
#define LAG_REPORT_MS     1000
#define PROGRESS_EVERY_MS 10000
/* Connect/disconnect lines for every client are useful for a handful of sites and noise for a
 * thousand: above this many sites only warnings are logged. */
#define CONN_LOG_MAX_SITES 16

struct serve {
    const struct scenario *sc;
    const struct serve_opts *o;
    FILE *out;
    const char *bind;
    struct mbserver *srv;
    struct site **sites;
    int *ports;
    size_t n_sites;
};

/* The address a gateway should dial: the bind address, unless that is a wildcard. */
static const char *dial_host(const char *bind)
{
    if (!strcmp(bind, "0.0.0.0"))
        return "127.0.0.1";
    if (!strcmp(bind, "::"))
        return "::1";
    return bind;
}

/* The gateway's site configuration (docs/gateway-config.md), built by sitecfg.c. */
static cJSON *site_config_json(struct serve *sv, size_t i)
{
    return sitecfg_json(sv->sc, sv->sites[i], dial_host(sv->bind), sv->ports[i], "der-sim serve");
}

/* Writes <dir>/<site_id>.json through a temporary file and a rename, so a reader never sees
 * half a file, then checks it with the gateway's own parser (a warning, not an error: the
 * "gateway" section is the scenario author's). */
static int write_site_config(struct serve *sv, size_t i)
{
    const char *dir = sv->o->config_dir;
    const struct site_cfg *cfg = site_cfg(sv->sites[i]);
    char path[1024], tmp[1100], err[512];
    snprintf(path, sizeof(path), "%s/%s.json", dir, cfg->id);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    cJSON *root = site_config_json(sv, i);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return -ENOMEM;
    int rc = 0;
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(text, f) == EOF || fputc('\n', f) == EOF) {
        rc = -errno;
        if (f)
            fclose(f);
    } else if (fclose(f) != 0) {
        rc = -errno;
    } else if (rename(tmp, path) < 0) {
        rc = -errno;
    }
    if (rc < 0) {
        unlink(tmp);
        log_event(LOG_ERROR, "event=config_failed site=%s config=%s error=\"%s\"", cfg->id, path,
                  strerror(-rc));
        free(text);
        return rc;
    }
    struct siteconf *check = NULL;
    if (siteconf_parse(text, path, &check, err, sizeof(err)) != 0)
        log_event(LOG_WARN, "event=config_warning site=%s config=%s reason=\"gateway parser: %s\"",
                  cfg->id, path, err);
    siteconf_free(check);
    free(text);
    return 0;
}

static void print_endpoint(struct serve *sv, size_t i)
{
    struct site *site = sv->sites[i];
    fprintf(sv->out, "site=%s listen=%s:%d units=", site_cfg(site)->id, sv->bind, sv->ports[i]);
    int first = 1;
    for (size_t k = 0; k < site_n_assets(site); k++) {
        const struct sim_asset *a = site_asset(site, k);
        if (!a->img)
            continue;
        fprintf(sv->out, "%s%d:%s:%s", first ? "" : ",", a->cfg->unit_id, a->cfg->id,
                asset_type_name(a->cfg->type));
        first = 0;
    }
    fputc('\n', sv->out);
}

static int open_site(struct serve *sv, size_t i)
{
    char err[512];
    const struct site_cfg *cfg = &sv->sc->sites[i];
    sv->sites[i] = site_new(sv->sc, i, err, sizeof(err));
    if (!sv->sites[i]) {
        log_event(LOG_ERROR, "event=site_failed site=%s error=\"%s\"", cfg->id, err);
        return -EINVAL;
    }
    int port = sv->o->port_base > 0   ? sv->o->port_base + (int)i
               : sv->o->port_base < 0 ? 0
                                      : cfg->port;
    int ep = mbserver_listen(sv->srv, sv->bind, port, &sv->ports[i]);
    if (ep < 0) {
        log_event(LOG_ERROR, "event=listen_failed site=%s listen=%s:%d error=\"%s\"", cfg->id,
                  sv->bind, port, strerror(-ep));
        return ep;
    }
    mbserver_set_endpoint_name(sv->srv, ep, cfg->id);
    for (size_t k = 0; k < site_n_assets(sv->sites[i]); k++) {
        struct sim_asset *a = site_asset(sv->sites[i], k);
        if (!a->img)
            continue;
        int rc = mbserver_add_unit(sv->srv, ep, a->cfg->unit_id, a->img, &a->wire);
        if (rc < 0) {
            log_event(LOG_ERROR, "event=unit_failed site=%s asset=%s unit_id=%d error=\"%s\"",
                      cfg->id, a->cfg->id, a->cfg->unit_id,
                      rc == -EEXIST ? "unit id used twice" : strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static void close_all(struct serve *sv)
{
    /* The server references the images: it goes first. */
    mbserver_free(sv->srv);
    for (size_t i = 0; i < sv->n_sites; i++)
        site_free(sv->sites ? sv->sites[i] : NULL);
    free(sv->sites);
    free(sv->ports);
}

static void progress(struct serve *sv, int64_t sim_ms, int64_t lag_ms)
{
    struct mbserver_stats st;
    mbserver_get_stats(sv->srv, &st);
    char t[32], d[32];
    log_event(LOG_INFO,
              "event=progress sim_time=%s duration=%s requests=%llu exceptions=%llu dropped=%llu "
              "clients=%zu lag_ms=%lld",
              duration_format(sim_ms, t, sizeof(t)),
              duration_format(sv->sc->duration_ms, d, sizeof(d)), (unsigned long long)st.requests,
              (unsigned long long)st.exceptions, (unsigned long long)st.dropped,
              mbserver_n_clients(sv->srv), (long long)lag_ms);
}

int serve_shard_parse(const char *text, int *k, int *n, char *err, size_t errlen)
{
    char *end;
    long kk = strtol(text, &end, 10), nn = -1;
    if (end != text && *end == '/') {
        const char *p = end + 1;
        nn = strtol(p, &end, 10);
        if (end == p || *end)
            nn = -1;
    }
    if (nn < 1 || nn > 65536 || kk < 1 || kk > nn) {
        snprintf(err, errlen,
                 "--shard wants K/N with 1 <= K <= N <= 65536 (shard K of N), got \"%s\"", text);
        return -EINVAL;
    }
    *k = (int)kk;
    *n = (int)nn;
    return 0;
}

int serve_in_shard(size_t i, int k, int n)
{
    return n <= 0 || (int)(i % (size_t)n) == k - 1;
}

static int run_loop(struct serve *sv, volatile sig_atomic_t *stop)
{
    const int64_t step = sv->sc->step_ms, duration = sv->sc->duration_ms;
    const double speed = sv->o->speed > 0 ? sv->o->speed : 1.0;
    const int show_progress = isatty(fileno(sv->out));
    const int64_t t0_us = rtclock_monotonic_us();
    int64_t next_ms = step; /* the next step boundary, simulated ms */
    int64_t last_progress_us = t0_us, last_lag_report_us = 0;
    int done = step <= 0 || duration <= 0;

    while (!*stop) {
        int64_t now_us = rtclock_monotonic_us();
        int64_t sim_ms = (int64_t)floor((double)(now_us - t0_us) * speed / 1000.0);
        while (!done && sim_ms >= next_ms) {
            for (size_t i = 0; i < sv->n_sites; i++)
                if (sv->sites[i]) /* NULL: another shard's site */
                    site_step(sv->sites[i], next_ms - step, step);
            next_ms += step;
            if (next_ms > duration) {
                done = 1;
                if (!sv->o->loop)
                    return 0;
                log_event(LOG_INFO, "event=end sim_time_ms=%lld loop=hold", (long long)duration);
            }
            if (rtclock_monotonic_us() - now_us > CATCHUP_SLICE_US)
                break;
        }
        now_us = rtclock_monotonic_us();
        /* simulated ms not stepped yet, in wall ms */
        double behind_ms = done ? 0 : (double)(sim_ms - (next_ms - step)) / speed;
        if (behind_ms > LAG_REPORT_MS && now_us - last_lag_report_us > 1000000) {
            last_lag_report_us = now_us;
            log_event(LOG_WARN, "event=lagging sim_time_ms=%lld behind_wall_ms=%.0f",
                      (long long)(next_ms - step), behind_ms);
        }
        if (show_progress && now_us - last_progress_us >= PROGRESS_EVERY_MS * 1000LL) {
            last_progress_us = now_us;
            progress(sv, next_ms - step, sim_ms - (next_ms - step));
        }

        int timeout = POLL_CAP_MS;
        if (!done) {
            /* wall ms until simulated time reaches next_ms, rounded up */
            double wall_ms = (double)next_ms / speed - (double)(now_us - t0_us) / 1000.0;
            timeout = wall_ms <= 0 ? 0 : wall_ms >= POLL_CAP_MS ? POLL_CAP_MS : (int)ceil(wall_ms);
        }
        int rc = mbserver_poll(sv->srv, timeout);
        if (rc < 0) {
            log_event(LOG_ERROR, "event=poll_failed error=\"%s\"", strerror(-rc));
            return rc;
        }
    }
    return 0;
}

int serve_run(const struct scenario *sc, const struct serve_opts *o, volatile sig_atomic_t *stop)
{
    static volatile sig_atomic_t never;
    struct serve sv = {.sc = sc, .o = o, .n_sites = sc->n_sites};
    sv.out = o->out ? o->out : stdout;
    sv.bind = o->bind_addr && *o->bind_addr ? o->bind_addr : "127.0.0.1";
    if (!stop)
        stop = &never;
    if (o->speed < 0 || !isfinite(o->speed)) {
        log_event(LOG_ERROR, "event=start_failed speed=%g error=\"speed must be > 0\"", o->speed);
        return -EINVAL;
    }
    int rc = -ENOMEM;
    sv.srv = mbserver_new(NULL);
    sv.sites = calloc(sc->n_sites ? sc->n_sites : 1, sizeof(*sv.sites));
    sv.ports = calloc(sc->n_sites ? sc->n_sites : 1, sizeof(*sv.ports));
    if (!sv.srv || !sv.sites || !sv.ports) {
        log_event(LOG_ERROR, "event=start_failed error=\"out of memory\"");
        goto out;
    }
    mbserver_set_log(sv.srv, stderr,
                     sc->n_sites > CONN_LOG_MAX_SITES ? MBSERVER_LOG_WARN : MBSERVER_LOG_CONN);
    if (o->config_dir && mkdir(o->config_dir, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        log_event(LOG_ERROR, "event=start_failed config_dir=%s error=\"%s\"", o->config_dir,
                  strerror(errno));
        goto out;
    }
    if (o->shard_n > 0 && (o->shard_k < 1 || o->shard_k > o->shard_n)) {
        log_event(LOG_ERROR, "event=start_failed shard=%d/%d error=\"shard K/N wants 1 <= K <= N\"",
                  o->shard_k, o->shard_n);
        rc = -EINVAL;
        goto out;
    }
    if (o->shard_n > 0 && (size_t)o->shard_k > sc->n_sites) { /* site i goes to i % N + 1 */
        log_event(LOG_ERROR,
                  "event=start_failed shard=%d/%d fleet=%zu error=\"shard %d holds no site: the "
                  "fleet has %zu sites\"",
                  o->shard_k, o->shard_n, sc->n_sites, o->shard_k, sc->n_sites);
        rc = -EINVAL;
        goto out;
    }
    size_t served = 0;
    for (size_t i = 0; i < sc->n_sites; i++) {
        if (!serve_in_shard(i, o->shard_k, o->shard_n))
            continue;
        served++;
        if ((rc = open_site(&sv, i)) < 0)
            goto out;
        if (o->config_dir && (rc = write_site_config(&sv, i)) < 0)
            goto out;
        print_endpoint(&sv, i);
    }
    if (o->shard_n > 0)
        fprintf(sv.out, "ready sites=%zu shard=%d/%d fleet=%zu\n", served, o->shard_k, o->shard_n,
                sc->n_sites);
    else
        fprintf(sv.out, "ready sites=%zu\n", served);
    fflush(sv.out);
    rc = run_loop(&sv, stop);
out:
    close_all(&sv);
    return rc;
}
