/* bus_tcp: the register bus over Modbus TCP (libmodbus client): one connection to one
 * endpoint (host, port) serving any number of unit ids, one request at a time, with a response
 * timeout, and a reconnect after any failure; retries with backoff and a circuit breaker per
 * unit id come from the bus core (buscore.c). bus_tcp_new returns a struct bus that the caller
 * owns (bus_close); the bus copies every string of the configuration. docs/bus.md has the
 * defaults and why. */
#ifndef DERLOOP_BUS_TCP_H
#define DERLOOP_BUS_TCP_H

#include "gateway/bus/bus.h"

struct bus_tcp_config {
    const char *host; /* IP address or host name */
    int port;         /* 1..65535 */
    int timeout_ms;   /* response timeout, also the connect timeout; default 500 */
    /* Retries, breakers, clock, log. Defaults here: name NULL = host:port, clock.now_ms NULL =
     * CLOCK_MONOTONIC and nanosleep, log NULL = stderr. */
    struct bus_config bus;
};

/* Fills cfg with the defaults for host:port (host is not copied until bus_tcp_new). */
void bus_tcp_config_default(struct bus_tcp_config *cfg, const char *host, int port);

/* Creates the bus; it connects on the first request. Returns 0 and *out, or -EINVAL / -ENOMEM. */
int bus_tcp_new(const struct bus_tcp_config *cfg, struct bus **out);

/* 1 when the connection is up. */
int bus_tcp_connected(const struct bus *b);

#endif
