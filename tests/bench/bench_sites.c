/* bench_sites: the fleet view at scale, in process. A hub with N sites (default 10,000) of 5
 * assets each (grid meter, 2 batteries, PV, EV charger; SQLite in memory), every site
 * registered on its own session and every asset with a sample, so every row has numbers;
 * then GET /sites as the console asks for it (one page of 200 sorted by grid power), the
 * whole fleet's /sites, /sites/:id, and the ingest cost of one telemetry message with the
 * per-site aggregate kept up to date. Prints mean and p99 latency and the answer sizes.
 * Then a dispatch to one group (a tenth of the sites: vpp-0), timed from POST to the answer
 * (one site setpoint per site stored and sent). Usage: bench_sites [SITES [CALLS [STORE]]]
 * (default 10000 50 :memory:; STORE a SQLite file for the group dispatch's real writes). Targets at
 * 10,000 sites: the console's page under 50 ms on average, the whole fleet's /sites under 1 s at
 * p99 (wall clock, on a machine that may be shared; the CPU time per call is printed beside). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "headend/hub.h"
#include "headend/rest.h"
#include "proto/der/v1/agent.pb-c.h"
#include "tests/bench/bench.h"

static const char *const KINDS[] = {"grid", "bat-1", "bat-2", "pv", "evse"};
static const char *const TYPES[] = {"meter", "battery", "battery", "pv", "evse"};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

static int keep_nothing(void *link, const Der__V1__HeadendMessage *m)
{
    return 0;
}

static void close_nothing(void *link, int status, const char *reason)
{
}

static const struct session_link_ops quiet_ops = {keep_nothing, close_nothing};

static char *inventory_json(int n)
{
    size_t cap = (size_t)n * 700 + 64, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "{\"sites\":[");
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(s + len, cap - len,
                                "%s{\"site_id\":\"site-%05d\",\"group\":\"vpp-%d\","
                                "\"gateways\":[\"gw-%05d\"],\"assets\":[",
                                i ? "," : "", i, i % 10, i);
        for (int k = 0; k < 5; k++)
            len += (size_t)snprintf(s + len, cap - len,
                                    "%s{\"asset_id\":\"site-%05d-%s\",\"type\":\"%s\","
                                    "\"min_power_w\":%d,\"max_power_w\":%d}",
                                    k ? "," : "", i, KINDS[k], TYPES[k], k == 1 ? -5000 : 0,
                                    k == 1 ? 5000 : 10000);
        len += (size_t)snprintf(s + len, cap - len, "]}");
    }
    snprintf(s + len, cap - len, "]}");
    return s;
}

static int feed(struct hub *h, struct session *s, Der__V1__AgentMessage *m, int64_t now)
{
    uint8_t buf[1024];
    size_t n = der__v1__agent_message__pack(m, buf);
    char reason[200];
    int status;
    hub_lock(h);
    int rc = hub_on_message(h, s, buf, n, now, &status, reason, sizeof(reason));
    hub_unlock(h);
    return rc;
}

static int connect_site(struct hub *h, int i, int64_t now, struct session **out)
{
    char gw[32], site[32], ids[5][48];
    snprintf(gw, sizeof(gw), "gw-%05d", i);
    snprintf(site, sizeof(site), "site-%05d", i);
    Der__V1__AssetInfo infos[5], *ip[5];
    for (int k = 0; k < 5; k++) {
        snprintf(ids[k], sizeof(ids[k]), "site-%05d-%s", i, KINDS[k]);
        der__v1__asset_info__init(&infos[k]);
        infos[k].asset_id = ids[k];
        ip[k] = &infos[k];
    }
    hub_lock(h);
    int e = hub_stream_open(h, "bench", &quiet_ops, NULL, now, out);
    hub_unlock(h);
    if (e)
        return e;
    Der__V1__Register r = DER__V1__REGISTER__INIT;
    r.gateway_id = gw;
    r.site_id = site;
    r.n_assets = 5;
    r.assets = ip;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = 1;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_REGISTER;
    m.register_ = &r;
    return feed(h, *out, &m, now);
}

static int sample(struct hub *h, struct session *s, int i, int k, uint64_t seq, int64_t now)
{
    char id[48];
    snprintf(id, sizeof(id), "site-%05d-%s", i, KINDS[k]);
    Der__V1__Telemetry t = DER__V1__TELEMETRY__INIT;
    Der__V1__StorageDetails sd = DER__V1__STORAGE_DETAILS__INIT;
    t.asset_id = id;
    t.ts_ms = now;
    t.telemetry_seq = seq;
    t.power_w = (double)((i * 37 + k * 11 + (int)seq) % 5000) - 2500;
    t.online = 1;
    if (k == 1 || k == 2) {
        sd.soc = 0.2 + 0.6 * (double)(i % 100) / 100.0;
        t.details_case = DER__V1__TELEMETRY__DETAILS_STORAGE;
        t.storage = &sd;
    }
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = seq;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_TELEMETRY;
    m.telemetry = &t;
    return feed(h, s, &m, now);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct args {
    const char *const *kv;
};

static const char *arg(void *ctx, const char *key)
{
    for (const char *const *kv = ((struct args *)ctx)->kv; kv[0]; kv += 2)
        if (!strcmp(kv[0], key))
            return kv[1];
    return NULL;
}

/* calls x GET path: mean and p99 in ms (wall clock), the CPU time per call (*cpu, ms: the
 * machine may be shared), the answer's size in bytes. */
static int measure(struct hub *h, const char *path, const char *const *kv, int calls, int64_t now,
                   double *mean, double *p99, double *cpu, size_t *bytes)
{
    double *t = calloc((size_t)calls, sizeof(*t)), sum = 0;
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    struct args a = {kv};
    for (int c = 0; c < calls; c++) {
        struct rest_response r;
        double t0 = now_s();
        rest_handle(h, "GET", path, arg, &a, NULL, 0, now, &r);
        t[c] = (now_s() - t0) * 1e3;
        sum += t[c];
        *bytes = r.body ? strlen(r.body) : 0;
        int status = r.status;
        free(r.body);
        if (status != 200) {
            fprintf(stderr, "bench_sites: GET %s answered %d\n", path, status);
            free(t);
            return -1;
        }
    }
    *cpu = (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0) * 1e3 / calls;
    qsort(t, (size_t)calls, sizeof(*t), cmp_double);
    *mean = sum / calls;
    *p99 = t[(int)ceil(0.99 * calls) - 1];
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10000, calls = argc > 2 ? atoi(argv[2]) : 50;
    const char *db = argc > 3 ? argv[3] : ":memory:";
    if (n < 1 || calls < 1) {
        fprintf(stderr, "usage: bench_sites [SITES [CALLS]]\n");
        return 2;
    }
    log_set_level(LOG_ERROR);
    char err[256], *inv_json = inventory_json(n);
    struct inventory *inv;
    struct store *st;
    struct headend_config cfg;
    config_defaults(&cfg);
    struct hub *h = NULL;
    int64_t now = 1800000000000LL;
    if (inventory_parse(inv_json, &inv, err, sizeof(err)) ||
        store_open(db, &st, err, sizeof(err)) || hub_new(&cfg, inv, st, now, &h)) {
        fprintf(stderr, "bench_sites: setup: %s\n", err);
        return 1;
    }
    free(inv_json);
    struct session **ss = calloc((size_t)n, sizeof(*ss));
    for (int i = 0; i < n; i++)
        if (connect_site(h, i, now, &ss[i])) {
            fprintf(stderr, "bench_sites: site %d did not register\n", i);
            return 1;
        }
    double t0 = now_s();
    uint64_t msgs = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 5; k++, msgs++)
            if (sample(h, ss[i], i, k, 2 + (uint64_t)k, now + 1000)) {
                fprintf(stderr, "bench_sites: telemetry refused\n");
                return 1;
            }
    double ingest_us = (now_s() - t0) * 1e6 / (double)msgs;
    hub_lock(h);
    hub_flush(h);
    hub_unlock(h);

    double mean, p99, cpu;
    size_t bytes;
    const char *page[] = {"limit", "200", "sort", "-grid_w", NULL};
    const char *none[] = {NULL};
    int failed = 0;
    printf("sites %d, assets %d, calls %d\n", n, 5 * n, calls);
    printf("telemetry ingest with the site aggregate: %.2f us/message (store flush aside)\n",
           ingest_us);
    if (measure(h, "/sites", page, calls, now + 2000, &mean, &p99, &cpu, &bytes) == 0) {
        printf("GET /sites?limit=200&sort=-grid_w: mean %.2f ms, p99 %.2f ms, cpu %.2f ms, "
               "%zu bytes\n",
               mean, p99, cpu, bytes);
        bench_target("bench_sites", "console page mean", mean, "ms", "<", 50);
    } else {
        failed = 1;
    }
    if (measure(h, "/sites", none, calls < 10 ? calls : 10, now + 2000, &mean, &p99, &cpu,
                &bytes) == 0) {
        printf("GET /sites (all %d rows): mean %.2f ms, p99 %.2f ms, cpu %.2f ms, %zu bytes\n", n,
               mean, p99, cpu, bytes);
        bench_target("bench_sites", "whole fleet p99", p99, "ms", "<", 1000);
    } else {
        failed = 1;
    }
    if (measure(h, "/sites/site-00042", none, calls, now + 2000, &mean, &p99, &cpu, &bytes) == 0)
        printf("GET /sites/:id: mean %.3f ms, p99 %.3f ms, cpu %.3f ms, %zu bytes\n", mean, p99,
               cpu, bytes);
    else
        failed = 1;
    const char *body = "{\"group_id\":\"vpp-0\",\"mw\":0.5,\"ttl_s\":60}";
    struct rest_response r;
    double g0 = now_s();
    rest_handle(h, "POST", "/dispatch", NULL, NULL, body, strlen(body), now + 2500, &r);
    double group_ms = (now_s() - g0) * 1e3;
    cJSON *gj = r.status == 202 ? cJSON_Parse(r.body) : NULL;
    int nsp = gj ? cJSON_GetArraySize(cJSON_GetObjectItem(gj, "setpoints")) : 0;
    cJSON_Delete(gj);
    free(r.body);
    if (nsp) {
        printf("POST /dispatch {group_id} to %d sites (%s store): %.1f ms\n", nsp, db, group_ms);
        bench_target("bench_sites", "group dispatch POST", group_ms, "ms", "<", 2000);
    } else {
        fprintf(stderr, "bench_sites: the group dispatch answered %d\n", r.status);
        failed = 1;
    }
    hub_lock(h);
    for (int i = 0; i < n; i++)
        hub_stream_closed(h, ss[i], "bench done", now + 3000);
    hub_unlock(h);
    free(ss);
    hub_free(h);
    return bench_exit(failed);
}
