/* bus_inproc: the gateway's register bus (gateway/bus/bus.h) served straight from the simulator's
 * register images, for fast lockstep runs: the same checks, exception codes and wire faults as
 * Modbus TCP against mbserver, without sockets or sleeping; retries, breakers, statistics and
 * log lines are the bus core's (gateway/bus/buscore.c), as on TCP. The bus does not own
 * the images or fault structs it serves (their assets do); bus_close frees the bus only.
 * Like the images, it is used from one thread (the one that steps them): it takes no lock.
 * Time for the breakers comes from the injected clock, or from bus_inproc_set_now. */
#ifndef DERLOOP_BUS_INPROC_H
#define DERLOOP_BUS_INPROC_H

#include "gateway/bus/bus.h"
#include "sim/wire/asset.h"
#include "sim/wire/regimage.h"

struct bus_inproc_config {
    /* The response timeout the TCP client would use (default 500): a WIRE_SLOW unit whose
     * delay is at least this long answers -ETIMEDOUT, a faster one answers normally. */
    int timeout_ms;
    /* Retries, breakers, clock, log as on every bus. Defaults here: name NULL = "inproc",
     * clock.now_ms NULL = the time given to bus_inproc_set_now (0 at first), log NULL = no log
     * lines. A failed call is retried as on TCP (so the statistics are the same), but nothing
     * ever sleeps: clock.sleep_ms is not used. */
    struct bus_config bus;
};

void bus_inproc_config_default(struct bus_inproc_config *cfg);
/* cfg NULL = defaults. Returns 0 and *out, or -EINVAL / -ENOMEM. */
int bus_inproc_new(const struct bus_inproc_config *cfg, struct bus **out);
/* Serves img as unit_id (0..255); wf (may be NULL = always healthy) is read at every request.
 * Returns 0, -EINVAL, or -EEXIST when the unit id is taken. */
int bus_inproc_add_unit(struct bus *b, int unit_id, struct regimage *img,
                        const struct wirefault *wf);
/* Sets the breakers' time when no clock was injected (lockstep: the simulated time). */
void bus_inproc_set_now(struct bus *b, int64_t now_ms);

#endif
