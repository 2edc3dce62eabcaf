/* bus_tcp: the register bus over Modbus TCP, on libmodbus's client.
 *
 * One libmodbus context per endpoint, connected lazily and kept open while requests succeed;
 * the unit id is set per request (modbus_set_slave). A mutex makes the bus one request at a
 * time, so two threads can never interleave frames on the connection.
 *
 * The rule that keeps replies matched to requests: after any failure other than a Modbus
 * exception (timeout, lost connection, malformed or mismatched reply) the connection is closed,
 * and the next attempt reconnects. libmodbus 3.1.6 matches replies by reading the next frame on
 * the socket: a reply that arrives after the client gave up would otherwise be taken as the
 * answer to the following request, or desynchronise every later transaction id (libmodbus
 * #255, docs/bus.md). A fresh connection cannot carry a stale reply. An exception is a
 * complete, well-formed answer, so the stream is still in step and the connection stays.
 *
 * libmodbus's own error recovery stays off (MODBUS_ERROR_RECOVERY_NONE): with protocol
 * recovery 3.1.6 sleeps a response timeout and flushes on a bad reply, and with link recovery
 * it reconnects behind our back, out of reach of our statistics, logs and breakers. */
#include "gateway/bus/bus_tcp.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modbus.h>

#define DEFAULT_TIMEOUT_MS 500

struct bus_tcp {
    struct bus base; /* first: a struct bus * is a struct bus_tcp * */
    modbus_t *ctx;
    int connected;
    int ever_connected;
    int last_connect_errno; /* of the last logged connect failure, 0 after a connect */
    char *host, *name;
    int port;
    int timeout_ms;
    struct bus_retry retry;
    struct bus_clock clock;
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
    uint64_t jitter_state;
    pthread_mutex_t lock;
    struct breaker breakers[256]; /* by unit id */
    char *device[256];            /* names for logs, NULL = endpoint/unit */
};

static const struct bus_ops tcp_ops;

static struct bus_tcp *as_tcp(const struct bus *b)
{
    return (b && b->ops == &tcp_ops) ? (struct bus_tcp *)b : NULL;
}

/* ---- time -------------------------------------------------------------------------------- */

static int64_t mono_now_ms(void *ctx)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void mono_sleep_ms(void *ctx, int64_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t now_ms(struct bus_tcp *t)
{
    return t->clock.now_ms(t->clock.ctx);
}

/* SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator for the optional jitter, so
 * that a run with jitter still replays exactly from its seed. */
static uint64_t jitter_next(struct bus_tcp *t)
{
    uint64_t z = (t->jitter_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The sleep before retry k (1-based): exponential, capped, optionally shortened by jitter. */
static int64_t backoff_ms(struct bus_tcp *t, int k)
{
    int64_t d = t->retry.backoff_ms;
    for (int i = 1; i < k && d < t->retry.backoff_max_ms; i++)
        d *= 2;
    if (d > t->retry.backoff_max_ms)
        d = t->retry.backoff_max_ms;
    if (t->retry.jitter_pct > 0 && d > 0)
        d -= d * t->retry.jitter_pct * (int64_t)(jitter_next(t) % 1000) / 100000;
    return d;
}

/* ---- logs -------------------------------------------------------------------------------- */

static void log_stderr(void *ctx, const char *line)
{
    fprintf(stderr, "%s\n", line);
}

/* One line: "bus=tcp endpoint=NAME unit=U device=D event=..." then the caller's fields; unit -1
 * for the endpoint's own events (device = the endpoint). */
static void __attribute__((format(printf, 4, 5)))
logf_(struct bus_tcp *t, int unit, const char *event, const char *fmt, ...)
{
    char line[512], dev[64];
    int len;
    if (unit < 0) { /* an event of the endpoint, not of one device */
        len = snprintf(line, sizeof(line), "bus=tcp endpoint=%s device=%s event=%s", t->name,
                       t->name, event);
    } else {
        const char *d = t->device[unit];
        if (!d) {
            snprintf(dev, sizeof(dev), "%s/%d", t->name, unit);
            d = dev;
        }
        len = snprintf(line, sizeof(line), "bus=tcp endpoint=%s unit=%d device=%s event=%s",
                       t->name, unit, d, event);
    }
    if (fmt && len > 0 && (size_t)len < sizeof(line) - 1) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + len, sizeof(line) - (size_t)len, fmt, ap);
        va_end(ap);
    }
    t->log(t->log_ctx, line);
}

/* ---- connection -------------------------------------------------------------------------- */

static void disconnect(struct bus_tcp *t, int unit, const char *reason)
{
    if (!t->connected)
        return;
    modbus_close(t->ctx);
    t->connected = 0;
    logf_(t, unit, "disconnect", "reason=%s", reason);
}

/* Connects (timeout: the response timeout, as libmodbus uses it for connect too). A refused or
 * timed-out connect is -ECONNREFUSED: the device answered no request. Failures are logged when
 * their reason changes, so a dead endpoint does not flood the log at every probe. */
static int connect_endpoint(struct bus_tcp *t, int unit)
{
    if (modbus_connect(t->ctx) == 0) {
        t->connected = 1;
        t->base.stats.connects++;
        if (t->ever_connected)
            t->base.stats.reconnects++;
        logf_(t, unit, t->ever_connected ? "reconnect" : "connect", "peer=%s:%d", t->host, t->port);
        t->ever_connected = 1;
        t->last_connect_errno = 0;
        return 0;
    }
    int e = errno;
    modbus_close(t->ctx);
    t->base.stats.conn_errors++;
    if (e != t->last_connect_errno) {
        logf_(t, unit, "connect_failed", "peer=%s:%d reason=\"%s\"", t->host, t->port,
              modbus_strerror(e));
        t->last_connect_errno = e;
    }
    return -ECONNREFUSED;
}

/* One exchange on the wire. Returns 0, an exception, or a retryable failure (after which the
 * connection is closed: see the top of this file). */
static int attempt(struct bus_tcp *t, int unit, int write, uint16_t addr, uint16_t n, uint16_t *dst,
                   const uint16_t *src)
{
    int rc;
    if (!t->connected && (rc = connect_endpoint(t, unit)) != 0)
        return rc;
    modbus_set_slave(t->ctx, unit);
    rc = write ? modbus_write_registers(t->ctx, addr, n, src)
               : modbus_read_registers(t->ctx, addr, n, dst);
    if (rc == n)
        return 0;
    int e = rc < 0 ? errno : EMBBADDATA;
    if (e > MODBUS_ENOBASE && e <= EMBXGTAR) {
        int code = e - MODBUS_ENOBASE;
        return bus_exception_rc(code);
    }
    switch (e) {
    case ETIMEDOUT:
        t->base.stats.timeouts++;
        disconnect(t, unit, "timeout");
        return -ETIMEDOUT;
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ENOTCONN:
    case EBADF:
        t->base.stats.conn_errors++;
        disconnect(t, unit, "connection_lost");
        return -ECONNRESET;
    default:
        t->base.stats.proto_errors++;
        logf_(t, unit, "bad_reply", "reason=\"%s\"", modbus_strerror(e));
        disconnect(t, unit, "bad_reply");
        return -EPROTO;
    }
}

/* A call: breaker check, attempts with backoff, breaker report, statistics. */
static int call(struct bus_tcp *t, int unit, int write, uint16_t addr, uint16_t n, uint16_t *dst,
                const uint16_t *src)
{
    struct breaker *br = &t->breakers[unit];
    pthread_mutex_lock(&t->lock);
    t->base.stats.requests++;
    int64_t now = now_ms(t);
    enum breaker_state before = br->state;
    if (breaker_allow(br, now) != 0) {
        t->base.stats.breaker_rejects++;
        pthread_mutex_unlock(&t->lock);
        return BUS_EOPEN;
    }
    if (br->state != before)
        logf_(t, unit, "breaker_half_open", "probe=1");

    int rc = 0;
    for (int k = 0; k <= t->retry.retries; k++) {
        if (k > 0) {
            t->base.stats.retries++;
            int64_t d = backoff_ms(t, k);
            if (d > 0 && t->clock.sleep_ms)
                t->clock.sleep_ms(t->clock.ctx, d);
        }
        rc = attempt(t, unit, write, addr, n, dst, src);
        if (!bus_rc_retryable(rc))
            break;
    }

    if (rc == 0)
        t->base.stats.ok++;
    else if (bus_exception_code(rc))
        bus_count_exception(&t->base, bus_exception_code(rc));

    before = br->state;
    now = now_ms(t);
    enum breaker_state after = breaker_record(br, now, !bus_rc_breaker_failure(rc));
    if (after != before) {
        if (after == BREAKER_OPEN) {
            t->base.stats.breaker_opens++;
            logf_(t, unit, "breaker_open", "reason=\"%s\" open_ms=%lld", bus_strerror(rc),
                  (long long)br->period_ms);
        } else {
            logf_(t, unit, "breaker_closed", NULL);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

static int tcp_read(struct bus *b, int unit_id, uint16_t addr, uint16_t n, uint16_t *dst)
{
    return call((struct bus_tcp *)b, unit_id, 0, addr, n, dst, NULL);
}

static int tcp_write(struct bus *b, int unit_id, uint16_t addr, uint16_t n, const uint16_t *src)
{
    return call((struct bus_tcp *)b, unit_id, 1, addr, n, NULL, src);
}

static void tcp_close(struct bus *b)
{
    struct bus_tcp *t = (struct bus_tcp *)b;
    if (t->connected)
        logf_(t, -1, "disconnect", "reason=closed");
    if (t->ctx) {
        modbus_close(t->ctx);
        modbus_free(t->ctx);
    }
    for (int i = 0; i < 256; i++)
        free(t->device[i]);
    pthread_mutex_destroy(&t->lock);
    free(t->host);
    free(t->name);
    free(t);
}

static const struct bus_ops tcp_ops = {"tcp", tcp_read, tcp_write, tcp_close};

/* ---- construction ------------------------------------------------------------------------ */

void bus_tcp_config_default(struct bus_tcp_config *cfg, const char *host, int port)
{
    static const struct bus_retry retry = BUS_RETRY_DEFAULT;
    static const struct breaker_config breaker = BREAKER_CONFIG_DEFAULT;
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = host;
    cfg->port = port;
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    cfg->retry = retry;
    cfg->breaker = breaker;
}

int bus_tcp_new(const struct bus_tcp_config *cfg, struct bus **out)
{
    if (!cfg || !out || !cfg->host || cfg->port < 1 || cfg->port > 65535 || cfg->timeout_ms < 1 ||
        cfg->retry.retries < 0 || cfg->retry.retries > 10 || cfg->retry.backoff_ms < 0 ||
        cfg->retry.backoff_max_ms < cfg->retry.backoff_ms || cfg->retry.jitter_pct < 0 ||
        cfg->retry.jitter_pct > 100)
        return -EINVAL;
    struct bus_tcp *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->base.ops = &tcp_ops;
    t->port = cfg->port;
    t->timeout_ms = cfg->timeout_ms;
    t->retry = cfg->retry;
    t->jitter_state = cfg->retry.jitter_seed;
    t->clock = cfg->clock;
    if (!t->clock.now_ms) {
        t->clock.now_ms = mono_now_ms;
        t->clock.sleep_ms = mono_sleep_ms;
        t->clock.ctx = NULL;
    }
    t->log = cfg->log ? cfg->log : log_stderr;
    t->log_ctx = cfg->log ? cfg->log_ctx : NULL;
    for (int i = 0; i < 256; i++)
        breaker_init(&t->breakers[i], &cfg->breaker);
    pthread_mutex_init(&t->lock, NULL);

    char service[8];
    snprintf(service, sizeof(service), "%d", cfg->port);
    t->host = strdup(cfg->host);
    if (cfg->name) {
        t->name = strdup(cfg->name);
    } else if (t->host) {
        size_t len = strlen(t->host) + sizeof(service) + 1;
        if ((t->name = malloc(len)))
            snprintf(t->name, len, "%s:%d", t->host, t->port);
    }
    /* modbus_new_tcp_pi resolves names at connect time (modbus_new_tcp takes IPv4 only). */
    t->ctx = (t->host && t->name) ? modbus_new_tcp_pi(t->host, service) : NULL;
    if (!t->ctx)
        goto fail;
    uint32_t sec = (uint32_t)(cfg->timeout_ms / 1000);
    uint32_t usec = (uint32_t)(cfg->timeout_ms % 1000) * 1000;
    /* No byte timeout (0, 0): libmodbus then holds the whole reply to the response timeout,
     * so one call never takes longer than timeout_ms. With a byte timeout a device that
     * trickles its reply a byte at a time, just under it, held the control thread for
     * seconds per call and stalled every interlock of the site (docs/bus.md). */
    if (modbus_set_response_timeout(t->ctx, sec, usec) != 0 ||
        modbus_set_byte_timeout(t->ctx, 0, 0) != 0 ||
        modbus_set_error_recovery(t->ctx, MODBUS_ERROR_RECOVERY_NONE) != 0)
        goto fail;
    *out = &t->base;
    return 0;
fail:
    tcp_close(&t->base);
    return -ENOMEM;
}

int bus_tcp_set_device(struct bus *b, int unit_id, const char *device_id)
{
    struct bus_tcp *t = as_tcp(b);
    if (!t || unit_id < 0 || unit_id > 255 || !device_id)
        return -EINVAL;
    char *copy = strdup(device_id);
    if (!copy)
        return -ENOMEM;
    pthread_mutex_lock(&t->lock);
    free(t->device[unit_id]);
    t->device[unit_id] = copy;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

int bus_tcp_breaker_state(struct bus *b, int unit_id)
{
    struct bus_tcp *t = as_tcp(b);
    if (!t || unit_id < 0 || unit_id > 255)
        return -EINVAL;
    pthread_mutex_lock(&t->lock);
    int s = (int)breaker_state_at(&t->breakers[unit_id], now_ms(t));
    pthread_mutex_unlock(&t->lock);
    return s;
}

int bus_tcp_connected(const struct bus *b)
{
    struct bus_tcp *t = as_tcp(b);
    return t ? t->connected : 0;
}
