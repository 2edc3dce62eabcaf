/* bus_inproc: the register bus served from the simulator's images in the calling thread.
 *
 * Both transports must give identical results (docs/determinism.md): a lockstep run with this bus
 * and the same run over loopback TCP against mbserver must produce the same digest. So this file
 * follows mbserver's order of decisions exactly: unknown unit -> exception 0x0B; then the
 * unit's wire fault (no reply, an exception, a slow reply); then regimage_check_read or
 * regimage_check_write, whose exception codes the server answers too; then the copy, and
 * img->writes counts the accepted write as the server does. Failed calls go through the same
 * breaker rule as bus_tcp (gateway/bus/bus.h: bus_rc_breaker_failure), so a dead device turns into
 * BUS_EOPEN after the same number of calls on both transports.
 *
 * What differs, on purpose: no time passes. A timeout returns at once instead of after the
 * response timeout, and a slow reply is either a timeout or an immediate answer by comparing
 * its delay with the configured timeout. docs/bus.md lists the boundary cases. */
#include "sim/wire/bus_inproc.h"

#include <stdlib.h>
#include <string.h>

#include <modbus.h>

#define DEFAULT_TIMEOUT_MS 500

struct unit {
    struct regimage *img;       /* not owned */
    const struct wirefault *wf; /* not owned, may be NULL */
};

struct bus_inproc {
    struct bus base; /* first: a struct bus * is a struct bus_inproc * */
    int timeout_ms;
    int retries;
    struct bus_clock clock;
    int64_t now_ms; /* when no clock is injected */
    struct unit units[256];
    struct breaker breakers[256];
};

static const struct bus_ops inproc_ops;

static struct bus_inproc *as_inproc(struct bus *b)
{
    return (b && b->ops == &inproc_ops) ? (struct bus_inproc *)b : NULL;
}

static int64_t now_ms(struct bus_inproc *p)
{
    return p->clock.now_ms ? p->clock.now_ms(p->clock.ctx) : p->now_ms;
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

static int exchange(struct bus_inproc *p, int unit_id, int write, uint16_t addr, uint16_t n,
                    uint16_t *dst, const uint16_t *src)
{
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

static int call(struct bus_inproc *p, int unit_id, int write, uint16_t addr, uint16_t n,
                uint16_t *dst, const uint16_t *src)
{
    struct bus_stats *st = &p->base.stats;
    struct breaker *br = &p->breakers[unit_id];
    st->requests++;
    int64_t now = now_ms(p);
    if (breaker_allow(br, now) != 0) {
        st->breaker_rejects++;
        return BUS_EOPEN;
    }
    int rc = exchange(p, unit_id, write, addr, n, dst, src);
    if (rc == 0) {
        st->ok++;
    } else if (bus_exception_code(rc)) {
        bus_count_exception(&p->base, bus_exception_code(rc));
    } else if (rc == -ETIMEDOUT) {
        /* The TCP transport would have tried 1 + retries times, each timing out. */
        st->timeouts += 1 + (uint64_t)p->retries;
        st->retries += (uint64_t)p->retries;
    }
    enum breaker_state before = br->state;
    if (breaker_record(br, now, !bus_rc_breaker_failure(rc)) == BREAKER_OPEN &&
        before != BREAKER_OPEN)
        st->breaker_opens++;
    return rc;
}

static int inproc_read(struct bus *b, int unit_id, uint16_t addr, uint16_t n, uint16_t *dst)
{
    return call((struct bus_inproc *)b, unit_id, 0, addr, n, dst, NULL);
}

static int inproc_write(struct bus *b, int unit_id, uint16_t addr, uint16_t n, const uint16_t *src)
{
    return call((struct bus_inproc *)b, unit_id, 1, addr, n, NULL, src);
}

static void inproc_close(struct bus *b)
{
    free(b);
}

static const struct bus_ops inproc_ops = {"inproc", inproc_read, inproc_write, inproc_close};

void bus_inproc_config_default(struct bus_inproc_config *cfg)
{
    static const struct bus_retry retry = BUS_RETRY_DEFAULT;
    static const struct breaker_config breaker = BREAKER_CONFIG_DEFAULT;
    memset(cfg, 0, sizeof(*cfg));
    cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
    cfg->retry = retry;
    cfg->breaker = breaker;
}

int bus_inproc_new(const struct bus_inproc_config *cfg, struct bus **out)
{
    struct bus_inproc_config def;
    if (!cfg) {
        bus_inproc_config_default(&def);
        cfg = &def;
    }
    if (!out || cfg->timeout_ms < 1 || cfg->retry.retries < 0 || cfg->retry.retries > 10)
        return -EINVAL;
    struct bus_inproc *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->base.ops = &inproc_ops;
    p->timeout_ms = cfg->timeout_ms;
    p->retries = cfg->retry.retries;
    p->clock = cfg->clock;
    for (int i = 0; i < 256; i++)
        breaker_init(&p->breakers[i], &cfg->breaker);
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

int bus_inproc_breaker_state(struct bus *b, int unit_id)
{
    struct bus_inproc *p = as_inproc(b);
    if (!p || unit_id < 0 || unit_id > 255)
        return -EINVAL;
    return (int)breaker_state_at(&p->breakers[unit_id], now_ms(p));
}
