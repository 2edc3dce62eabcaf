/* mbserver: a Modbus TCP server for many sites in one thread, built on libmodbus in server
 * mode and poll(2) (never select: hundreds of sockets). Each endpoint is a listening socket
 * (one per site); each unit id on it is one device's register image. Requests are framed and
 * validated here before libmodbus replies; wire faults (no reply, exception, slow reply,
 * offline) are applied per unit. Time comes from an injected clock. Owns its sockets. */
#ifndef DERLOOP_MBSERVER_H
#define DERLOOP_MBSERVER_H

#include <stdint.h>

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

#endif
