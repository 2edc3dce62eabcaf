/* bus: the gateway's register bus, one interface over several transports (Modbus TCP in
 * bus_tcp.c, the simulator's in-process images in sim/wire/bus_inproc.c). A bus reaches many units
 * (Modbus unit ids); every call is synchronous and returns 0 or a negative code (below).
 * Retries, breakers, statistics and log lines are the same whatever the transport (buscore.c).
 * A bus is created by its transport's constructor and owned by the caller: bus_close frees it.
 * The caller owns every register buffer it passes. docs/bus.md has the rules and defaults. */
#ifndef DERLOOP_BUS_H
#define DERLOOP_BUS_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/bus/breaker.h"

/* Modbus application protocol v1.1b3, 6.3 and 6.12: what fits in one 253-byte PDU. */
#define BUS_MAX_READ  125
#define BUS_MAX_WRITE 123

/* Return codes. Every call returns 0 or one of these:
 *   -ETIMEDOUT           no reply within the response timeout (after the retries)
 *   -(BUS_EXC_BASE + c)  the device answered Modbus exception c (1..255): bus_exception_code()
 *   -ECONNREFUSED        could not connect to the endpoint
 *   -ECONNRESET          the connection was lost during the request
 *   -EPROTO              a malformed or mismatched reply (the connection is dropped)
 *   BUS_EOPEN            the unit's circuit breaker is open: nothing was sent
 *   -EINVAL              bad arguments (unit id, count, range, NULL buffer): nothing was sent
 *   -ENOMEM              out of memory */
#define BUS_EXC_BASE 4096
#define BUS_EOPEN    (-EAGAIN)

/* Modbus exception codes (Modbus application protocol v1.1b3, 7). */
enum bus_exception {
    BUS_EXC_ILLEGAL_FUNCTION = 0x01,
    BUS_EXC_ILLEGAL_ADDRESS = 0x02,
    BUS_EXC_ILLEGAL_VALUE = 0x03,
    BUS_EXC_DEVICE_FAILURE = 0x04,
    BUS_EXC_ACKNOWLEDGE = 0x05,
    BUS_EXC_DEVICE_BUSY = 0x06,
    BUS_EXC_GATEWAY_PATH = 0x0A,
    BUS_EXC_GATEWAY_TARGET = 0x0B,
};

static inline int bus_exception_rc(int code)
{
    return -(BUS_EXC_BASE + code);
}

/* The exception code carried by rc, or 0 when rc is not an exception. */
static inline int bus_exception_code(int rc)
{
    return (rc <= -(BUS_EXC_BASE + 1) && rc >= -(BUS_EXC_BASE + 255)) ? -rc - BUS_EXC_BASE : 0;
}

/* Counters per bus. "Attempts" are wire exchanges (a request and its retries); "requests" are
 * calls that passed the argument checks. */
struct bus_stats {
    uint64_t requests;               /* read and write calls with valid arguments */
    uint64_t ok;                     /* calls that returned 0 */
    uint64_t timeouts;               /* attempts that got no reply in time */
    uint64_t exceptions;             /* calls answered with an exception */
    uint64_t exceptions_by_code[16]; /* [code] for codes 1..15, [0] for any other code */
    uint64_t conn_errors;            /* attempts that failed to connect or lost the connection */
    uint64_t proto_errors;           /* malformed or mismatched replies */
    uint64_t connects;               /* successful connects (TCP) */
    uint64_t reconnects;             /* successful connects after the first one (TCP) */
    uint64_t retries;                /* attempts after the first one of a call */
    uint64_t breaker_opens;          /* closed or half-open -> open transitions, all units */
    uint64_t breaker_rejects;        /* calls refused by an open breaker */
};

/* Time as the bus sees it: the breakers' clock and the backoff's sleep. Transports default to
 * the monotonic clock and a real sleep; lockstep runs and tests inject their own, so backoff and
 * breaker timing are deterministic. sleep_ms may be NULL (no sleeping). */
struct bus_clock {
    int64_t (*now_ms)(void *ctx);
    void (*sleep_ms)(void *ctx, int64_t ms);
    void *ctx;
};

/* Retries and backoff. A failed attempt (timeout, connection, malformed reply; never an
 * exception, which is the device's answer) is retried up to `retries` times; before retry k
 * (1-based) the bus sleeps min(backoff_ms * 2^(k-1), backoff_max_ms), shortened by up to
 * jitter_pct percent drawn from a generator seeded with jitter_seed (0 % = no jitter, the
 * default: lockstep runs stay deterministic). */
struct bus_retry {
    int retries;            /* default 1 */
    int64_t backoff_ms;     /* default 50 */
    int64_t backoff_max_ms; /* default 1000 */
    int jitter_pct;         /* 0..100, default 0 */
    uint64_t jitter_seed;
};

#define BUS_RETRY_DEFAULT                                                                          \
    {                                                                                              \
        1, 50, 1000, 0, 0                                                                          \
    }

/* Outcomes that say the device may be unreachable: they are retried, and they count against
 * the unit's breaker. */
static inline int bus_rc_retryable(int rc)
{
    return rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -ECONNRESET || rc == -EPROTO;
}

/* A breaker counts retryable failures and the exceptions by which a Modbus gateway says the
 * device behind it is unreachable (0x0A, 0x0B). Every other answer proves the device alive. */
static inline int bus_rc_breaker_failure(int rc)
{
    int code = -rc - BUS_EXC_BASE;
    return bus_rc_retryable(rc) || code == 0x0A || code == 0x0B;
}

/* What every transport's configuration shares (each transport's config embeds it). */
struct bus_config {
    const char *name; /* the endpoint in log lines (e.g. the site id); copied; NULL = the
                       * transport's default */
    struct bus_retry retry;
    struct breaker_config breaker;
    struct bus_clock clock; /* now_ms NULL = the transport's default clock */
    /* One log line per event (no newline), key=value; NULL = the transport's default. */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
};

/* The defaults of docs/bus.md: one retry, 50 ms backoff up to 1 s, no jitter, breakers 3 /
 * 5 s / 60 s; no name, clock or log (the transport's defaults). */
void bus_config_default(struct bus_config *cfg);

/* A bus: opaque to its users; transports build it through gateway/bus/buscore.h. */
struct bus;

/* Reads registers addr..addr+n-1 (holding registers, FC03) into dst[0..n), or writes src[0..n)
 * there (FC16, also for n == 1). Arguments are checked first: a bad call sends nothing. */
int bus_read(struct bus *b, int unit_id, uint16_t addr, uint16_t n, uint16_t *dst);
int bus_write(struct bus *b, int unit_id, uint16_t addr, uint16_t n, const uint16_t *src);
/* Frees the bus and what its transport owns (b NULL: nothing). */
void bus_close(struct bus *b);
/* A copy of the counters; read them between calls (a call in flight may be half counted). */
void bus_get_stats(const struct bus *b, struct bus_stats *out);
/* One unit's (one device's) share of the counters, for its error rate (the headend's
 * modbus_errors alert): calls, calls that failed (any rc but 0: exceptions, timeouts, breaker
 * refusals...), and attempts that timed out. */
struct bus_unit_stats {
    uint64_t requests;
    uint64_t errors;
    uint64_t timeouts;
};
/* unit_id's counters (zeros for -EINVAL). */
int bus_get_unit_stats(struct bus *b, int unit_id, struct bus_unit_stats *out);
/* Names unit_id's device in log lines (the asset id; the bus copies it; default endpoint/unit).
 * Returns 0, -EINVAL or -ENOMEM. */
int bus_set_device(struct bus *b, int unit_id, const char *device_id);
/* The unit's breaker state now (enum breaker_state, by the bus's clock), or -EINVAL. */
int bus_breaker_state(struct bus *b, int unit_id);

/* A short English description of rc (a static string). */
static inline const char *bus_strerror(int rc)
{
    switch (bus_exception_code(rc)) {
    case 0:
        break;
    case BUS_EXC_ILLEGAL_FUNCTION:
        return "modbus exception 1: illegal function";
    case BUS_EXC_ILLEGAL_ADDRESS:
        return "modbus exception 2: illegal data address";
    case BUS_EXC_ILLEGAL_VALUE:
        return "modbus exception 3: illegal data value";
    case BUS_EXC_DEVICE_FAILURE:
        return "modbus exception 4: server device failure";
    case BUS_EXC_ACKNOWLEDGE:
        return "modbus exception 5: acknowledge";
    case BUS_EXC_DEVICE_BUSY:
        return "modbus exception 6: server device busy";
    case BUS_EXC_GATEWAY_PATH:
        return "modbus exception 10: gateway path unavailable";
    case BUS_EXC_GATEWAY_TARGET:
        return "modbus exception 11: gateway target failed to respond";
    default:
        return "modbus exception (other code)";
    }
    switch (rc) {
    case 0:
        return "ok";
    case -ETIMEDOUT:
        return "timeout: no reply";
    case -ECONNREFUSED:
        return "cannot connect";
    case -ECONNRESET:
        return "connection lost";
    case -EPROTO:
        return "malformed or mismatched reply";
    case BUS_EOPEN:
        return "circuit breaker open";
    case -EINVAL:
        return "invalid argument";
    case -ENOMEM:
        return "out of memory";
    default:
        return "unknown bus error";
    }
}

#endif
