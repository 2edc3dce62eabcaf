/* Unit tests for the uplink's parts that need no headend: the recent-id set that makes a
 * repeated setpoint apply once (gateway/uplink/idset.c), the bounded disk spool
 * (gateway/uplink/spool.c), the uplink's memory queue and spool while offline, its configuration
 * table, and protobuf round trips of every message the gateway builds (gateway/uplink/agentmsg.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "gateway/uplink/agentmsg.h"
#include "gateway/uplink/idset.h"
#include "gateway/uplink/spool.h"
#include "gateway/uplink/uplink.h"
#include "gateway/uplink/uplink_outbox.h"
#include "proto/der/v1/agent.pb-c.h"

static void test_idset_dedupe(void)
{
    static struct idset s;
    int st = -1;
    idset_init(&s);
    CU_ASSERT_EQUAL(idset_add(&s, "sp-1", AGENTMSG_ACK_RECEIVED, &st), 1);
    CU_ASSERT_EQUAL(idset_add(&s, "sp-1", AGENTMSG_ACK_RECEIVED, &st), 0);
    CU_ASSERT_EQUAL(st, AGENTMSG_ACK_RECEIVED);
    CU_ASSERT_EQUAL(idset_set(&s, "sp-1", AGENTMSG_ACK_APPLIED), 0);
    CU_ASSERT_EQUAL(idset_add(&s, "sp-1", AGENTMSG_ACK_RECEIVED, &st), 0);
    CU_ASSERT_EQUAL(st, AGENTMSG_ACK_APPLIED);
    CU_ASSERT_EQUAL(idset_set(&s, "nope", 1), -ENOENT);
    CU_ASSERT_EQUAL(idset_add(&s, "", 1, NULL), -EINVAL);
    /* bounded: after IDSET_CAP newer ids the first is forgotten, the newest kept */
    char id[32];
    for (int i = 0; i < IDSET_CAP; i++) {
        snprintf(id, sizeof id, "x-%d", i);
        CU_ASSERT_EQUAL(idset_add(&s, id, 1, NULL), 1);
    }
    CU_ASSERT_EQUAL(idset_get(&s, "sp-1"), -ENOENT);
    CU_ASSERT_EQUAL(idset_get(&s, "x-0"), 1);
    CU_ASSERT_EQUAL(s.n, (size_t)IDSET_CAP);
}

static void tmpdir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/derloop-unit-spool-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(buf));
}

static void rmdir_all(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static int pop_u32(struct spool *s, uint32_t *v)
{
    char buf[256];
    size_t len;
    int rc = spool_peek(s, buf, sizeof buf, &len);
    if (rc)
        return rc;
    CU_ASSERT(len >= 4);
    memcpy(v, buf, 4);
    return spool_pop(s);
}

static void test_spool_order_and_reopen(void)
{
    char dir[64];
    tmpdir(dir, sizeof dir);
    struct spool *s;
    CU_ASSERT_EQUAL_FATAL(spool_open(dir, "gw", 1 << 20, &s), 0);
    uint32_t v;
    CU_ASSERT_EQUAL(pop_u32(s, &v), -ENOENT);
    for (uint32_t i = 0; i < 100; i++) {
        char rec[40] = {0};
        memcpy(rec, &i, 4);
        CU_ASSERT_EQUAL(spool_push(s, rec, 10 + i % 30), 0);
    }
    CU_ASSERT_EQUAL(spool_records(s), 100);
    for (uint32_t i = 0; i < 40; i++) {
        CU_ASSERT_EQUAL(pop_u32(s, &v), 0);
        CU_ASSERT_EQUAL(v, i);
    }
    spool_close(s);
    /* reopened: replayed from the start of the oldest unfinished segment, in order */
    CU_ASSERT_EQUAL_FATAL(spool_open(dir, "gw", 1 << 20, &s), 0);
    CU_ASSERT(spool_records(s) >= 60);
    uint32_t prev = 0;
    int first = 1, n = 0;
    while (pop_u32(s, &v) == 0) {
        if (!first)
            CU_ASSERT_EQUAL(v, prev + 1);
        prev = v;
        first = 0;
        n++;
    }
    CU_ASSERT_EQUAL(prev, 99);
    CU_ASSERT(n >= 60);
    CU_ASSERT_EQUAL(spool_records(s), 0);
    CU_ASSERT_EQUAL(spool_dropped(s), 0);
    spool_close(s);
    rmdir_all(dir);
}

static uint32_t next_u32(struct spool *s, uint64_t *no)
{
    char buf[256];
    size_t len;
    uint32_t v = UINT32_MAX;
    if (spool_next(s, buf, sizeof buf, &len, no) == 0 && len >= 4)
        memcpy(&v, buf, 4);
    return v;
}

/* The delivery cursor: records are read without being removed, released when acknowledged,
 * sent again after a rewind; a restart resumes near the last release point; a drained spool
 * leaves no segment behind. */
static void test_spool_cursor_release_rewind(void)
{
    char dir[64];
    tmpdir(dir, sizeof dir);
    struct spool *s;
    CU_ASSERT_EQUAL_FATAL(spool_open(dir, "gw", 64 * 1024, &s), 0);
    uint8_t rec[40] = {0};
    for (uint32_t i = 0; i < 1000; i++) { /* 44 bytes each: several segments */
        memcpy(rec, &i, 4);
        CU_ASSERT_EQUAL(spool_push(s, rec, sizeof rec), 0);
    }
    CU_ASSERT_EQUAL(spool_records(s), 1000);
    CU_ASSERT_EQUAL(spool_dropped(s), 0);
    uint64_t no = 0, first = 0;
    for (uint32_t i = 0; i < 600; i++) { /* sent, nothing acknowledged */
        CU_ASSERT_EQUAL(next_u32(s, &no), i);
        if (i == 0)
            first = no;
        CU_ASSERT_EQUAL(no, first + i);
    }
    CU_ASSERT_EQUAL(spool_records(s), 1000);
    CU_ASSERT_EQUAL(spool_unsent(s), 400);
    CU_ASSERT_EQUAL(spool_release(s, first + 250), 0); /* the first 250 acknowledged */
    CU_ASSERT_EQUAL(spool_records(s), 750);
    CU_ASSERT_EQUAL(next_u32(s, &no), 600); /* the cursor is not moved by a release */
    spool_rewind(s);                        /* the stream broke: 250.. go again */
    CU_ASSERT_EQUAL(spool_unsent(s), 750);
    CU_ASSERT_EQUAL(next_u32(s, &no), 250);
    CU_ASSERT_EQUAL(no, first + 250);
    CU_ASSERT_EQUAL(spool_release(s, first + 250), 0); /* an old ack again: no effect */
    CU_ASSERT_EQUAL(spool_records(s), 750);
    for (int k = 0; k < 300; k++) /* released in single steps too (POS_EVERY is passed) */
        CU_ASSERT_EQUAL(spool_release(s, first + 251 + (uint64_t)k), 0);
    CU_ASSERT_EQUAL(spool_records(s), 450);
    spool_close(s); /* writes the release point */

    /* a restart resumes at the written release point (not the oldest segment's start) */
    CU_ASSERT_EQUAL_FATAL(spool_open(dir, "gw", 64 * 1024, &s), 0);
    CU_ASSERT_EQUAL(spool_records(s), 450);
    uint32_t v = next_u32(s, &no), last = v;
    CU_ASSERT_EQUAL(v, 550);
    while ((v = next_u32(s, &no)) != UINT32_MAX) {
        CU_ASSERT_EQUAL(v, last + 1);
        last = v;
    }
    CU_ASSERT_EQUAL(last, 999);
    CU_ASSERT_EQUAL(spool_release(s, no + 1), 0); /* everything acknowledged */
    CU_ASSERT_EQUAL(spool_records(s), 0);
    spool_close(s);

    /* drained: no segment is left to replay, and pushing starts fresh */
    CU_ASSERT_EQUAL_FATAL(spool_open(dir, "gw", 64 * 1024, &s), 0);
    CU_ASSERT_EQUAL(spool_records(s), 0);
    CU_ASSERT_EQUAL(next_u32(s, &no), UINT32_MAX);
    uint32_t x = 7;
    memcpy(rec, &x, 4);
    CU_ASSERT_EQUAL(spool_push(s, rec, sizeof rec), 0);
    CU_ASSERT_EQUAL(next_u32(s, &no), 7);
    spool_close(s);
    rmdir_all(dir);
}

/* The bound drops the oldest segment even while its records are in flight: the cursor and
 * the release point move past them, and the count says how many were lost. */
static void test_spool_drop_while_in_flight(void)
{
    char dir[64];
    tmpdir(dir, sizeof dir);
    struct spool *s;
    CU_ASSERT_EQUAL_FATAL(spool_open(dir, "gw", 8192, &s), 0);
    uint8_t rec[60] = {0};
    uint64_t no;
    for (uint32_t i = 0; i < 10; i++) {
        memcpy(rec, &i, 4);
        CU_ASSERT_EQUAL(spool_push(s, rec, sizeof rec), 0);
    }
    CU_ASSERT_EQUAL(next_u32(s, &no), 0); /* in flight */
    for (uint32_t i = 10; i < 400; i++) {
        memcpy(rec, &i, 4);
        CU_ASSERT_EQUAL(spool_push(s, rec, sizeof rec), 0);
    }
    CU_ASSERT(spool_dropped(s) > 0);
    CU_ASSERT(spool_bytes(s) <= 8192);
    CU_ASSERT_EQUAL(spool_release(s, no + 1), 0); /* its ack: already dropped, no harm */
    CU_ASSERT_EQUAL(spool_dropped(s) + spool_records(s), 400);
    uint32_t v = next_u32(s, &no);
    CU_ASSERT_EQUAL(v, (uint32_t)spool_dropped(s)); /* the oldest survivor comes next */
    spool_close(s);
    rmdir_all(dir);
}

static void test_spool_bounded_drops_oldest(void)
{
    char dir[64];
    tmpdir(dir, sizeof dir);
    struct spool *s;
    const uint64_t max = 65536;
    CU_ASSERT_EQUAL_FATAL(spool_open(dir, "gw", max, &s), 0);
    char rec[100] = {0};
    for (uint32_t i = 0; i < 5000; i++) {
        memcpy(rec, &i, 4);
        CU_ASSERT_EQUAL(spool_push(s, rec, sizeof rec), 0);
        CU_ASSERT(spool_bytes(s) <= max);
    }
    CU_ASSERT(spool_dropped(s) > 0);
    CU_ASSERT_EQUAL(spool_dropped(s) + spool_records(s), 5000);
    /* what is left is the newest, contiguous, in order */
    uint32_t v, expect = (uint32_t)spool_dropped(s);
    while (pop_u32(s, &v) == 0)
        CU_ASSERT_EQUAL(v, expect++);
    CU_ASSERT_EQUAL(expect, 5000);
    CU_ASSERT_EQUAL(spool_push(s, rec, max), -EMSGSIZE);
    spool_close(s);
    rmdir_all(dir);
}

static void fill_image(struct procimg *img)
{
    memset(img, 0, sizeof *img);
    img->n_devices = 2;
    snprintf(img->dev[0].asset_id, PROCIMG_ID_LEN, "bat-1");
    img->dev[0].type = PROCIMG_BATTERY;
    img->dev[0].online = 1;
    img->dev[0].power_w = 1500;
    img->dev[0].soc = 0.42;
    snprintf(img->dev[1].asset_id, PROCIMG_ID_LEN, "pv-1");
    img->dev[1].type = PROCIMG_PV;
    img->dev[1].online = 1;
    img->dev[1].power_w = 3000;
}

static void quiet(void *ctx, const char *line)
{
    (void)ctx;
    (void)line;
}

static struct uplink *offline_uplink(int queue_len, const char *spool_dir, int legacy)
{
    struct uplink_cfg cfg;
    char err[256];
    CU_ASSERT_EQUAL(uplink_cfg_load(NULL, "uplink", &cfg, err, sizeof err), 0);
    /* nothing listens on port 1 (binding it needs root): the stream never comes up */
    snprintf(cfg.target, sizeof cfg.target, "127.0.0.1:1");
    cfg.queue_len = queue_len;
    cfg.legacy = legacy;
    snprintf(cfg.spool_dir, sizeof cfg.spool_dir, "%s", spool_dir ? spool_dir : "");
    static struct uplink_identity id;
    memset(&id, 0, sizeof id);
    snprintf(id.gateway_id, sizeof id.gateway_id, "gw-test");
    snprintf(id.site_id, sizeof id.site_id, "site");
    id.n_assets = 2;
    snprintf(id.assets[0].asset_id, PROCIMG_ID_LEN, "bat-1");
    snprintf(id.assets[1].asset_id, PROCIMG_ID_LEN, "pv-1");
    snprintf(id.primary_asset_id, sizeof id.primary_asset_id, "bat-1");
    struct uplink_opts o = {.log = quiet, .seed = 1};
    struct uplink *u = uplink_new(&cfg, &id, &o, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL(u);
    return u;
}

static void test_uplink_queue_overflow(void)
{
    struct uplink *u = offline_uplink(4, NULL, 0);
    if (!u)
        return;
    static struct procimg img;
    fill_image(&img);
    for (int k = 0; k < 5; k++)
        CU_ASSERT_EQUAL(uplink_publish(u, &img, NULL, k * 1000), 2);
    struct uplink_stats st;
    uplink_get_stats(u, &st);
    CU_ASSERT_EQUAL(st.registered, 0);
    CU_ASSERT_EQUAL(st.queue_depth, 4);
    CU_ASSERT_EQUAL(st.telemetry_queued, 10);
    CU_ASSERT_EQUAL(st.telemetry_dropped, 6);
    struct agentmsg_setpoint sp;
    CU_ASSERT_EQUAL(uplink_poll_setpoint(u, &sp), 0);
    /* acks are bounded too: the fifth of four pushes the oldest out */
    struct agentmsg_ack ack = {"sp", AGENTMSG_ACK_APPLIED, "", 0, 0, NULL, 0};
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(uplink_ack(u, &ack), 0);
    CU_ASSERT_EQUAL(uplink_ack(u, &ack), -ENOBUFS);
    uplink_free(u);
}

static void test_uplink_offline_spools_in_order(void)
{
    char dir[64];
    tmpdir(dir, sizeof dir);
    uint64_t started_ms = (uint64_t)time(NULL) * 1000 - 1000;
    struct uplink *u = offline_uplink(4, dir, 0);
    if (!u)
        return;
    static struct procimg img;
    fill_image(&img);
    for (int k = 0; k < 50; k++) {
        img.dev[0].power_w = k;
        uplink_publish(u, &img, NULL, k * 1000);
    }
    struct uplink_stats st;
    uplink_get_stats(u, &st);
    CU_ASSERT_EQUAL(st.spooled, 100);
    CU_ASSERT_EQUAL(st.spool_records, 100);
    CU_ASSERT_EQUAL(st.queue_depth, 0);
    CU_ASSERT_EQUAL(st.telemetry_dropped, 0);
    uplink_free(u);
    /* the records are Telemetry messages in publish order with telemetry_seq s0 + 1, s0 + 2,
     * ...: s0 is the uplink's start time in Unix ms (it increases across restarts) */
    struct spool *s;
    CU_ASSERT_EQUAL_FATAL(spool_open(dir, "gw-test", 16777216, &s), 0);
    uint8_t buf[512];
    size_t len;
    uint64_t seq = 0, seq0 = 0;
    int n = 0;
    while (spool_peek(s, buf, sizeof buf, &len) == 0) {
        Der__V1__Telemetry *t = der__v1__telemetry__unpack(NULL, len, buf);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        if (!strcmp(t->asset_id, "bat-1")) {
            if (seq0 == 0) {
                seq0 = t->telemetry_seq - 1;
                CU_ASSERT(seq0 >= started_ms && seq0 <= ((uint64_t)time(NULL) + 1) * 1000);
            }
            CU_ASSERT_EQUAL(t->telemetry_seq, seq0 + seq + 1);
            CU_ASSERT_DOUBLE_EQUAL(t->power_w, (double)seq, 1e-9);
            seq++;
        }
        der__v1__telemetry__free_unpacked(t, NULL);
        spool_pop(s);
        n++;
    }
    CU_ASSERT_EQUAL(n, 100);
    CU_ASSERT_EQUAL(seq, 50);
    spool_close(s);
    rmdir_all(dir);
}

static void test_uplink_period_and_legacy(void)
{
    struct uplink *u = offline_uplink(64, NULL, 1);
    if (!u)
        return;
    static struct procimg img;
    fill_image(&img);
    /* legacy: only the primary asset, one message per publish */
    CU_ASSERT_EQUAL(uplink_publish(u, &img, NULL, 0), 1);
    uplink_free(u);
}

static void test_uplink_cfg(void)
{
    struct uplink_cfg c;
    char err[256];
    cJSON *o = cJSON_Parse("{\"target\": \"127.0.0.1:50051\", \"keepalive_time\": \"2s\","
                           " \"spool_dir\": \"/tmp/x\", \"legacy\": true, \"queue_len\": 16}");
    CU_ASSERT_EQUAL(uplink_cfg_load(o, "uplink", &c, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(c.target, "127.0.0.1:50051");
    CU_ASSERT_EQUAL(c.keepalive_time_ms, 2000);
    CU_ASSERT_EQUAL(c.legacy, 1);
    CU_ASSERT_EQUAL(c.queue_len, 16);
    CU_ASSERT_STRING_EQUAL(c.spool_dir, "/tmp/x");
    CU_ASSERT_EQUAL(c.heartbeat_period_ms, 10000);
    CU_ASSERT_EQUAL(c.decision_period_ms, 60000);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"decision_period\": \"0s\"}"); /* only on change */
    CU_ASSERT_EQUAL(uplink_cfg_load(o, "uplink", &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.decision_period_ms, 0);
    cJSON_Delete(o);
    static const char *const bad[][2] = {
        {"{\"keepalive_time\": \"soon\"}", "uplink.keepalive_time"},
        {"{\"decision_period\": \"soon\"}", "uplink.decision_period"},
        {"{\"queue_len\": 1}", "uplink.queue_len"},
        {"{\"target\": 5}", "uplink.target"},
        {"{\"target\": \"nohostport\"}", "uplink.target"},
        {"{\"tagret\": \"a:1\"}", "tagret"},
        {"{\"backoff_initial\": \"10s\", \"backoff_max\": \"1s\"}", "uplink.backoff_max"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = cJSON_Parse(bad[i][0]);
        err[0] = '\0';
        CU_ASSERT_EQUAL(uplink_cfg_load(o, "uplink", &c, err, sizeof err), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i][1]));
        cJSON_Delete(o);
    }
}

/* A throwaway self-signed certificate naming gw-test (SAN URI, clientAuth, valid 2026..2126)
 * with its key, and an unrelated key: test data only, made with openssl req/genpkey. */
static const char TEST_CERT[] = "-----BEGIN CERTIFICATE-----\n"
                                "MIIBujCCAWCgAwIBAgIUKa9QK+CQXoYOSp0Mtb+e5PO/8WUwCgYIKoZIzj0EAwIw\n"
                                "EjEQMA4GA1UEAwwHZ3ctdGVzdDAgFw0yNjEyMDIwNjE5MDBaGA8yMTI2MTEwODA2\n"
                                "MTkwMFowEjEQMA4GA1UEAwwHZ3ctdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
                                "A0IABCeMmip6Lv0hUfdoxORG0vos+CyipCmGMEyyUdFG6oJPyGjK0j4O2M2y7uJ/\n"
                                "+HNC+j+wvBZDVgSQ/uLaqUJMyGGjgZEwgY4wHQYDVR0OBBYEFHr72lleYikjv8hh\n"
                                "8+803wbw7kChMB8GA1UdIwQYMBaAFHr72lleYikjv8hh8+803wbw7kChMA8GA1Ud\n"
                                "EwEB/wQFMAMBAf8wJgYDVR0RBB8wHYYbdXJuOmRlcmxvb3A6Z2F0ZXdheTpndy10\n"
                                "ZXN0MBMGA1UdJQQMMAoGCCsGAQUFBwMCMAoGCCqGSM49BAMCA0gAMEUCIE+Pm32D\n"
                                "3ePn3arzixWXlFzLLG+UhH3O3jZh55QyOfqdAiEA1VgywDZ3mq0FQ1Neitlr5dBA\n"
                                "2lu0QP0sSm+A3CweKwQ=\n"
                                "-----END CERTIFICATE-----\n";
static const char TEST_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgDN+GdX0rOPQqcWGD\n"
                               "uO9U8Lh6r6HJQGAmg//dOSWyt+qhRANCAAQnjJoqei79IVH3aMTkRtL6LPgsoqQp\n"
                               "hjBMslHRRuqCT8hoytI+DtjNsu7if/hzQvo/sLwWQ1YEkP7i2qlCTMhh\n"
                               "-----END PRIVATE KEY-----\n";
static const char OTHER_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgm7plXoZ4nnFlGrZ8\n"
                                "4YyAbTscpdhaq4CCdf2mmVAUCwyhRANCAAQ5JbAJYHMETe9qwIWItoKjzeaPACZs\n"
                                "9kYSx/uEU98Wq4Xe6P4dcETTz1xy+Jp6Y/ETLsJXex91XgHMx5OTAWL9\n"
                                "-----END PRIVATE KEY-----\n";

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    CU_ASSERT_EQUAL(fclose(f), 0);
}

/* The uplink's log lines, kept for the test to look at. */
static char tls_log[8192];

static void keep_log(void *ctx, const char *line)
{
    (void)ctx;
    size_t n = strlen(tls_log);
    snprintf(tls_log + n, sizeof tls_log - n, "%s\n", line);
}

/* uplink.tls: parsing, and the files read when the uplink starts and on uplink_reload. */
static void test_uplink_tls_cfg(void)
{
    struct uplink_cfg c;
    char err[700];
    cJSON *o = cJSON_Parse("{\"target\": \"127.0.0.1:1\", \"tls\": {\"ca\": \"ca.pem\", \"cert\": "
                           "\"gw.pem\", \"key\": \"gw.key\", \"server_name\": \"headend.test\"}}");
    CU_ASSERT_EQUAL(uplink_cfg_load(o, "uplink", &c, err, sizeof err), 0);
    CU_ASSERT(c.tls.on);
    CU_ASSERT_STRING_EQUAL(c.tls.ca, "ca.pem");
    CU_ASSERT_STRING_EQUAL(c.tls.cert, "gw.pem");
    CU_ASSERT_STRING_EQUAL(c.tls.key, "gw.key");
    CU_ASSERT_STRING_EQUAL(c.tls.server_name, "headend.test");
    cJSON_Delete(o);
    o = cJSON_Parse("{\"tls\": {\"ca\": \"ca.pem\"}}"); /* server-only TLS */
    CU_ASSERT_EQUAL(uplink_cfg_load(o, "uplink", &c, err, sizeof err), 0);
    CU_ASSERT(c.tls.on && !c.tls.cert[0] && !c.tls.server_name[0]);
    cJSON_Delete(o);
    CU_ASSERT_EQUAL(uplink_cfg_load(NULL, "uplink", &c, err, sizeof err), 0);
    CU_ASSERT_FALSE(c.tls.on);
    static const char *const bad[][2] = {
        {"{\"tls\": \"ca.pem\"}", "uplink.tls: must be an object"},
        {"{\"tls\": {}}", "uplink.tls.ca: required"},
        {"{\"tls\": {\"cert\": \"c\", \"key\": \"k\"}}", "uplink.tls.ca: required"},
        {"{\"tls\": {\"ca\": \"a\", \"cert\": \"c\"}}", "uplink.tls.key: cert and key"},
        {"{\"tls\": {\"ca\": \"a\", \"key\": \"k\"}}", "uplink.tls.cert: cert and key"},
        {"{\"tls\": {\"ca\": 5}}", "uplink.tls.ca: must be a string"},
        {"{\"tls\": {\"ca\": \"a\", \"crt\": \"c\"}}", "uplink.tls.crt: unknown key"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = cJSON_Parse(bad[i][0]);
        err[0] = '\0';
        CU_ASSERT_EQUAL(uplink_cfg_load(o, "uplink", &c, err, sizeof err), -EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i][1]));
        cJSON_Delete(o);
    }

    /* the files: unreadable or not PEM stop uplink_new with the key named */
    char dir[64], ca[128], gw[128], key[128];
    tmpdir(dir, sizeof dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(gw, sizeof gw, "%s/gw.pem", dir);
    snprintf(key, sizeof key, "%s/gw.key", dir);
    CU_ASSERT_EQUAL(uplink_cfg_load(NULL, "uplink", &c, err, sizeof err), 0);
    snprintf(c.target, sizeof c.target, "127.0.0.1:1");
    c.tls.on = 1;
    snprintf(c.tls.ca, sizeof c.tls.ca, "%s", ca);
    snprintf(c.tls.cert, sizeof c.tls.cert, "%s", gw);
    snprintf(c.tls.key, sizeof c.tls.key, "%s", key);
    static struct uplink_identity id;
    memset(&id, 0, sizeof id);
    snprintf(id.gateway_id, sizeof id.gateway_id, "gw-test");
    snprintf(id.site_id, sizeof id.site_id, "site");
    id.n_assets = 1;
    snprintf(id.assets[0].asset_id, PROCIMG_ID_LEN, "bat-1");
    struct uplink_opts uo = {.log = quiet, .seed = 1};
    err[0] = '\0';
    CU_ASSERT_PTR_NULL(uplink_new(&c, &id, &uo, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "uplink.tls.ca: cannot read"));
    /* files that cannot work stop it too: no certificate, no key, another key */
    static const char garbage[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    static const struct {
        const char *ca, *cert, *key, *want;
    } cases[] = {
        {TEST_CERT, "not a certificate\n", TEST_KEY, "uplink.tls.cert: \""},
        {TEST_CERT, garbage, TEST_KEY, "uplink.tls.cert: no certificate"},
        {TEST_CERT, TEST_CERT, garbage, "uplink.tls.key: no private key"},
        {TEST_CERT, TEST_CERT, OTHER_KEY, "uplink.tls.key: not the key of uplink.tls.cert"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(ca, cases[i].ca);
        write_text(gw, cases[i].cert);
        write_text(key, cases[i].key);
        err[0] = '\0';
        CU_ASSERT_PTR_NULL(uplink_new(&c, &id, &uo, err, sizeof err));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
    }
    /* a certificate that names another gateway starts, with a warning saying so */
    write_text(key, TEST_KEY);
    snprintf(id.gateway_id, sizeof id.gateway_id, "gw-other");
    uo.log = keep_log;
    tls_log[0] = '\0';
    struct uplink *u = uplink_new(&c, &id, &uo, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    /* reload: read again (ok), then with the key gone (failed, the old credentials stay) */
    struct uplink_stats st;
    uplink_reload(u);
    for (int i = 0; i < 1000; i++) { /* 10 s at most: slow under sanitizers */
        uplink_get_stats(u, &st);
        if (st.tls_reloads)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    CU_ASSERT_EQUAL(st.tls_reloads, 1);
    CU_ASSERT_EQUAL(unlink(key), 0);
    uplink_reload(u);
    for (int i = 0; i < 1000; i++) {
        uplink_get_stats(u, &st);
        if (st.tls_reload_failures)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    CU_ASSERT_EQUAL(st.tls_reload_failures, 1);
    CU_ASSERT_EQUAL(st.tls_reloads, 1);
    uplink_free(u); /* the log is read once its thread has stopped */
    CU_ASSERT_PTR_NOT_NULL(strstr(tls_log, "event=tls_cert status=warning"));
    CU_ASSERT_PTR_NOT_NULL(strstr(tls_log, "names gateway gw-test, this gateway is gw-other"));
    CU_ASSERT_PTR_NOT_NULL(strstr(tls_log, "event=tls_reload status=ok"));
    CU_ASSERT_PTR_NOT_NULL(strstr(tls_log, "event=tls_reload status=failed"));
    rmdir_all(dir);
}

static void test_proto_telemetry_frame(void)
{
    static struct procimg img;
    fill_image(&img);
    img.dev[0].has_prev_setpoint = 1;
    img.dev[0].prev_setpoint_w = -2000;
    uint8_t *body, *msg;
    size_t blen, mlen;
    CU_ASSERT_EQUAL_FATAL(agentmsg_telemetry(&img.dev[0], "bat-1", NULL, 1234, 7, &body, &blen), 0);
    CU_ASSERT_EQUAL_FATAL(agentmsg_frame(300, 5678, AGENTMSG_TELEMETRY, body, blen, &msg, &mlen),
                          0);
    Der__V1__AgentMessage *m = der__v1__agent_message__unpack(NULL, mlen, msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(m->seq, 300);
    CU_ASSERT_EQUAL(m->sent_ms, 5678);
    CU_ASSERT_EQUAL_FATAL(m->body_case, DER__V1__AGENT_MESSAGE__BODY_TELEMETRY);
    const Der__V1__Telemetry *t = m->telemetry;
    CU_ASSERT_STRING_EQUAL(t->asset_id, "bat-1");
    CU_ASSERT_EQUAL(t->ts_ms, 1234);
    CU_ASSERT_EQUAL(t->telemetry_seq, 7);
    CU_ASSERT_DOUBLE_EQUAL(t->power_w, 1500, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(t->setpoint_w, -2000, 1e-9);
    CU_ASSERT(t->online);
    CU_ASSERT_STRING_EQUAL(t->status, "ok");
    CU_ASSERT_EQUAL_FATAL(t->details_case, DER__V1__TELEMETRY__DETAILS_STORAGE);
    CU_ASSERT_DOUBLE_EQUAL(t->storage->soc, 0.42, 1e-12);
    der__v1__agent_message__free_unpacked(m, NULL);
    free(body);
    free(msg);
    /* no setpoint written yet: NaN on the wire */
    CU_ASSERT_EQUAL_FATAL(agentmsg_telemetry(&img.dev[1], "", "stale", 1, 1, &body, &blen), 0);
    Der__V1__Telemetry *t2 = der__v1__telemetry__unpack(NULL, blen, body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT(isnan(t2->setpoint_w));
    CU_ASSERT_STRING_EQUAL(t2->asset_id, "");
    CU_ASSERT_STRING_EQUAL(t2->status, "stale");
    CU_ASSERT_EQUAL(t2->details_case, DER__V1__TELEMETRY__DETAILS_PV);
    der__v1__telemetry__free_unpacked(t2, NULL);
    free(body);
}

static void test_proto_ack_register(void)
{
    struct agentmsg_alloc al[2] = {{"bat-1", 2000.5}, {"bat-2", -1000}};
    uint8_t *b;
    size_t n;
    struct agentmsg_ack ack = {
        "sp-9", AGENTMSG_ACK_APPLIED, "partial: 1000 of 5000 W", 5000, 1000.5, al, 2};
    CU_ASSERT_EQUAL_FATAL(agentmsg_ack(&ack, &b, &n), 0);
    Der__V1__SetpointAck *a = der__v1__setpoint_ack__unpack(NULL, n, b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_STRING_EQUAL(a->setpoint_id, "sp-9");
    CU_ASSERT_EQUAL(a->state, DER__V1__SETPOINT_ACK__STATE__APPLIED);
    CU_ASSERT_EQUAL_FATAL(a->n_allocations, 2);
    CU_ASSERT_STRING_EQUAL(a->allocations[1]->asset_id, "bat-2");
    CU_ASSERT_DOUBLE_EQUAL(a->allocations[0]->power_w, 2000.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(a->requested_w, 5000, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(a->allocated_w, 1000.5, 1e-12);
    der__v1__setpoint_ack__free_unpacked(a, NULL);
    free(b);
    struct agentmsg_ack rej = {"sp-10", AGENTMSG_ACK_REJECTED, "unknown asset x", 7, NAN, NULL, 0};
    CU_ASSERT_EQUAL_FATAL(agentmsg_ack(&rej, &b, &n), 0);
    a = der__v1__setpoint_ack__unpack(NULL, n, b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(a->state, DER__V1__SETPOINT_ACK__STATE__REJECTED);
    CU_ASSERT_STRING_EQUAL(a->detail, "unknown asset x");
    der__v1__setpoint_ack__free_unpacked(a, NULL);
    free(b);

    struct agentmsg_asset as[2] = {{"bat-1", AGENTMSG_ASSET_BATTERY, 10000, -5000, 5000},
                                   {"pv-1", AGENTMSG_ASSET_PV, 0, 0, 8000}};
    for (int legacy = 0; legacy < 2; legacy++) {
        CU_ASSERT_EQUAL_FATAL(
            agentmsg_register("gw-1", "site-1", as, 2, "bat-1", "test", legacy, &b, &n), 0);
        Der__V1__Register *r = der__v1__register__unpack(NULL, n, b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_STRING_EQUAL(r->gateway_id, "gw-1");
        CU_ASSERT_STRING_EQUAL(r->site_id, "site-1");
        CU_ASSERT_STRING_EQUAL(r->primary_asset_id, "bat-1");
        CU_ASSERT_EQUAL(r->n_assets, legacy ? 0 : 2);
        CU_ASSERT_EQUAL(r->decisions, !legacy);
        if (!legacy && r->n_assets == 2) {
            CU_ASSERT_EQUAL(r->assets[0]->type, DER__V1__ASSET_TYPE__ASSET_TYPE_BATTERY);
            CU_ASSERT_DOUBLE_EQUAL(r->assets[0]->min_power_w, -5000, 1e-9);
            CU_ASSERT_DOUBLE_EQUAL(r->assets[1]->max_power_w, 8000, 1e-9);
        }
        der__v1__register__free_unpacked(r, NULL);
        free(b);
    }
}

/* A cycle: net_zero asked the site for 2 kW, bat-1 was set to 1.5 kW (clamped by the SoC
 * floor), a reserve conflict and a schedule overrode the site request. */
static void fill_decision(struct decision *dm, const struct procimg *img)
{
    decision_init(dm, img, "net_zero");
    dm->raw_w = 2000;
    decision_request(dm, DSRC_OPTIMISATION, DECISION_SITE, 2000);
    decision_request(dm, DSRC_SCHEDULED, 0, 1800);
    dm->asset[0].set = 1;
    dm->asset[0].source = DSRC_SCHEDULED;
    dm->asset[0].requested_w = 1800;
    dm->asset[0].final_w = 1500;
    decision_clamp(dm, 0, DR_SOC_FLOOR, 1800, 1500);
    decision_clamp(dm, DECISION_SITE, DC_RESERVE, 2000, 1800);
}

static void test_proto_decision(void)
{
    static struct procimg img;
    static struct decision dm;
    fill_image(&img);
    img.now_ms = 42000;
    fill_decision(&dm, &img);
    uint8_t *b, *f;
    size_t n, fl;
    CU_ASSERT_EQUAL_FATAL(agentmsg_decision(&dm, 1700000000123LL, &b, &n), 0);
    CU_ASSERT_EQUAL_FATAL(agentmsg_frame(7, 1, AGENTMSG_DECISION, b, n, &f, &fl), 0);
    Der__V1__AgentMessage *m = der__v1__agent_message__unpack(NULL, fl, f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL_FATAL(m->body_case, DER__V1__AGENT_MESSAGE__BODY_DECISION);
    const Der__V1__Decision *d = m->decision;
    CU_ASSERT_EQUAL(d->ts_ms, 1700000000123LL);
    CU_ASSERT_EQUAL(d->cycle_ms, 42000);
    CU_ASSERT_STRING_EQUAL(d->strategy, "net_zero");
    CU_ASSERT_EQUAL_FATAL(d->n_requests, 2);
    CU_ASSERT_STRING_EQUAL(d->requests[0]->asset_id, "");
    CU_ASSERT_STRING_EQUAL(d->requests[0]->source, "optimisation");
    CU_ASSERT_STRING_EQUAL(d->requests[1]->asset_id, "bat-1");
    CU_ASSERT_DOUBLE_EQUAL(d->requests[1]->power_w, 1800, 1e-9);
    CU_ASSERT_EQUAL_FATAL(d->n_setpoints, 1);
    CU_ASSERT_STRING_EQUAL(d->setpoints[0]->asset_id, "bat-1");
    CU_ASSERT_STRING_EQUAL(d->setpoints[0]->source, "scheduled");
    CU_ASSERT_DOUBLE_EQUAL(d->setpoints[0]->final_w, 1500, 1e-9);
    CU_ASSERT_EQUAL_FATAL(d->n_clamps, 1);
    CU_ASSERT_STRING_EQUAL(d->clamps[0]->reason, "soc_floor");
    CU_ASSERT_DOUBLE_EQUAL(d->clamps[0]->from_w, 1800, 1e-9);
    CU_ASSERT_EQUAL_FATAL(d->n_conflicts, 1);
    CU_ASSERT_STRING_EQUAL(d->conflicts[0]->reason, "reserve");
    CU_ASSERT_STRING_EQUAL(d->conflicts[0]->asset_id, "");
    CU_ASSERT_EQUAL(d->schedule_active, 1);
    CU_ASSERT_EQUAL(d->estop_active, 0);
    CU_ASSERT_DOUBLE_EQUAL(d->raw_w, 2000, 1e-9);
    der__v1__agent_message__free_unpacked(m, NULL);
    free(f);
    free(b);
}

static void test_decision_changed(void)
{
    static struct procimg img;
    static struct decision a, b;
    fill_image(&img);
    fill_decision(&a, &img);
    fill_decision(&b, &img);
    CU_ASSERT_EQUAL(agentmsg_decision_changed(&a, &b), 0);
    b.req[0].power_w = 2015; /* within 1 % (at least 10 W): the same decision */
    CU_ASSERT_EQUAL(agentmsg_decision_changed(&a, &b), 0);
    b.req[0].power_w = 2100;
    CU_ASSERT_EQUAL(agentmsg_decision_changed(&a, &b), 1);
    fill_decision(&b, &img);
    b.asset[0].final_w = 1000; /* the setpoint written */
    CU_ASSERT_EQUAL(agentmsg_decision_changed(&a, &b), 1);
    fill_decision(&b, &img);
    b.clamp[0].reason = DR_RAMP; /* the clamp set */
    CU_ASSERT_EQUAL(agentmsg_decision_changed(&a, &b), 1);
    fill_decision(&b, &img);
    decision_clamp(&b, 0, DR_RAMP, 1500, 1400);
    CU_ASSERT_EQUAL(agentmsg_decision_changed(&a, &b), 1);
    fill_decision(&b, &img);
    b.asset[1].set = 1; /* another asset commanded */
    CU_ASSERT_EQUAL(agentmsg_decision_changed(&a, &b), 1);
    fill_decision(&b, &img);
    b.req[1].power_w = NAN; /* a request became non-finite */
    CU_ASSERT_EQUAL(agentmsg_decision_changed(&a, &b), 1);
}

/* Offline: decisions queue on change or at decision_period, bounded, the oldest dropped. */
static void test_uplink_decisions_queue(void)
{
    struct uplink *u = offline_uplink(64, NULL, 0);
    if (!u)
        return;
    static struct procimg img;
    static struct decision dm;
    fill_image(&img);
    fill_decision(&dm, &img);
    CU_ASSERT_EQUAL(uplink_decide(u, &dm, 0), 1);     /* the first */
    CU_ASSERT_EQUAL(uplink_decide(u, &dm, 1000), 0);  /* unchanged */
    CU_ASSERT_EQUAL(uplink_decide(u, &dm, 60000), 1); /* the period (default 60 s) */
    CU_ASSERT_EQUAL(uplink_decide(u, NULL, 61000), 0);
    for (int k = 0; k < OUTBOX_DECISIONS; k++) {
        dm.asset[0].final_w = 100.0 * k;
        CU_ASSERT_EQUAL(uplink_decide(u, &dm, 61000 + k), 1);
    }
    struct uplink_stats st;
    uplink_get_stats(u, &st);
    CU_ASSERT_EQUAL(st.decisions_queued, 2 + OUTBOX_DECISIONS);
    CU_ASSERT_EQUAL(st.decisions_dropped, 2);
    CU_ASSERT_EQUAL(st.decisions_sent, 0);
    CU_ASSERT_EQUAL(st.telemetry_queued, 0); /* decisions are not telemetry: never spooled */
    uplink_free(u);
    u = offline_uplink(64, NULL, 1); /* a legacy agent sends none */
    if (!u)
        return;
    CU_ASSERT_EQUAL(uplink_decide(u, &dm, 0), 0);
    uplink_free(u);
}

static void test_proto_parse_setpoint(void)
{
    Der__V1__HeadendMessage m = DER__V1__HEADEND_MESSAGE__INIT;
    Der__V1__Setpoint s = DER__V1__SETPOINT__INIT;
    s.setpoint_id = "sp-1";
    s.target_case = DER__V1__SETPOINT__TARGET_SITE_ID;
    s.site_id = "fleet";
    s.power_w = -4000;
    s.expires_ms = 1700000000000;
    m.seq = 3;
    m.body_case = DER__V1__HEADEND_MESSAGE__BODY_SETPOINT;
    m.setpoint = &s;
    uint8_t buf[600];
    size_t n = der__v1__headend_message__pack(&m, buf);
    static struct agentmsg_headend out;
    CU_ASSERT_EQUAL_FATAL(agentmsg_parse_headend(buf, n, &out), 0);
    CU_ASSERT_EQUAL(out.seq, 3);
    CU_ASSERT_EQUAL(out.body, 11);
    CU_ASSERT_STRING_EQUAL(out.setpoint.setpoint_id, "sp-1");
    CU_ASSERT_EQUAL(out.setpoint.target, 's');
    CU_ASSERT_STRING_EQUAL(out.setpoint.target_id, "fleet");
    CU_ASSERT_DOUBLE_EQUAL(out.setpoint.power_w, -4000, 1e-9);
    CU_ASSERT_EQUAL(out.setpoint.expires_ms, 1700000000000);
    /* legacy: no target */
    s.target_case = DER__V1__SETPOINT__TARGET__NOT_SET;
    n = der__v1__headend_message__pack(&m, buf);
    CU_ASSERT_EQUAL(agentmsg_parse_headend(buf, n, &out), 0);
    CU_ASSERT_EQUAL(out.setpoint.target, 0);
    /* an id longer than we keep is refused, not truncated */
    char longid[300];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    s.setpoint_id = longid;
    n = der__v1__headend_message__pack(&m, buf);
    CU_ASSERT_EQUAL(agentmsg_parse_headend(buf, n, &out), -EMSGSIZE);
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    CU_ASSERT_EQUAL(agentmsg_parse_headend(junk, sizeof junk, &out), -EBADMSG);
}

void test_register_uplink(void)
{
    CU_pSuite s = CU_add_suite("uplink", NULL, NULL);
    CU_add_test(s, "dedupe: recent setpoint ids", test_idset_dedupe);
    CU_add_test(s, "spool: order and reopen", test_spool_order_and_reopen);
    CU_add_test(s, "spool: bounded, oldest dropped", test_spool_bounded_drops_oldest);
    CU_add_test(s, "spool: cursor, release, rewind, restart", test_spool_cursor_release_rewind);
    CU_add_test(s, "spool: drop while in flight", test_spool_drop_while_in_flight);
    CU_add_test(s, "queue overflow while offline", test_uplink_queue_overflow);
    CU_add_test(s, "offline telemetry spooled in order", test_uplink_offline_spools_in_order);
    CU_add_test(s, "legacy: primary asset only", test_uplink_period_and_legacy);
    CU_add_test(s, "configuration table", test_uplink_cfg);
    CU_add_test(s, "tls configuration and reload", test_uplink_tls_cfg);
    CU_add_test(s, "proto: telemetry framed in an AgentMessage", test_proto_telemetry_frame);
    CU_add_test(s, "proto: SetpointAck and Register", test_proto_ack_register);
    CU_add_test(s, "proto: HeadendMessage setpoint", test_proto_parse_setpoint);
    CU_add_test(s, "proto: Decision round trip", test_proto_decision);
    CU_add_test(s, "decisions: change detector", test_decision_changed);
    CU_add_test(s, "decisions: queued on change or period, bounded", test_uplink_decisions_queue);
}
