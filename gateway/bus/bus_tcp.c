/* bus_tcp: the register bus over Modbus TCP, on libmodbus's client.
 *
 * One libmodbus context per endpoint, connected lazily and kept open while requests succeed;
 * the unit id is set per request (modbus_set_slave). This file connects, exchanges one request
 * and turns libmodbus's errno into a bus code; retries, breakers, statistics and the format of
 * the log lines are the bus core's (buscore.c), whose lock makes the bus one request at a time,
 * so two threads can never interleave frames on the connection.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modbus.h>

#include "gateway/bus/buscore.h"

#define DEFAULT_TIMEOUT_MS 500

struct bus_tcp {
    struct bus base; /* first: a struct bus * is a struct bus_tcp * */
    modbus_t *ctx;
    int connected;
    int ever_connected;
    int last_connect_errno; /* of the last logged connect failure, 0 after a connect */
    char *host;
    int port;
};

static const struct bus_transport tcp_transport;

static struct bus_tcp *as_tcp(const struct bus *b)
{
    return (b && b->tr == &tcp_transport) ? (struct bus_tcp *)b : NULL;
}

/* ---- connection -------------------------------------------------------------------------- */

static void disconnect(struct bus_tcp *t, int unit, const char *reason)
{
    if (!t->connected)
        return;
    modbus_close(t->ctx);
    t->connected = 0;
    bus_core_logf(&t->base, unit, "disconnect", "reason=%s", reason);
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
        bus_core_logf(&t->base, unit, t->ever_connected ? "reconnect" : "connect", "peer=%s:%d",
                      t->host, t->port);
        t->ever_connected = 1;
        t->last_connect_errno = 0;
        return 0;
    }
    int e = errno;
    modbus_close(t->ctx);
    if (e != t->last_connect_errno) {
        bus_core_logf(&t->base, unit, "connect_failed", "peer=%s:%d reason=\"%s\"", t->host,
                      t->port, modbus_strerror(e));
        t->last_connect_errno = e;
    }
    return -ECONNREFUSED;
}

/* One exchange on the wire (struct bus_transport.exchange). Returns 0, an exception, or a
 * retryable failure, after which the connection is closed (see the top of this file). */
static int tcp_exchange(struct bus *b, int unit, int write, uint16_t addr, uint16_t n,
                        uint16_t *dst, const uint16_t *src)
{
    struct bus_tcp *t = (struct bus_tcp *)b;
    int rc;
    if (!t->connected && (rc = connect_endpoint(t, unit)) != 0)
        return rc;
    modbus_set_slave(t->ctx, unit);
    rc = write ? modbus_write_registers(t->ctx, addr, n, src)
               : modbus_read_registers(t->ctx, addr, n, dst);
    if (rc == n)
        return 0;
    int e = rc < 0 ? errno : EMBBADDATA;
    if (e > MODBUS_ENOBASE && e <= EMBXGTAR)
        return bus_exception_rc(e - MODBUS_ENOBASE);
    switch (e) {
    case ETIMEDOUT:
        disconnect(t, unit, "timeout");
        return -ETIMEDOUT;
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ENOTCONN:
    case EBADF:
        disconnect(t, unit, "connection_lost");
        return -ECONNRESET;
    default:
        bus_core_logf(b, unit, "bad_reply", "reason=\"%s\"", modbus_strerror(e));
        disconnect(t, unit, "bad_reply");
        return -EPROTO;
    }
}

static void tcp_close(struct bus *b)
{
    struct bus_tcp *t = (struct bus_tcp *)b;
    if (t->connected)
        bus_core_logf(b, -1, "disconnect", "reason=closed");
    if (t->ctx) {
        modbus_close(t->ctx);
        modbus_free(t->ctx);
    }
    free(t->host);
}

static const struct bus_transport tcp_transport = {"tcp", tcp_exchange, tcp_close, 0};

/* ---- construction ------------------------------------------------------------------------ */

void bus_tcp_config_default(struct bus_tcp_config *cfg, const char *host, int port)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = host;
    cfg->port = port;
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    bus_config_default(&cfg->bus);
}

int bus_tcp_new(const struct bus_tcp_config *cfg, struct bus **out)
{
    if (!cfg || !out || !cfg->host || cfg->port < 1 || cfg->port > 65535 || cfg->timeout_ms < 1)
        return -EINVAL;
    struct bus_tcp *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    /* the defaults of a bus to real devices: host:port in logs, stderr, real time */
    char service[8], name[300];
    snprintf(service, sizeof(service), "%d", cfg->port);
    snprintf(name, sizeof(name), "%s:%d", cfg->host, cfg->port);
    struct bus_config core = cfg->bus;
    if (!core.name)
        core.name = name;
    if (!core.log)
        core.log = bus_log_stderr;
    if (!core.clock.now_ms)
        core.clock = bus_clock_monotonic;
    int rc = bus_core_init(&t->base, &tcp_transport, &core);
    if (rc) {
        free(t);
        return rc;
    }
    t->port = cfg->port;
    t->host = strdup(cfg->host);
    /* modbus_new_tcp_pi resolves names at connect time (modbus_new_tcp takes IPv4 only). */
    t->ctx = t->host ? modbus_new_tcp_pi(t->host, service) : NULL;
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
    bus_close(&t->base);
    return -ENOMEM;
}

int bus_tcp_connected(const struct bus *b)
{
    struct bus_tcp *t = as_tcp(b);
    return t ? t->connected : 0;
}
