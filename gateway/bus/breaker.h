/* breaker: a circuit breaker for one device: closed -> open after `failures` consecutive
 * failed calls -> half-open once open_ms has passed (one probe call goes through) -> closed on
 * the probe's success, or open again with open_ms doubled up to open_max_ms. Time is a
 * parameter (now_ms, any monotonic origin). A plain value struct: the caller owns it. */
#ifndef DERLOOP_BREAKER_H
#define DERLOOP_BREAKER_H

#include <stdint.h>

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct breaker_config {
    int failures;        /* consecutive failures that open it; default 3; <= 0 = never open */
    int64_t open_ms;     /* first open period; default 5000 */
    int64_t open_max_ms; /* cap of the doubling open period; default 60000 */
};

#define BREAKER_CONFIG_DEFAULT                                                                     \
    {                                                                                              \
        3, 5000, 60000                                                                             \
    }

struct breaker {
    struct breaker_config cfg;
    enum breaker_state state;
    int consecutive;      /* consecutive failures while closed */
    int probing;          /* half-open: the probe call is out */
    int64_t period_ms;    /* the current open period */
    int64_t reopen_at_ms; /* open: when the next probe may go */
    uint64_t opens;       /* transitions to open */
};

/* cfg NULL = defaults; out-of-range fields take their defaults (open_max_ms at least open_ms). */
void breaker_init(struct breaker *b, const struct breaker_config *cfg);
/* Asks to send one call at now_ms. Returns 0 (go; in half-open this call is the probe and must
 * be reported) or -EAGAIN (open, or the probe is already out). */
int breaker_allow(struct breaker *b, int64_t now_ms);
/* Reports the outcome of an allowed call (ok = 1 success, 0 failure). Returns the state after. */
enum breaker_state breaker_record(struct breaker *b, int64_t now_ms, int ok);
/* The state at now_ms, without side effects (an open breaker past its period reads half-open). */
enum breaker_state breaker_state_at(const struct breaker *b, int64_t now_ms);
const char *breaker_state_name(enum breaker_state s);

#endif
