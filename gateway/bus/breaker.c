/* breaker: the circuit breaker state machine (see breaker.h).
 *
 * Why a breaker at all: a device that does not answer costs the gateway's cycle one response
 * timeout per attempt. With twenty devices on a site and one of them dead, the cycle would
 * stretch by seconds every time. After a few consecutive failures the breaker turns the dead
 * device's calls into an immediate refusal, and probes it with one call per open period; the
 * period doubles while the device stays dead, so a long outage costs a probe a minute, not a
 * stream of timeouts. */
#include "gateway/bus/breaker.h"

#include <errno.h>
#include <stddef.h>

void breaker_init(struct breaker *b, const struct breaker_config *cfg)
{
    static const struct breaker_config def = BREAKER_CONFIG_DEFAULT;
    b->cfg = cfg ? *cfg : def;
    if (b->cfg.failures < 0)
        b->cfg.failures = 0;
    if (b->cfg.open_ms <= 0)
        b->cfg.open_ms = def.open_ms;
    if (b->cfg.open_max_ms < b->cfg.open_ms)
        b->cfg.open_max_ms = b->cfg.open_ms;
    b->state = BREAKER_CLOSED;
    b->consecutive = 0;
    b->probing = 0;
    b->period_ms = b->cfg.open_ms;
    b->reopen_at_ms = 0;
    b->opens = 0;
}

enum breaker_state breaker_state_at(const struct breaker *b, int64_t now_ms)
{
    if (b->state == BREAKER_OPEN && now_ms >= b->reopen_at_ms)
        return BREAKER_HALF_OPEN;
    return b->state;
}

int breaker_allow(struct breaker *b, int64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return 0;
    case BREAKER_OPEN:
        if (now_ms < b->reopen_at_ms)
            return -EAGAIN;
        b->state = BREAKER_HALF_OPEN;
        b->probing = 0;
        /* fall through */
    case BREAKER_HALF_OPEN:
        if (b->probing)
            return -EAGAIN;
        b->probing = 1;
        return 0;
    }
    return -EAGAIN;
}

static void trip(struct breaker *b, int64_t now_ms)
{
    b->state = BREAKER_OPEN;
    b->reopen_at_ms = now_ms + b->period_ms;
    b->probing = 0;
    b->consecutive = 0;
    b->opens++;
}

enum breaker_state breaker_record(struct breaker *b, int64_t now_ms, int ok)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        if (ok) {
            b->consecutive = 0;
        } else if (b->cfg.failures > 0 && ++b->consecutive >= b->cfg.failures) {
            b->period_ms = b->cfg.open_ms;
            trip(b, now_ms);
        }
        break;
    case BREAKER_HALF_OPEN:
        if (ok) {
            b->state = BREAKER_CLOSED;
            b->consecutive = 0;
            b->probing = 0;
            b->period_ms = b->cfg.open_ms;
        } else {
            /* The device is still dead: wait twice as long before the next probe. */
            b->period_ms =
                b->period_ms > b->cfg.open_max_ms / 2 ? b->cfg.open_max_ms : b->period_ms * 2;
            trip(b, now_ms);
        }
        break;
    case BREAKER_OPEN:
        /* An outcome reported while open (a call that was not allowed): ignored. */
        break;
    }
    return b->state;
}

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "?";
}
