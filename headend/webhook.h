/* webhook: alert changes POSTed to an operator's URL (--alert-webhook, docs/operations.md,
 * "Alerts"). A thread of its own sends the queued JSON bodies in order, one HTTP/1.1 POST
 * each over a non-blocking socket with an overall timeout; a failure (no connection, timeout,
 * a status other than 2xx) is retried with exponential backoff (0.5 s doubling, at most 30 s)
 * up to `retries` times, then the body is dropped and logged. http:// only: no TLS library
 * is linked for this (a receiver that needs HTTPS sits behind a local relay). Callers never
 * block: webhook_post copies the body into a bounded queue (a body beyond it is dropped).
 * The caller owns the webhook (webhook_free stops the thread). */
#ifndef HEADEND_WEBHOOK_H
#define HEADEND_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_QUEUE_MAX 1024

struct webhook;

/* Checks the URL ("http://HOST[:PORT]/PATH"; HOST a name, an IPv4 address or [IPv6]) and
 * starts the thread. 0, or -EINVAL with err naming what is wrong, or -ENOMEM. */
int webhook_new(const char *url, int timeout_ms, int retries, struct webhook **out, char *err,
                size_t errlen);
void webhook_free(struct webhook *w);

void webhook_post(struct webhook *w, const char *body);

struct webhook_stats {
    uint64_t sent;     /* bodies the receiver took (2xx) */
    uint64_t failures; /* attempts that failed */
    uint64_t dropped;  /* bodies given up (retries spent, or the queue full) */
    size_t queued;
};
void webhook_get_stats(struct webhook *w, struct webhook_stats *out);

/* The URL's parts: 0 or -EINVAL with err. */
int webhook_parse_url(const char *url, char *host, size_t hostlen, int *port, char *path,
                      size_t pathlen, char *err, size_t errlen);

#endif
