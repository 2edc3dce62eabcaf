/* demo: see demo.h. The status line reads the headend as any client would: /healthz for the
 * gateways connected (one per site), /metrics for the telemetry counter (its rate over the
 * status period). A child that ends on its own ends the demo (exit 1, with its log's tail):
 * a demo that quietly lost its headend would be showing a lie. */
#define _GNU_SOURCE
#include "sim/run/demo.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/rtclock.h"
#include "sim/run/child.h"
#include "sim/run/httpc.h"
#include "sim/run/inventory.h"

#define START_TIMEOUT_MS 60000 /* a big fleet takes a while to build its images */
#define GRACE_MS         5000
/* A multi-site der-gateway refuses more sites than it has file descriptors for (libmodbus's
 * select(): gateway/uplink/sitehost.c); with an uplink each, 300 sites stay well under. */
#define SITES_PER_GATEWAY 300

struct demo {
    const struct scenario *sc;
    const struct demo_opts *o;
    FILE *out;
    char dir[PATH_MAX], cfg[PATH_MAX + 8], inv[PATH_MAX + 32];
    char self[PATH_MAX], headend_bin[PATH_MAX + 16], gateway_bin[PATH_MAX + 16];
    struct child headend, serve, *gw;
    size_t n_gw;
    int grpc_port, http_port;
    char http_host[64];
};

/* der-headend and der-gateway: $DERLOOP_HEADEND_BIN / $DERLOOP_GATEWAY_BIN, else beside this
 * binary (the build's bin directory, or the installed one). */
static void sibling(struct demo *d, const char *env, const char *name, char *buf, size_t len)
{
    const char *e = getenv(env);
    if (e && *e) {
        snprintf(buf, len, "%s", e);
        return;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", d->self);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    snprintf(buf, len, "%s/%s", dir, name);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void fail_child(struct demo *d, struct child *c, const char *what)
{
    char tail[1500];
    child_log_tail(c, tail, sizeof tail);
    fprintf(stderr, "der-sim demo: %s %s; the end of its log:\n%s\n", c->name, what, tail);
    (void)d;
}

/* "grpc=HOST:PORT http=HOST:PORT ready": the ports (and the REST host for the URL). */
static int parse_ready(struct demo *d, const char *line)
{
    const char *g = strstr(line, "grpc="), *h = strstr(line, "http=");
    const char *gc = g ? strchr(g, ' ') : NULL;
    if (!g || !h || !gc)
        return -EPROTO;
    const char *gp = gc;
    while (gp > g && gp[-1] != ':')
        gp--;
    d->grpc_port = atoi(gp);
    const char *hc = strchr(h, ' '), *hp = hc;
    if (!hc)
        return -EPROTO;
    while (hp > h && hp[-1] != ':')
        hp--;
    d->http_port = atoi(hp);
    snprintf(d->http_host, sizeof d->http_host, "%.*s", (int)(hp - 1 - (h + 5)), h + 5);
    if (!strcmp(d->http_host, "0.0.0.0") || !d->http_host[0])
        snprintf(d->http_host, sizeof d->http_host, "127.0.0.1");
    return d->grpc_port > 0 && d->http_port > 0 ? 0 : -EPROTO;
}

static int start_headend(struct demo *d)
{
    char err[512], out[4096], max_streams[16];
    snprintf(max_streams, sizeof max_streams, "%d", SITES_PER_GATEWAY + 100);
    char *argv[] = {d->headend_bin, "--grpc-listen", "127.0.0.1:0", "--http-listen",
                    (char *)(d->o->http_listen ? d->o->http_listen : "127.0.0.1:0"), "--db",
                    ":memory:", "--inventory", d->inv,
                    /* gRPC core gives every channel of one process to one target the same
                     * HTTP/2 connection: a multi-site gateway's streams all share it */
                    "--max-streams-per-connection", max_streams, NULL};
    int rc = child_start(&d->headend, "headend", argv, d->dir, err, sizeof err);
    if (rc) {
        fprintf(stderr, "der-sim demo: %s\n", err);
        return rc;
    }
    rc = child_wait_output(&d->headend, " ready", START_TIMEOUT_MS, out, sizeof out);
    if (!rc)
        rc = parse_ready(d, out);
    if (rc)
        fail_child(d, &d->headend, rc == -ECHILD ? "ended at start" : "printed no ready line");
    return rc;
}

static int start_serve(struct demo *d)
{
    char err[512], speed[32];
    snprintf(speed, sizeof speed, "%.17g", d->o->speed);
    size_t n = 0, max = 12 + 2 * d->o->n_sets;
    char **argv = calloc(max, sizeof *argv);
    if (!argv)
        return -ENOMEM;
    argv[n++] = d->self;
    argv[n++] = "serve";
    argv[n++] = "--port-base";
    argv[n++] = "any";
    argv[n++] = "--config-dir";
    argv[n++] = d->cfg;
    argv[n++] = "--speed";
    argv[n++] = speed;
    argv[n++] = "--loop";
    for (size_t i = 0; i < d->o->n_sets; i++) {
        argv[n++] = "--set";
        argv[n++] = (char *)d->o->sets[i];
    }
    argv[n++] = (char *)d->o->scenario;
    int rc = child_start(&d->serve, "serve", argv, d->dir, err, sizeof err);
    free(argv);
    if (rc) {
        fprintf(stderr, "der-sim demo: %s\n", err);
        return rc;
    }
    /* the ready line comes after one line per site: a buffer for the whole stdout */
    char *big = malloc(1 << 22);
    rc = big ? child_wait_output(&d->serve, "ready sites=", START_TIMEOUT_MS, big, 1 << 22)
             : -ENOMEM;
    free(big);
    if (rc)
        fail_child(d, &d->serve, rc == -ECHILD ? "ended at start" : "printed no ready line");
    return rc;
}

static int start_gateway(struct demo *d, struct child *c, const char *name, const char *flag,
                         const char *path)
{
    char err[512], headend[64], speed[32], workers[16];
    snprintf(headend, sizeof headend, "127.0.0.1:%d", d->grpc_port);
    snprintf(speed, sizeof speed, "%.17g", d->o->speed);
    snprintf(workers, sizeof workers, "%d", d->o->workers);
    char *argv[] = {d->gateway_bin, (char *)flag, (char *)path, "--headend", headend,
                    "--speed",      speed,        "--workers",  workers,     NULL};
    if (d->o->workers <= 0)
        argv[7] = NULL;
    int rc = child_start(c, name, argv, d->dir, err, sizeof err);
    if (rc)
        fprintf(stderr, "der-sim demo: %s\n", err);
    return rc;
}

/* Multi-site mode: the sites' configurations moved into DIR/sites/<k>/, at most
 * SITES_PER_GATEWAY each, one der-gateway --config-dir per sub-directory. */
static int start_multi(struct demo *d)
{
    size_t n = (d->sc->n_sites + SITES_PER_GATEWAY - 1) / SITES_PER_GATEWAY;
    for (size_t g = 0; g < n; g++) {
        char sub[PATH_MAX + 32], name[32];
        snprintf(sub, sizeof sub, "%s/%zu", d->cfg, g);
        if (mkdir(sub, 0755) < 0) {
            fprintf(stderr, "der-sim demo: %s: %s\n", sub, strerror(errno));
            return -errno;
        }
        for (size_t i = g * SITES_PER_GATEWAY;
             i < d->sc->n_sites && i < (g + 1) * SITES_PER_GATEWAY; i++) {
            char from[PATH_MAX + 96], to[PATH_MAX + 128];
            snprintf(from, sizeof from, "%s/%s.json", d->cfg, d->sc->sites[i].id);
            snprintf(to, sizeof to, "%s/%s.json", sub, d->sc->sites[i].id);
            if (rename(from, to) < 0) {
                fprintf(stderr, "der-sim demo: %s: %s\n", from, strerror(errno));
                return -errno;
            }
        }
        snprintf(name, sizeof name, n > 1 ? "gateway-%zu" : "gateway", g);
        int rc = start_gateway(d, &d->gw[g], name, "--config-dir", sub);
        if (rc)
            return rc;
        d->n_gw++;
    }
    return 0;
}

static int start_gateways(struct demo *d)
{
    size_t n = d->o->per_site ? d->sc->n_sites
                              : (d->sc->n_sites + SITES_PER_GATEWAY - 1) / SITES_PER_GATEWAY;
    if (!(d->gw = calloc(n, sizeof *d->gw)))
        return -ENOMEM;
    if (!d->o->per_site)
        return start_multi(d);
    for (size_t i = 0; i < n; i++) {
        char name[SCN_ID_MAX + 16], path[PATH_MAX + 96];
        snprintf(name, sizeof name, "gateway-%s", d->sc->sites[i].id);
        snprintf(path, sizeof path, "%s/%s.json", d->cfg, d->sc->sites[i].id);
        int rc = start_gateway(d, &d->gw[i], name, "--config", path);
        if (rc)
            return rc;
        d->n_gw++;
    }
    return 0;
}

static void print_pids(struct demo *d)
{
    fprintf(d->out, "pids headend=%d serve=%d gateways=", (int)d->headend.pid, (int)d->serve.pid);
    for (size_t i = 0; i < d->n_gw; i++)
        fprintf(d->out, "%s%d", i ? "," : "", (int)d->gw[i].pid);
    fputc('\n', d->out);
}

/* The headend's view: gateways connected (/healthz) and the telemetry counter (/metrics). */
static int read_headend(struct demo *d, int *connected, double *telemetry)
{
    char *body = NULL;
    int st = httpc_request(d->http_port, "GET", "/healthz", NULL, &body);
    cJSON *j = st == 200 ? cJSON_Parse(body) : NULL;
    const cJSON *g = j ? cJSON_GetObjectItemCaseSensitive(j, "gateways") : NULL;
    *connected = cJSON_IsNumber(g) ? g->valueint : -1;
    cJSON_Delete(j);
    free(body);
    body = NULL;
    *telemetry = -1;
    if (httpc_request(d->http_port, "GET", "/metrics", NULL, &body) == 200) {
        const char *m = strstr(body, "\nder_headend_telemetry_messages_total ");
        if (m)
            *telemetry = strtod(m + strlen("\nder_headend_telemetry_messages_total "), NULL);
    }
    free(body);
    return *connected >= 0 ? 0 : -EPROTO;
}

/* The children still running; the first that ended is reported. */
static struct child *ended(struct demo *d)
{
    if (!child_running(&d->headend))
        return &d->headend;
    if (!child_running(&d->serve))
        return &d->serve;
    for (size_t i = 0; i < d->n_gw; i++)
        if (!child_running(&d->gw[i]))
            return &d->gw[i];
    return NULL;
}

static int watch(struct demo *d, volatile sig_atomic_t *stop)
{
    const int every_ms = (d->o->status_every_s > 0 ? d->o->status_every_s : 5) * 1000;
    int64_t t0 = rtclock_monotonic_ms(), last = t0;
    double last_tel = 0;
    int connected;
    read_headend(d, &connected, &last_tel);
    while (!*stop) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
        struct child *c = ended(d);
        if (c && !*stop) {
            fail_child(d, c, "ended");
            return -ECHILD;
        }
        int64_t now = rtclock_monotonic_ms();
        if (now - last < every_ms)
            continue;
        double tel;
        if (read_headend(d, &connected, &tel) == 0) {
            double rate =
                tel >= 0 && last_tel >= 0 ? (tel - last_tel) * 1000.0 / (double)(now - last) : 0;
            fprintf(d->out, "status t=%llds sites=%zu connected=%d telemetry_per_s=%.1f\n",
                    (long long)((now - t0) / 1000), d->sc->n_sites, connected, rate);
            fflush(d->out);
            last_tel = tel;
        }
        last = now;
    }
    return 0;
}

int demo_run(const struct scenario *sc, const struct demo_opts *o, volatile sig_atomic_t *stop)
{
    struct demo d = {.sc = sc, .o = o, .out = o->out ? o->out : stdout};
    char err[1024];
    ssize_t n = readlink("/proc/self/exe", d.self, sizeof d.self - 1);
    if (n <= 0) {
        fprintf(stderr, "der-sim demo: cannot find its own binary: %s\n", strerror(errno));
        return -ENOENT;
    }
    d.self[n] = '\0';
    sibling(&d, "DERLOOP_HEADEND_BIN", "der-headend", d.headend_bin, sizeof d.headend_bin);
    sibling(&d, "DERLOOP_GATEWAY_BIN", "der-gateway", d.gateway_bin, sizeof d.gateway_bin);
    const char *tmp = getenv("TMPDIR");
    snprintf(d.dir, sizeof d.dir, "%s/derloop-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(d.dir)) {
        fprintf(stderr, "der-sim demo: %s: %s\n", d.dir, strerror(errno));
        return -errno;
    }
    snprintf(d.cfg, sizeof d.cfg, "%s/sites", d.dir);
    snprintf(d.inv, sizeof d.inv, "%s/inventory.json", d.dir);
    int rc = sim_inventory_write(sc, d.inv, err, sizeof err);
    if (rc)
        fprintf(stderr, "der-sim demo: %s\n", err);
    if (!rc && !(rc = start_headend(&d)) && !(rc = start_serve(&d)) && !(rc = start_gateways(&d))) {
        fprintf(d.out, "console http://%s:%d/\n", d.http_host, d.http_port);
        fprintf(d.out, "state %s\n", d.dir);
        print_pids(&d);
        fprintf(d.out, "demo ready sites=%zu gateways=%s speed=%g\n", sc->n_sites,
                o->per_site ? "per-site" : "multi", o->speed);
        fflush(d.out);
        rc = watch(&d, stop);
    }
    /* gateways first (they would only log the others' absence), then the devices, then the
     * headend */
    for (size_t i = 0; i < d.n_gw; i++) /* all at once: each then exits in parallel */
        if (d.gw[i].pid > 0)
            kill(-d.gw[i].pid, SIGTERM);
    for (size_t i = 0; i < d.n_gw; i++)
        child_stop(&d.gw[i], GRACE_MS);
    child_stop(&d.serve, GRACE_MS);
    child_stop(&d.headend, GRACE_MS);
    free(d.gw);
    nftw(d.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    fprintf(d.out, "demo stopped%s\n", rc ? " (failed)" : "");
    fflush(d.out);
    return rc;
}
