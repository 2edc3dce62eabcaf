/* auth: tokens, roles, the rate limit and the gate of the REST API.
 *
 * Hashing: SHA-256 from GnuTLS (gnutls_hash_fast). The headend must not include gateway/
 * (docs/architecture.md: the headend meets the gateway only on the wire), so common/sha256.c
 * is out of reach; GnuTLS is the TLS library libmicrohttpd is built with, already in the
 * process for HTTPS, and a vetted implementation beats a second local copy. A plain salted
 * hash (not a slow password hash) is enough because the secret is 32 random bytes, not
 * something a person chose: there is nothing to guess.
 *
 * The id half of a token is public (it is the lookup key and may appear in logs); only the
 * secret is checked, by recomputing the hash and comparing in constant time, so how long a
 * refusal takes tells nothing about how much of a guess was right. */
#include "headend/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "headend/ident.h"
#include "common/log.h"

#define TOKEN_PREFIX     "dlp_"
#define TOKEN_PREFIX_LEN 4
#define TOUCH_EVERY_MS   60000 /* last use is kept to the minute: not a write per request */
#define RECHECK_MS       1000  /* open mode: how often the store is asked whether tokens exist */

static const char *const role_names[] = {"public", "viewer", "operator", "admin"};

const char *auth_role_name(int role)
{
    return role >= AUTH_PUBLIC && role <= AUTH_ADMIN ? role_names[role] : "?";
}

int auth_role_parse(const char *name)
{
    for (int r = AUTH_VIEWER; r <= AUTH_ADMIN; r++)
        if (name && !strcmp(name, role_names[r]))
            return r;
    return -EINVAL;
}

int auth_changes_state(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

/* The role table (docs/operations.md). A path is matched whole ("/audit"), as a prefix
 * ending in '/' ("/tokens/" for /tokens/NAME), or as a pattern with one '*' standing for one
 * path segment (the row for /sites/:id/config); the first row that matches decides. Later issues
 * add their operator commands here. Anything not listed needs viewer to read and operator to
 * change, so that an unknown path answers 401 (not 404) to a caller without a token: the API's
 * shape is not public. */
static const struct {
    const char *path;
    int writes; /* -1: any method, 0: GET/HEAD, 1: the others */
    int role;
} role_table[] = {
    {"/healthz", 0, AUTH_PUBLIC},
    {"/audit", -1, AUTH_ADMIN},
    {"/tokens", -1, AUTH_ADMIN},
    {"/tokens/", -1, AUTH_ADMIN},
    {"/dispatch", 1, AUTH_OPERATOR},
    /* configuration is an admin's (issue 15): PUT /sites/:id/config */
    {"/sites/*/config", 1, AUTH_ADMIN},
    /* remote operations (docs/operations.md): POST/DELETE /sites/:id/estop, POST
     * /groups/:group/estop, POST /agents/:gateway/ping, POST /alerts/:id/ack; reading them is
     * a viewer's */
    {"/sites/", 1, AUTH_OPERATOR},
    {"/groups/", 1, AUTH_OPERATOR},
    {"/agents/", 1, AUTH_OPERATOR},
    {"/alerts/", 1, AUTH_OPERATOR},
    /* per-asset commands: POST /assets/:id/commands; GET /commands/:id is a viewer's */
    {"/assets/", 1, AUTH_OPERATOR},
};

/* Does path match the row p: whole, prefix ending in '/', or with one '*' for a segment? */
static int row_matches(const char *p, const char *path, size_t plen)
{
    size_t n = strlen(p);
    const char *star = strchr(p, '*');
    if (star) {
        size_t a = (size_t)(star - p), b = n - a - 1;
        return plen > a + b && !memcmp(path, p, a) && !memcmp(path + plen - b, star + 1, b) &&
               !memchr(path + a, '/', plen - a - b);
    }
    return p[n - 1] == '/' ? plen > n && !memcmp(path, p, n) : plen == n && !memcmp(path, p, n);
}

int auth_required_role(const char *method, const char *path, size_t plen)
{
    int writes = auth_changes_state(method);
    int fallback = writes ? AUTH_OPERATOR : AUTH_VIEWER;
    if (memchr(path, 0, plen))
        return fallback; /* a decoded %00: never public, and routed nowhere anyway */
    for (size_t i = 0; i < sizeof(role_table) / sizeof(role_table[0]); i++) {
        int hit = row_matches(role_table[i].path, path, plen);
        if (hit && (role_table[i].writes < 0 || role_table[i].writes == writes))
            return role_table[i].role;
    }
    return fallback;
}

int auth_ct_equal(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    return d == 0;
}

int auth_hash(const uint8_t *salt, size_t salt_len, const uint8_t *secret, size_t secret_len,
              uint8_t out[AUTH_HASH_LEN])
{
    uint8_t buf[64 + 64];
    if (salt_len + secret_len > sizeof(buf))
        return -EINVAL;
    memcpy(buf, salt, salt_len);
    memcpy(buf + salt_len, secret, secret_len);
    int rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, salt_len + secret_len, out);
    explicit_bzero(buf, sizeof(buf));
    return rc == 0 ? 0 : -EIO;
}

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* tokens are written in lower case only */
}

/* Exactly 2n lower-case hex digits at s into n bytes. 0 or -EINVAL. */
static int from_hex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
        if (lo < 0)
            return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* n random bytes from the kernel (getrandom blocks only before the pool is initialised). */
static int random_bytes(uint8_t *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(out + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -EIO;
        got += (size_t)r;
    }
    return 0;
}

int auth_token_new(const char *name, int role, int64_t now_ms, struct store_token *rec,
                   char token[AUTH_TOKEN_MAX])
{
    memset(rec, 0, sizeof(*rec));
    if (!name || ident_valid(name, strlen(name), NULL, 0) < 0 || role < AUTH_VIEWER ||
        role > AUTH_ADMIN)
        return -EINVAL;
    uint8_t id[AUTH_ID_HEX / 2], secret[AUTH_SECRET_LEN], salt[AUTH_SALT_LEN], hash[AUTH_HASH_LEN];
    char secret_hex[2 * AUTH_SECRET_LEN + 1];
    int e = random_bytes(id, sizeof(id));
    if (!e)
        e = random_bytes(secret, sizeof(secret));
    if (!e)
        e = random_bytes(salt, sizeof(salt));
    if (!e)
        e = auth_hash(salt, sizeof(salt), secret, sizeof(secret), hash);
    if (!e) {
        to_hex(id, sizeof(id), rec->id);
        snprintf(rec->name, sizeof(rec->name), "%s", name);
        snprintf(rec->role, sizeof(rec->role), "%s", auth_role_name(role));
        to_hex(salt, sizeof(salt), rec->salt);
        to_hex(hash, sizeof(hash), rec->hash);
        rec->created_ms = now_ms;
        to_hex(secret, sizeof(secret), secret_hex);
        snprintf(token, AUTH_TOKEN_MAX, TOKEN_PREFIX "%.*s_%s", AUTH_ID_HEX, rec->id, secret_hex);
    }
    explicit_bzero(secret, sizeof(secret));
    explicit_bzero(secret_hex, sizeof(secret_hex));
    return e;
}

int auth_token_split(const char *token, char id[AUTH_ID_HEX + 1], uint8_t secret[AUTH_SECRET_LEN])
{
    const size_t len = TOKEN_PREFIX_LEN + AUTH_ID_HEX + 1 + 2 * AUTH_SECRET_LEN;
    uint8_t idb[AUTH_ID_HEX / 2];
    if (!token || strlen(token) != len || memcmp(token, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0 ||
        token[TOKEN_PREFIX_LEN + AUTH_ID_HEX] != '_' ||
        from_hex(token + TOKEN_PREFIX_LEN, sizeof(idb), idb) < 0 ||
        from_hex(token + TOKEN_PREFIX_LEN + AUTH_ID_HEX + 1, AUTH_SECRET_LEN, secret) < 0)
        return -EINVAL;
    memcpy(id, token + TOKEN_PREFIX_LEN, AUTH_ID_HEX);
    id[AUTH_ID_HEX] = '\0';
    return 0;
}

int auth_token_matches(const struct store_token *rec, const uint8_t secret[AUTH_SECRET_LEN])
{
    uint8_t salt[AUTH_SALT_LEN], want[AUTH_HASH_LEN], got[AUTH_HASH_LEN];
    if (strlen(rec->salt) != 2 * AUTH_SALT_LEN || strlen(rec->hash) != 2 * AUTH_HASH_LEN ||
        from_hex(rec->salt, sizeof(salt), salt) < 0 || from_hex(rec->hash, sizeof(want), want) < 0)
        return 0;
    if (auth_hash(salt, sizeof(salt), secret, AUTH_SECRET_LEN, got) < 0)
        return 0;
    return auth_ct_equal(got, want, sizeof(got));
}

int auth_bucket_take(struct auth_bucket *b, int per_min, int burst, int64_t now_ms,
                     int *retry_after_s)
{
    double rate = per_min / 60000.0; /* requests per ms */
    if (!b->used) {
        b->level = burst;
        b->last_ms = now_ms;
        b->used = 1;
    } else if (now_ms > b->last_ms) {
        b->level += (double)(now_ms - b->last_ms) * rate;
        if (b->level > burst)
            b->level = burst;
        b->last_ms = now_ms;
    }
    if (b->level >= 1.0) {
        b->level -= 1.0;
        return 0;
    }
    double wait_ms = rate > 0 ? (1.0 - b->level) / rate : 3600000.0;
    int s = (int)((wait_ms + 999.0) / 1000.0);
    *retry_after_s = s < 1 ? 1 : s;
    return -EAGAIN;
}

/* ---- the gate ----------------------------------------------------------------------------- */

struct bucket_entry {
    char id[AUTH_ID_HEX + 1];
    struct auth_bucket b;
};

struct auth {
    struct auth_config cfg;
    int tokens_seen;              /* the store held a token: tokens are asked for from then on */
    int64_t checked_ms;           /* last time open mode asked the store */
    int checked;                  /* asked at least once */
    struct bucket_entry *buckets; /* one per token seen making a state-changing request */
    size_t n_buckets, cap_buckets;
};

int auth_new(const struct auth_config *cfg, struct auth **out)
{
    struct auth *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->cfg = *cfg;
    *out = a;
    return 0;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    free(a->buckets);
    free(a);
}

int auth_enforced(struct auth *a, struct store *st, int64_t now_ms)
{
    if (a->cfg.required || a->tokens_seen)
        return 1;
    /* Open mode lasts only while no token was ever made: the first `token add` (from this
     * process or the CLI on the same store) closes it within RECHECK_MS, and revoking every
     * token does not reopen it. */
    if (!a->checked || now_ms - a->checked_ms >= RECHECK_MS || now_ms < a->checked_ms) {
        int64_t n = 0;
        a->checked = 1;
        a->checked_ms = now_ms;
        if (st->ops->token_count(st, &n) == 0 && n > 0)
            a->tokens_seen = 1;
    }
    return a->tokens_seen;
}

static struct auth_bucket *bucket_of(struct auth *a, const char *id)
{
    for (size_t i = 0; i < a->n_buckets; i++)
        if (!strcmp(a->buckets[i].id, id))
            return &a->buckets[i].b;
    if (a->n_buckets == a->cap_buckets) {
        size_t cap = a->cap_buckets ? a->cap_buckets * 2 : 8;
        struct bucket_entry *nb = realloc(a->buckets, cap * sizeof(*nb));
        if (!nb)
            return NULL;
        a->buckets = nb;
        a->cap_buckets = cap;
    }
    struct bucket_entry *e = &a->buckets[a->n_buckets++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%.*s", AUTH_ID_HEX, id);
    return &e->b;
}

static int refuse(struct auth_verdict *v, int status, const char *challenge, const char *reason)
{
    v->status = status;
    v->challenge = challenge;
    snprintf(v->reason, sizeof(v->reason), "%s", reason);
    return status;
}

#define CHALLENGE         "Bearer realm=\"derloop\""
#define CHALLENGE_INVALID "Bearer realm=\"derloop\", error=\"invalid_token\""

/* Who holds this Authorization header: v->who, v->role and v->token_id set, or a refusal
 * (401, or 500 when the store cannot be read). */
static int identify(struct store *st, const char *authorization, int64_t now_ms,
                    struct auth_verdict *v)
{
    if (!authorization || !authorization[0])
        return refuse(v, 401, CHALLENGE, "no bearer token (Authorization: Bearer TOKEN)");
    /* RFC 6750: the scheme is case-insensitive, then one or more spaces. */
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return refuse(v, 401, CHALLENGE_INVALID, "the Authorization header is not Bearer");
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    uint8_t secret[AUTH_SECRET_LEN];
    if (auth_token_split(tok, v->token_id, secret) < 0)
        return refuse(v, 401, CHALLENGE_INVALID, "malformed token");
    struct store_token rec;
    int e = st->ops->token_get(st, v->token_id, &rec);
    if (e < 0 && e != -ENOENT) {
        explicit_bzero(secret, sizeof(secret));
        return refuse(v, 500, NULL, "the store could not be read to check the token");
    }
    int ok = e == 0 && auth_token_matches(&rec, secret);
    explicit_bzero(secret, sizeof(secret));
    if (!ok)
        return refuse(v, 401, CHALLENGE_INVALID, "unknown token");
    snprintf(v->who, sizeof(v->who), "%s", rec.name);
    if (rec.revoked_ms)
        return refuse(v, 401, CHALLENGE_INVALID, "revoked token");
    v->role = auth_role_parse(rec.role);
    if (v->role < 0) {
        v->role = 0;
        return refuse(v, 401, CHALLENGE_INVALID, "token with an unknown role");
    }
    if (!rec.last_used_ms || now_ms - rec.last_used_ms >= TOUCH_EVERY_MS)
        st->ops->token_touch(st, rec.id, now_ms); /* best effort: a failure refuses nothing */
    return 0;
}

int auth_check(struct auth *a, struct store *st, const char *authorization, const char *method,
               const char *path, size_t plen, int64_t now_ms, struct auth_verdict *v)
{
    memset(v, 0, sizeof(*v));
    v->required = auth_required_role(method, path, plen);
    if (!auth_enforced(a, st, now_ms)) {
        snprintf(v->who, sizeof(v->who), "%s", AUTH_OPEN_WHO);
        v->role = AUTH_ADMIN;
        return 0;
    }
    if (v->required == AUTH_PUBLIC) {
        /* Served to anyone; a valid token only tells the route that the caller may see more
         * (who stays "" otherwise). A bad one is not refused here. */
        struct auth_verdict t;
        memset(&t, 0, sizeof(t));
        if (authorization && identify(st, authorization, now_ms, &t) == 0) {
            snprintf(v->who, sizeof(v->who), "%s", t.who);
            v->role = t.role;
        }
        return 0;
    }
    int e = identify(st, authorization, now_ms, v);
    if (e)
        return e;
    /* The rate limit comes before the role check, so that refused attempts are bounded too
     * (each of them is written to the audit trail). */
    if (auth_changes_state(method)) {
        struct auth_bucket *b = bucket_of(a, v->token_id);
        if (!b)
            return refuse(v, 500, NULL, "out of memory");
        if (auth_bucket_take(b, a->cfg.post_per_min, a->cfg.post_burst, now_ms, &v->retry_after_s) <
            0) {
            char why[160];
            snprintf(why, sizeof(why),
                     "rate limit: %d state-changing requests a minute per token, %d at once",
                     a->cfg.post_per_min, a->cfg.post_burst);
            return refuse(v, 429, NULL, why);
        }
    }
    if (v->role < v->required) {
        char why[160];
        snprintf(why, sizeof(why), "role %s may not %s this path (needs %s)",
                 auth_role_name(v->role), method, auth_role_name(v->required));
        return refuse(v, 403, NULL, why);
    }
    return 0;
}
