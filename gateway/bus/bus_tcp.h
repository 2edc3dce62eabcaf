/* bus_tcp: the register bus over Modbus TCP (libmodbus client): one connection to one
 * endpoint (host, port) serving any number of unit ids, one request at a time, with a response
 * timeout, bounded retries with backoff, reconnect after any failure, and a circuit breaker per
 * unit id. bus_tcp_new returns a struct bus that the caller owns (bus_close); the bus copies
 * every string of the configuration. docs/bus.md has the defaults and why. */
#ifndef DERLOOP_BUS_TCP_H
#define DERLOOP_BUS_TCP_H

#include "gateway/bus/breaker.h"
#include "gateway/bus/bus.h"

struct bus_tcp_config {
    const char *host; /* IP address or host name */
    int port;         /* 1..65535 */
    const char *name; /* the endpoint in log lines (e.g. the site id); NULL = host:port */
    int timeout_ms;   /* response timeout, also the connect timeout; default 500 */
    struct bus_retry retry;
    struct breaker_config breaker;
    struct bus_clock clock; /* now_ms NULL = CLOCK_MONOTONIC and nanosleep */
    /* One log line per event (no newline), key=value; NULL = stderr. */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
};

/* Fills cfg with the defaults for host:port (host is not copied until bus_tcp_new). */
void bus_tcp_config_default(struct bus_tcp_config *cfg, const char *host, int port);

/* Creates the bus; it connects on the first request. Returns 0 and *out, or -EINVAL / -ENOMEM. */
int bus_tcp_new(const struct bus_tcp_config *cfg, struct bus **out);

/* Names unit_id's device in log lines (the asset id); the bus copies it. 0 or -EINVAL/-ENOMEM. */
int bus_tcp_set_device(struct bus *b, int unit_id, const char *device_id);

/* The unit's breaker state now (by the bus's clock), or -EINVAL. */
int bus_tcp_breaker_state(struct bus *b, int unit_id);

/* 1 when the connection is up. */
int bus_tcp_connected(const struct bus *b);

#endif
