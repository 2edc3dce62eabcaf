/* Unit tests for headend/auth.c (hashing, constant-time compare, tokens, the role table, the
 * rate limiter, the gate) and for the REST side of it through rest_handle_client: 401/403/429
 * with their headers, the audit trail, requested_by; and the SQLite store's token and audit
 * records, including a database from before requested_by. No sockets: in-memory SQLite. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "headend/auth.h"
#include "headend/config.h"
#include "headend/hub.h"
#include "headend/inventory.h"
#include "common/log.h"
#include "headend/rest.h"
#include "headend/store.h"

static const char INV[] = "{\"sites\":[{\"site_id\":\"s1\",\"gateways\":[\"gw1\"],\"assets\":["
                          "{\"asset_id\":\"s1-bat\",\"type\":\"battery\",\"min_power_w\":-5000000,"
                          "\"max_power_w\":5000000}]}]}";

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_hash(void)
{
    /* FIPS 180-2's "abc", split anywhere between salt and secret: the hash is of both. */
    uint8_t out[AUTH_HASH_LEN];
    char h[2 * AUTH_HASH_LEN + 1];
    CU_ASSERT_EQUAL(auth_hash((const uint8_t *)"a", 1, (const uint8_t *)"bc", 2, out), 0);
    hex(out, sizeof(out), h);
    CU_ASSERT_STRING_EQUAL(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CU_ASSERT_EQUAL(auth_hash((const uint8_t *)"", 0, (const uint8_t *)"abc", 3, out), 0);
    hex(out, sizeof(out), h);
    CU_ASSERT_STRING_EQUAL(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CU_ASSERT_EQUAL(auth_hash((const uint8_t *)"", 0, (const uint8_t *)"", 0, out), 0);
    hex(out, sizeof(out), h);
    CU_ASSERT_STRING_EQUAL(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_ct_equal(void)
{
    CU_ASSERT_TRUE(auth_ct_equal("abcd", "abcd", 4));
    CU_ASSERT_FALSE(auth_ct_equal("abcd", "abce", 4));
    CU_ASSERT_FALSE(auth_ct_equal("xbcd", "abcd", 4));
    CU_ASSERT_TRUE(auth_ct_equal("ab", "ac", 1)); /* only n bytes */
    CU_ASSERT_TRUE(auth_ct_equal("", "", 0));
    /* Every single-bit difference at every position is seen. */
    uint8_t a[32] = {0}, b[32];
    int all = 1;
    for (int i = 0; i < 32 * 8; i++) {
        memcpy(b, a, sizeof(b));
        b[i / 8] ^= (uint8_t)(1u << (i % 8));
        all &= !auth_ct_equal(a, b, sizeof(a));
    }
    CU_ASSERT_TRUE(all);
}

static void test_roles(void)
{
    CU_ASSERT_EQUAL(auth_role_parse("viewer"), AUTH_VIEWER);
    CU_ASSERT_EQUAL(auth_role_parse("operator"), AUTH_OPERATOR);
    CU_ASSERT_EQUAL(auth_role_parse("admin"), AUTH_ADMIN);
    CU_ASSERT_EQUAL(auth_role_parse("public"), -EINVAL); /* not a role a token can have */
    CU_ASSERT_EQUAL(auth_role_parse("Admin"), -EINVAL);
    CU_ASSERT_EQUAL(auth_role_parse(NULL), -EINVAL);
    CU_ASSERT_STRING_EQUAL(auth_role_name(AUTH_OPERATOR), "operator");
    static const struct {
        const char *method, *path;
        int role;
    } table[] = {
        {"GET", "/healthz", AUTH_PUBLIC},     {"HEAD", "/healthz", AUTH_PUBLIC},
        {"POST", "/healthz", AUTH_OPERATOR},  {"GET", "/assets", AUTH_VIEWER},
        {"GET", "/agents", AUTH_VIEWER},      {"GET", "/metrics", AUTH_VIEWER},
        {"GET", "/telemetry/a", AUTH_VIEWER}, {"GET", "/dispatch/sp-1", AUTH_VIEWER},
        {"POST", "/dispatch", AUTH_OPERATOR}, {"GET", "/audit", AUTH_ADMIN},
        {"GET", "/tokens", AUTH_ADMIN},       {"POST", "/tokens", AUTH_ADMIN},
        {"DELETE", "/tokens/ci", AUTH_ADMIN}, {"GET", "/nope", AUTH_VIEWER},
        {"PUT", "/assets", AUTH_OPERATOR},    {"GET", "/healthzz", AUTH_VIEWER},
        {"GET", "/auditx", AUTH_VIEWER},      {"DELETE", "/dispatch/sp-1", AUTH_OPERATOR},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        int r = auth_required_role(table[i].method, table[i].path, strlen(table[i].path));
        CU_ASSERT_EQUAL(r, table[i].role);
        if (r != table[i].role)
            fprintf(stderr, "%s %s: %d\n", table[i].method, table[i].path, r);
    }
    /* A decoded NUL never makes a path public. */
    CU_ASSERT_EQUAL(auth_required_role("GET", "/healthz\0x", 10), AUTH_VIEWER);
    CU_ASSERT_TRUE(auth_changes_state("POST"));
    CU_ASSERT_TRUE(auth_changes_state("DELETE"));
    CU_ASSERT_FALSE(auth_changes_state("GET"));
    CU_ASSERT_FALSE(auth_changes_state("HEAD"));
}

static void test_tokens(void)
{
    struct store_token rec, rec2;
    char tok[AUTH_TOKEN_MAX], tok2[AUTH_TOKEN_MAX], id[AUTH_ID_HEX + 1];
    uint8_t secret[AUTH_SECRET_LEN];
    CU_ASSERT_EQUAL_FATAL(auth_token_new("ci", AUTH_OPERATOR, 42, &rec, tok), 0);
    CU_ASSERT_EQUAL(strlen(tok), 4 + AUTH_ID_HEX + 1 + 2 * AUTH_SECRET_LEN);
    CU_ASSERT_EQUAL(strncmp(tok, "dlp_", 4), 0);
    CU_ASSERT_STRING_EQUAL(rec.name, "ci");
    CU_ASSERT_STRING_EQUAL(rec.role, "operator");
    CU_ASSERT_EQUAL(rec.created_ms, 42);
    CU_ASSERT_EQUAL(strlen(rec.salt), 2 * AUTH_SALT_LEN);
    CU_ASSERT_EQUAL(strlen(rec.hash), 2 * AUTH_HASH_LEN);
    /* The secret is nowhere in the record. */
    CU_ASSERT_PTR_NULL(strstr(rec.hash, tok + 4 + AUTH_ID_HEX + 1));
    CU_ASSERT_EQUAL_FATAL(auth_token_split(tok, id, secret), 0);
    CU_ASSERT_STRING_EQUAL(id, rec.id);
    CU_ASSERT_TRUE(auth_token_matches(&rec, secret));
    secret[AUTH_SECRET_LEN - 1] ^= 1;
    CU_ASSERT_FALSE(auth_token_matches(&rec, secret));
    secret[AUTH_SECRET_LEN - 1] ^= 1;
    /* Same name, new token: another id, salt, secret and hash. */
    CU_ASSERT_EQUAL(auth_token_new("ci", AUTH_OPERATOR, 42, &rec2, tok2), 0);
    CU_ASSERT(strcmp(tok, tok2) != 0 && strcmp(rec.salt, rec2.salt) != 0 &&
              strcmp(rec.id, rec2.id) != 0);
    CU_ASSERT_FALSE(auth_token_matches(&rec2, secret));
    /* Salt tampered with: no match. */
    rec.salt[0] = rec.salt[0] == '0' ? '1' : '0';
    CU_ASSERT_FALSE(auth_token_matches(&rec, secret));
    /* Malformed tokens. */
    char bad[AUTH_TOKEN_MAX];
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[3] = '-';
    CU_ASSERT_EQUAL(auth_token_split(bad, id, secret), -EINVAL);
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[20] = 'G';
    CU_ASSERT_EQUAL(auth_token_split(bad, id, secret), -EINVAL);
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[20] = 'A'; /* upper case is not how tokens are written */
    CU_ASSERT_EQUAL(auth_token_split(bad, id, secret), -EINVAL);
    bad[strlen(bad) - 1] = '\0';
    CU_ASSERT_EQUAL(auth_token_split(bad, id, secret), -EINVAL);
    CU_ASSERT_EQUAL(auth_token_split("", id, secret), -EINVAL);
    CU_ASSERT_EQUAL(auth_token_split(NULL, id, secret), -EINVAL);
    /* Bad names and roles. */
    CU_ASSERT_EQUAL(auth_token_new("a\nb", AUTH_VIEWER, 0, &rec, tok), -EINVAL);
    CU_ASSERT_EQUAL(auth_token_new("", AUTH_VIEWER, 0, &rec, tok), -EINVAL);
    CU_ASSERT_EQUAL(auth_token_new("x", AUTH_PUBLIC, 0, &rec, tok), -EINVAL);
    CU_ASSERT_EQUAL(auth_token_new("x", 9, 0, &rec, tok), -EINVAL);
}

static void test_bucket(void)
{
    struct auth_bucket b = {0};
    int ra = 0;
    /* burst 3, then 6 a minute: one every 10 s. */
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(auth_bucket_take(&b, 6, 3, 1000, &ra), 0);
    CU_ASSERT_EQUAL(auth_bucket_take(&b, 6, 3, 1000, &ra), -EAGAIN);
    CU_ASSERT_EQUAL(ra, 10);
    CU_ASSERT_EQUAL(auth_bucket_take(&b, 6, 3, 5000, &ra), -EAGAIN);
    CU_ASSERT_EQUAL(ra, 6); /* 6 s of the 10 left */
    CU_ASSERT_EQUAL(auth_bucket_take(&b, 6, 3, 11000, &ra), 0);
    CU_ASSERT_EQUAL(auth_bucket_take(&b, 6, 3, 11000, &ra), -EAGAIN);
    /* A long pause refills to the burst, not beyond. */
    int ok = 0;
    for (int i = 0; i < 10; i++)
        ok += auth_bucket_take(&b, 6, 3, 10000000, &ra) == 0;
    CU_ASSERT_EQUAL(ok, 3);
    /* Retry-After is at least 1 s, even when the wait is shorter. */
    struct auth_bucket f = {0};
    CU_ASSERT_EQUAL(auth_bucket_take(&f, 600000, 1, 0, &ra), 0);
    CU_ASSERT_EQUAL(auth_bucket_take(&f, 600000, 1, 0, &ra), -EAGAIN);
    CU_ASSERT_EQUAL(ra, 1);
    /* A clock that steps back takes nothing. */
    CU_ASSERT_EQUAL(auth_bucket_take(&b, 6, 3, 5, &ra), -EAGAIN);
}

/* ---- the gate on a real (in-memory) store ------------------------------------------------- */

static int add(struct store *st, const char *name, int role, char tok[AUTH_TOKEN_MAX])
{
    struct store_token rec;
    int e = auth_token_new(name, role, 1, &rec, tok);
    return e ? e : st->ops->token_add(st, &rec);
}

static int check(struct auth *a, struct store *st, const char *tok, const char *method,
                 const char *path, int64_t now, struct auth_verdict *v)
{
    char hdr[AUTH_TOKEN_MAX + 16];
    snprintf(hdr, sizeof(hdr), "Bearer %s", tok ? tok : "");
    return auth_check(a, st, tok ? hdr : NULL, method, path, strlen(path), now, v);
}

static void test_gate(void)
{
    struct store *st;
    char err[256], tv[AUTH_TOKEN_MAX], to[AUTH_TOKEN_MAX], ta[AUTH_TOKEN_MAX];
    CU_ASSERT_EQUAL_FATAL(store_open(":memory:", &st, err, sizeof(err)), 0);
    struct auth_config cfg = {.required = 0, .post_per_min = 60, .post_burst = 2};
    struct auth *a;
    CU_ASSERT_EQUAL_FATAL(auth_new(&cfg, &a), 0);
    struct auth_verdict v;
    /* Open: no token in the store, not required. */
    CU_ASSERT_EQUAL(auth_enforced(a, st, 1000), 0);
    CU_ASSERT_EQUAL(check(a, st, NULL, "POST", "/dispatch", 1000, &v), 0);
    CU_ASSERT_STRING_EQUAL(v.who, AUTH_OPEN_WHO);
    /* The first token closes it, within a second (the store is asked at most once a second). */
    CU_ASSERT_EQUAL(add(st, "v", AUTH_VIEWER, tv), 0);
    CU_ASSERT_EQUAL(add(st, "o", AUTH_OPERATOR, to), 0);
    CU_ASSERT_EQUAL(add(st, "a", AUTH_ADMIN, ta), 0);
    char scratch[AUTH_TOKEN_MAX];
    CU_ASSERT_EQUAL(add(st, "a", AUTH_VIEWER, scratch), -EEXIST); /* a name in use */
    CU_ASSERT_EQUAL(auth_enforced(a, st, 1500), 0);
    CU_ASSERT_EQUAL(auth_enforced(a, st, 2000), 1);
    CU_ASSERT_EQUAL(check(a, st, NULL, "GET", "/assets", 2000, &v), 401);
    CU_ASSERT_PTR_NOT_NULL(v.challenge);
    CU_ASSERT_EQUAL(check(a, st, NULL, "GET", "/healthz", 2000, &v), 0);
    CU_ASSERT_EQUAL(check(a, st, "dlp_nope", "GET", "/assets", 2000, &v), 401);
    CU_ASSERT_PTR_NOT_NULL(strstr(v.challenge, "invalid_token"));
    CU_ASSERT_EQUAL(check(a, st, tv, "GET", "/assets", 2000, &v), 0);
    CU_ASSERT_STRING_EQUAL(v.who, "v");
    CU_ASSERT_EQUAL(v.role, AUTH_VIEWER);
    CU_ASSERT_EQUAL(check(a, st, tv, "POST", "/dispatch", 2000, &v), 403);
    CU_ASSERT_EQUAL(check(a, st, tv, "GET", "/audit", 2000, &v), 403);
    CU_ASSERT_EQUAL(check(a, st, to, "GET", "/audit", 2000, &v), 403);
    CU_ASSERT_EQUAL(check(a, st, ta, "GET", "/audit", 2000, &v), 0);
    /* The scheme is case-insensitive; another scheme is refused. */
    char hdr[AUTH_TOKEN_MAX + 16];
    snprintf(hdr, sizeof(hdr), "bearer   %s", to);
    CU_ASSERT_EQUAL(auth_check(a, st, hdr, "GET", "/assets", 7, 2000, &v), 0);
    snprintf(hdr, sizeof(hdr), "Basic %s", to);
    CU_ASSERT_EQUAL(auth_check(a, st, hdr, "GET", "/assets", 7, 2000, &v), 401);
    /* A token with one changed secret digit: unknown, though its id is right. */
    char forged[AUTH_TOKEN_MAX];
    snprintf(forged, sizeof(forged), "%s", to);
    size_t n = strlen(forged);
    forged[n - 1] = forged[n - 1] == '0' ? '1' : '0';
    CU_ASSERT_EQUAL(check(a, st, forged, "GET", "/assets", 2000, &v), 401);
    CU_ASSERT_STRING_EQUAL(v.who, "");
    CU_ASSERT_STRING_EQUAL(v.reason, "unknown token");
    /* Rate limit: burst 2 per token, the role check after it. */
    CU_ASSERT_EQUAL(check(a, st, to, "POST", "/dispatch", 3000, &v), 0);
    CU_ASSERT_EQUAL(check(a, st, to, "POST", "/dispatch", 3000, &v), 0);
    CU_ASSERT_EQUAL(check(a, st, to, "POST", "/dispatch", 3000, &v), 429);
    CU_ASSERT_EQUAL(v.retry_after_s, 1);
    CU_ASSERT_EQUAL(check(a, st, to, "GET", "/assets", 3000, &v), 0);    /* reads are not limited */
    CU_ASSERT_EQUAL(check(a, st, ta, "POST", "/dispatch", 3000, &v), 0); /* per token */
    CU_ASSERT_EQUAL(check(a, st, to, "POST", "/dispatch", 4000, &v), 0);
    /* last use: recorded (to the minute). */
    struct store_token rec;
    char id[AUTH_ID_HEX + 1];
    uint8_t secret[AUTH_SECRET_LEN];
    auth_token_split(to, id, secret);
    CU_ASSERT_EQUAL(st->ops->token_get(st, id, &rec), 0);
    CU_ASSERT_EQUAL(rec.last_used_ms, 2000);
    /* Revoked: 401; revoking every token does not reopen the API. */
    CU_ASSERT_EQUAL(st->ops->token_revoke(st, "o", 5000), 0);
    CU_ASSERT_EQUAL(st->ops->token_revoke(st, "o", 5000), -ENOENT);
    CU_ASSERT_EQUAL(check(a, st, to, "GET", "/assets", 5000, &v), 401);
    CU_ASSERT_STRING_EQUAL(v.reason, "revoked token");
    CU_ASSERT_EQUAL(add(st, "o", AUTH_OPERATOR, to), 0); /* the name is free again */
    CU_ASSERT_EQUAL(check(a, st, to, "POST", "/dispatch", 5000, &v), 0);
    st->ops->token_revoke(st, "o", 6000);
    st->ops->token_revoke(st, "v", 6000);
    st->ops->token_revoke(st, "a", 6000);
    CU_ASSERT_EQUAL(check(a, st, NULL, "GET", "/assets", 99000, &v), 401);
    int64_t count = 0;
    CU_ASSERT_EQUAL(st->ops->token_count(st, &count), 0);
    CU_ASSERT_EQUAL(count, 4);
    auth_free(a);

    /* Required (--auth, or a non-loopback listener): tokens even with none in the store. */
    struct store *empty;
    CU_ASSERT_EQUAL_FATAL(store_open(":memory:", &empty, err, sizeof(err)), 0);
    cfg.required = 1;
    CU_ASSERT_EQUAL_FATAL(auth_new(&cfg, &a), 0);
    CU_ASSERT_EQUAL(check(a, empty, NULL, "GET", "/assets", 1000, &v), 401);
    CU_ASSERT_EQUAL(check(a, empty, NULL, "GET", "/healthz", 1000, &v), 0);
    auth_free(a);
    store_close(empty);
    store_close(st);
}

/* ---- rest_handle_client: headers, the audit trail, requested_by --------------------------- */

struct answer {
    int status;
    cJSON *j;
    char www[128];
    int retry;
};

static struct answer call(struct hub *h, struct auth *a, const char *tok, const char *method,
                          const char *url, const char *body, int64_t now)
{
    char hdr[AUTH_TOKEN_MAX + 16];
    snprintf(hdr, sizeof(hdr), "Bearer %s", tok ? tok : "");
    struct rest_client c = {tok ? hdr : NULL, "127.0.0.1:4242"};
    struct rest_response r;
    rest_handle_client(h, a, &c, method, url, strlen(url), body, body ? strlen(body) : 0, now, &r);
    struct answer out = {r.status, cJSON_Parse(r.body), "", r.retry_after_s};
    snprintf(out.www, sizeof(out.www), "%s", r.www_authenticate ? r.www_authenticate : "");
    free(r.body);
    return out;
}

static const char *str(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_rest_gate(void)
{
    struct headend_config cfg;
    config_defaults(&cfg);
    struct inventory *inv;
    struct store *st;
    char err[256], ta[AUTH_TOKEN_MAX], tv[AUTH_TOKEN_MAX], to[AUTH_TOKEN_MAX];
    struct hub *h = NULL;
    log_set_level(LOG_ERROR);
    CU_ASSERT_EQUAL_FATAL(inventory_parse(INV, &inv, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL_FATAL(store_open(":memory:", &st, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(add(st, "ops", AUTH_OPERATOR, to), 0);
    CU_ASSERT_EQUAL(add(st, "look", AUTH_VIEWER, tv), 0);
    CU_ASSERT_EQUAL(add(st, "root", AUTH_ADMIN, ta), 0);
    CU_ASSERT_EQUAL_FATAL(hub_new(&cfg, inv, st, 1000, &h), 0);
    struct auth_config ac = {.required = 0, .post_per_min = 60, .post_burst = 2};
    struct auth *a;
    CU_ASSERT_EQUAL_FATAL(auth_new(&ac, &a), 0);
    const char *disp = "{\"asset_id\":\"s1-bat\",\"mw\":1.5,\"ttl_s\":60}";

    struct answer r = call(h, a, NULL, "GET", "/assets", NULL, 1000);
    CU_ASSERT_EQUAL(r.status, 401);
    CU_ASSERT_STRING_EQUAL(str(r.j, "field"), "authorization");
    CU_ASSERT_STRING_EQUAL(r.www, "Bearer realm=\"derloop\"");
    cJSON_Delete(r.j);
    r = call(h, a, NULL, "GET", "/no-such-path", NULL, 1000); /* 401, not 404 */
    CU_ASSERT_EQUAL(r.status, 401);
    cJSON_Delete(r.j);
    /* /healthz: liveness for anyone, the rest (gateways, streams, store) for a token. */
    r = call(h, a, NULL, "GET", "/healthz", NULL, 1000);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(str(r.j, "status"), "ok");
    CU_ASSERT_EQUAL(cJSON_GetArraySize(r.j), 1);
    cJSON_Delete(r.j);
    r = call(h, a, "dlp_bad", "GET", "/healthz", NULL, 1000);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(r.j), 1);
    cJSON_Delete(r.j);
    r = call(h, a, tv, "GET", "/healthz", NULL, 1000);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(str(r.j, "store"), "sqlite");
    cJSON_Delete(r.j);
    /* A bad query string from an unknown caller: 401 first. */
    r = call(h, a, NULL, "GET", "/telemetry/s1-bat?from=%00", NULL, 1000);
    CU_ASSERT_EQUAL(r.status, 401);
    cJSON_Delete(r.j);
    r = call(h, a, tv, "GET", "/telemetry/s1-bat?from=%00", NULL, 1000);
    CU_ASSERT_EQUAL(r.status, 400);
    cJSON_Delete(r.j);
    r = call(h, a, tv, "POST", "/dispatch", disp, 1100);
    CU_ASSERT_EQUAL(r.status, 403);
    CU_ASSERT_STRING_EQUAL(str(r.j, "field"), "role");
    CU_ASSERT_PTR_NOT_NULL(strstr(r.www, "insufficient_scope"));
    cJSON_Delete(r.j);
    r = call(h, a, to, "POST", "/dispatch", disp, 1200);
    CU_ASSERT_EQUAL(r.status, 202);
    CU_ASSERT_STRING_EQUAL(str(r.j, "requested_by"), "ops");
    char sp[64];
    snprintf(sp, sizeof(sp), "/dispatch/%s", str(r.j, "setpoint_id"));
    cJSON_Delete(r.j);
    r = call(h, a, tv, "GET", sp, NULL, 1300);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(str(r.j, "requested_by"), "ops");
    cJSON_Delete(r.j);
    r = call(h, a, to, "POST", "/dispatch", "{\"asset_id\":\"s1-bat\",\"mw\":99}", 1300);
    CU_ASSERT_EQUAL(r.status, 400); /* recorded with its error */
    cJSON_Delete(r.j);
    r = call(h, a, to, "POST", "/dispatch", disp, 1300);
    CU_ASSERT_EQUAL(r.status, 429);
    CU_ASSERT_EQUAL(r.retry, 1);
    cJSON_Delete(r.j);
    /* Token management over REST: admin only; the token is in the answer once. One
     * state-changing request a second from here on: the rate limit (1 a second) stays out. */
    int64_t now = 10000;
    r = call(h, a, to, "POST", "/tokens", "{\"name\":\"ci\",\"role\":\"operator\"}", now += 1000);
    CU_ASSERT_EQUAL(r.status, 403);
    cJSON_Delete(r.j);
    r = call(h, a, ta, "POST", "/tokens", "{\"name\":\"ci\",\"role\":\"operator\"}", now += 1000);
    CU_ASSERT_EQUAL(r.status, 201);
    char tci[AUTH_TOKEN_MAX];
    snprintf(tci, sizeof(tci), "%s", str(r.j, "token"));
    cJSON_Delete(r.j);
    r = call(h, a, ta, "POST", "/tokens", "{\"name\":\"ci\",\"role\":\"viewer\"}", now += 1000);
    CU_ASSERT_EQUAL(r.status, 409);
    cJSON_Delete(r.j);
    r = call(h, a, ta, "POST", "/tokens", "{\"name\":\"x\",\"role\":\"root\"}", now += 1000);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_STRING_EQUAL(str(r.j, "field"), "role");
    cJSON_Delete(r.j);
    r = call(h, a, tci, "GET", "/assets", NULL, now += 1000);
    CU_ASSERT_EQUAL(r.status, 200);
    cJSON_Delete(r.j);
    r = call(h, a, ta, "GET", "/tokens", NULL, now += 1000);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(cJSON_GetArraySize(r.j), 4);
    char *txt = cJSON_PrintUnformatted(r.j);
    CU_ASSERT_PTR_NULL(strstr(txt, "hash")); /* neither hash nor salt nor secret */
    CU_ASSERT_PTR_NULL(strstr(txt, "salt"));
    CU_ASSERT_PTR_NULL(strstr(txt, tci + 17));
    free(txt);
    cJSON_Delete(r.j);
    r = call(h, a, ta, "DELETE", "/tokens/ci", NULL, now += 1000);
    CU_ASSERT_EQUAL(r.status, 200);
    cJSON_Delete(r.j);
    r = call(h, a, ta, "DELETE", "/tokens/ci", NULL, now += 1000);
    CU_ASSERT_EQUAL(r.status, 404);
    cJSON_Delete(r.j);
    r = call(h, a, tci, "GET", "/assets", NULL, now += 1000);
    CU_ASSERT_EQUAL(r.status, 401);
    cJSON_Delete(r.j);

    /* The audit trail: admin only, oldest first; 401s and 429s are not in it. */
    r = call(h, a, to, "GET", "/audit", NULL, now);
    CU_ASSERT_EQUAL(r.status, 403);
    cJSON_Delete(r.j);
    r = call(h, a, ta, "GET", "/audit?from=1000&to=99000&limit=100", NULL, now);
    CU_ASSERT_EQUAL(r.status, 200);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r.j, "entries");
    static const struct {
        const char *who, *method, *path;
        int status;
        const char *detail;
    } want[] = {
        {"look", "POST", "/dispatch", 403, "role viewer"},
        {"ops", "POST", "/dispatch", 202, "setpoint_id=sp-1"},
        {"ops", "POST", "/dispatch", 400, "mw 99 is outside"},
        {"ops", "POST", "/tokens", 403, "role operator"},
        {"root", "POST", "/tokens", 201, "name=ci"},
        {"root", "POST", "/tokens", 409, "a token named 'ci' exists"},
        {"root", "POST", "/tokens", 400, "role must be"},
        {"root", "DELETE", "/tokens/ci", 200, "name=ci"},
        {"root", "DELETE", "/tokens/ci", 404, "no token named"},
    };
    CU_ASSERT_EQUAL(cJSON_GetArraySize(e), (int)(sizeof(want) / sizeof(want[0])));
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const cJSON *row = cJSON_GetArrayItem(e, (int)i);
        int ok = row && !strcmp(str(row, "who"), want[i].who) &&
                 !strcmp(str(row, "method"), want[i].method) &&
                 !strcmp(str(row, "path"), want[i].path) &&
                 cJSON_GetObjectItem(row, "status")->valueint == want[i].status &&
                 !strncmp(str(row, "detail"), want[i].detail, strlen(want[i].detail)) &&
                 !strcmp(str(row, "peer"), "127.0.0.1:4242");
        CU_ASSERT_TRUE(ok);
        if (!ok && row) {
            char *t = cJSON_PrintUnformatted(row);
            fprintf(stderr, "audit row %zu: %s\n", i, t);
            free(t);
        }
    }
    const cJSON *first = cJSON_GetArrayItem(e, 1);
    CU_ASSERT_STRING_EQUAL(str(first, "summary"),
                           "{\"asset_id\":\"s1-bat\",\"mw\":1.5,\"ttl_s\":60}");
    CU_ASSERT_STRING_EQUAL(str(first, "role"), "operator");
    cJSON_Delete(r.j);
    r = call(h, a, ta, "GET", "/audit?from=1300&to=1300", NULL, now);
    CU_ASSERT_EQUAL(cJSON_GetObjectItem(r.j, "count")->valueint, 1);
    cJSON_Delete(r.j);
    r = call(h, a, ta, "GET", "/audit?limit=0", NULL, now);
    CU_ASSERT_EQUAL(r.status, 400);
    cJSON_Delete(r.j);
    auth_free(a);
    hub_free(h);
}

/* A SQLite database made before dispatch.requested_by: the column is added at open, old rows
 * read as "". */
static void test_sqlite_migration(void)
{
    const char *tmp = getenv("TMPDIR");
    char dir[512], path[600], err[256];
    snprintf(dir, sizeof(dir), "%s/derloop-auth-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/old.db", dir);
    sqlite3 *db;
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(
        sqlite3_exec(db,
                     "CREATE TABLE dispatch(id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
                     " site_id TEXT NOT NULL, asset_id TEXT NOT NULL, power_w REAL NOT NULL,"
                     " created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, updated_ms "
                     "INTEGER NOT NULL, state INTEGER NOT NULL, detail TEXT NOT NULL, session_id "
                     "INTEGER NOT NULL);"
                     "INSERT INTO dispatch VALUES('sp-1', 1, 's1', '', 5, 1, 2, 1, 0, '', 0);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    struct store *st;
    CU_ASSERT_EQUAL_FATAL(store_open(path, &st, err, sizeof(err)), 0);
    struct store_dispatch d;
    CU_ASSERT_EQUAL(st->ops->dispatch_get(st, "sp-1", &d), 0);
    CU_ASSERT_STRING_EQUAL(d.requested_by, "");
    struct store_dispatch n = {.id = "sp-2", .seq = 2, .site_id = "s1", .requested_by = "ops"};
    CU_ASSERT_EQUAL(st->ops->dispatch_add(st, &n), 0);
    CU_ASSERT_EQUAL(st->ops->dispatch_get(st, "sp-2", &d), 0);
    CU_ASSERT_STRING_EQUAL(d.requested_by, "ops");
    store_close(st);
    CU_ASSERT_EQUAL(store_open(path, &st, err, sizeof(err)), 0); /* twice: nothing to do */
    store_close(st);
    char f[700];
    static const char *const files[] = {"old.db", "old.db-wal", "old.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(f, sizeof(f), "%s/%s", dir, files[i]);
        unlink(f);
    }
    CU_ASSERT_EQUAL(rmdir(dir), 0);
}

/* The REST security options: defaults as docs/operations.md says; flags and pairs. */
static void test_auth_options(void)
{
    struct headend_config c;
    char err[256];
    config_defaults(&c);
    CU_ASSERT_EQUAL(c.auth, 0);
    CU_ASSERT_EQUAL(c.insecure, 0);
    CU_ASSERT_EQUAL(c.http_post_per_min, 60);
    CU_ASSERT_EQUAL(c.http_post_burst, 10);
    CU_ASSERT_STRING_EQUAL(c.http_tls_cert, "");
    CU_ASSERT_EQUAL(config_set(&c, "http-tls-cert", "c.pem", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), -EINVAL); /* no key */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--http-tls-key"));
    CU_ASSERT_EQUAL(config_set(&c, "http-tls-key", "k.pem", err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(config_check(&c, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(config_set(&c, "http-post-burst", "0", err, sizeof(err)), -ERANGE);
    int flags = 0;
    for (size_t i = 0; i < config_count(); i++)
        flags += config_is_flag(i) &&
                 (!strcmp(config_name(i), "auth") || !strcmp(config_name(i), "insecure"));
    CU_ASSERT_EQUAL(flags, 2);
    CU_ASSERT_TRUE(config_is_loopback("127.0.0.1:8080"));
    CU_ASSERT_TRUE(config_is_loopback("127.1.2.3:0"));
    CU_ASSERT_FALSE(config_is_loopback("0.0.0.0:8080"));
    CU_ASSERT_FALSE(config_is_loopback("10.0.0.1:8080"));
    CU_ASSERT_FALSE(config_is_loopback("127.0.0.1.5:80"));
}

void test_register_auth(void)
{
    CU_pSuite s = CU_add_suite("rest_auth", NULL, NULL);
    CU_add_test(s, "SHA-256 of salt and secret", test_hash);
    CU_add_test(s, "constant-time compare", test_ct_equal);
    CU_add_test(s, "roles and the role table", test_roles);
    CU_add_test(s, "tokens: make, split, match", test_tokens);
    CU_add_test(s, "rate limiter (token bucket)", test_bucket);
    CU_add_test(s, "the gate on a store", test_gate);
    CU_add_test(s, "REST: 401/403/429, audit, requested_by, /tokens", test_rest_gate);
    CU_add_test(s, "SQLite: requested_by added to an old database", test_sqlite_migration);
    CU_add_test(s, "REST security options", test_auth_options);
}
