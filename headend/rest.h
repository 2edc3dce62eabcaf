/* rest: the headend's HTTP API (libmicrohttpd, its own polling thread, JSON with cJSON).
 * rest_handle is the whole API as a pure function of (method, path, query, body), so every
 * validation rule is unit-tested without sockets; rest_start only binds it to MHD. The caller
 * of rest_handle holds no lock (it takes the hub lock) and frees resp->body. */
#ifndef HEADEND_REST_H
#define HEADEND_REST_H

#include <stddef.h>
#include <stdint.h>

#include "headend/hub.h"

struct rest_response {
    int status;
    char *body; /* malloc'd */
    const char *content_type;
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

struct rest;
/* Listens on listen (port 0 = any, returned in *port) with the limits of hub_config(h):
 * http_max_connections, http_max_per_ip, http_timeout_s, http_threads. 0 or -errno + err. */
int rest_start(struct hub *h, const char *listen, struct rest **out, int *port, char *err,
               size_t errlen);
void rest_stop(struct rest *r);

#endif
