/* buscore: what every register bus does whatever carries its frames, written once: the call
 * (breaker check, attempts with backoff, breaker report), the statistics, the classification of
 * outcomes (bus.h: bus_rc_retryable, bus_rc_breaker_failure), the log lines, one call at a time
 * (a lock, unless the transport is used from one thread only).
 * A transport only exchanges one request and its reply.
 *
 * For transports, not for the bus's users (they include bus.h). A transport allocates its own
 * struct with malloc/calloc, struct bus first, calls bus_core_init, and implements
 * struct bus_transport; bus_close calls its close, releases the core and frees the struct.
 * docs/bus.md has the split and the rules. */
#ifndef DERLOOP_BUSCORE_H
#define DERLOOP_BUSCORE_H

#include <pthread.h>

#include "gateway/bus/bus.h"

#define BUS_MAX_UNITS 256 /* unit ids 0..255 */

struct bus_transport {
    const char *name; /* "tcp", "inproc": the bus= field of log lines */
    /* One attempt, with valid arguments and the bus's lock held: read (write 0) fills
     * dst[0..n), write stores src[0..n). Returns 0, bus_exception_rc(code) for the device's
     * answer, or a retryable failure (-ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EPROTO); the
     * core retries, counts and logs those. */
    int (*exchange)(struct bus *b, int unit_id, int write, uint16_t addr, uint16_t n, uint16_t *dst,
                    const uint16_t *src);
    /* Releases what the transport owns (not the struct itself); NULL = nothing to release. */
    void (*close)(struct bus *b);
    /* 1: the bus is only ever used from one thread (like the simulator's images that the
     * in-process transport serves), so the core takes no lock; 0: one call at a time. */
    int one_thread;
};

/* The common head of every transport's struct. Fields are the core's: a transport reads them
 * and counts its own events in stats (connects, reconnects), nothing else. */
struct bus {
    const struct bus_transport *tr;
    struct bus_stats stats;
    char *name;
    struct bus_retry retry;
    struct bus_clock clock;
    void (*log)(void *ctx, const char *line); /* NULL: no log lines */
    void *log_ctx;
    uint64_t jitter_state;
    pthread_mutex_t lock;
    struct breaker breakers[BUS_MAX_UNITS];
    struct bus_unit_stats unit_stats[BUS_MAX_UNITS];
    char *device[BUS_MAX_UNITS]; /* names for logs, NULL = endpoint/unit */
};

/* Sets up the core in b (zeroed by the transport's calloc). clock.now_ms and name must be set
 * (the transport resolves its defaults); log may be NULL (silent). Returns 0, -EINVAL (retry
 * settings out of range: retries 0..10, 0 <= backoff_ms <= backoff_max_ms, jitter 0..100) or
 * -ENOMEM; on failure nothing is left to release. */
int bus_core_init(struct bus *b, const struct bus_transport *tr, const struct bus_config *cfg);

/* One log line: "bus=T endpoint=NAME unit=U device=D event=E" then fmt's fields (fmt may be
 * NULL). unit -1 for an event of the endpoint (device = the endpoint, no unit). */
void bus_core_logf(struct bus *b, int unit, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The monotonic clock with a real sleep (the default of transports that talk to real devices),
 * and a log callback that writes the line to stderr. */
extern const struct bus_clock bus_clock_monotonic;
void bus_log_stderr(void *ctx, const char *line);

#endif
