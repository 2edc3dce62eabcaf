/* Unit tests for the headend's pure modules: strmap, config table, inventory and claim checks,
 * routing maps (registry), the SQLite store in memory, the hub protocol logic with a fake
 * link (register, claims, replacement, primary-asset rule, dispatch replay, acks, expiry),
 * REST validation of every bad input, and protobuf round trips. No sockets, no gRPC. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>

#include "headend/config.h"
#include "headend/hub.h"
#include "headend/inventory.h"
#include "common/log.h"
#include "headend/rest.h"
#include "headend/session.h"
#include "headend/store.h"
#include "headend/strmap.h"
#include "proto/der/v1/agent.pb-c.h"

static const char INV_JSON[] =
    "{\"sites\":[{\"site_id\":\"s1\",\"gateways\":[\"gw1\"],\"assets\":["
    "{\"asset_id\":\"s1-bat\",\"type\":\"battery\",\"capacity_wh\":10000,"
    "\"min_power_w\":-5000000,\"max_power_w\":5000000},"
    "{\"asset_id\":\"s1-pv\",\"type\":\"pv\",\"min_power_w\":0,\"max_power_w\":1000000}]},"
    "{\"site_id\":\"s2\",\"gateways\":[\"gw2\",\"gw2b\"],\"assets\":["
    "{\"asset_id\":\"s2-bat\",\"type\":\"battery\",\"min_power_w\":-1000000,"
    "\"max_power_w\":1000000}]}]}";

/* ---- strmap ---- */
static void test_strmap(void)
{
    struct strmap *m = strmap_new();
    char key[32];
    int vals[2000];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        vals[i] = i;
        CU_ASSERT_EQUAL(strmap_put(m, key, &vals[i], NULL), 0);
    }
    CU_ASSERT_EQUAL(strmap_count(m), 2000);
    for (int i = 0; i < 2000; i += 2) {
        snprintf(key, sizeof(key), "k%d", i);
        CU_ASSERT_PTR_EQUAL(strmap_del(m, key), &vals[i]);
    }
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        int *v = strmap_get(m, key);
        CU_ASSERT(i % 2 ? v && *v == i : v == NULL);
    }
    void *old;
    CU_ASSERT_EQUAL(strmap_put(m, "k1", &vals[5], &old), 0);
    CU_ASSERT_PTR_EQUAL(old, &vals[1]);
    CU_ASSERT_EQUAL(strmap_count(m), 1000);
    strmap_free(m);
}

/* ---- config ---- */
static void test_config(void)
{
    struct headend_config c;
    char err[256];
    config_defaults(&c);
    CU_ASSERT_STRING_EQUAL(c.grpc_listen, "127.0.0.1:50051");
    CU_ASSERT_STRING_EQUAL(c.http_listen, "127.0.0.1:8080");
    CU_ASSERT_EQUAL(c.keepalive_time_ms, 10000);
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(config_set(&c, "keepalive_time_ms", "2000", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(c.keepalive_time_ms, 2000);
    CU_ASSERT_EQUAL(config_set(&c, "keepalive-time-ms", "12x", err, sizeof(err)), -EINVAL);
    CU_ASSERT_EQUAL(config_set(&c, "keepalive-time-ms", "5", err, sizeof(err)), -ERANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "keepalive-time-ms"));
    CU_ASSERT_EQUAL(config_set(&c, "no-such", "1", err, sizeof(err)), -ENOENT);
    CU_ASSERT_EQUAL(config_set(&c, "dispatch-ttl-min-s", "100", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(config_set(&c, "dispatch-ttl-max-s", "50", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), -EINVAL);

    /* TLS files go together; plaintext gRPC only on loopback unless --insecure */
    static const char *const loop[] = {"127.0.0.1:0", "127.1.2.3:5",      "localhost:50051",
                                       "[::1]:1",     "ipv4:127.0.0.1:9", "unix:/run/x.sock"};
    static const char *const open_[] = {
        "0.0.0.0:50051",      "[::]:1", ":50051", "10.0.0.1:1", "headend.example:443",
        "127.0.0.1.example:1"};
    for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++)
        CU_ASSERT(config_is_loopback(loop[i]));
    for (size_t i = 0; i < sizeof(open_) / sizeof(open_[0]); i++)
        CU_ASSERT(!config_is_loopback(open_[i]));
    config_defaults(&c);
    CU_ASSERT_STRING_EQUAL(config_grpc_tls_mode(&c), "off");
    CU_ASSERT_EQUAL(config_set(&c, "grpc-listen", "0.0.0.0:50051", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--insecure"));
    config_set(&c, "tls-cert", "h.pem", err, sizeof(err));
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), -EINVAL); /* no key */
    config_set(&c, "tls-key", "h.key", err, sizeof(err));
    CU_ASSERT_STRING_EQUAL(config_grpc_tls_mode(&c), "server");
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), -EINVAL); /* server TLS is not enough */
    config_set(&c, "tls-client-ca", "ca.pem", err, sizeof(err));
    CU_ASSERT_STRING_EQUAL(config_grpc_tls_mode(&c), "mutual");
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), 0);
    config_defaults(&c);
    config_set(&c, "grpc-listen", "0.0.0.0:50051", err, sizeof(err));
    CU_ASSERT_EQUAL(config_set(&c, "insecure", "1", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), 0);
    config_defaults(&c);
    config_set(&c, "tls-client-ca", "ca.pem", err, sizeof(err));
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), -EINVAL); /* a CA without a cert */
    for (size_t i = 0; i < config_count(); i++)
        CU_ASSERT_EQUAL(config_is_flag(i), !strcmp(config_name(i), "insecure") ||
                                               !strcmp(config_name(i), "auth") ||
                                               !strcmp(config_name(i), "metrics-per-site"));
}

/* ---- inventory and claims ---- */
static void test_inventory_claims(void)
{
    struct inventory *inv;
    char err[256], why[160];
    CU_ASSERT_EQUAL_FATAL(inventory_parse(INV_JSON, &inv, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(inventory_site_count(inv), 2);
    CU_ASSERT_EQUAL(inventory_asset_count(inv), 3);
    const struct inv_asset *a = inventory_asset(inv, "s2-bat");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_STRING_EQUAL(inventory_site_at(inv, a->site)->id, "s2");
    CU_ASSERT_EQUAL(a->type, 1);
    CU_ASSERT_EQUAL(inventory_check_claim(inv, "gw1", "s1", "s1-bat", why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(inventory_check_claim(inv, "gw1", "s1", "s2-bat", why, sizeof(why)), -EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "belongs to site s2"));
    CU_ASSERT_EQUAL(inventory_check_claim(inv, "gw2", "s1", "s1-bat", why, sizeof(why)), -EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "not allowed"));
    CU_ASSERT_EQUAL(inventory_check_claim(inv, "gw1", "s9", "s1-bat", why, sizeof(why)), -ENOENT);
    CU_ASSERT_EQUAL(inventory_check_claim(inv, "gw1", "s1", "zz", why, sizeof(why)), -ENOENT);
    CU_ASSERT_EQUAL(inventory_check_gateway(inv, "gw2b", "s2", why, sizeof(why)), 0);
    inventory_free(inv);
}

static void test_inventory_errors(void)
{
    static const char *const bad[] = {
        "{",
        "{\"sites\":{}}",
        "{\"sitez\":[]}",
        "{\"sites\":[{\"site_id\":\"a\",\"gateways\":[],\"assets\":[]}]}",
        "{\"sites\":[{\"site_id\":\"a\",\"gateways\":[\"g\"],\"assets\":[{\"asset_id\":\"x\","
        "\"type\":\"rocket\"}]}]}",
        "{\"sites\":[{\"site_id\":\"a\",\"gateways\":[\"g\"],\"assets\":[{\"asset_id\":\"x\","
        "\"min_power_w\":5,\"max_power_w\":1}]}]}",
        "{\"sites\":[{\"site_id\":\"a\",\"gateways\":[\"g\"],\"assets\":[{\"asset_id\":\"x\"},"
        "{\"asset_id\":\"x\"}]}]}",
        "{\"sites\":[{\"site_id\":\"a\",\"gateways\":[\"g\"],\"assets\":[{\"asset_id\":\"x\","
        "\"max_pwr\":1}]}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct inventory *inv = NULL;
        char err[256] = "";
        CU_ASSERT_EQUAL(inventory_parse(bad[i], &inv, err, sizeof(err)), -EINVAL);
        CU_ASSERT_PTR_NULL(inv);
        CU_ASSERT(err[0] != 0);
    }
}

/* ---- routing maps ---- */
static void test_registry(void)
{
    struct registry *r = registry_new(2, 3);
    size_t a1[] = {0, 1}, a2[] = {0, 1};
    struct session s1 = {.site = 0, .assets = a1, .n_assets = 2};
    struct session s2 = {.site = 0, .assets = a2, .n_assets = 1};
    struct session *old;
    CU_ASSERT_EQUAL(registry_attach(r, &s1, &old), 0);
    CU_ASSERT_PTR_NULL(old);
    CU_ASSERT_PTR_EQUAL(registry_site(r, 0), &s1);
    CU_ASSERT_PTR_EQUAL(registry_asset(r, 1), &s1);
    CU_ASSERT_EQUAL(registry_sessions(r), 1);
    /* a reconnect of the same site replaces s1 entirely, even assets s2 did not claim */
    CU_ASSERT_EQUAL(registry_attach(r, &s2, &old), 0);
    CU_ASSERT_PTR_EQUAL(old, &s1);
    CU_ASSERT_PTR_EQUAL(registry_asset(r, 0), &s2);
    CU_ASSERT_PTR_NULL(registry_asset(r, 1));
    CU_ASSERT_EQUAL(registry_sessions(r), 1);
    registry_detach(r, &s1); /* stale detach is harmless */
    CU_ASSERT_PTR_EQUAL(registry_site(r, 0), &s2);
    registry_detach(r, &s2);
    CU_ASSERT_PTR_NULL(registry_site(r, 0));
    CU_ASSERT_EQUAL(registry_sessions(r), 0);
    struct session bad = {.site = 7};
    CU_ASSERT_EQUAL(registry_attach(r, &bad, &old), -EINVAL);
    CU_ASSERT_PTR_NULL(registry_site(r, 99));
    registry_free(r);
}

/* ---- store (SQLite in memory) ---- */
static int count_cb(const void *rec, void *ctx)
{
    (*(int *)ctx)++;
    return 0;
}

static void test_store(void)
{
    struct store *st;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(store_open(":memory:", &st, err, sizeof(err)), 0);
    int64_t v;
    CU_ASSERT_EQUAL(st->ops->next_counter(st, "setpoint", &v), 0);
    CU_ASSERT_EQUAL(v, 1);
    st->ops->next_counter(st, "setpoint", &v);
    CU_ASSERT_EQUAL(v, 2);
    struct store_telemetry t = {.asset_id = "a",
                                .ts_ms = 1000,
                                .received_ms = 1000,
                                .seq = 1,
                                .power_w = 5,
                                .setpoint_w = NAN,
                                .soc = 0.5,
                                .online = 1};
    st->ops->begin(st);
    for (int i = 0; i < 10; i++) {
        t.ts_ms = t.received_ms = 1000 + i * 100;
        t.seq = (uint64_t)i;
        CU_ASSERT_EQUAL(st->ops->telemetry_add(st, &t), 0);
    }
    CU_ASSERT_EQUAL(st->ops->commit(st), 0);
    int n = 0;
    st->ops->telemetry_range(st, "a", 1200, 1500, 100, (store_telemetry_cb)count_cb, &n);
    CU_ASSERT_EQUAL(n, 4);
    struct store_telemetry l;
    CU_ASSERT_EQUAL(st->ops->telemetry_latest(st, "a", &l), 0);
    CU_ASSERT_EQUAL(l.seq, 9);
    CU_ASSERT(isnan(l.setpoint_w));
    CU_ASSERT_EQUAL(st->ops->telemetry_latest(st, "b", &l), -ENOENT);
    int64_t del;
    CU_ASSERT_EQUAL(st->ops->telemetry_prune(st, 1500, &del), 0);
    CU_ASSERT_EQUAL(del, 5);
    CU_ASSERT_EQUAL(st->ops->telemetry_prune(st, 99999, &del), 0);
    CU_ASSERT_EQUAL(del, 5);

    struct store_dispatch d = {
        .id = "sp-1", .seq = 1, .site_id = "s1", .power_w = 7, .created_ms = 10, .expires_ms = 100};
    CU_ASSERT_EQUAL(st->ops->dispatch_add(st, &d), 0);
    CU_ASSERT_EQUAL(st->ops->dispatch_add(st, &d), -EEXIST);
    d.seq = 2;
    snprintf(d.id, sizeof(d.id), "sp-2");
    d.expires_ms = 1000;
    st->ops->dispatch_add(st, &d);
    n = 0;
    st->ops->dispatch_pending(st, "s1", 50, (store_dispatch_cb)count_cb, &n);
    CU_ASSERT_EQUAL(n, 2);
    n = 0;
    CU_ASSERT_EQUAL(st->ops->dispatch_expire(st, 100, (store_dispatch_cb)count_cb, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    struct store_dispatch g;
    CU_ASSERT_EQUAL(st->ops->dispatch_get(st, "sp-1", &g), 0);
    CU_ASSERT_EQUAL(g.state, DISPATCH_EXPIRED);
    CU_ASSERT_EQUAL(st->ops->dispatch_get(st, "sp-9", &g), -ENOENT);
    struct store_alloc al[2] = {{"a", 1}, {"b", 2}};
    CU_ASSERT_EQUAL(st->ops->alloc_set(st, "sp-2", al, 2), 0);
    n = 0;
    st->ops->alloc_list(st, "sp-2", (store_alloc_cb)count_cb, &n);
    CU_ASSERT_EQUAL(n, 2);
    struct store_session s = {.gateway_id = "gw1", .site_id = "s1", .peer = "p", .started_ms = 5};
    CU_ASSERT_EQUAL(st->ops->session_start(st, &s), 0);
    CU_ASSERT(s.id > 0);
    CU_ASSERT_EQUAL(st->ops->session_end(st, s.id, 9, "bye"), 0);
    n = 0;
    st->ops->sessions_recent(st, "s1", 5, (store_session_cb)count_cb, &n);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(dispatch_state_parse("APPLIED"), DISPATCH_APPLIED);
    CU_ASSERT_STRING_EQUAL(dispatch_state_name(DISPATCH_QUEUED), "QUEUED");
    store_close(st);
    /* PostgreSQL: a refused connection is an error naming the reason (the backend itself is
     * tested against a real server in tests/integration/test_headend_pg.py) */
    CU_ASSERT_EQUAL(store_open("postgres://127.0.0.1:1/db", &st, err, sizeof(err)), -ENOTCONN);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Connection refused"));
}

/* ---- hub with a fake link ---- */
struct fake_link {
    Der__V1__HeadendMessage *msgs[64];
    int n;
    int closed_status;
    char closed_reason[200];
};

static int fake_send(void *link, const Der__V1__HeadendMessage *m)
{
    struct fake_link *f = link;
    uint8_t buf[4096];
    size_t n = der__v1__headend_message__pack(m, buf);
    if (f->n < 64)
        f->msgs[f->n++] = der__v1__headend_message__unpack(NULL, n, buf);
    return 0;
}

static void fake_close(void *link, int status, const char *reason)
{
    struct fake_link *f = link;
    f->closed_status = status;
    snprintf(f->closed_reason, sizeof(f->closed_reason), "%s", reason);
}

static const struct session_link_ops fake_ops = {fake_send, fake_close};

static void fake_clear(struct fake_link *f)
{
    for (int i = 0; i < f->n; i++)
        der__v1__headend_message__free_unpacked(f->msgs[i], NULL);
    memset(f, 0, sizeof(*f));
}

static struct hub *make_hub(void)
{
    struct headend_config cfg;
    config_defaults(&cfg);
    struct inventory *inv;
    struct store *st;
    char err[256];
    struct hub *h = NULL;
    log_set_level(LOG_ERROR); /* the event lines are for operators, not for test output */
    if (inventory_parse(INV_JSON, &inv, err, sizeof(err)) == 0 &&
        store_open(":memory:", &st, err, sizeof(err)) == 0)
        hub_new(&cfg, inv, st, 1000, &h);
    return h;
}

static int feed(struct hub *h, struct session *s, Der__V1__AgentMessage *m, int64_t now,
                int *status)
{
    uint8_t buf[4096];
    size_t n = der__v1__agent_message__pack(m, buf);
    char reason[200];
    return hub_on_message(h, s, buf, n, now, status, reason, sizeof(reason));
}

static int do_register(struct hub *h, struct session *s, const char *gw, const char *site,
                       const char **assets, size_t n, const char *primary, int64_t now)
{
    Der__V1__AssetInfo infos[8], *ip[8];
    for (size_t i = 0; i < n; i++) {
        der__v1__asset_info__init(&infos[i]);
        infos[i].asset_id = (char *)assets[i];
        ip[i] = &infos[i];
    }
    Der__V1__Register r = DER__V1__REGISTER__INIT;
    r.gateway_id = (char *)gw;
    r.site_id = (char *)site;
    r.n_assets = n;
    r.assets = ip;
    r.primary_asset_id = (char *)(primary ? primary : "");
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = 1;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_REGISTER;
    m.register_ = &r;
    int status = 0;
    return feed(h, s, &m, now, &status);
}

static void send_tel(struct hub *h, struct session *s, uint64_t seq, const char *asset,
                     uint64_t tseq, int64_t now)
{
    Der__V1__Telemetry t = DER__V1__TELEMETRY__INIT;
    t.asset_id = (char *)asset;
    t.ts_ms = now;
    t.telemetry_seq = tseq;
    t.power_w = (double)tseq;
    t.online = 1;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = seq;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_TELEMETRY;
    m.telemetry = &t;
    int status = 0;
    CU_ASSERT_EQUAL(feed(h, s, &m, now, &status), 0);
}

static int last_ack(const struct fake_link *f, uint64_t *through)
{
    int n = 0;
    for (int i = 0; i < f->n; i++)
        if (f->msgs[i]->body_case == DER__V1__HEADEND_MESSAGE__BODY_TELEMETRY_ACK) {
            *through = f->msgs[i]->telemetry_ack->through_seq;
            n++;
        }
    return n;
}

static int count_rows(struct hub *h, const char *asset)
{
    int n = 0;
    struct store *st = hub_store(h);
    st->ops->telemetry_range(st, asset, 0, INT64_MAX, 100000, (store_telemetry_cb)count_cb, &n);
    return n;
}

/* TelemetryAck: asked for in Register, confirmed in RegisterResult, sent only after the rows
 * are committed, cumulative, covering refused samples too; a replay adds no row; a stream
 * with many rows waiting is flushed at once; a gateway that did not ask gets none. */
static void test_hub_telemetry_acks(void)
{
    struct hub *h = make_hub();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct fake_link f = {0}, g = {0};
    struct session *s, *s2;
    hub_lock(h);
    CU_ASSERT_EQUAL(hub_stream_open(h, "ipv4:127.0.0.1:1", &fake_ops, &f, 1000, &s), 0);
    Der__V1__AssetInfo ai = DER__V1__ASSET_INFO__INIT, *aip = &ai;
    ai.asset_id = "s1-bat";
    Der__V1__Register r = DER__V1__REGISTER__INIT;
    r.gateway_id = "gw1";
    r.site_id = "s1";
    r.n_assets = 1;
    r.assets = &aip;
    r.telemetry_acks = 1;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = 1;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_REGISTER;
    m.register_ = &r;
    int status = 0;
    CU_ASSERT_EQUAL(feed(h, s, &m, 1000, &status), 0);
    CU_ASSERT_FATAL(f.n == 1 && f.msgs[0]->register_result);
    CU_ASSERT(f.msgs[0]->register_result->telemetry_acks);

    uint64_t through = 0;
    send_tel(h, s, 2, "s1-bat", 10, 1001);
    send_tel(h, s, 3, "s1-bat", 11, 1002);
    send_tel(h, s, 4, "s2-bat", 99, 1003); /* not this session's: refused, acked all the same */
    CU_ASSERT_EQUAL(last_ack(&f, &through), 0); /* nothing before the commit */
    CU_ASSERT_EQUAL(count_rows(h, "s1-bat"), 0);
    CU_ASSERT_EQUAL(hub_flush(h), 0);
    CU_ASSERT_EQUAL(last_ack(&f, &through), 1);
    CU_ASSERT_EQUAL(through, 4);
    CU_ASSERT_EQUAL(count_rows(h, "s1-bat"), 2);
    CU_ASSERT_EQUAL(hub_flush(h), 0); /* nothing new: no second ack */
    CU_ASSERT_EQUAL(last_ack(&f, &through), 1);

    /* a replay of the same samples (a new stream would renumber; seq of the stream here) */
    send_tel(h, s, 5, "s1-bat", 10, 1001);
    send_tel(h, s, 6, "s1-bat", 11, 1002);
    CU_ASSERT_EQUAL(hub_flush(h), 0);
    CU_ASSERT_EQUAL(last_ack(&f, &through), 2);
    CU_ASSERT_EQUAL(through, 6);
    CU_ASSERT_EQUAL(count_rows(h, "s1-bat"), 2);

    /* many rows waiting: flushed and acknowledged without the timer */
    for (uint64_t i = 0; i < 300; i++)
        send_tel(h, s, 7 + i, "s1-bat", 100 + i, 2000);
    CU_ASSERT(last_ack(&f, &through) >= 3);
    CU_ASSERT(through >= 7 + 255 - 1);
    CU_ASSERT(count_rows(h, "s1-bat") >= 2 + 255);

    /* a gateway that does not ask gets no TelemetryAck (old gateways) */
    CU_ASSERT_EQUAL(hub_stream_open(h, "ipv4:127.0.0.1:2", &fake_ops, &g, 1000, &s2), 0);
    CU_ASSERT_EQUAL(do_register(h, s2, "gw2", "s2", (const char *[]){"s2-bat"}, 1, NULL, 1000), 0);
    CU_ASSERT_FATAL(g.n == 1 && g.msgs[0]->register_result);
    CU_ASSERT(!g.msgs[0]->register_result->telemetry_acks);
    send_tel(h, s2, 2, "s2-bat", 5, 1001);
    CU_ASSERT_EQUAL(hub_flush(h), 0);
    CU_ASSERT_EQUAL(last_ack(&g, &through), 0);
    CU_ASSERT_EQUAL(count_rows(h, "s2-bat"), 1);

    /* a closed stream leaves the ack list (no ack to a freed session) */
    send_tel(h, s, 400, "s1-bat", 1000, 3000);
    hub_stream_closed(h, s, "test", 3000);
    CU_ASSERT_EQUAL(hub_flush(h), 0);
    hub_stream_closed(h, s2, "test", 3000);
    hub_unlock(h);
    hub_free(h);
    fake_clear(&f);
    fake_clear(&g);
}

static void test_hub_protocol(void)
{
    struct hub *h = make_hub();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct fake_link f1 = {0}, f2 = {0};
    struct session *s1, *s2;
    hub_stream_open(h, "peer1", &fake_ops, &f1, 1000, &s1);
    /* telemetry before Register is a protocol error */
    Der__V1__Telemetry t = DER__V1__TELEMETRY__INIT;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = 1;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_TELEMETRY;
    m.telemetry = &t;
    int status = 0;
    CU_ASSERT(feed(h, s1, &m, 1000, &status) < 0);
    CU_ASSERT_EQUAL(status, 9); /* FAILED_PRECONDITION */
    /* malformed bytes */
    char reason[200];
    CU_ASSERT_EQUAL(hub_on_message(h, s1, (const uint8_t *)"\xff\xff\xff", 3, 1000, &status, reason,
                                   sizeof(reason)),
                    -EBADMSG);
    CU_ASSERT_EQUAL(status, 3); /* INVALID_ARGUMENT */

    const char *claims[] = {"s1-bat", "s2-bat", "s1-pv"};
    CU_ASSERT_EQUAL(do_register(h, s1, "gw1", "s1", claims, 3, "s1-pv", 1000), 0);
    CU_ASSERT_EQUAL_FATAL(f1.n, 1);
    Der__V1__RegisterResult *rr = f1.msgs[0]->register_result;
    CU_ASSERT_EQUAL(rr->n_accepted, 2);
    CU_ASSERT_EQUAL_FATAL(rr->n_rejected, 1);
    CU_ASSERT_STRING_EQUAL(rr->rejected[0]->asset_id, "s2-bat");
    CU_ASSERT_PTR_NOT_NULL(strstr(rr->rejected[0]->reason, "site s2"));
    CU_ASSERT_STRING_EQUAL(s1->primary_asset, "s1-pv");

    /* telemetry without asset_id goes to the primary asset */
    t.power_w = 42;
    t.ts_ms = 990;
    m.seq = 2;
    CU_ASSERT_EQUAL(feed(h, s1, &m, 1000, &status), 0);
    const struct inventory *inv = hub_inventory(h);
    const struct asset_state *as = hub_asset_state(h, inventory_asset(inv, "s1-pv")->index);
    CU_ASSERT(as->has_latest && as->latest.power_w == 42 && as->lag_ms == 10);
    /* an older sample (a spool replayed after a reconnect) is history, not the latest */
    t.power_w = 7;
    t.ts_ms = 500;
    m.seq = 3;
    CU_ASSERT_EQUAL(feed(h, s1, &m, 1000, &status), 0);
    CU_ASSERT(as->latest.power_w == 42 && as->latest.ts_ms == 990 && as->lag_ms == 10);
    t.power_w = 43;
    t.ts_ms = 995;
    m.seq = 4;
    CU_ASSERT_EQUAL(feed(h, s1, &m, 1000, &status), 0);
    CU_ASSERT(as->latest.power_w == 43 && as->lag_ms == 5);
    /* telemetry for an unclaimed asset is dropped */
    t.asset_id = "s2-bat";
    m.seq = 5;
    feed(h, s1, &m, 1000, &status);
    CU_ASSERT_FALSE(hub_asset_state(h, inventory_asset(inv, "s2-bat")->index)->has_latest);
    CU_ASSERT_EQUAL(hub_counters(h)->telemetry_rejected, 1);

    /* dispatch to an online asset is SENT; to offline site s2 QUEUED */
    char id[STORE_ID_MAX];
    int state;
    CU_ASSERT_EQUAL(
        hub_dispatch(h, 0, inventory_asset(inv, "s1-bat")->index, 1e6, 60, 1100, id, &state), 0);
    CU_ASSERT_EQUAL(state, DISPATCH_SENT);
    CU_ASSERT_EQUAL_FATAL(f1.n, 2);
    CU_ASSERT_STRING_EQUAL(f1.msgs[1]->setpoint->setpoint_id, id);
    CU_ASSERT_EQUAL(f1.msgs[1]->setpoint->expires_ms, 61100);
    char q1[STORE_ID_MAX], q2[STORE_ID_MAX], q3[STORE_ID_MAX];
    hub_dispatch(h, 1, SIZE_MAX, 1, 60, 1100, q1, &state);
    CU_ASSERT_EQUAL(state, DISPATCH_QUEUED);
    hub_dispatch(h, 1, SIZE_MAX, 2, 60, 1101, q2, &state);
    hub_dispatch(h, 1, SIZE_MAX, 3, 1, 1102, q3, &state); /* expires at 2102 */
    hub_tick(h, 3000);
    struct store_dispatch d;
    hub_store(h)->ops->dispatch_get(hub_store(h), q3, &d);
    CU_ASSERT_EQUAL(d.state, DISPATCH_EXPIRED);

    /* ack APPLIED with allocations */
    Der__V1__Allocation al = DER__V1__ALLOCATION__INIT, *alp = &al;
    al.asset_id = "s1-bat";
    al.power_w = 1e6;
    Der__V1__SetpointAck ack = DER__V1__SETPOINT_ACK__INIT;
    ack.setpoint_id = id;
    ack.state = DER__V1__SETPOINT_ACK__STATE__APPLIED;
    ack.n_allocations = 1;
    ack.allocations = &alp;
    m.seq = 4;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_SETPOINT_ACK;
    m.setpoint_ack = &ack;
    feed(h, s1, &m, 1200, &status);
    hub_store(h)->ops->dispatch_get(hub_store(h), id, &d);
    CU_ASSERT_EQUAL(d.state, DISPATCH_APPLIED);
    /* a later RECEIVED does not move a final state back */
    ack.state = DER__V1__SETPOINT_ACK__STATE__RECEIVED;
    m.seq = 5;
    feed(h, s1, &m, 1300, &status);
    hub_store(h)->ops->dispatch_get(hub_store(h), id, &d);
    CU_ASSERT_EQUAL(d.state, DISPATCH_APPLIED);

    /* s2's gateway connects: queued dispatches replayed in order, the expired one not */
    hub_stream_open(h, "peer2", &fake_ops, &f2, 4000, &s2);
    const char *c2[] = {"s2-bat"};
    CU_ASSERT_EQUAL(do_register(h, s2, "gw2b", "s2", c2, 1, NULL, 4000), 0);
    CU_ASSERT_EQUAL_FATAL(f2.n, 3);
    CU_ASSERT_STRING_EQUAL(f2.msgs[1]->setpoint->setpoint_id, q1);
    CU_ASSERT_STRING_EQUAL(f2.msgs[2]->setpoint->setpoint_id, q2);
    CU_ASSERT_EQUAL(f2.msgs[2]->seq, 3);

    /* a reconnect of site s1 replaces s1's session and closes its stream */
    struct fake_link f3 = {0};
    struct session *s3;
    hub_stream_open(h, "peer3", &fake_ops, &f3, 5000, &s3);
    const char *c3[] = {"s1-bat"};
    CU_ASSERT_EQUAL(do_register(h, s3, "gw1", "s1", c3, 1, NULL, 5000), 0);
    CU_ASSERT_EQUAL(f1.closed_status, 10); /* ABORTED */
    CU_ASSERT_PTR_NOT_NULL(strstr(f1.closed_reason, "replaced"));
    CU_ASSERT_PTR_EQUAL(registry_site(hub_registry(h), 0), s3);
    CU_ASSERT_PTR_NULL(registry_asset(hub_registry(h), inventory_asset(inv, "s1-pv")->index));
    hub_stream_closed(h, s1, "closed", 5001);
    CU_ASSERT_PTR_EQUAL(registry_site(hub_registry(h), 0), s3);

    /* a gateway the site does not list is denied */
    struct fake_link f4 = {0};
    struct session *s4;
    hub_stream_open(h, "peer4", &fake_ops, &f4, 6000, &s4);
    CU_ASSERT_EQUAL(do_register(h, s4, "gw9", "s1", c3, 1, NULL, 6000), -EPERM);
    CU_ASSERT_EQUAL(f4.msgs[0]->register_result->n_accepted, 0);
    hub_stream_closed(h, s4, "denied", 6000);
    hub_stream_closed(h, s2, "t", 7000);
    hub_stream_closed(h, s3, "t", 7000);
    CU_ASSERT_EQUAL(hub_streams(h), 0);
    fake_clear(&f1);
    fake_clear(&f2);
    fake_clear(&f3);
    fake_clear(&f4);
    hub_free(h);
}

/* ---- gateway identity (mutual TLS) and session replacement ---- */
static void test_cert_identity_rule(void)
{
    char id[INV_ID_MAX], why[128];
    const char *mixed[] = {"spiffe://x/y", "urn:derloop:gateway:gw-a", "https://gw.example"};
    CU_ASSERT_EQUAL(
        hub_identity_from_cert(mixed, 3, "cn-ignored", id, sizeof(id), why, sizeof(why)), 0);
    CU_ASSERT_STRING_EQUAL(id, "gw-a"); /* the SAN URI wins over the CN */
    CU_ASSERT_EQUAL(hub_identity_from_cert(mixed, 1, "gw-cn", id, sizeof(id), why, sizeof(why)), 0);
    CU_ASSERT_STRING_EQUAL(id, "gw-cn"); /* no derloop URI: the CN */
    const char *same[] = {"urn:derloop:gateway:gw-a", "urn:derloop:gateway:gw-a"};
    CU_ASSERT_EQUAL(hub_identity_from_cert(same, 2, NULL, id, sizeof(id), why, sizeof(why)), 0);
    const char *two[] = {"urn:derloop:gateway:gw-a", "urn:derloop:gateway:gw-b"};
    CU_ASSERT_EQUAL(hub_identity_from_cert(two, 2, "gw-a", id, sizeof(id), why, sizeof(why)),
                    -EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "two gateways"));
    CU_ASSERT_EQUAL(hub_identity_from_cert(NULL, 0, "", id, sizeof(id), why, sizeof(why)), -EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "names no gateway"));
    static const char *const bad[] = {
        "urn:derloop:gateway:", "urn:derloop:gateway:a b", "urn:derloop:gateway:a\"b",
        "urn:derloop:gateway:a\nb",
        "urn:derloop:gateway:"
        "0123456789012345678901234567890123456789012345678901234567890"
        "123"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(
            hub_identity_from_cert(&bad[i], 1, "gw-cn", id, sizeof(id), why, sizeof(why)), -EPERM);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "not a gateway id"));
    }
}

static int register_status(struct hub *h, struct session *s, const char *gw, const char *site,
                           const char *asset, int *status)
{
    Der__V1__AssetInfo ai = DER__V1__ASSET_INFO__INIT, *aip = &ai;
    ai.asset_id = (char *)asset;
    Der__V1__Register r = DER__V1__REGISTER__INIT;
    r.gateway_id = (char *)gw;
    r.site_id = (char *)site;
    r.n_assets = 1;
    r.assets = &aip;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = 1;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_REGISTER;
    m.register_ = &r;
    *status = 0;
    return feed(h, s, &m, 1000, status);
}

/* The first rejection reason of the RegisterResult a fake link got ("" when none). */
static const char *first_rejection(const struct fake_link *f)
{
    if (f->n < 1 || !f->msgs[0]->register_result || f->msgs[0]->register_result->n_rejected < 1)
        return "";
    return f->msgs[0]->register_result->rejected[0]->reason;
}

static void test_hub_cert_identity(void)
{
    struct hub *h = make_hub();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct fake_link f[6];
    struct session *s[6];
    memset(f, 0, sizeof(f));
    int status;
    for (int i = 0; i < 6; i++)
        hub_stream_open(h, "ipv4:127.0.0.1:9", &fake_ops, &f[i], 1000, &s[i]);
    /* a certificate for gw1 registers as gw1 */
    hub_stream_authenticate(h, s[0], "gw1", NULL);
    CU_ASSERT_EQUAL(register_status(h, s[0], "gw1", "s1", "s1-bat", &status), 0);
    CU_ASSERT_PTR_EQUAL(registry_site(hub_registry(h), 0), s[0]);
    /* gw1's certificate registering as gw2 (a gateway the inventory lists for s2) */
    hub_stream_authenticate(h, s[1], "gw1", NULL);
    CU_ASSERT_EQUAL(register_status(h, s[1], "gw2", "s2", "s2-bat", &status), -EPERM);
    CU_ASSERT_EQUAL(status, 7); /* PERMISSION_DENIED */
    CU_ASSERT_FATAL(f[1].n == 1 && f[1].msgs[0]->register_result);
    CU_ASSERT_EQUAL(f[1].msgs[0]->register_result->n_accepted, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(first_rejection(&f[1]), "certificate's identity gw1"));
    CU_ASSERT_PTR_NULL(registry_site(hub_registry(h), 1));
    /* a verified certificate that names no gateway: every Register is refused */
    hub_stream_authenticate(h, s[2], "", "certificate names no gateway (test)");
    CU_ASSERT_EQUAL(register_status(h, s[2], "gw2", "s2", "s2-bat", &status), -EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(first_rejection(&f[2]), "names no gateway (test)"));
    /* gw2 (certificate gw2) serves s2; gw2b, also listed for s2, cannot replace that live
     * session, with or without a certificate */
    hub_stream_authenticate(h, s[3], "gw2", NULL);
    CU_ASSERT_EQUAL(register_status(h, s[3], "gw2", "s2", "s2-bat", &status), 0);
    hub_stream_authenticate(h, s[4], "gw2b", NULL);
    CU_ASSERT_EQUAL(register_status(h, s[4], "gw2b", "s2", "s2-bat", &status), -EPERM);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(first_rejection(&f[4]), "served by gateway gw2 on a live session"));
    CU_ASSERT_EQUAL(register_status(h, s[5], "gw2b", "s2", "s2-bat", &status), -EPERM);
    CU_ASSERT_PTR_EQUAL(registry_site(hub_registry(h), 1), s[3]);
    CU_ASSERT_EQUAL(f[3].closed_status, 0); /* gw2's stream untouched */
    /* once gw2's session has ended, gw2b may serve the site */
    hub_stream_closed(h, s[3], "gone", 2000);
    struct fake_link g = {0};
    struct session *s6;
    hub_stream_open(h, "ipv4:127.0.0.1:9", &fake_ops, &g, 2000, &s6);
    hub_stream_authenticate(h, s6, "gw2b", NULL);
    CU_ASSERT_EQUAL(register_status(h, s6, "gw2b", "s2", "s2-bat", &status), 0);
    CU_ASSERT_PTR_EQUAL(registry_site(hub_registry(h), 1), s6);
    CU_ASSERT_EQUAL(hub_counters(h)->register_denied, 4);
    for (int i = 0; i < 6; i++) {
        if (i != 3)
            hub_stream_closed(h, s[i], "t", 3000);
        fake_clear(&f[i]);
    }
    hub_stream_closed(h, s6, "t", 3000);
    fake_clear(&g);
    hub_free(h);
}

/* ---- acks are checked against what was sent ---- */
static void send_ack(struct hub *h, struct session *s, const char *id, int state, const char *asset,
                     double power_w, size_t n_alloc)
{
    Der__V1__Allocation al[2] = {DER__V1__ALLOCATION__INIT, DER__V1__ALLOCATION__INIT};
    Der__V1__Allocation *alp[2] = {&al[0], &al[1]};
    al[0].asset_id = al[1].asset_id = (char *)asset;
    al[0].power_w = al[1].power_w = power_w;
    Der__V1__SetpointAck ack = DER__V1__SETPOINT_ACK__INIT;
    ack.setpoint_id = (char *)id;
    ack.state = (Der__V1__SetpointAck__State)state;
    ack.n_allocations = n_alloc;
    ack.allocations = alp;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = 9;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_SETPOINT_ACK;
    m.setpoint_ack = &ack;
    int status = 0;
    CU_ASSERT_EQUAL(feed(h, s, &m, 1500, &status), 0); /* refused acks never end the stream */
}

static int dstate(struct hub *h, const char *id)
{
    struct store_dispatch d;
    return hub_store(h)->ops->dispatch_get(hub_store(h), id, &d) == 0 ? d.state : -1;
}

static int n_allocs(struct hub *h, const char *id)
{
    int n = 0;
    hub_store(h)->ops->alloc_list(hub_store(h), id, (store_alloc_cb)count_cb, &n);
    return n;
}

static void test_hub_ack_checks(void)
{
    enum { APPLIED = DER__V1__SETPOINT_ACK__STATE__APPLIED };
    struct hub *h = make_hub();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    const struct inventory *inv = hub_inventory(h);
    size_t bat = inventory_asset(inv, "s1-bat")->index;
    struct fake_link f1 = {0}, f2 = {0}, f3 = {0};
    struct session *s1, *s2, *s3;
    hub_stream_open(h, "peer1", &fake_ops, &f1, 1000, &s1);
    hub_stream_open(h, "peer2", &fake_ops, &f2, 1000, &s2);
    const char *c1[] = {"s1-bat", "s1-pv"}, *c2[] = {"s2-bat"}, *c3[] = {"s1-pv"};
    CU_ASSERT_EQUAL(do_register(h, s1, "gw1", "s1", c1, 2, NULL, 1000), 0);
    CU_ASSERT_EQUAL(do_register(h, s2, "gw2", "s2", c2, 1, NULL, 1000), 0);
    char a[STORE_ID_MAX], site[STORE_ID_MAX], q[STORE_ID_MAX];
    int st;
    CU_ASSERT_EQUAL(hub_dispatch(h, 0, bat, 1000, 60, 1100, a, &st), 0);
    CU_ASSERT_EQUAL(st, DISPATCH_SENT);
    CU_ASSERT_EQUAL(hub_dispatch(h, 0, SIZE_MAX, 2000, 60, 1100, site, &st), 0);

    /* another site's gateway acks s1's setpoint: refused */
    send_ack(h, s2, a, APPLIED, "s2-bat", 1000, 1);
    CU_ASSERT_EQUAL(dstate(h, a), DISPATCH_SENT);
    /* the site's own session, allocations it may not report: refused, nothing stored */
    send_ack(h, s1, site, APPLIED, "s2-bat", 1000, 1); /* another site's asset */
    send_ack(h, s1, site, APPLIED, "zz", 1000, 1);     /* an unknown asset */
    send_ack(h, s1, site, APPLIED, "s1-pv", 9e9, 1);   /* 9 GW, max 1 MW */
    send_ack(h, s1, site, APPLIED, "s1-pv", -1, 1);    /* below min 0 */
    send_ack(h, s1, site, APPLIED, "s1-pv", INFINITY, 1);
    send_ack(h, s1, site, APPLIED, "s1-pv", 100, 2); /* the same asset twice */
    send_ack(h, s1, a, APPLIED, "s1-pv", 100, 1);    /* asset setpoint, another asset */
    CU_ASSERT_EQUAL(dstate(h, site), DISPATCH_SENT);
    CU_ASSERT_EQUAL(dstate(h, a), DISPATCH_SENT);
    CU_ASSERT_EQUAL(n_allocs(h, site), 0);
    CU_ASSERT_EQUAL(hub_counters(h)->acks_refused, 8);

    /* gw1 reconnects serving only s1-pv: the site setpoint is sent again on the new session,
     * the s1-bat one is not (its asset is not served) */
    hub_stream_open(h, "peer3", &fake_ops, &f3, 1200, &s3);
    CU_ASSERT_EQUAL(do_register(h, s3, "gw1", "s1", c3, 1, NULL, 1200), 0);
    CU_ASSERT_EQUAL(f3.n, 2);
    /* an ack for a setpoint never sent on this session (s1-bat's), or never sent at all */
    CU_ASSERT_EQUAL(hub_dispatch(h, 0, bat, 500, 60, 1300, q, &st), 0);
    CU_ASSERT_EQUAL(st, DISPATCH_QUEUED);
    send_ack(h, s3, a, APPLIED, "s1-bat", 1000, 1);
    send_ack(h, s3, q, APPLIED, "", 500, 0);
    CU_ASSERT_EQUAL(dstate(h, a), DISPATCH_SENT);
    CU_ASSERT_EQUAL(dstate(h, q), DISPATCH_QUEUED);
    /* the old session's late ack for the site setpoint, now s3's: refused */
    send_ack(h, s1, site, APPLIED, "s1-pv", 100, 1);
    CU_ASSERT_EQUAL(dstate(h, site), DISPATCH_SENT);
    CU_ASSERT_EQUAL(hub_counters(h)->acks_refused, 11);
    /* the right session, within limits (the maximum itself): APPLIED */
    send_ack(h, s3, site, APPLIED, "s1-pv", 1e6, 1);
    CU_ASSERT_EQUAL(dstate(h, site), DISPATCH_APPLIED);
    CU_ASSERT_EQUAL(n_allocs(h, site), 1);
    CU_ASSERT_EQUAL(hub_counters(h)->acks_refused, 11);

    hub_stream_closed(h, s1, "t", 2000);
    hub_stream_closed(h, s2, "t", 2000);
    hub_stream_closed(h, s3, "t", 2000);
    fake_clear(&f1);
    fake_clear(&f2);
    fake_clear(&f3);
    hub_free(h);
}

/* ---- REST validation ---- */
static int post(struct hub *h, const char *body, char *field, size_t flen)
{
    struct rest_response r;
    rest_handle(h, "POST", "/dispatch", NULL, NULL, body, strlen(body), 1000, &r);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *f = cJSON_GetObjectItem(j, "field");
    snprintf(field, flen, "%s", cJSON_IsString(f) ? f->valuestring : "");
    cJSON_Delete(j);
    free(r.body);
    return r.status;
}

static void test_rest_validation(void)
{
    struct hub *h = make_hub();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    static const struct {
        const char *body;
        int status;
        const char *field;
    } cases[] = {
        {"{nope", 400, "body"},
        {"[1,2]", 400, "body"},
        {"", 400, "body"},
        {"{\"mw\":1}", 400, "asset_id|site_id|group_id"},
        {"{\"asset_id\":\"zz\",\"mw\":1}", 404, "asset_id"},
        {"{\"site_id\":\"zz\",\"mw\":1}", 404, "site_id"},
        {"{\"asset_id\":7,\"mw\":1}", 400, "asset_id"},
        {"{\"site_id\":[],\"mw\":1}", 400, "site_id"},
        {"{\"asset_id\":\"s1-bat\"}", 400, "mw"},
        {"{\"asset_id\":\"s1-bat\",\"mw\":null}", 400, "mw"},
        {"{\"asset_id\":\"s1-bat\",\"mw\":\"2\"}", 400, "mw"},
        {"{\"asset_id\":\"s1-bat\",\"mw\":1e999}", 400, "mw"},
        {"{\"asset_id\":\"s1-bat\",\"mw\":-1e999}", 400, "mw"},
        {"{\"asset_id\":\"s1-bat\",\"mw\":6}", 400, "mw"},
        {"{\"site_id\":\"s1\",\"mw\":-5.5}", 400, "mw"},
        {"{\"asset_id\":\"s1-bat\",\"mw\":1,\"ttl_s\":0}", 400, "ttl_s"},
        {"{\"asset_id\":\"s1-bat\",\"mw\":1,\"ttl_s\":86401}", 400, "ttl_s"},
        {"{\"asset_id\":\"s1-bat\",\"mw\":1,\"ttl_s\":1.5}", 400, "ttl_s"},
        {"{\"asset_id\":\"s1-bat\",\"mw\":1,\"ttl_s\":\"60\"}", 400, "ttl_s"},
        /* asset_id wins over a bad site_id */
        {"{\"asset_id\":\"s1-bat\",\"site_id\":\"zz\",\"mw\":1}", 202, ""},
        {"{\"site_id\":\"s1\",\"mw\":-5}", 202, ""},
    };
    char field[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st = post(h, cases[i].body, field, sizeof(field));
        CU_ASSERT_EQUAL(st, cases[i].status);
        CU_ASSERT_STRING_EQUAL(field, cases[i].field);
    }
    struct rest_response r;
    rest_handle(h, "GET", "/dispatch/sp-1", NULL, NULL, NULL, 0, 1000, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"asset_id\":\"s1-bat\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"state\":\"QUEUED\""));
    free(r.body);
    rest_handle(h, "GET", "/dispatch/sp-77", NULL, NULL, NULL, 0, 1000, &r);
    CU_ASSERT_EQUAL(r.status, 404);
    free(r.body);
    rest_handle(h, "GET", "/telemetry/zz", NULL, NULL, NULL, 0, 1000, &r);
    CU_ASSERT_EQUAL(r.status, 404);
    free(r.body);
    rest_handle(h, "GET", "/telemetry/s1-bat", NULL, NULL, NULL, 0, 1000, &r);
    CU_ASSERT_EQUAL(r.status, 404); /* no telemetry yet */
    free(r.body);
    rest_handle(h, "DELETE", "/assets", NULL, NULL, NULL, 0, 1000, &r);
    CU_ASSERT_EQUAL(r.status, 405);
    free(r.body);
    rest_handle(h, "GET", "/agents", NULL, NULL, NULL, 0, 1000, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(j), 3);
    cJSON_Delete(j);
    free(r.body);
    rest_handle(h, "GET", "/metrics", NULL, NULL, NULL, 0, 1000, &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "der_headend_gateways_connected 0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "der_headend_dispatch_created_total 2"));
    free(r.body);
    hub_free(h);
}

static const char *range_arg(void *ctx, const char *key)
{
    const char **kv = ctx;
    for (; kv[0]; kv += 2)
        if (!strcmp(kv[0], key))
            return kv[1];
    return NULL;
}

static void test_rest_range(void)
{
    struct hub *h = make_hub();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct rest_response r;
    const char *bad1[] = {"from", "x", NULL};
    const char *bad2[] = {"from", "10", "to", "5", NULL};
    const char *bad3[] = {"from", "1", "limit", "0", NULL};
    const char *good[] = {"from", "0", "to", "99999", NULL};
    rest_handle(h, "GET", "/telemetry/s1-bat", range_arg, bad1, NULL, 0, 1000, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"field\":\"from\""));
    free(r.body);
    rest_handle(h, "GET", "/telemetry/s1-bat", range_arg, bad2, NULL, 0, 1000, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    free(r.body);
    rest_handle(h, "GET", "/telemetry/s1-bat", range_arg, bad3, NULL, 0, 1000, &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"field\":\"limit\""));
    free(r.body);
    rest_handle(h, "GET", "/telemetry/s1-bat", range_arg, good, NULL, 0, 1000, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"count\":0"));
    free(r.body);
    hub_free(h);
}

/* ---- protobuf round trips ---- */
static void test_proto_roundtrip(void)
{
    Der__V1__Telemetry t = DER__V1__TELEMETRY__INIT;
    Der__V1__StorageDetails sd = DER__V1__STORAGE_DETAILS__INIT;
    sd.soc = 0.75;
    t.asset_id = "a";
    t.ts_ms = 1700000000123;
    t.telemetry_seq = UINT64_MAX;
    t.power_w = -1234.5;
    t.setpoint_w = NAN;
    t.details_case = DER__V1__TELEMETRY__DETAILS_STORAGE;
    t.storage = &sd;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = 9;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_TELEMETRY;
    m.telemetry = &t;
    uint8_t buf[512];
    size_t n = der__v1__agent_message__pack(&m, buf);
    CU_ASSERT_EQUAL(n, der__v1__agent_message__get_packed_size(&m));
    Der__V1__AgentMessage *u = der__v1__agent_message__unpack(NULL, n, buf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT_EQUAL(u->body_case, DER__V1__AGENT_MESSAGE__BODY_TELEMETRY);
    CU_ASSERT_EQUAL(u->telemetry->telemetry_seq, UINT64_MAX);
    CU_ASSERT_EQUAL(u->telemetry->ts_ms, 1700000000123);
    CU_ASSERT(isnan(u->telemetry->setpoint_w));
    CU_ASSERT_EQUAL(u->telemetry->storage->soc, 0.75);
    der__v1__agent_message__free_unpacked(u, NULL);

    Der__V1__Setpoint sp = DER__V1__SETPOINT__INIT;
    sp.setpoint_id = "sp-1";
    sp.target_case = DER__V1__SETPOINT__TARGET_SITE_ID;
    sp.site_id = "s1";
    sp.power_w = 1.5e6;
    sp.expires_ms = 42;
    Der__V1__HeadendMessage hm = DER__V1__HEADEND_MESSAGE__INIT;
    hm.seq = 3;
    hm.body_case = DER__V1__HEADEND_MESSAGE__BODY_SETPOINT;
    hm.setpoint = &sp;
    n = der__v1__headend_message__pack(&hm, buf);
    Der__V1__HeadendMessage *hu = der__v1__headend_message__unpack(NULL, n, buf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hu);
    CU_ASSERT_EQUAL(hu->setpoint->target_case, DER__V1__SETPOINT__TARGET_SITE_ID);
    CU_ASSERT_STRING_EQUAL(hu->setpoint->site_id, "s1");
    CU_ASSERT_EQUAL(hu->setpoint->power_w, 1.5e6);
    der__v1__headend_message__free_unpacked(hu, NULL);
    /* truncated input fails cleanly */
    CU_ASSERT_PTR_NULL(der__v1__headend_message__unpack(NULL, n - 3, buf));
}

/* A gateway that takes pushes and answers pings: Register with config_version/config_push/
 * pong, its ConfigReports and Pongs. */
static void send_remote(struct hub *h, struct session *s, uint64_t seq, int body, uint64_t a,
                        int status, const char *detail, int64_t now)
{
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    Der__V1__Pong p = DER__V1__PONG__INIT;
    Der__V1__ConfigReport r = DER__V1__CONFIG_REPORT__INIT;
    m.seq = seq;
    if (body == DER__V1__AGENT_MESSAGE__BODY_PONG) {
        p.nonce = a;
        m.pong = &p;
    } else {
        r.version = a;
        r.status = (Der__V1__ConfigReport__Status)status;
        r.detail = (char *)detail;
        m.config_report = &r;
    }
    m.body_case = (Der__V1__AgentMessage__BodyCase)body;
    int st = 0;
    CU_ASSERT_EQUAL(feed(h, s, &m, now, &st), 0);
}

static void test_hub_remote(void)
{
    struct hub *h = make_hub();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    struct fake_link f = {0};
    struct session *s;
    hub_stream_open(h, "peer1", &fake_ops, &f, 1000, &s);
    /* Register saying: runs version 0 (its file), takes pushes, answers pings */
    Der__V1__AssetInfo ai = DER__V1__ASSET_INFO__INIT, *aip = &ai;
    ai.asset_id = "s1-bat";
    Der__V1__Register r = DER__V1__REGISTER__INIT;
    r.gateway_id = "gw1";
    r.site_id = "s1";
    r.n_assets = 1;
    r.assets = &aip;
    r.config_push = 1;
    r.pong = 1;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = 1;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_REGISTER;
    m.register_ = &r;
    int st = 0;
    CU_ASSERT_EQUAL(feed(h, s, &m, 1000, &st), 0);
    CU_ASSERT_EQUAL(f.n, 1); /* RegisterResult; no desired configuration yet */
    const struct site_state *ss = hub_site_state(h, 0);
    CU_ASSERT(ss->has_reported && ss->reported_version == 0);
    CU_ASSERT_STRING_EQUAL(ss->reported_status, "RUNNING");

    /* a bad configuration: refused with the field, nothing stored or sent */
    char err[512], field[64];
    int64_t v = 0;
    CU_ASSERT_EQUAL(hub_config_put(h, 0, "{\"strategy\":\"charge\",\"params\":{\"power_w\":-1}}",
                                   "ops", 1100, &v, err, sizeof(err), field, sizeof(field)),
                    -EINVAL);
    CU_ASSERT_STRING_EQUAL(field, "params.power_w");
    CU_ASSERT_EQUAL(f.n, 1);
    /* a good one: version 1, pushed at once */
    const char *good = "{\"strategy\":\"charge\"}";
    CU_ASSERT_EQUAL(
        hub_config_put(h, 0, good, "ops", 1200, &v, err, sizeof(err), field, sizeof(field)), 0);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_FATAL(f.n == 2 && f.msgs[1]->body_case == DER__V1__HEADEND_MESSAGE__BODY_CONFIG_PUSH);
    CU_ASSERT_EQUAL(f.msgs[1]->config_push->version, 1);
    CU_ASSERT_STRING_EQUAL(f.msgs[1]->config_push->json, good);
    /* refused by the gateway: the running version stays, the reason is shown */
    send_remote(h, s, 2, DER__V1__AGENT_MESSAGE__BODY_CONFIG_REPORT, 1,
                DER__V1__CONFIG_REPORT__STATUS__REJECTED, "params.x: no", 1300);
    CU_ASSERT_STRING_EQUAL(ss->reported_status, "REJECTED");
    CU_ASSERT_EQUAL(ss->reported_version, 0);
    CU_ASSERT_STRING_EQUAL(ss->reported_detail, "params.x: no");
    CU_ASSERT_EQUAL(hub_counters(h)->config_rejected, 1);
    /* applied */
    send_remote(h, s, 3, DER__V1__AGENT_MESSAGE__BODY_CONFIG_REPORT, 1,
                DER__V1__CONFIG_REPORT__STATUS__APPLIED, "", 1400);
    CU_ASSERT_STRING_EQUAL(ss->reported_status, "APPLIED");
    CU_ASSERT_EQUAL(ss->reported_version, 1);

    /* ping: due at the first check after Register; only the last nonce's Pong counts */
    hub_tick(h, 2100);
    CU_ASSERT_FATAL(f.n == 3 && f.msgs[2]->body_case == DER__V1__HEADEND_MESSAGE__BODY_PING);
    uint64_t nonce = f.msgs[2]->ping->nonce;
    CU_ASSERT(nonce > 0);
    send_remote(h, s, 4, DER__V1__AGENT_MESSAGE__BODY_PONG, nonce + 7, 0, NULL, 2130);
    CU_ASSERT_FALSE(ss->has_rtt);
    CU_ASSERT_EQUAL(hub_counters(h)->pongs_unmatched, 1);
    send_remote(h, s, 5, DER__V1__AGENT_MESSAGE__BODY_PONG, nonce, 0, NULL, 2140);
    CU_ASSERT(ss->has_rtt && ss->rtt_last_ms == 40 && ss->rtt_ewma_ms == 40);
    uint64_t n2 = 0;
    CU_ASSERT_EQUAL(hub_ping(h, "gw1", 3000, &n2), 0);
    CU_ASSERT(n2 > nonce);
    send_remote(h, s, 6, DER__V1__AGENT_MESSAGE__BODY_PONG, n2, 0, NULL, 3080);
    CU_ASSERT_DOUBLE_EQUAL(ss->rtt_last_ms, 80, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(ss->rtt_ewma_ms, 40 + 0.25 * 40, 1e-9);
    CU_ASSERT_EQUAL(hub_ping(h, "gw2", 3000, &n2), -ENOENT);

    /* a reconnect at an older version gets the desired one again; at the same, nothing */
    struct fake_link g = {0}, k = {0};
    struct session *s2, *s3;
    hub_stream_open(h, "peer2", &fake_ops, &g, 4000, &s2);
    CU_ASSERT_EQUAL(feed(h, s2, &m, 4000, &st), 0);
    CU_ASSERT(g.n == 2 && g.msgs[1]->body_case == DER__V1__HEADEND_MESSAGE__BODY_CONFIG_PUSH);
    hub_stream_open(h, "peer3", &fake_ops, &k, 5000, &s3);
    r.config_version = 1;
    CU_ASSERT_EQUAL(feed(h, s3, &m, 5000, &st), 0);
    CU_ASSERT_EQUAL(k.n, 1);
    hub_stream_closed(h, s, "test", 6000); /* the hub owns open sessions until they close */
    hub_stream_closed(h, s2, "test", 6000);
    hub_stream_closed(h, s3, "test", 6000);
    fake_clear(&f);
    fake_clear(&g);
    fake_clear(&k);
    hub_free(h);
}

static void count_wake(void *ctx)
{
    (*(int *)ctx)++;
}

/* Several headends (headend/cluster.c): a stop row from another headend is adopted and sent
 * on a stream of ours once; a configuration changed elsewhere is pushed once per session; a
 * version stored here for a site no stream of ours serves is noted for the cluster. */
static void test_hub_cluster_routing(void)
{
    struct hub *h = make_hub();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    int wakes = 0;
    hub_cluster_attach(h, count_wake, &wakes);
    struct fake_link f = {0};
    struct session *s;
    hub_stream_open(h, "peer1", &fake_ops, &f, 1000, &s);
    Der__V1__AssetInfo ai = DER__V1__ASSET_INFO__INIT, *aip = &ai;
    ai.asset_id = "s1-bat";
    Der__V1__Register r = DER__V1__REGISTER__INIT;
    r.gateway_id = "gw1";
    r.site_id = "s1";
    r.n_assets = 1;
    r.assets = &aip;
    r.config_push = 1;
    r.estop = 1;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = 1;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_REGISTER;
    m.register_ = &r;
    int st = 0;
    CU_ASSERT_EQUAL(feed(h, s, &m, 1000, &st), 0);
    CU_ASSERT_EQUAL_FATAL(f.n, 1); /* RegisterResult */

    struct store_estop row = {.active = 1, .since_ms = 1500, .updated_ms = 1500};
    snprintf(row.site_id, sizeof(row.site_id), "s1");
    snprintf(row.id, sizeof(row.id), "estop-1500");
    snprintf(row.reason, sizeof(row.reason), "drill");
    snprintf(row.by, sizeof(row.by), "ops");
    CU_ASSERT_EQUAL(hub_cluster_estop(h, &row, 1600), 1);
    CU_ASSERT_FATAL(f.n == 2 &&
                    f.msgs[1]->body_case == DER__V1__HEADEND_MESSAGE__BODY_EMERGENCY_STOP);
    CU_ASSERT(f.msgs[1]->emergency_stop->active);
    CU_ASSERT_STRING_EQUAL(f.msgs[1]->emergency_stop->id, "estop-1500");
    const struct site_state *ss = hub_site_state(h, 0);
    CU_ASSERT(ss->estop_known && ss->estop_active);
    CU_ASSERT_STRING_EQUAL(ss->estop_by, "ops");
    CU_ASSERT_EQUAL(hub_cluster_estop(h, &row, 1700), 0); /* the same row again: nothing */
    CU_ASSERT_EQUAL(f.n, 2);
    row.active = 0;
    row.since_ms = 1800;
    CU_ASSERT_EQUAL(hub_cluster_estop(h, &row, 1800), 1); /* released elsewhere */
    CU_ASSERT(f.n == 3 && !f.msgs[2]->emergency_stop->active && !ss->estop_active);
    snprintf(row.site_id, sizeof(row.site_id), "elsewhere"); /* not in our inventory */
    CU_ASSERT_EQUAL(hub_cluster_estop(h, &row, 1900), 0);
    snprintf(row.site_id, sizeof(row.site_id), "s2"); /* ours, no stream: shown, not sent */
    row.active = 1;
    CU_ASSERT_EQUAL(hub_cluster_estop(h, &row, 1900), 0);
    CU_ASSERT(hub_site_state(h, 1)->estop_active);
    CU_ASSERT_EQUAL(hub_cluster_estop_retry(h), 0); /* SQLite: nothing shared */

    /* a version stored on another headend: pushed once on this session */
    char err[512], field[64];
    int64_t v = 0;
    struct store *store = hub_store(h);
    static struct store_config c; /* 16 KB: not on the stack */
    c.version = 1;
    c.updated_ms = 2000;
    snprintf(c.site_id, sizeof(c.site_id), "s1");
    snprintf(c.json, sizeof(c.json), "{\"strategy\":\"charge\"}");
    CU_ASSERT_EQUAL_FATAL(store->ops->config_put(store, &c), 0);
    CU_ASSERT_EQUAL(hub_cluster_config(h, 0, 2100), 1);
    CU_ASSERT(f.n == 4 && f.msgs[3]->body_case == DER__V1__HEADEND_MESSAGE__BODY_CONFIG_PUSH);
    CU_ASSERT_EQUAL(hub_cluster_config(h, 0, 2200), 0); /* a sweep after the notification */
    CU_ASSERT_EQUAL(hub_cluster_config(h, 1, 2200), 0); /* no stream of ours */
    CU_ASSERT_EQUAL(hub_cluster_config(h, 7, 2200), 0); /* no such site */
    CU_ASSERT_EQUAL(f.n, 4);

    /* stored here for a site no stream of ours serves: noted for the cluster thread */
    size_t sites[4];
    unsigned kinds[4];
    CU_ASSERT_EQUAL(hub_cluster_take_notes(h, sites, kinds, 4), 0);
    int before = wakes;
    CU_ASSERT_EQUAL(hub_config_put(h, 1, "{\"strategy\":\"charge\"}", "ops", 2300, &v, err,
                                   sizeof(err), field, sizeof(field)),
                    0);
    CU_ASSERT(wakes > before);
    CU_ASSERT_EQUAL(hub_cluster_take_notes(h, sites, kinds, 4), 1);
    CU_ASSERT(sites[0] == 1 && kinds[0] == HUB_NOTE_CONFIG);
    CU_ASSERT_EQUAL(hub_cluster_take_notes(h, sites, kinds, 4), 0);
    hub_cluster_attach(h, NULL, NULL);
    hub_stream_closed(h, s, "test", 3000);
    fake_clear(&f);
    hub_free(h);
}

void test_register_headend(void)
{
    CU_pSuite s = CU_add_suite("headend", NULL, NULL);
    CU_add_test(s, "strmap", test_strmap);
    CU_add_test(s, "config table", test_config);
    CU_add_test(s, "inventory claims", test_inventory_claims);
    CU_add_test(s, "inventory errors", test_inventory_errors);
    CU_add_test(s, "routing registry", test_registry);
    CU_add_test(s, "store sqlite memory", test_store);
    CU_add_test(s, "hub protocol", test_hub_protocol);
    CU_add_test(s, "hub telemetry acks", test_hub_telemetry_acks);
    CU_add_test(s, "certificate identity rule", test_cert_identity_rule);
    CU_add_test(s, "hub certificate identity", test_hub_cert_identity);
    CU_add_test(s, "hub ack checks", test_hub_ack_checks);
    CU_add_test(s, "hub remote configuration and ping", test_hub_remote);
    CU_add_test(s, "hub cluster routing (estop, config)", test_hub_cluster_routing);
    CU_add_test(s, "rest validation", test_rest_validation);
    CU_add_test(s, "rest telemetry range", test_rest_range);
    CU_add_test(s, "proto round trip", test_proto_roundtrip);
}
