/* buscore: the transport-independent half of every register bus (see buscore.h).
 *
 * Why one core: the lockstep runner must make the same decisions over Modbus TCP and over the
 * in-process images (docs/determinism.md: both transports give the same digest). Retries,
 * backoff, breakers and statistics written once cannot drift apart; a transport can differ only
 * in what one exchange returns, and the in-process transport copies mbserver's answers.
 *
 * The lock: one call at a time per bus, retries included, so that a TCP connection never
 * carries two requests at once (libmodbus contexts are not thread-safe, docs/bus.md) and the
 * breakers and counters need no finer locking. A transport used from one thread only (the
 * in-process bus, in the lockstep thread with the images it serves) skips it: the lock pair
 * cost about as much as the whole in-process exchange. */
#include "gateway/bus/buscore.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rtclock.h"

/* ---- time -------------------------------------------------------------------------------- */

static int64_t mono_now_ms(void *ctx)
{
    (void)ctx;
    return rtclock_monotonic_ms();
}

static void mono_sleep_ms(void *ctx, int64_t ms)
{
    (void)ctx;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const struct bus_clock bus_clock_monotonic = {mono_now_ms, mono_sleep_ms, NULL};

static int64_t now_ms(struct bus *b)
{
    return b->clock.now_ms(b->clock.ctx);
}

/* SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator for the optional jitter, so
 * that a run with jitter still replays exactly from its seed. */
static uint64_t jitter_next(struct bus *b)
{
    uint64_t z = (b->jitter_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The sleep before retry k (1-based): exponential, capped, optionally shortened by jitter. */
static int64_t backoff_ms(struct bus *b, int k)
{
    int64_t d = b->retry.backoff_ms;
    for (int i = 1; i < k && d < b->retry.backoff_max_ms; i++)
        d *= 2;
    if (d > b->retry.backoff_max_ms)
        d = b->retry.backoff_max_ms;
    if (b->retry.jitter_pct > 0 && d > 0)
        d -= d * b->retry.jitter_pct * (int64_t)(jitter_next(b) % 1000) / 100000;
    return d;
}

/* ---- logs -------------------------------------------------------------------------------- */

void bus_log_stderr(void *ctx, const char *line)
{
    (void)ctx;
    fprintf(stderr, "%s\n", line);
}

void bus_core_logf(struct bus *b, int unit, const char *event, const char *fmt, ...)
{
    if (!b->log)
        return; /* silent buses format nothing */
    char line[512], dev[64];
    int len;
    if (unit < 0) { /* an event of the endpoint, not of one device */
        len = snprintf(line, sizeof(line), "bus=%s endpoint=%s device=%s event=%s", b->tr->name,
                       b->name, b->name, event);
    } else {
        const char *d = b->device[unit];
        if (!d) {
            snprintf(dev, sizeof(dev), "%s/%d", b->name, unit);
            d = dev;
        }
        len = snprintf(line, sizeof(line), "bus=%s endpoint=%s unit=%d device=%s event=%s",
                       b->tr->name, b->name, unit, d, event);
    }
    if (fmt && len > 0 && (size_t)len < sizeof(line) - 1) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + len, sizeof(line) - (size_t)len, fmt, ap);
        va_end(ap);
    }
    b->log(b->log_ctx, line);
}

/* ---- the call ---------------------------------------------------------------------------- */

/* The statistics of one attempt's failure (timeouts and errors count per attempt). */
static void count_attempt(struct bus_stats *st, int rc)
{
    switch (rc) {
    case -ETIMEDOUT:
        st->timeouts++;
        break;
    case -ECONNREFUSED:
    case -ECONNRESET:
        st->conn_errors++;
        break;
    case -EPROTO:
        st->proto_errors++;
        break;
    default:
        break;
    }
}

/* The statistics of a call's outcome (successes and exceptions count per call). */
static void count_outcome(struct bus_stats *st, int rc)
{
    int code = bus_exception_code(rc);
    if (rc == 0) {
        st->ok++;
    } else if (code) {
        st->exceptions++;
        st->exceptions_by_code[code < 16 ? code : 0]++;
    }
}

static void lock(struct bus *b)
{
    if (!b->tr->one_thread)
        pthread_mutex_lock(&b->lock);
}

static void unlock(struct bus *b)
{
    if (!b->tr->one_thread)
        pthread_mutex_unlock(&b->lock);
}

/* Breaker check, attempts with backoff, breaker report; the lock held throughout. */
static int call(struct bus *b, int unit, int write, uint16_t addr, uint16_t n, uint16_t *dst,
                const uint16_t *src)
{
    struct breaker *br = &b->breakers[unit];
    struct bus_unit_stats *us = &b->unit_stats[unit];
    lock(b);
    b->stats.requests++;
    us->requests++;
    int64_t t0 = now_ms(b);
    enum breaker_state before = br->state;
    if (breaker_allow(br, t0) != 0) {
        b->stats.breaker_rejects++;
        us->errors++;
        unlock(b);
        return BUS_EOPEN;
    }
    if (br->state != before)
        bus_core_logf(b, unit, "breaker_half_open", "probe=1");

    int rc = 0;
    for (int k = 0; k <= b->retry.retries; k++) {
        if (k > 0) {
            b->stats.retries++;
            int64_t d = backoff_ms(b, k);
            if (d > 0 && b->clock.sleep_ms)
                b->clock.sleep_ms(b->clock.ctx, d);
        }
        rc = b->tr->exchange(b, unit, write, addr, n, dst, src);
        count_attempt(&b->stats, rc);
        us->timeouts += rc == -ETIMEDOUT;
        if (!bus_rc_retryable(rc))
            break;
    }
    count_outcome(&b->stats, rc);
    us->errors += rc != 0;

    /* A failure opens the breaker from the time after the attempts (on a real clock, when the
     * failure is known, not when the call began); a success does not use the time. */
    int ok = !bus_rc_breaker_failure(rc);
    before = br->state;
    enum breaker_state after = breaker_record(br, ok ? t0 : now_ms(b), ok);
    if (after != before) {
        if (after == BREAKER_OPEN) {
            b->stats.breaker_opens++;
            bus_core_logf(b, unit, "breaker_open", "reason=\"%s\" open_ms=%lld", bus_strerror(rc),
                          (long long)br->period_ms);
        } else {
            bus_core_logf(b, unit, "breaker_closed", NULL);
        }
    }
    unlock(b);
    return rc;
}

/* Unit ids 0..255 are accepted: 0 is broadcast on serial lines but an ordinary id behind many
 * TCP devices, and some devices answer only on 255. */
static int check_args(int unit_id, uint32_t addr, uint16_t n, uint16_t max, const void *buf)
{
    if (unit_id < 0 || unit_id >= BUS_MAX_UNITS || n < 1 || n > max || !buf || addr + n > 0x10000u)
        return -EINVAL;
    return 0;
}

int bus_read(struct bus *b, int unit_id, uint16_t addr, uint16_t n, uint16_t *dst)
{
    if (!b || check_args(unit_id, addr, n, BUS_MAX_READ, dst))
        return -EINVAL;
    return call(b, unit_id, 0, addr, n, dst, NULL);
}

int bus_write(struct bus *b, int unit_id, uint16_t addr, uint16_t n, const uint16_t *src)
{
    if (!b || check_args(unit_id, addr, n, BUS_MAX_WRITE, src))
        return -EINVAL;
    return call(b, unit_id, 1, addr, n, NULL, src);
}

/* ---- the bus's life ---------------------------------------------------------------------- */

void bus_config_default(struct bus_config *cfg)
{
    static const struct bus_retry retry = BUS_RETRY_DEFAULT;
    static const struct breaker_config breaker = BREAKER_CONFIG_DEFAULT;
    memset(cfg, 0, sizeof(*cfg));
    cfg->retry = retry;
    cfg->breaker = breaker;
}

int bus_core_init(struct bus *b, const struct bus_transport *tr, const struct bus_config *cfg)
{
    const struct bus_retry *r = &cfg->retry;
    if (!tr || !tr->exchange || !cfg->name || !cfg->clock.now_ms || r->retries < 0 ||
        r->retries > 10 || r->backoff_ms < 0 || r->backoff_max_ms < r->backoff_ms ||
        r->jitter_pct < 0 || r->jitter_pct > 100)
        return -EINVAL;
    if (!(b->name = strdup(cfg->name)))
        return -ENOMEM;
    b->tr = tr;
    b->retry = *r;
    b->jitter_state = r->jitter_seed;
    b->clock = cfg->clock;
    b->log = cfg->log;
    b->log_ctx = cfg->log_ctx;
    for (int i = 0; i < BUS_MAX_UNITS; i++)
        breaker_init(&b->breakers[i], &cfg->breaker);
    pthread_mutex_init(&b->lock, NULL);
    return 0;
}

void bus_close(struct bus *b)
{
    if (!b)
        return;
    if (b->tr->close)
        b->tr->close(b);
    for (int i = 0; i < BUS_MAX_UNITS; i++)
        free(b->device[i]);
    pthread_mutex_destroy(&b->lock);
    free(b->name);
    free(b);
}

void bus_get_stats(const struct bus *b, struct bus_stats *out)
{
    *out = b->stats;
}

int bus_get_unit_stats(struct bus *b, int unit_id, struct bus_unit_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!b || unit_id < 0 || unit_id >= BUS_MAX_UNITS)
        return -EINVAL;
    lock(b);
    *out = b->unit_stats[unit_id];
    unlock(b);
    return 0;
}

int bus_set_device(struct bus *b, int unit_id, const char *device_id)
{
    if (!b || unit_id < 0 || unit_id >= BUS_MAX_UNITS || !device_id)
        return -EINVAL;
    char *copy = strdup(device_id);
    if (!copy)
        return -ENOMEM;
    lock(b);
    free(b->device[unit_id]);
    b->device[unit_id] = copy;
    unlock(b);
    return 0;
}

int bus_breaker_state(struct bus *b, int unit_id)
{
    if (!b || unit_id < 0 || unit_id >= BUS_MAX_UNITS)
        return -EINVAL;
    lock(b);
    int s = (int)breaker_state_at(&b->breakers[unit_id], now_ms(b));
    unlock(b);
    return s;
}
