/* fuzz_seeds: writes the generated seed corpora of the harnesses (tests/fuzz/fuzz.mk runs it
 * at build time, so no binary seed is kept in the tree):
 *   fuzz_seeds OUTDIR SCENARIO...
 * OUTDIR/siteconf/  the gateway configuration der-sim writes for every site of each scenario
 * OUTDIR/agentmsg/  AgentMessage streams (2-byte big-endian length + message): Register,
 *                   telemetry of every kind, heartbeats, acks of every state, protocol errors
 * OUTDIR/modbus/    Modbus TCP request streams: every function code served, exceptions,
 *                   pipelined frames, high-bit function codes, bad headers
 * OUTDIR/rest/      REST requests ("METHOD TARGET\nBODY") for every route and error
 * OUTDIR/inventory/ small assets files (the examples are copied by fuzz.mk)
 * Returns 0, or 1 with a message when a scenario does not load or a file cannot be written. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "proto/der/v1/agent.pb-c.h"
#include "sim/scenario/scenario.h"
#include "sim/run/site.h"
#include "sim/run/sitecfg.h"

static const char *outdir;
static int failed;

static void put(const char *sub, const char *name, const void *data, size_t len)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", outdir, sub);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/%s/%s", outdir, sub, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_seeds: cannot write %s: %s\n", p, strerror(errno));
        failed = 1;
    }
}

static void put_text(const char *sub, const char *name, const char *text)
{
    put(sub, name, text, strlen(text));
}

/* ---- AgentMessage streams ---- */
struct stream {
    uint8_t b[8192];
    size_t n;
    uint64_t seq;
};

static void add(struct stream *s, Der__V1__AgentMessage *m)
{
    m->seq = ++s->seq;
    m->sent_ms = 1700000000000LL + (int64_t)s->seq * 100;
    size_t n = der__v1__agent_message__get_packed_size(m);
    if (s->n + 2 + n > sizeof(s->b))
        return;
    s->b[s->n++] = (uint8_t)(n >> 8);
    s->b[s->n++] = (uint8_t)n;
    s->n += der__v1__agent_message__pack(m, s->b + s->n);
}

static void add_register(struct stream *s, const char *gw, const char *site, const char **assets,
                         size_t n, const char *primary)
{
    Der__V1__AssetInfo info[8], *ip[8];
    for (size_t i = 0; i < n && i < 8; i++) {
        der__v1__asset_info__init(&info[i]);
        info[i].asset_id = (char *)assets[i];
        info[i].type = (Der__V1__AssetType)(1 + i % 5);
        info[i].min_power_w = -1000;
        info[i].max_power_w = 1000;
        ip[i] = &info[i];
    }
    Der__V1__Register r = DER__V1__REGISTER__INIT;
    r.gateway_id = (char *)gw;
    r.site_id = (char *)site;
    r.n_assets = n;
    r.assets = ip;
    r.primary_asset_id = (char *)(primary ? primary : "");
    r.software = "der-gateway 0.1.0 (fuzz seed)";
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_REGISTER;
    m.register_ = &r;
    add(s, &m);
}

static void add_telemetry(struct stream *s, const char *asset, int64_t ts, uint64_t tseq, double p,
                          int details)
{
    Der__V1__Telemetry t = DER__V1__TELEMETRY__INIT;
    Der__V1__StorageDetails sd = DER__V1__STORAGE_DETAILS__INIT;
    Der__V1__PvDetails pv = DER__V1__PV_DETAILS__INIT;
    Der__V1__MeterDetails md = DER__V1__METER_DETAILS__INIT;
    Der__V1__EvseDetails ev = DER__V1__EVSE_DETAILS__INIT;
    Der__V1__BoilerDetails bo = DER__V1__BOILER_DETAILS__INIT;
    t.asset_id = (char *)asset;
    t.ts_ms = ts;
    t.telemetry_seq = tseq;
    t.power_w = p;
    t.setpoint_w = NAN;
    t.online = 1;
    t.status = "ok";
    switch (details) {
    case 1:
        sd.soc = 0.5;
        t.details_case = DER__V1__TELEMETRY__DETAILS_STORAGE;
        t.storage = &sd;
        break;
    case 2:
        pv.available_w = 900;
        t.details_case = DER__V1__TELEMETRY__DETAILS_PV;
        t.pv = &pv;
        break;
    case 3:
        md.frequency_hz = 50;
        t.details_case = DER__V1__TELEMETRY__DETAILS_METER;
        t.meter = &md;
        break;
    case 4:
        ev.state = "C";
        t.details_case = DER__V1__TELEMETRY__DETAILS_EVSE;
        t.evse = &ev;
        break;
    case 5:
        bo.state = "RUNNING";
        t.details_case = DER__V1__TELEMETRY__DETAILS_BOILER;
        t.boiler = &bo;
        break;
    }
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_TELEMETRY;
    m.telemetry = &t;
    add(s, &m);
}

static void add_ack(struct stream *s, const char *id, int state, int n_alloc)
{
    Der__V1__Allocation al[2] = {DER__V1__ALLOCATION__INIT, DER__V1__ALLOCATION__INIT};
    Der__V1__Allocation *ap[2] = {&al[0], &al[1]};
    al[0].asset_id = "s1-bat";
    al[0].power_w = 1e6;
    al[1].asset_id = "s1-pv";
    Der__V1__SetpointAck a = DER__V1__SETPOINT_ACK__INIT;
    a.setpoint_id = (char *)id;
    a.state = (Der__V1__SetpointAck__State)state;
    a.detail = state >= 3 ? "refused by the safety envelope" : "";
    a.n_allocations = (size_t)n_alloc;
    a.allocations = ap;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_SETPOINT_ACK;
    m.setpoint_ack = &a;
    add(s, &m);
}

static void add_heartbeat(struct stream *s)
{
    Der__V1__Heartbeat hb = DER__V1__HEARTBEAT__INIT;
    hb.uptime_ms = 12345;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_HEARTBEAT;
    m.heartbeat = &hb;
    add(s, &m);
}

static void agentmsg_seeds(void)
{
    static const char *all[] = {"s1-bat", "s1-pv", "s1-meter"};
    static const char *mixed[] = {"s1-bat", "s2-bat", "nope"};
    struct stream s = {0};
    add_register(&s, "gw1", "s1", all, 3, "s1-bat");
    for (int d = 0; d <= 5; d++)
        add_telemetry(&s,
                      d == 2   ? "s1-pv"
                      : d == 3 ? "s1-meter"
                               : "s1-bat",
                      1700000000000LL + d * 1000, (uint64_t)d + 1, 100.0 * d, d);
    add_telemetry(&s, "", 1700000009000LL, 9, 1, 0); /* the primary asset */
    add_heartbeat(&s);
    for (int st = 1; st <= 5; st++)
        add_ack(&s, st < 3 ? "sp-1" : "sp-2", st, st == 2 ? 2 : 0);
    put("agentmsg", "session", s.b, s.n);

    struct stream r = {0};
    add_register(&r, "gw1", "s1", mixed, 3, "s2-bat"); /* rejected claims, foreign primary */
    add_telemetry(&r, "s2-bat", 1700000000000LL, 1, 5, 1);
    add_ack(&r, "sp-99", 2, 0);
    add_register(&r, "gw1", "s1", all, 1, NULL); /* a second Register on one stream */
    put("agentmsg", "rejections", r.b, r.n);

    struct stream d = {0};
    add_register(&d, "gw9", "s1", all, 1, NULL); /* not allowed */
    put("agentmsg", "denied", d.b, d.n);

    struct stream e = {0};
    add_telemetry(&e, "s1-bat", 1, 1, 1, 1); /* before Register */
    put("agentmsg", "early", e.b, e.n);

    struct stream t = {0};
    add_register(&t, "gw1", "s1", all, 3, NULL);
    add_telemetry(&t, "s1-bat", INT64_MAX, UINT64_MAX, 1e308, 1);
    add_telemetry(&t, "s1-bat", INT64_MIN, 0, -INFINITY, 1);
    add_telemetry(&t, "s1-bat", 0, 2, NAN, 0);
    put("agentmsg", "extremes", t.b, t.n);

    const uint8_t junk[] = {0, 3, 0xff, 0xff, 0xff};
    put("agentmsg", "malformed", junk, sizeof(junk));
}

/* ---- Modbus request streams ---- */
static void modbus_seeds(void)
{
    const uint8_t rd[] = {0, 1, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x40, 0, 10};
    const uint8_t rin[] = {0, 2, 0, 0, 0, 6, 1, 0x04, 0x9C, 0x41, 0, 125};
    const uint8_t w6[] = {0, 3, 0, 0, 0, 6, 1, 0x06, 0x9C, 0x54, 0x01, 0xF4};
    const uint8_t w16[] = {0, 4, 0, 0, 0, 11, 1, 0x10, 0x9C, 0x54, 0, 2, 4, 0, 1, 0, 2};
    const uint8_t rd0[] = {0, 5, 0, 0, 0, 6, 2, 0x03, 0, 0, 0, 64};
    const uint8_t hi[] = {0, 6, 0, 0, 0, 6, 1, 0x83, 0x9C, 0x40, 0, 1};
    const uint8_t ff[] = {0, 7, 0, 0, 0, 2, 1, 0xFF};
    const uint8_t fc2b[] = {0, 8, 0, 0, 0, 5, 1, 0x2B, 0x0E, 1, 0};
    const uint8_t bc[] = {0, 9, 0, 0, 0, 9, 1, 0x10, 0x9C, 0x4A, 0, 2, 3, 0, 1, 0};
    const uint8_t badproto[] = {0, 1, 0, 7, 0, 6, 1, 0x03, 0x9C, 0x40, 0, 1};
    const uint8_t big[] = {0, 1, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x40, 0, 126};
    put("modbus", "read", rd, sizeof(rd));
    put("modbus", "read-input", rin, sizeof(rin));
    put("modbus", "write-single", w6, sizeof(w6));
    put("modbus", "write-multiple", w16, sizeof(w16));
    put("modbus", "read-unit2", rd0, sizeof(rd0));
    put("modbus", "fc-0x83", hi, sizeof(hi));
    put("modbus", "fc-0xff", ff, sizeof(ff));
    put("modbus", "fc-0x2b", fc2b, sizeof(fc2b));
    put("modbus", "byte-count", bc, sizeof(bc));
    put("modbus", "bad-protocol", badproto, sizeof(badproto));
    put("modbus", "quantity-126", big, sizeof(big));
    uint8_t pipe[sizeof(rd) + sizeof(w16) + sizeof(hi) + sizeof(rin)];
    size_t n = 0;
    memcpy(pipe + n, rd, sizeof(rd)), n += sizeof(rd);
    memcpy(pipe + n, w16, sizeof(w16)), n += sizeof(w16);
    memcpy(pipe + n, hi, sizeof(hi)), n += sizeof(hi);
    memcpy(pipe + n, rin, sizeof(rin)), n += sizeof(rin);
    put("modbus", "pipelined", pipe, n);
}

/* ---- REST requests ---- */
static void rest_seeds(void)
{
    static const char *const req[][2] = {
        {"healthz", "GET /healthz\n"},
        {"assets", "GET /assets\n"},
        {"agents", "GET /agents\n"},
        {"metrics", "GET /metrics\n"},
        {"telemetry", "GET /telemetry/s1-bat\n"},
        {"telemetry-range", "GET /telemetry/s1-bat?from=0&to=1800000000000&limit=10\n"},
        {"telemetry-bad", "GET /telemetry/s1-bat?from=x&limit=0\n"},
        {"telemetry-nul", "GET /telemetry/s1-bat%00evil\n"},
        {"dispatch-get", "GET /dispatch/sp-1\n"},
        {"dispatch-asset", "POST /dispatch\n{\"asset_id\":\"s1-bat\",\"mw\":1,\"ttl_s\":60}"},
        {"dispatch-site", "POST /dispatch\n{\"site_id\":\"s2\",\"mw\":-0.5}"},
        {"dispatch-nul", "POST /dispatch\n{\"asset_id\":\"s1-bat\\u0000evil\",\"mw\":1}"},
        {"dispatch-bad", "POST /dispatch\n{\"asset_id\":7,\"mw\":\"1\",\"ttl_s\":1.5}"},
        {"dispatch-range", "POST /dispatch\n{\"asset_id\":\"s1-pv\",\"mw\":1e999}"},
        {"log-forge", "GET /nope%0Alevel=error%20event=store_down\n"},
        {"method", "DELETE /assets\n"},
    };
    for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
        put_text("rest", req[i][0], req[i][1]);
}

static void inventory_seeds(void)
{
    put_text("inventory", "two-sites",
             "{\"sites\":[{\"site_id\":\"s1\",\"gateways\":[\"gw1\",\"gw1b\"],\"assets\":["
             "{\"asset_id\":\"s1-bat\",\"type\":\"battery\",\"capacity_wh\":10000,"
             "\"min_power_w\":-5000000,\"max_power_w\":5000000},"
             "{\"asset_id\":\"s1-pv\",\"type\":\"pv\",\"min_power_w\":0,\"max_power_w\":1e6},"
             "{\"asset_id\":\"s1-ev\",\"type\":\"evse\"},{\"asset_id\":\"s1-b\",\"type\":"
             "\"boiler\"},{\"asset_id\":\"s1-m\",\"type\":\"meter\"}]},"
             "{\"site_id\":\"s2\",\"gateways\":[\"gw2\"],\"assets\":[]}]}");
}

/* ---- gateway configurations from scenarios ---- */
static void siteconf_seeds(const char *path)
{
    struct scenario *sc;
    char err[1024];
    if (scenario_load(path, NULL, 0, &sc, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_seeds: %s\n", err);
        failed = 1;
        return;
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    for (size_t i = 0; i < sc->n_sites && i < 4; i++) {
        struct site *site = site_new(sc, i, err, sizeof(err));
        if (!site)
            continue; /* a scenario made to fail (tests/data): no configuration */
        cJSON *j = sitecfg_json(sc, site, "127.0.0.1", 1502, "fuzz_seeds");
        char *text = j ? cJSON_Print(j) : NULL;
        char name[300];
        snprintf(name, sizeof(name), "%.*s-%zu", (int)strcspn(base, "."), base, i);
        if (text)
            put_text("siteconf", name, text);
        free(text);
        cJSON_Delete(j);
        site_free(site);
    }
    scenario_free(sc);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs("usage: fuzz_seeds OUTDIR SCENARIO...\n", stderr);
        return 2;
    }
    outdir = argv[1];
    mkdir(outdir, 0755);
    agentmsg_seeds();
    modbus_seeds();
    rest_seeds();
    inventory_seeds();
    for (int i = 2; i < argc; i++)
        siteconf_seeds(argv[i]);
    return failed;
}
