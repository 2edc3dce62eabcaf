/* mbserver: a Modbus TCP server for many sites in one thread, built on libmodbus in server
 * mode and epoll or poll(2) (never select: hundreds of sockets). Each endpoint is a listening
 * socket (one per site); each unit id on it is one device's register image. Requests are framed
 * and validated here before libmodbus replies; wire faults (no reply, exception, slow reply,
 * offline) are applied per unit. Time comes from an injected clock. Owns its sockets. */
#ifndef DERLOOP_MBSERVER_H
#define DERLOOP_MBSERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim/asset.h"
#include "sim/regimage.h"

struct mbserver;

struct mbserver_clock {
    int64_t (*now_ms)(void *ctx); /* monotonic milliseconds */
    void *ctx;
};

struct mbserver_stats {
    uint64_t requests, replies, exceptions, dropped, bad_frames;
    uint64_t clients_accepted, clients_closed;
};

/* clock NULL = the process's monotonic clock (sim/rtclock.h). */
struct mbserver *mbserver_new(const struct mbserver_clock *clock);
/* The readiness backend: epoll (the default of mbserver_new; its cost grows with the ready
 * sockets, not all of them, which matters at a thousand sites) or poll(2). Same behaviour. */
enum mbserver_backend { MBSERVER_EPOLL, MBSERVER_POLL };
struct mbserver *mbserver_new_backend(const struct mbserver_clock *clock,
                                      enum mbserver_backend backend);
void mbserver_free(struct mbserver *s);
/* Listens on bind_addr:port (port 0 = any free port); *bound_port gets the port. Returns the
 * endpoint id (>= 0) or -errno. */
int mbserver_listen(struct mbserver *s, const char *bind_addr, int port, int *bound_port);
/* Serves img as unit_id on endpoint; wf (may be NULL) is read at every request. */
int mbserver_add_unit(struct mbserver *s, int endpoint, int unit_id, struct regimage *img,
                      const struct wirefault *wf);
/* Waits up to timeout_ms for activity and serves it (accepts, requests, due slow replies).
 * Returns the number of requests handled, or -errno. */
int mbserver_poll(struct mbserver *s, int timeout_ms);
void mbserver_get_stats(const struct mbserver *s, struct mbserver_stats *out);

/* Log lines (one per event, key=value) go to `log` (NULL = stderr) when their level is at most
 * `level`: MBSERVER_LOG_WARN for bad frames and socket errors, MBSERVER_LOG_CONN adds every
 * connect and disconnect (the default). */
enum { MBSERVER_LOG_QUIET = 0, MBSERVER_LOG_WARN = 1, MBSERVER_LOG_CONN = 2 };
void mbserver_set_log(struct mbserver *s, FILE *log, int level);
/* Names an endpoint (e.g. the site id) in its log lines. Returns 0 or -EINVAL. */
int mbserver_set_endpoint_name(struct mbserver *s, int endpoint, const char *name);
/* Currently connected clients, over all endpoints. */
size_t mbserver_n_clients(const struct mbserver *s);

#endif
