/* tcp_pool: see tcp_pool.h.
 *
 * One bus per endpoint rather than per device: a Modbus gateway in front of several devices
 * takes one request at a time, and one connection (with the bus's lock) is what keeps ours from
 * overlapping. The breakers stay per unit id inside that bus, so one dead device behind the
 * gateway does not silence the others. */
#include "gateway/bus/tcp_pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/bus/bus_tcp.h"

struct tcp_pool_endpoint {
    char *host;
    int port;
    struct bus *bus;
};

void tcp_pool_init(struct tcp_pool *p, const struct bus_config *bus)
{
    memset(p, 0, sizeof(*p));
    p->bus = *bus;
}

struct bus *tcp_pool_bus(struct tcp_pool *p, const char *host, int port, int timeout_ms, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->ep[i].host, host) && p->ep[i].port == port)
            return p->ep[i].bus;
    struct tcp_pool_endpoint *ep = realloc(p->ep, (p->n + 1) * sizeof(*ep));
    if (!ep) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->ep = ep;
    struct bus_tcp_config bc;
    bus_tcp_config_default(&bc, host, port);
    bc.timeout_ms = timeout_ms;
    bc.bus = p->bus;
    struct bus *b = NULL;
    int rc = bus_tcp_new(&bc, &b);
    char *copy = rc ? NULL : strdup(host);
    if (!copy) {
        bus_close(b);
        snprintf(err, errlen, "cannot create a Modbus TCP bus to %s:%d: %s", host, port,
                 strerror(rc ? -rc : ENOMEM));
        return NULL;
    }
    p->ep[p->n++] = (struct tcp_pool_endpoint){copy, port, b};
    return b;
}

void tcp_pool_release(struct tcp_pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        bus_close(p->ep[i].bus);
        free(p->ep[i].host);
    }
    free(p->ep);
    p->n = 0;
    p->ep = NULL;
}
