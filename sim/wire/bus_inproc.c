/* bus_inproc: the register bus served from the simulator's images in the calling thread.
 *
 * Both transports must give identical results (docs/determinism.md): a lockstep run with this bus
 * and the same run over loopback TCP against mbserver must produce the same digest. The call itself
 * (breakers, retries, statistics, log lines) is the bus core's, shared with bus_tcp; this file
 * is one exchange, and it follows mbserver's order of decisions exactly: unknown unit ->
 * exception 0x0B; then the unit's wire fault (no reply, an exception, a slow reply); then
 * regimage_check_read or regimage_check_write, whose exception codes the server answers too;
 * then the copy, and img->writes counts the accepted write as the server does.
 *
 * What differs, on purpose: no time passes. A timeout returns at once instead of after the
 * response timeout (its retries too: the core never sleeps here), and a slow reply is either a
 * timeout or an immediate answer by comparing its delay with the configured timeout.
 * docs/bus.md lists the boundary cases. */
#include "sim/wire/bus_inproc.h"

#include <stdlib.h>
#include <string.h>

#include <modbus.h>

#include "gateway/bus/buscore.h"

#define DEFAULT_TIMEOUT_MS 500

struct unit {
    struct regimage *img;       /* not owned */
    const struct wirefault *wf; /* not owned, may be NULL */
};

struct bus_inproc {
    struct bus base; /* first: a struct bus * is a struct bus_inproc * */
    int timeout_ms;
    int64_t now_ms; /* when no clock is injected */
    struct unit units[256];
};

static const struct bus_transport inproc_transport;

static struct bus_inproc *as_inproc(struct bus *b)
{
    return (b && b->tr == &inproc_transport) ? (struct bus_inproc *)b : NULL;
}

static int64_t set_now_ms(void *ctx)
{
    return ((const struct bus_inproc *)ctx)->now_ms;
}

/* What the wire shows before the request is looked at (mbserver's handle_frame). Returns 1 to
 * serve the request, or 0 with *rc set. */
static int wire(const struct bus_inproc *p, const struct unit *u, int *rc)
{
    if (!u->img) {
        *rc = bus_exception_rc(MODBUS_EXCEPTION_GATEWAY_TARGET);
        return 0;
    }
    if (!u->wf)
        return 1;
    switch (u->wf->mode) {
    case WIRE_TIMEOUT:
    case WIRE_OFFLINE:
        *rc = -ETIMEDOUT;
        return 0;
    case WIRE_EXCEPTION: {
        /* mbserver answers codes libmodbus cannot send as 4, server device failure. */
        int code = u->wf->code;
        if (code < 1 || code >= MODBUS_EXCEPTION_MAX)
            code = MODBUS_EXCEPTION_SLAVE_OR_SERVER_FAILURE;
        *rc = bus_exception_rc(code);
        return 0;
    }
    case WIRE_SLOW:
        if (u->wf->delay_ms >= p->timeout_ms) {
            *rc = -ETIMEDOUT;
            return 0;
        }
        return 1;
    case WIRE_OK:
        break;
    }
    return 1;
}

/* One exchange (struct bus_transport.exchange). */
static int inproc_exchange(struct bus *b, int unit_id, int write, uint16_t addr, uint16_t n,
                           uint16_t *dst, const uint16_t *src)
{
    const struct bus_inproc *p = (const struct bus_inproc *)b;
    const struct unit *u = &p->units[unit_id];
    int rc = 0, code;
    if (!wire(p, u, &rc))
        return rc;
    struct regimage *img = u->img;
    uint16_t *regs = regimage_regs(img) + (addr - img->start);
    if (write) {
        if ((code = regimage_check_write(img, addr, n, src)))
            return bus_exception_rc(code);
        memcpy(regs, src, n * sizeof(*src));
        img->writes++;
    } else {
        if ((code = regimage_check_read(img, addr, n)))
            return bus_exception_rc(code);
        memcpy(dst, regs, n * sizeof(*dst));
    }
    return 0;
}

/* The bus owns nothing but its struct (the images and faults are the assets'), and it runs in
 * the thread that steps the images. */
static const struct bus_transport inproc_transport = {"inproc", inproc_exchange, NULL, 1};

void bus_inproc_config_default(struct bus_inproc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    bus_config_default(&cfg->bus);
}

int bus_inproc_new(const struct bus_inproc_config *cfg, struct bus **out)
{
    struct bus_inproc_config def;
    if (!cfg) {
        bus_inproc_config_default(&def);
        cfg = &def;
    }
    if (!out || cfg->timeout_ms < 1)
        return -EINVAL;
    struct bus_inproc *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->timeout_ms = cfg->timeout_ms;
    struct bus_config bc = cfg->bus;
    if (!bc.name)
        bc.name = "inproc";
    if (!bc.clock.now_ms)
        bc.clock = (struct bus_clock){set_now_ms, NULL, p};
    bc.clock.sleep_ms = NULL; /* no time passes here, not even a backoff */
    int rc = bus_core_init(&p->base, &inproc_transport, &bc);
    if (rc) {
        free(p);
        return rc;
    }
    *out = &p->base;
    return 0;
}

int bus_inproc_add_unit(struct bus *b, int unit_id, struct regimage *img,
                        const struct wirefault *wf)
{
    struct bus_inproc *p = as_inproc(b);
    if (!p || unit_id < 0 || unit_id > 255 || !img)
        return -EINVAL;
    if (p->units[unit_id].img)
        return -EEXIST;
    p->units[unit_id].img = img;
    p->units[unit_id].wf = wf;
    return 0;
}

void bus_inproc_set_now(struct bus *b, int64_t now)
{
    struct bus_inproc *p = as_inproc(b);
    if (p)
        p->now_ms = now;
}
