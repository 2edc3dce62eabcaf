/* rest: the headend's HTTP API (libmicrohttpd, its own polling thread, JSON with cJSON).
 * rest_handle is the whole API as a pure function of (method, path, query, body), so every
 * validation rule is unit-tested without sockets; rest_handle_client adds the gate (bearer
 * tokens, roles, rate limit: headend/auth.h) and the audit trail, as the listener does;
 * rest_start only binds it to MHD (HTTP or HTTPS). The caller of rest_handle* holds no lock
 * (it takes the hub lock) and frees resp->body. */
#ifndef HEADEND_REST_H
#define HEADEND_REST_H

#include <stddef.h>
#include <stdint.h>

#include "headend/auth.h"
#include "headend/hub.h"

struct rest_response {
    int status;
    char *body; /* malloc'd */
    const char *content_type;
    const char *www_authenticate; /* the WWW-Authenticate header of a 401 or 403, or NULL */
    int retry_after_s;            /* the Retry-After header of a 429, or 0 */
    int no_store;                 /* Cache-Control: no-store (the answer holds a new token) */
    const char *role; /* X-Derloop-Role: the caller's role, so the console knows what it may do */
};

/* Query parameter lookup: returns the value or NULL. */
typedef const char *(*rest_arg_fn)(void *ctx, const char *key);

int rest_handle(struct hub *h, const char *method, const char *path, rest_arg_fn arg, void *arg_ctx,
                const char *body, size_t body_len, int64_t now_ms, struct rest_response *resp);

/* The request as it came off the wire: url is the raw request target ("/telemetry/a%2Db?from=1",
 * url_len bytes), percent-decoded here exactly as the listener does it; a path or query value
 * that decodes to a control character (NUL included) is refused with 400. This is what the
 * libmicrohttpd glue calls, and what tests/fuzz drives without sockets. */
int rest_handle_url(struct hub *h, const char *method, const char *url, size_t url_len,
                    const char *body, size_t body_len, int64_t now_ms, struct rest_response *resp);

/* Who sends a request: the Authorization header (or NULL) and the peer ("ip:port"). */
struct rest_client {
    const char *authorization;
    const char *peer;
};

/* rest_handle_url behind the gate of auth (auth_check), with the audit trail of
 * state-changing requests and the log lines of refusals and errors: what the listener runs for
 * each request. */
int rest_handle_client(struct hub *h, struct auth *auth, const struct rest_client *client,
                       const char *method, const char *url, size_t url_len, const char *body,
                       size_t body_len, int64_t now_ms, struct rest_response *resp);

struct rest;
/* Listens on listen (port 0 = any, returned in *port) with the limits of hub_config(h):
 * http_max_connections, http_max_per_ip, http_timeout_s, http_threads; HTTPS with
 * http_tls_cert and http_tls_key; tokens asked for when auth is set, the address is not a
 * loopback one, or the store holds a token. A non-loopback address without HTTPS is refused
 * (-EPERM) unless insecure is set. 0 or -errno + err. */
int rest_start(struct hub *h, const char *listen, struct rest **out, int *port, char *err,
               size_t errlen);
void rest_stop(struct rest *r);

#endif
