/* tcp_pool: the Modbus TCP buses of one site, one per endpoint (host, port), made on first use
 * and shared by every device behind that endpoint (a Modbus gateway, or one `der-sim serve`
 * port, carries many unit ids on one connection). What der-gateway and the lockstep runner hand
 * the controller as its transport (controller_opts.open_bus). A plain struct the caller owns:
 * tcp_pool_init, then tcp_pool_release closes every bus it made. */
#ifndef DERLOOP_TCP_POOL_H
#define DERLOOP_TCP_POOL_H

#include <stddef.h>

#include "gateway/bus/bus.h"

struct tcp_pool_endpoint;

struct tcp_pool {
    struct bus_config bus; /* every bus's name, retries, breakers, clock, log (bus_tcp.h) */
    size_t n;
    struct tcp_pool_endpoint *ep;
};

/* bus: the settings of every bus the pool makes; its strings and log context must outlive
 * the pool's last tcp_pool_bus call (each bus copies the name). */
void tcp_pool_init(struct tcp_pool *p, const struct bus_config *bus);

/* The bus to host:port, made on first use with this response timeout (a later device on the
 * same endpoint shares the bus and its timeout). The pool owns it. NULL with err on failure. */
struct bus *tcp_pool_bus(struct tcp_pool *p, const char *host, int port, int timeout_ms, char *err,
                         size_t errlen);

/* Closes every bus; the pool is empty again (and may be reused). */
void tcp_pool_release(struct tcp_pool *p);

#endif
