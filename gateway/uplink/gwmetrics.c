/* gwmetrics: see gwmetrics.h.
 *
 * Each site has a scratch record (the running counters, touched only by the thread that runs
 * the site's cycle, one at a time by sitehost's contract) and a published copy under the
 * site's own mutex. gwmetrics_cycle fills the scratch record without any lock, then trylocks
 * and copies; a scrape locks each site in turn for the copy only and formats from its own
 * copies, so a slow client never holds a site. Registration (gwmetrics_site) happens before
 * the first cycle; the registry lock guards the array against a scrape meanwhile. */
#include "gateway/uplink/gwmetrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/uplink/uplink.h"

/* cycle time buckets (seconds): a cycle is a few Modbus round trips, ms on a LAN, up to the
 * devices' timeouts (500 ms default, retried) when one does not answer */
static const double bucket_s[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                  0.1,   0.25,   0.5,   1,    2.5,   5};
#define NB (sizeof bucket_s / sizeof bucket_s[0])

struct devsnap {
    uint8_t online, set;
    double final_w;
    int breaker;
};

/* what one site shows; the arrays have the site's n_dev and n_ep entries */
struct snap {
    uint64_t cycles, late, hist[NB];
    double sum_s;
    int has_up, connected, registered;
    uint64_t connects, disconnects, tel_sent, tel_dropped, spooled, spool_dropped;
    uint64_t setpoints, acks_sent;
    uint64_t queue_depth, spool_records;
    double raw_w, request_w, grid_w;
    struct devsnap *dev;
    struct gwmetrics_modbus *ep;
};

struct msite {
    char id[SITECONF_ID_MAX];
    const struct siteconf *cfg;
    gwmetrics_modbus_fn fn;
    void *transport;
    size_t n_dev, n_ep;
    size_t *ep_dev; /* the first device of each endpoint */
    char (*ep_name)[140];
    struct snap scratch, pub;
    int published; /* pub holds one cycle at least */
    pthread_mutex_t mu;
};

struct gwmetrics {
    char version[64], commit[64];
    pthread_mutex_t reg;
    struct msite **s;
    size_t n, cap;
    struct MHD_Daemon *d;
};

static int snap_alloc(struct snap *s, size_t n_dev, size_t n_ep)
{
    memset(s, 0, sizeof *s);
    s->dev = calloc(n_dev ? n_dev : 1, sizeof *s->dev);
    s->ep = calloc(n_ep ? n_ep : 1, sizeof *s->ep);
    s->raw_w = s->request_w = s->grid_w = NAN;
    return s->dev && s->ep ? 0 : -ENOMEM;
}

static void snap_free(struct snap *s)
{
    free(s->dev);
    free(s->ep);
}

/* dst = src, dst keeping its own arrays */
static void snap_copy(struct snap *dst, const struct snap *src, size_t n_dev, size_t n_ep)
{
    struct devsnap *dev = dst->dev;
    struct gwmetrics_modbus *ep = dst->ep;
    *dst = *src;
    dst->dev = dev;
    dst->ep = ep;
    memcpy(dev, src->dev, n_dev * sizeof *dev);
    memcpy(ep, src->ep, n_ep * sizeof *ep);
}

static void site_free(struct msite *s)
{
    if (!s)
        return;
    snap_free(&s->scratch);
    snap_free(&s->pub);
    free(s->ep_dev);
    free(s->ep_name);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

struct gwmetrics *gwmetrics_new(const char *version, const char *commit)
{
    struct gwmetrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->version, sizeof m->version, "%s", version ? version : "");
    snprintf(m->commit, sizeof m->commit, "%s", commit ? commit : "");
    pthread_mutex_init(&m->reg, NULL);
    return m;
}

int gwmetrics_site(struct gwmetrics *m, size_t i, const struct siteconf *cfg,
                   gwmetrics_modbus_fn fn, void *transport)
{
    struct msite *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->id, sizeof s->id, "%s", cfg->site_id);
    s->cfg = cfg;
    s->fn = fn;
    s->transport = transport;
    s->n_dev = cfg->n_devices;
    s->ep_dev = calloc(s->n_dev ? s->n_dev : 1, sizeof *s->ep_dev);
    s->ep_name = calloc(s->n_dev ? s->n_dev : 1, sizeof *s->ep_name);
    if (!s->ep_dev || !s->ep_name)
        goto oom;
    for (size_t d = 0; d < s->n_dev; d++) { /* the endpoints, in the order of their first device */
        const struct device_cfg *c = &cfg->devices[d];
        size_t k = 0;
        while (k < d && (strcmp(cfg->devices[k].host, c->host) || cfg->devices[k].port != c->port))
            k++;
        if (k < d)
            continue;
        s->ep_dev[s->n_ep] = d;
        snprintf(s->ep_name[s->n_ep], sizeof s->ep_name[0], "%s:%d", c->host, c->port);
        s->n_ep++;
    }
    if (snap_alloc(&s->scratch, s->n_dev, s->n_ep) || snap_alloc(&s->pub, s->n_dev, s->n_ep))
        goto oom;
    pthread_mutex_lock(&m->reg);
    if (i >= m->cap) {
        size_t cap = m->cap ? m->cap : 16;
        while (cap <= i)
            cap *= 2;
        struct msite **g = realloc(m->s, cap * sizeof *g);
        if (!g) {
            pthread_mutex_unlock(&m->reg);
            goto oom;
        }
        memset(g + m->cap, 0, (cap - m->cap) * sizeof *g);
        m->s = g;
        m->cap = cap;
    }
    site_free(m->s[i]);
    m->s[i] = s;
    if (i >= m->n)
        m->n = i + 1;
    pthread_mutex_unlock(&m->reg);
    return 0;
oom:
    site_free(s);
    return -ENOMEM;
}

void gwmetrics_cycle(struct gwmetrics *m, size_t i, const struct controller *ctl, struct uplink *up,
                     const struct decision *dm, int64_t cycle_us, int late)
{
    /* registration is over before the first cycle: m->s no longer moves */
    struct msite *s = m && i < m->n ? m->s[i] : NULL;
    if (!s)
        return;
    struct snap *x = &s->scratch;
    double secs = (double)cycle_us / 1e6;
    x->cycles++;
    x->late += late != 0;
    x->sum_s += secs;
    for (size_t b = 0; b < NB; b++)
        x->hist[b] += secs <= bucket_s[b];
    if (up) {
        struct uplink_stats st;
        uplink_get_stats(up, &st);
        x->has_up = 1;
        x->connected = st.connected;
        x->registered = st.registered;
        x->connects = st.connects;
        x->disconnects = st.disconnects;
        x->tel_sent = st.telemetry_sent;
        x->tel_dropped = st.telemetry_dropped;
        x->spooled = st.spooled;
        x->spool_dropped = st.spool_dropped;
        x->setpoints = st.setpoints;
        x->acks_sent = st.acks_sent;
        x->queue_depth = st.queue_depth;
        x->spool_records = st.spool_records;
    }
    const struct procimg *img = controller_image(ctl);
    x->grid_w = img->grid_ok ? img->grid_w : NAN;
    x->raw_w = dm ? dm->raw_w : NAN;
    x->request_w = NAN;
    for (size_t r = 0; dm && r < dm->n_requests; r++)
        if (dm->req[r].asset == DECISION_SITE)
            x->request_w = (isnan(x->request_w) ? 0 : x->request_w) + dm->req[r].power_w;
    for (size_t d = 0; d < s->n_dev; d++) {
        x->dev[d].online = d < img->n_devices && img->dev[d].online;
        x->dev[d].set = dm && d < dm->n_assets && dm->asset[d].set;
        x->dev[d].final_w = dm && d < dm->n_assets ? dm->asset[d].final_w : NAN;
        struct gwmetrics_modbus mb = {.breaker_state = -1};
        if (s->fn && s->fn(s->transport, &s->cfg->devices[d], &mb) != 0)
            mb.breaker_state = -1;
        x->dev[d].breaker = mb.breaker_state;
        for (size_t k = 0; k < s->n_ep; k++)
            if (s->ep_dev[k] == d)
                x->ep[k] = mb;
    }
    /* publish unless a scrape is copying this site right now: the next cycle will */
    if (pthread_mutex_trylock(&s->mu) == 0) {
        snap_copy(&s->pub, x, s->n_dev, s->n_ep);
        s->published = 1;
        pthread_mutex_unlock(&s->mu);
    }
}

/* ---- rendering ------------------------------------------------------------------------------ */

/* a label value: \ " and newline escaped (ids are plain, but a configuration is input) */
static void label(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', f);
        if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void site_sample(FILE *f, const char *name, const char *site, double v)
{
    fprintf(f, "%s{site=\"", name);
    label(f, site);
    fprintf(f, "\"} %.17g\n", v);
}

static void pair_sample(FILE *f, const char *name, const char *site, const char *k, const char *kv,
                        double v)
{
    fprintf(f, "%s{site=\"", name);
    label(f, site);
    fprintf(f, "\",%s=\"", k);
    label(f, kv);
    fprintf(f, "\"} %.17g\n", v);
}

struct view {
    const struct msite *s;
    struct snap c;
};

/* per-site uint64 fields of struct snap, by offset */
#define U64(field) offsetof(struct snap, field)
static const struct {
    const char *name, *type, *help;
    size_t off;
    int uplink; /* only for sites with an uplink */
} site_u64[] = {
    {"der_gateway_late_cycles_total", "counter",
     "cycles that started more than half a poll period late", U64(late), 0},
    {"der_gateway_uplink_connects_total", "counter", "streams to the headend opened", U64(connects),
     1},
    {"der_gateway_uplink_disconnects_total", "counter", "streams to the headend lost",
     U64(disconnects), 1},
    {"der_gateway_telemetry_sent_total", "counter", "telemetry messages sent", U64(tel_sent), 1},
    {"der_gateway_telemetry_dropped_total", "counter",
     "telemetry messages lost (memory queue full, or the spool's oldest dropped)", U64(tel_dropped),
     1},
    {"der_gateway_spooled_total", "counter", "telemetry messages written to the spool",
     U64(spooled), 1},
    {"der_gateway_setpoints_received_total", "counter", "setpoints received from the headend",
     U64(setpoints), 1},
    {"der_gateway_acks_sent_total", "counter", "setpoint acks sent to the headend", U64(acks_sent),
     1},
    {"der_gateway_uplink_queue_depth", "gauge", "telemetry messages waiting in memory",
     U64(queue_depth), 1},
    {"der_gateway_spool_depth", "gauge", "telemetry records in the spool, not yet acknowledged",
     U64(spool_records), 1},
};

static const struct {
    const char *name, *help;
    size_t off;
} ep_u64[] = {
    {"der_gateway_modbus_requests_total", "Modbus read and write calls",
     offsetof(struct gwmetrics_modbus, requests)},
    {"der_gateway_modbus_ok_total", "Modbus calls that succeeded",
     offsetof(struct gwmetrics_modbus, ok)},
    {"der_gateway_modbus_timeouts_total", "Modbus attempts without a reply in time",
     offsetof(struct gwmetrics_modbus, timeouts)},
    {"der_gateway_modbus_exceptions_total", "Modbus calls answered with an exception",
     offsetof(struct gwmetrics_modbus, exceptions)},
    {"der_gateway_modbus_connection_errors_total",
     "Modbus attempts that failed to connect or lost the connection",
     offsetof(struct gwmetrics_modbus, conn_errors)},
    {"der_gateway_modbus_protocol_errors_total", "malformed or mismatched Modbus replies",
     offsetof(struct gwmetrics_modbus, proto_errors)},
    {"der_gateway_modbus_retries_total", "Modbus attempts after the first of a call",
     offsetof(struct gwmetrics_modbus, retries)},
    {"der_gateway_breaker_opens_total", "circuit breakers opened on the endpoint",
     offsetof(struct gwmetrics_modbus, breaker_opens)},
};

static void render(FILE *f, const struct view *v, size_t n, const char *version, const char *commit)
{
    family(f, "der_gateway_build_info", "gauge", "the build: version and commit");
    fputs("der_gateway_build_info{version=\"", f);
    label(f, version);
    fputs("\",commit=\"", f);
    label(f, commit);
    fputs("\"} 1\n", f);
    family(f, "der_gateway_sites", "gauge", "sites this process runs");
    fprintf(f, "der_gateway_sites %zu\n", n);

    family(f, "der_gateway_cycle_seconds", "histogram", "wall time of one control cycle");
    for (size_t i = 0; i < n; i++) {
        for (size_t b = 0; b < NB; b++) {
            fputs("der_gateway_cycle_seconds_bucket{site=\"", f);
            label(f, v[i].s->id);
            fprintf(f, "\",le=\"%g\"} %llu\n", bucket_s[b], (unsigned long long)v[i].c.hist[b]);
        }
        fputs("der_gateway_cycle_seconds_bucket{site=\"", f);
        label(f, v[i].s->id);
        fprintf(f, "\",le=\"+Inf\"} %llu\n", (unsigned long long)v[i].c.cycles);
        site_sample(f, "der_gateway_cycle_seconds_sum", v[i].s->id, v[i].c.sum_s);
        site_sample(f, "der_gateway_cycle_seconds_count", v[i].s->id, (double)v[i].c.cycles);
    }
    for (size_t k = 0; k < sizeof site_u64 / sizeof site_u64[0]; k++) {
        family(f, site_u64[k].name, site_u64[k].type, site_u64[k].help);
        for (size_t i = 0; i < n; i++)
            if (!site_u64[k].uplink || v[i].c.has_up)
                site_sample(f, site_u64[k].name, v[i].s->id,
                            (double)*(const uint64_t *)((const char *)&v[i].c + site_u64[k].off));
    }
    family(f, "der_gateway_uplink_connected", "gauge",
           "the stream to the headend is up (1) or not (0)");
    for (size_t i = 0; i < n; i++)
        if (v[i].c.has_up)
            site_sample(f, "der_gateway_uplink_connected", v[i].s->id, v[i].c.connected);
    family(f, "der_gateway_uplink_registered", "gauge",
           "the headend accepted the site's registration on the current stream");
    for (size_t i = 0; i < n; i++)
        if (v[i].c.has_up)
            site_sample(f, "der_gateway_uplink_registered", v[i].s->id, v[i].c.registered);

    static const struct {
        const char *name, *help;
        size_t off;
    } watts[] = {
        {"der_gateway_grid_watts", "the grid meter's power (+ import), when it can be trusted",
         offsetof(struct snap, grid_w)},
        {"der_gateway_strategy_output_watts",
         "the strategy's own site-level output before arbitration (+ discharge)",
         offsetof(struct snap, raw_w)},
        {"der_gateway_site_request_watts",
         "the site request of the last cycle, split among the batteries (+ discharge)",
         offsetof(struct snap, request_w)},
    };
    for (size_t k = 0; k < sizeof watts / sizeof watts[0]; k++) {
        family(f, watts[k].name, "gauge", watts[k].help);
        for (size_t i = 0; i < n; i++) {
            /* cppcheck-suppress invalidPointerCast ; off is an offsetof() of a double member */
            double w = *(const double *)((const char *)&v[i].c + watts[k].off);
            if (isfinite(w)) /* no sample rather than NaN: nothing was requested */
                site_sample(f, watts[k].name, v[i].s->id, w);
        }
    }
    family(f, "der_gateway_setpoint_watts", "gauge",
           "the setpoint safety let through for a device in the last cycle, when it commands one");
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < v[i].s->n_dev; d++)
            if (v[i].c.dev[d].set && isfinite(v[i].c.dev[d].final_w))
                pair_sample(f, "der_gateway_setpoint_watts", v[i].s->id, "device",
                            v[i].s->cfg->devices[d].asset_id, v[i].c.dev[d].final_w);
    family(f, "der_gateway_device_online", "gauge", "the device's last poll succeeded (1) or not");
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < v[i].s->n_dev; d++)
            pair_sample(f, "der_gateway_device_online", v[i].s->id, "device",
                        v[i].s->cfg->devices[d].asset_id, v[i].c.dev[d].online);
    family(f, "der_gateway_breaker_state", "gauge",
           "the device's circuit breaker: 0 closed, 1 open, 2 half-open");
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < v[i].s->n_dev; d++)
            if (v[i].c.dev[d].breaker >= 0)
                pair_sample(f, "der_gateway_breaker_state", v[i].s->id, "device",
                            v[i].s->cfg->devices[d].asset_id, v[i].c.dev[d].breaker);
    for (size_t k = 0; k < sizeof ep_u64 / sizeof ep_u64[0]; k++) {
        family(f, ep_u64[k].name, "counter", ep_u64[k].help);
        for (size_t i = 0; i < n; i++)
            for (size_t e = 0; e < v[i].s->n_ep; e++)
                if (v[i].s->fn)
                    pair_sample(
                        f, ep_u64[k].name, v[i].s->id, "endpoint", v[i].s->ep_name[e],
                        (double)*(const uint64_t *)((const char *)&v[i].c.ep[e] + ep_u64[k].off));
    }
}

char *gwmetrics_render(struct gwmetrics *m, size_t *len)
{
    char *buf = NULL;
    size_t blen = 0;
    pthread_mutex_lock(&m->reg);
    size_t n = m->n;
    struct view *v = calloc(n ? n : 1, sizeof *v);
    size_t k = 0;
    int oom = !v;
    for (size_t i = 0; i < n && !oom; i++) {
        struct msite *s = m->s[i];
        if (!s)
            continue;
        if (snap_alloc(&v[k].c, s->n_dev, s->n_ep)) {
            snap_free(&v[k].c);
            oom = 1;
            break;
        }
        pthread_mutex_lock(&s->mu); /* the copy only: the site's cycle never waits for it */
        int have = s->published;
        if (have)
            snap_copy(&v[k].c, &s->pub, s->n_dev, s->n_ep);
        pthread_mutex_unlock(&s->mu);
        v[k].s = s;
        if (have)
            k++;
        else
            snap_free(&v[k].c); /* a site before its first cycle has no series yet */
    }
    pthread_mutex_unlock(&m->reg);
    FILE *f = oom ? NULL : open_memstream(&buf, &blen);
    if (f) {
        render(f, v, k, m->version, m->commit);
        if (fclose(f) != 0) {
            free(buf);
            buf = NULL;
        }
    }
    for (size_t i = 0; i < k; i++)
        snap_free(&v[i].c);
    free(v);
    if (len)
        *len = buf ? blen : 0;
    return buf;
}

/* ---- the listener --------------------------------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct gwmetrics *m = cls;
    (void)version;
    (void)upload_data;
    if (!*con_cls) { /* the headers: answer after the (empty) body */
        *con_cls = m;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* a body is ignored */
        return MHD_YES;
    }
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    unsigned status = MHD_HTTP_OK;
    size_t n = 0;
    char *body = NULL;
    if (strcmp(url, "/metrics") != 0) {
        status = MHD_HTTP_NOT_FOUND;
        body = strdup("not found: der-gateway serves GET /metrics\n");
    } else if (!get) {
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
        body = strdup("use GET /metrics\n");
    } else if (!(body = gwmetrics_render(m, &n))) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        body = strdup("out of memory\n");
    }
    if (status != MHD_HTTP_OK)
        n = body ? strlen(body) : 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        n, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type",
                            status == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
                                                  : "text/plain; charset=utf-8");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    /* cppcheck-suppress memleak ; MHD frees body (MHD_RESPMEM_MUST_FREE) */
    return rc;
}

int gwmetrics_listen(struct gwmetrics *m, const char *listen, int *port, char *err, size_t errlen)
{
    char host[64];
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char *end;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == listen || end == colon + 1 || *end || p < 0 || p > 65535 ||
        (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, errlen, "--metrics-listen wants HOST:PORT (e.g. 127.0.0.1:9464), got \"%s\"",
                 listen ? listen : "");
        return -EINVAL;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    size_t hl = strlen(host);
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        host[hl - 1] = '\0';
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)p);
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
            goto bad_host;
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)p);
        if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            goto bad_host;
    }
    /* a scrape every few seconds from one or two Prometheus servers: a few connections, one
     * thread, a short timeout. The timeout is per idle gap, so a client that trickles a byte
     * every few seconds holds its slot for as long as it likes: at most 8 slots per client
     * address, so slow clients on one host cannot lock the Prometheus host out
     * (tests/hostile/FINDINGS.md, 21) */
    m->d = MHD_start_daemon(flags, (uint16_t)p, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 64,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, 8, MHD_OPTION_CONNECTION_TIMEOUT,
                            10, MHD_OPTION_END);
    if (!m->d) {
        snprintf(err, errlen, "--metrics-listen %s: cannot listen (the port is taken?)", listen);
        return -EADDRINUSE;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    if (port)
        *port = info ? info->port : (int)p;
    return 0;
bad_host:
    snprintf(err, errlen,
             "--metrics-listen %s: the host must be a numeric IPv4 address or [IPv6] address, got "
             "\"%s\"",
             listen, host);
    return -EINVAL;
}

void gwmetrics_free(struct gwmetrics *m)
{
    if (!m)
        return;
    if (m->d)
        MHD_stop_daemon(m->d);
    for (size_t i = 0; i < m->n; i++)
        site_free(m->s[i]);
    free(m->s);
    pthread_mutex_destroy(&m->reg);
    free(m);
}
