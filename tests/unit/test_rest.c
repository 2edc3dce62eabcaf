/* Unit tests for the headend's input hygiene: log_escape (headend/log.c), ident_valid
 * (headend/ident.c) and the REST request as it comes off the wire (rest_handle_url:
 * percent-decoding, control characters and NULs in paths, query values and JSON bodies). No
 * sockets: the hub runs on an in-memory SQLite store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>

#include "headend/config.h"
#include "headend/hub.h"
#include "headend/ident.h"
#include "headend/inventory.h"
#include "common/log.h"
#include "headend/rest.h"
#include "headend/store.h"

static const char INV[] = "{\"sites\":[{\"site_id\":\"s1\",\"gateways\":[\"gw1\"],\"assets\":["
                          "{\"asset_id\":\"s1-bat\",\"type\":\"battery\",\"min_power_w\":-5000000,"
                          "\"max_power_w\":5000000}]}]}";

static struct hub *hub_for_test(void)
{
    struct headend_config cfg;
    config_defaults(&cfg);
    struct inventory *inv;
    struct store *st;
    char err[256];
    struct hub *h = NULL;
    log_set_level(LOG_ERROR);
    if (inventory_parse(INV, &inv, err, sizeof(err)) == 0 &&
        store_open(":memory:", &st, err, sizeof(err)) == 0)
        hub_new(&cfg, inv, st, 1000, &h);
    return h;
}

static void test_log_escape(void)
{
    char b[LOG_VALUE_MAX];
    CU_ASSERT_STRING_EQUAL(log_escape(b, sizeof(b), "gw-1"), "gw-1");
    CU_ASSERT_STRING_EQUAL(log_escape(b, sizeof(b), "ipv4:127.0.0.1:5"), "ipv4:127.0.0.1:5");
    CU_ASSERT_STRING_EQUAL(log_escape(b, sizeof(b), ""), "\"\"");
    CU_ASSERT_STRING_EQUAL(log_escape(b, sizeof(b), NULL), "-");
    CU_ASSERT_STRING_EQUAL(log_escape(b, sizeof(b), "a b"), "\"a b\"");
    CU_ASSERT_STRING_EQUAL(log_escape(b, sizeof(b), "k=v"), "\"k=v\"");
    /* The forged-line attempt of the issue stays one value on one line. */
    CU_ASSERT_STRING_EQUAL(log_escape(b, sizeof(b), "/nope\nlevel=error event=store_down"),
                           "\"/nope\\nlevel=error event=store_down\"");
    CU_ASSERT_STRING_EQUAL(log_escape(b, sizeof(b), "q\"\\\r\t\x01\x7f\xc3\xa9"),
                           "\"q\\\"\\\\\\r\\t\\x01\\x7f\\xc3\\xa9\"");
    CU_ASSERT_STRING_EQUAL(log_escape_n(b, sizeof(b), "a\0b", 3), "\"a\\x00b\"");
    /* Cut values still close their quotes and never split an escape. */
    char small[12];
    log_escape(small, sizeof(small), "\n\n\n\n\n\n");
    CU_ASSERT_STRING_EQUAL(small, "\"\\n\\n\\n...\"");
    log_escape(small, sizeof(small), "abcdefghijklmnop");
    CU_ASSERT_STRING_EQUAL(small, "\"abcdef...\"");
    log_escape(small, sizeof(small), "abcdefghi ");
    CU_ASSERT_EQUAL(strlen(small), 11);
    CU_ASSERT_EQUAL(small[10], '"');
    char tiny[4];
    log_escape(tiny, sizeof(tiny), "a\nb");
    CU_ASSERT_STRING_EQUAL(tiny, "\"\"");
    /* Every output byte of every single-byte input is printable and there is no newline. */
    for (int c = 0; c < 256; c++) {
        char in[3] = {'x', (char)c, 0};
        log_escape_n(b, sizeof(b), in, 2);
        for (const char *p = b; *p; p++)
            CU_ASSERT((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7F);
    }
}

static void test_ident(void)
{
    char why[96];
    CU_ASSERT_EQUAL(ident_valid("bat-1", 5, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(ident_valid("K\xc3\xbc"
                                "che",
                                6, why, sizeof(why)),
                    0); /* Küche */
    CU_ASSERT_EQUAL(ident_valid("bat-1\0evil", 10, why, sizeof(why)), -EINVAL);
    CU_ASSERT_STRING_EQUAL(why, "contains a control character (0x00) at byte 5");
    CU_ASSERT_EQUAL(ident_valid("a\nb", 3, why, sizeof(why)), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "0x0a"));
    CU_ASSERT_EQUAL(ident_valid("a\x7f", 2, why, sizeof(why)), -EINVAL);
    CU_ASSERT_EQUAL(ident_valid("a\xc2\x85", 3, why, sizeof(why)), -EINVAL); /* NEL, C1 */
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "U+0085"));
    CU_ASSERT_EQUAL(ident_valid("a\xff", 2, why, sizeof(why)), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "UTF-8"));
    CU_ASSERT_EQUAL(ident_valid("\xc0\xae", 2, why, sizeof(why)), -EINVAL);     /* overlong '.' */
    CU_ASSERT_EQUAL(ident_valid("\xed\xa0\x80", 3, why, sizeof(why)), -EINVAL); /* surrogate */
    CU_ASSERT_EQUAL(ident_valid("\xe2\x82", 2, why, sizeof(why)), -EINVAL);     /* cut */
    CU_ASSERT_EQUAL(ident_valid("", 0, why, sizeof(why)), -EINVAL);
    CU_ASSERT_STRING_EQUAL(why, "is empty");
    char long_id[INV_ID_MAX + 1];
    memset(long_id, 'a', sizeof(long_id));
    CU_ASSERT_EQUAL(ident_valid(long_id, INV_ID_MAX - 1, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(ident_valid(long_id, INV_ID_MAX, why, sizeof(why)), -EINVAL);
    CU_ASSERT_EQUAL(ident_valid("a\tb", 3, NULL, 0), -EINVAL); /* why is optional */
}

/* One request through rest_handle_url; returns the status and the error's field. */
static int req(struct hub *h, const char *method, const char *url, const char *body, size_t blen,
               char *field, size_t flen)
{
    struct rest_response r;
    rest_handle_url(h, method, url, strlen(url), body, blen, 1000, &r);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *f = cJSON_GetObjectItem(j, "field");
    snprintf(field, flen, "%s", cJSON_IsString(f) ? f->valuestring : "");
    cJSON_Delete(j);
    free(r.body);
    return r.status;
}

static void test_rest_raw_url(void)
{
    struct hub *h = hub_for_test();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    char f[64];
    CU_ASSERT_EQUAL(req(h, "GET", "/healthz", NULL, 0, f, sizeof(f)), 200);
    CU_ASSERT_EQUAL(req(h, "GET", "/health%7a", NULL, 0, f, sizeof(f)), 200); /* decoded */
    /* The forged log line of the issue: refused, and the field says why. */
    CU_ASSERT_EQUAL(req(h, "GET", "/nope%0Alevel=error%20event=store_down", NULL, 0, f, sizeof(f)),
                    400);
    CU_ASSERT_STRING_EQUAL(f, "path");
    CU_ASSERT_EQUAL(req(h, "GET", "/healthz%00x", NULL, 0, f, sizeof(f)), 400);
    CU_ASSERT_STRING_EQUAL(f, "path");
    CU_ASSERT_EQUAL(req(h, "GET", "/nope", NULL, 0, f, sizeof(f)), 404);
    /* Ids in the path: NUL and control characters are a 400 on the id, not a lookup of a
     * shorter one; a plain unknown id stays a 404. */
    CU_ASSERT_EQUAL(req(h, "GET", "/telemetry/s1-bat%00evil", NULL, 0, f, sizeof(f)), 400);
    CU_ASSERT_STRING_EQUAL(f, "asset_id");
    CU_ASSERT_EQUAL(req(h, "GET", "/telemetry/s1-bat%0d", NULL, 0, f, sizeof(f)), 400);
    CU_ASSERT_EQUAL(req(h, "GET", "/dispatch/sp-1%00", NULL, 0, f, sizeof(f)), 400);
    CU_ASSERT_STRING_EQUAL(f, "setpoint_id");
    CU_ASSERT_EQUAL(req(h, "GET", "/telemetry/s1%2Dbat", NULL, 0, f, sizeof(f)), 404);
    CU_ASSERT_STRING_EQUAL(f, "asset_id"); /* known asset, no telemetry yet */
    CU_ASSERT_EQUAL(req(h, "GET", "/telemetry/zz", NULL, 0, f, sizeof(f)), 404);
    CU_ASSERT_EQUAL(req(h, "GET", "/telemetry/s1-bat%", NULL, 0, f, sizeof(f)), 404);
    /* Query values. */
    CU_ASSERT_EQUAL(req(h, "GET", "/telemetry/s1-bat?from=0&to=5", NULL, 0, f, sizeof(f)), 200);
    CU_ASSERT_EQUAL(req(h, "GET", "/telemetry/s1-bat?from=1%00", NULL, 0, f, sizeof(f)), 400);
    CU_ASSERT_STRING_EQUAL(f, "from");
    CU_ASSERT_EQUAL(req(h, "GET", "/telemetry/s1-bat?a%0a=1", NULL, 0, f, sizeof(f)), 400);
    CU_ASSERT_STRING_EQUAL(f, "query");
    CU_ASSERT_EQUAL(req(h, "GET", "/telemetry/s1-bat?from=x", NULL, 0, f, sizeof(f)), 400);
    CU_ASSERT_STRING_EQUAL(f, "from");
    CU_ASSERT_EQUAL(req(h, "GET", "/healthz?&&=&a&b=", NULL, 0, f, sizeof(f)), 200);
    CU_ASSERT_EQUAL(
        req(h, "GET", "/healthz?a&a&a&a&a&a&a&a&a&a&a&a&a&a&a&a&a", NULL, 0, f, sizeof(f)), 400);
    CU_ASSERT_STRING_EQUAL(f, "query");
    hub_free(h);
}

static void test_rest_body_ids(void)
{
    struct hub *h = hub_for_test();
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    static const struct {
        const char *body;
        size_t len; /* 0 = strlen */
        int status;
        const char *field;
    } cases[] = {
        /* The case: was cut to "s1-bat" and dispatched (202). */
        {"{\"asset_id\":\"s1-bat\\u0000evil\",\"mw\":1}", 0, 400, "asset_id"},
        {"{\"site_id\":\"s1\\u0000\",\"mw\":1}", 0, 400, "site_id"},
        {"{\"mw\":1,\"note\":[\"\\u0000\"],\"asset_id\":\"s1-bat\"}", 0, 400, "note"},
        {"{\"asset_id\\u0000\":\"s1-bat\",\"mw\":1}", 0, 400, "body"},
        /* A raw NUL byte inside the string. */
        {"{\"asset_id\":\"s1-bat\0x\",\"mw\":1}", 30, 400, "asset_id"},
        {"{\"asset_id\":\"s1-bat\\n\",\"mw\":1}", 0, 400, "asset_id"},
        {"{\"asset_id\":\"s1-bat\\u0085\",\"mw\":1}", 0, 400, "asset_id"},
        {"{\"site_id\":\"\",\"mw\":1}", 0, 400, "site_id"},
        /* An escaped backslash before u0000 is no NUL: an unknown (but valid) id. */
        {"{\"asset_id\":\"s1\\\\u0000\",\"mw\":1}", 0, 404, "asset_id"},
        {"{\"asset_id\":\"s1\\\"\\u0000\",\"mw\":1}", 0, 400, "asset_id"},
        /* Escapes that decode to a valid id are fine. */
        {"{\"asset_id\":\"s1\\u002dbat\",\"mw\":1}", 0, 202, ""},
        {"{\"asset_id\":\"s1-bat\",\"mw\":1}", 0, 202, ""},
    };
    char f[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].body);
        int st = req(h, "POST", "/dispatch", cases[i].body, len, f, sizeof(f));
        CU_ASSERT_EQUAL(st, cases[i].status);
        CU_ASSERT_STRING_EQUAL(f, cases[i].field);
        if (st != cases[i].status || strcmp(f, cases[i].field))
            fprintf(stderr, "case %zu: got %d %s\n", i, st, f);
    }
    hub_free(h);
}

/* The REST limits block of the option table: defaults as docs/operations.md says, bounds. */
static void test_rest_limit_options(void)
{
    struct headend_config c;
    char err[256];
    config_defaults(&c);
    CU_ASSERT_EQUAL(c.http_max_connections, 256);
    CU_ASSERT_EQUAL(c.http_max_per_ip, 32);
    CU_ASSERT_EQUAL(c.http_timeout_s, 10);
    CU_ASSERT_EQUAL(c.http_threads, 2);
    CU_ASSERT_EQUAL(config_set(&c, "http-max-per-ip", "0", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(c.http_max_per_ip, 0);
    CU_ASSERT_EQUAL(config_set(&c, "http_timeout_s", "0", err, sizeof(err)), -ERANGE);
    CU_ASSERT_EQUAL(config_set(&c, "http-threads", "17", err, sizeof(err)), -ERANGE);
    CU_ASSERT_EQUAL(config_set(&c, "http-max-connections", "15", err, sizeof(err)), -ERANGE);
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), 0);
}

void test_register_rest(void)
{
    CU_pSuite s = CU_add_suite("rest_hygiene", NULL, NULL);
    CU_add_test(s, "log_escape", test_log_escape);
    CU_add_test(s, "ident_valid", test_ident);
    CU_add_test(s, "raw URL: decoding, control characters, ids", test_rest_raw_url);
    CU_add_test(s, "body ids: NUL and control characters", test_rest_body_ids);
    CU_add_test(s, "REST limit options", test_rest_limit_options);
}
