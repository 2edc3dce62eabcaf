/* auth: who may call the REST API. Bearer tokens with a role (viewer < operator < admin), kept
 * in the store as a salted SHA-256 of their secret; the role table (which role each request
 * needs); a token bucket per token on state-changing requests; and the gate that combines
 * them into a verdict for one request (docs/operations.md, "Securing a deployment").
 *
 * A token is `dlp_<id>_<secret>`: id is 12 hex digits (6 random bytes), the public half by
 * which the store finds the token; secret is 64 hex digits (32 random bytes from getrandom),
 * never stored: only SHA-256(salt || secret) with a per-token 16-byte random salt is. The
 * whole token is shown once, when it is made. */
#ifndef HEADEND_AUTH_H
#define HEADEND_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "headend/store.h"

enum auth_role {
    AUTH_PUBLIC = 0, /* no token needed (/healthz) */
    AUTH_VIEWER = 1,
    AUTH_OPERATOR = 2,
    AUTH_ADMIN = 3,
};

#define AUTH_ID_HEX     12
#define AUTH_SECRET_LEN 32
#define AUTH_SALT_LEN   16
#define AUTH_HASH_LEN   32
#define AUTH_TOKEN_MAX  96 /* "dlp_" + 12 + "_" + 64 + NUL fits */

/* "viewer", "operator", "admin" ("public" for AUTH_PUBLIC, "?" otherwise). */
const char *auth_role_name(int role);
/* The role of a name; -EINVAL when it is none of viewer, operator, admin. */
int auth_role_parse(const char *name);
/* The role table: the least role that may make this request. path is the decoded path, plen
 * bytes (it may hold a NUL: such a path is never public). */
int auth_required_role(const char *method, const char *path, size_t plen);
/* GET and HEAD change nothing; every other method may (rate limit, audit). */
int auth_changes_state(const char *method);

/* 1 when the n bytes at a and b are equal; the time taken does not depend on where they
 * differ. */
int auth_ct_equal(const void *a, const void *b, size_t n);
/* SHA-256(salt || secret) (GnuTLS). 0 or -EIO. */
int auth_hash(const uint8_t *salt, size_t salt_len, const uint8_t *secret, size_t secret_len,
              uint8_t out[AUTH_HASH_LEN]);

/* A new token: random id, secret and salt (getrandom), its record filled for token_add
 * (name, role, created_ms, salt and hash as hex) and the token text for the user. 0, -EINVAL
 * (name not a valid id, unknown role) or -EIO (no randomness). */
int auth_token_new(const char *name, int role, int64_t now_ms, struct store_token *rec,
                   char token[AUTH_TOKEN_MAX]);
/* Splits a token text into its id and secret. 0 or -EINVAL when it is not one. */
int auth_token_split(const char *token, char id[AUTH_ID_HEX + 1], uint8_t secret[AUTH_SECRET_LEN]);
/* 1 when secret is the one rec was made with (constant-time compare of the hashes). */
int auth_token_matches(const struct store_token *rec, const uint8_t secret[AUTH_SECRET_LEN]);

/* A token bucket: burst requests at once, then per_min a minute. */
struct auth_bucket {
    double level; /* requests available now */
    int64_t last_ms;
    int used; /* 0 until the first take */
};
/* Takes one request from b at now_ms: 0, or -EAGAIN with *retry_after_s (>= 1) set to the
 * whole seconds until one is available again. */
int auth_bucket_take(struct auth_bucket *b, int per_min, int burst, int64_t now_ms,
                     int *retry_after_s);

/* The gate. required: tokens always (--auth, or a non-loopback listener); otherwise the API
 * is open (no token asked) until the store holds a token, revoked ones included. */
struct auth_config {
    int required;
    int post_per_min; /* rate limit of state-changing requests per token */
    int post_burst;
};

struct auth;
int auth_new(const struct auth_config *cfg, struct auth **out);
void auth_free(struct auth *a);

/* Are tokens asked for now? 1 when required or the store holds a token (looked up at most once
 * a second, and never again once one was seen), 0 when open. */
int auth_enforced(struct auth *a, struct store *st, int64_t now_ms);

#define AUTH_OPEN_WHO "anonymous" /* who, in open mode */

/* What the gate says about one request. status 0: allowed (who and role say as whom; for a
 * public path who is "" unless the request carried a valid token or the API is open); else
 * the HTTP status to answer (401, 403, 429, or 500 when the store could not be read) with
 * reason, and for 401 a WWW-Authenticate challenge, for 429 retry_after_s. */
struct auth_verdict {
    int status;
    int role;                       /* of the caller (0 when unknown) */
    int required;                   /* by the request */
    char who[STORE_ID_MAX];         /* the token's name, AUTH_OPEN_WHO, or "" when unknown */
    char token_id[AUTH_ID_HEX + 1]; /* of a well-formed token, even a refused one */
    char reason[160];
    const char *challenge;
    int retry_after_s;
};

/* Decides one request: authorization is the Authorization header (or NULL), path the decoded
 * path (plen bytes). Uses the store (token lookup, last use): call with the store's lock held.
 * Returns v->status. */
int auth_check(struct auth *a, struct store *st, const char *authorization, const char *method,
               const char *path, size_t plen, int64_t now_ms, struct auth_verdict *v);

#endif
