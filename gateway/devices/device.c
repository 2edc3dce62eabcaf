/* device: see device.h.
 *
 * A SunSpec driver is a table of (model, point, field, factor) rows. On discovery the device's
 * whole image is read once (sunspec_walk), every row is resolved to an absolute address, and
 * the rows marked `poll` (with their scale-factor points) are merged into the fewest read
 * blocks of at most 125 registers (the other rows, ratings, are decoded from the discovery
 * snapshot). A cycle then reads only those blocks (a battery: two reads,
 * a meter or PV inverter: one) and decodes the rows from the mirror.
 *
 * Commands: a table per device type says which of them the driver takes (and why not); the
 * register commands (start, stop, reset, set_temperature) are single-register writes: the
 * inverters' connect point (802 SetOp, 123 Conn), the maps' Command and TempSetpoint. */
#include "gateway/devices/device.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/devices/devmap.h"
#include "gateway/devices/sunspec.h"

#define MIRROR_MAX 2048 /* registers mirrored per device (a battery image is about 420) */
#define MAX_MODELS 16
#define MAX_BLOCKS 8
#define MAX_ROWS   16

enum field {
    F_POWER,      /* W, site sign */
    F_SOC,        /* 0..1 */
    F_SOC_MAX,    /* 0..1 */
    F_SOC_MIN,    /* 0..1 */
    F_TEMP,       /* °C */
    F_VOLT,       /* V (battery DC) */
    F_A_CHA_MAX,  /* A */
    F_A_DIS_MAX,  /* A */
    F_CAPACITY,   /* Wh */
    F_RATED,      /* W */
    F_PV_LIM_ENA, /* 0/1 */
    F_PV_LIM_PCT, /* 0..1 */
    F_HZ,         /* Hz */
    F_METER_EVT,  /* SunSpec 203 Evt bits */
    F_INVST,      /* SunSpec 701 InvSt -> the operating state */
};

struct row {
    uint16_t model;
    const char *point;
    enum field field;
    double factor; /* engineering value * factor -> field unit */
    int poll;      /* read every cycle (else only at discovery) */
};

/* Battery: 701 W is documented positive for injection, i.e. discharge: the site sign. */
static const struct row battery_rows[] = {
    {701, "InvSt", F_INVST, 1, 1},       {701, "W", F_POWER, 1, 1},
    {701, "TmpCab", F_TEMP, 1, 1},       {713, "SoC", F_SOC, 0.01, 1},
    {713, "WHRtg", F_CAPACITY, 1, 0},    {802, "SoCMax", F_SOC_MAX, 0.01, 1},
    {802, "SoCMin", F_SOC_MIN, 0.01, 1}, {802, "V", F_VOLT, 1, 1},
    {802, "AChaMax", F_A_CHA_MAX, 1, 1}, {802, "ADisChaMax", F_A_DIS_MAX, 1, 1},
};
static const struct row pv_rows[] = {
    {701, "InvSt", F_INVST, 1, 1},
    {701, "W", F_POWER, 1, 1},
    {702, "WMaxRtg", F_RATED, 1, 0},
    {704, "WMaxLimPctEna", F_PV_LIM_ENA, 1, 1},
    {704, "WMaxLimPct", F_PV_LIM_PCT, 0.01, 1},
};
/* Hz feeds frequency response (grid_services); Evt bit 2, M_EVENT_Power_Failure, tells that
 * the grid side has no supply: the site runs as an island (backup_power). */
static const struct row meter_rows[] = {
    {203, "W", F_POWER, 1, 1},
    {203, "Hz", F_HZ, 1, 1},
    {203, "Evt", F_METER_EVT, 1, 1},
};
#define METER_EVT_POWER_FAILURE (1u << 2) /* SunSpec model 203, symbol M_EVENT_Power_Failure */

struct resolved {
    const struct row *row;
    const struct sunspec_model *m;
    const struct sunspec_point *p;
    uint16_t model_start; /* address of the model's ID register */
};

struct block {
    uint16_t addr, n;
};

struct device {
    struct device_cfg cfg;
    struct bus *bus;
    uint64_t transactions;
    int discovered;

    /* SunSpec */
    const struct row *rows;
    size_t n_rows;
    uint16_t base;
    size_t n_models;
    struct sunspec_found models[MAX_MODELS];
    struct resolved res[MAX_ROWS];
    size_t n_res;
    struct block blocks[MAX_BLOCKS];
    size_t n_blocks;

    /* fixed maps (EVSE, boiler): devmap.h */
    const struct devmap *map;

    uint16_t mirror[MIRROR_MAX];
    uint8_t valid[MIRROR_MAX];
    uint16_t mirror_start;
    size_t mirror_count;
};

static int bus_read_counted(struct device *d, uint16_t addr, uint16_t n, uint16_t *dst)
{
    d->transactions++;
    return bus_read(d->bus, d->cfg.unit_id, addr, n, dst);
}

static int walk_read(void *ctx, uint16_t addr, uint16_t n, uint16_t *dst)
{
    return bus_read_counted(ctx, addr, n, dst);
}

static const struct sunspec_found *find_model(const struct device *d, uint16_t id)
{
    for (size_t i = 0; i < d->n_models; i++)
        if (d->models[i].id == id)
            return &d->models[i];
    return NULL;
}

/* Adds [addr, addr + n) to the block list, merging with a block when the union still fits in
 * one read. Blocks stay sorted by address. */
static void add_span(struct device *d, uint16_t addr, uint16_t n)
{
    for (size_t i = 0; i < d->n_blocks; i++) {
        struct block *b = &d->blocks[i];
        uint32_t lo = addr < b->addr ? addr : b->addr;
        uint32_t hi = (uint32_t)addr + n > (uint32_t)b->addr + b->n ? (uint32_t)addr + n
                                                                    : (uint32_t)b->addr + b->n;
        if (hi - lo <= BUS_MAX_READ) {
            b->addr = (uint16_t)lo;
            b->n = (uint16_t)(hi - lo);
            return;
        }
    }
    if (d->n_blocks < MAX_BLOCKS) {
        size_t i = d->n_blocks++;
        while (i > 0 && d->blocks[i - 1].addr > addr) {
            d->blocks[i] = d->blocks[i - 1];
            i--;
        }
        d->blocks[i] = (struct block){addr, n};
    }
}

static int sunspec_discover(struct device *d)
{
    size_t n_found = 0;
    uint16_t base = 0;
    memset(d->valid, 0, sizeof d->valid);
    /* A device that does not answer at all is not probed at the two other base addresses:
     * report why at once (timeout, connection, open breaker) instead of "no marker". */
    uint16_t probe[2];
    int probe_rc = bus_read_counted(d, SUNSPEC_BASE_ADDR, 2, probe);
    if (probe_rc && (bus_rc_retryable(probe_rc) || probe_rc == BUS_EOPEN))
        return probe_rc;
    int rc =
        sunspec_walk(walk_read, d, d->models, MAX_MODELS, &n_found, &base, d->mirror, MIRROR_MAX);
    if (rc)
        return rc == -ENOENT && probe_rc ? probe_rc : rc; /* the device's own answer */
    d->n_models = n_found;
    d->base = base;
    d->mirror_start = base;
    d->mirror_count = 0;
    for (size_t i = 0; i < n_found; i++) {
        size_t end = (size_t)(d->models[i].start - base) + 2 + d->models[i].length;
        if (end > d->mirror_count)
            d->mirror_count = end;
    }
    if (d->mirror_count > MIRROR_MAX)
        d->mirror_count = MIRROR_MAX;
    d->n_res = 0;
    d->n_blocks = 0;
    for (size_t i = 0; i < d->n_rows && d->n_res < MAX_ROWS; i++) {
        const struct row *r = &d->rows[i];
        const struct sunspec_found *f = find_model(d, r->model);
        const struct sunspec_model *m = sunspec_model_find(r->model);
        const struct sunspec_point *p = m ? sunspec_point_find(m, r->point) : NULL;
        if (!f || !m || !p)
            continue; /* the device lacks this point: its field stays NaN */
        d->res[d->n_res++] = (struct resolved){r, m, p, f->start};
        if (!r->poll)
            continue;
        add_span(d, (uint16_t)(f->start + p->offset), p->size);
        if (p->sf_index >= 0) {
            const struct sunspec_point *sf = &m->points[p->sf_index];
            add_span(d, (uint16_t)(f->start + sf->offset), sf->size);
        }
    }
    d->discovered = 1;
    return 0;
}

static double row_value(const struct device *d, const struct resolved *r)
{
    const uint16_t *model = d->mirror + (r->model_start - d->base);
    double v;
    if (sunspec_read_value(r->m, r->p, model, &v) != 0)
        return NAN;
    return v * r->row->factor;
}

/* 701 InvSt as an operating state: OFF is IDLE; SLEEPING, STANDBY, RUNNING and THROTTLED are
 * what a RUNNING inverter does; SHUTTING_DOWN is STOPPING (docs/physics.md, "Operating states"). */
static int opstate_of_invst(double v)
{
    static const int map[] = {PROCIMG_OP_IDLE,    PROCIMG_OP_RUNNING, PROCIMG_OP_STARTING,
                              PROCIMG_OP_RUNNING, PROCIMG_OP_RUNNING, PROCIMG_OP_STOPPING,
                              PROCIMG_OP_FAULT,   PROCIMG_OP_RUNNING};
    return v >= 0 && v < (double)(sizeof map / sizeof map[0]) ? map[(int)v] : -1;
}

static void store(struct procimg_dev *o, enum field f, double v, const struct device *d)
{
    switch (f) {
    case F_POWER:
        o->power_w = d->cfg.invert_sign ? -v : v;
        break;
    case F_SOC:
        o->soc = v;
        break;
    case F_SOC_MAX:
        o->soc_max = v;
        break;
    case F_SOC_MIN:
        o->soc_min = v;
        break;
    case F_TEMP:
        o->temperature_c = v;
        break;
    case F_VOLT:
        o->voltage_v = v;
        break;
    case F_A_CHA_MAX:
        o->max_charge_w = v; /* in A until converted below */
        break;
    case F_A_DIS_MAX:
        o->max_discharge_w = v;
        break;
    case F_CAPACITY:
        o->capacity_wh = v;
        break;
    case F_RATED:
        o->rated_w = v;
        break;
    case F_PV_LIM_ENA:
        o->pv_limit_w = v; /* 0/1 until combined below */
        break;
    case F_PV_LIM_PCT:
        o->pv_available_w = v; /* fraction until combined below */
        break;
    case F_HZ:
        o->freq_hz = v;
        break;
    case F_METER_EVT:
        o->islanded = v >= 0 && v <= 4294967295.0 && ((uint32_t)v & METER_EVT_POWER_FAILURE);
        break;
    case F_INVST:
        o->op_state = opstate_of_invst(v);
        break;
    }
}

static int sunspec_poll(struct device *d, struct procimg_dev *o)
{
    int rc;
    if (!d->discovered && (rc = sunspec_discover(d)) != 0)
        return rc;
    for (size_t i = 0; i < d->n_blocks; i++) {
        const struct block *b = &d->blocks[i];
        rc = bus_read_counted(d, b->addr, b->n, d->mirror + (b->addr - d->base));
        if (rc)
            return rc;
        memset(d->valid + (b->addr - d->base), 1, b->n); /* fresh this cycle */
    }
    double lim_ena = NAN, lim_pct = NAN;
    for (size_t i = 0; i < d->n_res; i++) {
        const struct resolved *r = &d->res[i];
        double v = row_value(d, r);
        if (r->row->field == F_PV_LIM_ENA)
            lim_ena = v;
        else if (r->row->field == F_PV_LIM_PCT)
            lim_pct = v;
        else
            store(o, r->row->field, v, d);
    }
    if (o->type == PROCIMG_BATTERY) {
        /* 802 reports current limits; the control core thinks in watts at the DC voltage */
        double v = o->voltage_v;
        o->max_charge_w = v > 0 ? o->max_charge_w * v : NAN;
        o->max_discharge_w = v > 0 ? o->max_discharge_w * v : NAN;
        if (!(o->capacity_wh > 0) && d->cfg.capacity_wh > 0)
            o->capacity_wh = d->cfg.capacity_wh;
    } else if (o->type == PROCIMG_PV) {
        if (!(o->rated_w > 0) && d->cfg.peak_w > 0)
            o->rated_w = d->cfg.peak_w;
        o->pv_limit_w = lim_ena == 1 && lim_pct >= 0 ? lim_pct * o->rated_w : o->rated_w;
        o->pv_available_w = NAN; /* not in the SunSpec DER models */
    }
    return 0;
}

/* Battery setpoint: 704 WSetEna, WSetMod, WSet (int32) in one FC16 write of 4 registers. */
static int sunspec_write_battery(struct device *d, double w)
{
    const struct sunspec_found *f = find_model(d, 704);
    const struct sunspec_model *m = sunspec_model_find(704);
    if (!f || !m)
        return -ENOTSUP;
    const struct sunspec_point *ena = sunspec_point_find(m, "WSetEna");
    const struct sunspec_point *mod = sunspec_point_find(m, "WSetMod");
    const struct sunspec_point *set = sunspec_point_find(m, "WSet");
    if (!ena || !mod || !set || mod->offset != ena->offset + 1 || set->offset != ena->offset + 2)
        return -ENOTSUP;
    uint16_t *model = d->mirror + (f->start - d->base);
    uint16_t buf[4] = {0};
    uint16_t tmp[64];
    memcpy(tmp, model, sizeof tmp);
    int sf = 0;
    if (sunspec_point_sf(m, set, model, &sf) != 0)
        sf = 0;
    int64_t raw = 0;
    int64_t enable = isnan(w) ? 0 : 1;
    if (!isnan(w)) {
        int rc = sunspec_unscale(w, sf, set->type, &raw);
        if (rc)
            return rc;
    }
    uint32_t watts_mode = 1;
    sunspec_symbol_value(mod, "WATTS", &watts_mode);
    sunspec_write_raw(ena, tmp, enable);
    sunspec_write_raw(mod, tmp, watts_mode);
    sunspec_write_raw(set, tmp, raw);
    memcpy(buf, tmp + ena->offset, sizeof buf);
    d->transactions++;
    int rc = bus_write(d->bus, d->cfg.unit_id, (uint16_t)(f->start + ena->offset), 4, buf);
    if (rc == 0)
        memcpy(model + ena->offset, buf, sizeof buf);
    return rc;
}

/* PV curtailment: 704 WMaxLimPctEna and WMaxLimPct (percent of WMax) in one write. */
static int sunspec_write_pv(struct device *d, double limit_w)
{
    const struct sunspec_found *f = find_model(d, 704);
    const struct sunspec_model *m = sunspec_model_find(704);
    if (!f || !m)
        return -ENOTSUP;
    const struct sunspec_point *ena = sunspec_point_find(m, "WMaxLimPctEna");
    const struct sunspec_point *pct = sunspec_point_find(m, "WMaxLimPct");
    if (!ena || !pct || pct->offset != ena->offset + 1)
        return -ENOTSUP;
    uint16_t *model = d->mirror + (f->start - d->base);
    double rated = d->cfg.peak_w;
    for (size_t i = 0; i < d->n_res; i++)
        if (d->res[i].row->field == F_RATED) {
            double v = row_value(d, &d->res[i]);
            if (v > 0)
                rated = v;
        }
    int sf = 0;
    if (sunspec_point_sf(m, pct, model, &sf) != 0)
        sf = 0;
    int64_t raw = 0;
    int enable = !isnan(limit_w) && rated > 0;
    if (enable) {
        double p = limit_w / rated * 100.0;
        p = p < 0 ? 0 : p > 100 ? 100 : p;
        int rc = sunspec_unscale(p, sf, pct->type, &raw);
        if (rc)
            return rc;
    } else {
        sunspec_unscale(100.0, sf, pct->type, &raw);
    }
    uint16_t tmp[64];
    memcpy(tmp, model, sizeof tmp);
    sunspec_write_raw(ena, tmp, enable);
    sunspec_write_raw(pct, tmp, raw);
    d->transactions++;
    int rc =
        bus_write(d->bus, d->cfg.unit_id, (uint16_t)(f->start + ena->offset), 2, tmp + ena->offset);
    if (rc == 0)
        memcpy(model + ena->offset, tmp + ena->offset, 2 * sizeof(uint16_t));
    return rc;
}

/* The process image's types are the device types of common/devtype.h in the same order, but
 * for a meter in the load role. */
static enum procimg_type image_type(const struct device_cfg *c)
{
    if (c->type == DEV_METER && c->role != ROLE_GRID)
        return PROCIMG_METER_LOAD;
    return (enum procimg_type)c->type;
}

struct device *device_new(const struct device_cfg *cfg, struct bus *bus, char *err, size_t errlen)
{
    struct device *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "%s: out of memory", cfg->asset_id);
        return NULL;
    }
    d->cfg = *cfg;
    d->bus = bus;
    if (!strcmp(cfg->driver, "sunspec")) {
        switch (cfg->type) {
        case DEV_BATTERY:
            d->rows = battery_rows;
            d->n_rows = sizeof battery_rows / sizeof battery_rows[0];
            break;
        case DEV_PV:
            d->rows = pv_rows;
            d->n_rows = sizeof pv_rows / sizeof pv_rows[0];
            break;
        case DEV_METER:
            d->rows = meter_rows;
            d->n_rows = sizeof meter_rows / sizeof meter_rows[0];
            break;
        default:
            break;
        }
    } else {
        d->map = devmap_find(cfg->driver);
    }
    if (!d->rows && !d->map) {
        snprintf(err, errlen, "%s: no driver \"%s\" for a %s", cfg->asset_id, cfg->driver,
                 dev_type_name(cfg->type));
        free(d);
        return NULL;
    }
    return d;
}

void device_free(struct device *d)
{
    free(d);
}

static void reset_fields(struct procimg_dev *o)
{
    o->power_w = o->rated_w = NAN;
    o->soc = o->soc_min = o->soc_max = o->capacity_wh = NAN;
    o->temperature_c = o->voltage_v = o->max_charge_w = o->max_discharge_w = NAN;
    o->pv_available_w = o->pv_limit_w = NAN;
    o->evse_current_a = o->boiler_temperature_c = NAN;
    o->freq_hz = o->evse_min_a = o->evse_max_a = o->evse_session_wh = o->evse_need_wh = NAN;
    o->islanded = 0;
    o->evse_phases = 0;
    o->boiler_heat_demand = -1;
    o->op_state = -1;
}

/* Fixed-map devices: one read of the map's poll block, fields decoded from the table. */
static int map_poll(struct device *d, struct procimg_dev *o)
{
    const struct devmap *m = d->map;
    if (!d->discovered) {
        memset(d->valid, 0, sizeof d->valid);
        d->mirror_start = 0;
        d->mirror_count = m->count < MIRROR_MAX ? m->count : MIRROR_MAX;
        d->discovered = 1;
    }
    int rc = bus_read_counted(d, 0, (uint16_t)d->mirror_count, d->mirror);
    if (rc)
        return rc;
    memset(d->valid, 1, d->mirror_count);
    return devmap_decode(m, d->mirror, d->mirror_count, &d->cfg, o);
}

int device_poll(struct device *d, int64_t now_ms, struct procimg_dev *out)
{
    if (!out->asset_id[0] || strcmp(out->asset_id, d->cfg.asset_id)) {
        memset(out, 0, sizeof *out);
        snprintf(out->asset_id, sizeof out->asset_id, "%.*s", (int)sizeof out->asset_id - 1,
                 d->cfg.asset_id);
        reset_fields(out);
        out->last_ok_ms = -1;
    }
    out->type = image_type(&d->cfg);
    struct procimg_dev fresh = *out;
    reset_fields(&fresh);
    int rc = d->map ? map_poll(d, &fresh) : sunspec_poll(d, &fresh);
    if (rc) {
        out->online = 0;
        d->discovered = 0; /* a reboot may have changed the layout: walk the chain again */
        return rc;
    }
    *out = fresh;
    out->online = 1;
    out->last_ok_ms = now_ms;
    return 0;
}

int device_write(struct device *d, double setpoint_w, int64_t now_ms)
{
    (void)now_ms;
    if (!d->discovered)
        return -ENOTCONN;
    int rc;
    if (d->map) {
        uint16_t addr, n, regs[8];
        rc = devmap_encode_setpoint(d->map, &d->cfg, setpoint_w, &addr, &n, regs);
        if (rc)
            return rc;
        d->transactions++;
        rc = bus_write(d->bus, d->cfg.unit_id, addr, n, regs);
        if (rc == 0 && (size_t)addr + n <= d->mirror_count)
            memcpy(d->mirror + addr, regs, n * sizeof regs[0]);
    } else if (d->cfg.type == DEV_BATTERY) {
        rc = sunspec_write_battery(d, setpoint_w);
    } else if (d->cfg.type == DEV_PV) {
        rc = sunspec_write_pv(d, setpoint_w);
    } else {
        rc = -ENOTSUP; /* meters take no setpoint */
    }
    if (rc)
        d->discovered = rc == -ERANGE || rc == -ENOTSUP ? d->discovered : 0;
    return rc;
}

/* ---- commands ------------------------------------------------------------------------------ */

static const char *const cmd_names[DEVICE_CMD_N] = {
    "start", "stop", "reset", "set_output", "charge", "discharge", "set_temperature",
};

const char *device_cmd_name(enum device_cmd c)
{
    return (unsigned)c < DEVICE_CMD_N ? cmd_names[c] : "?";
}

int device_cmd_parse(const char *name)
{
    for (int c = 0; c < DEVICE_CMD_N; c++)
        if (name && !strcmp(name, cmd_names[c]))
            return c;
    return -EINVAL;
}

/* The command table: per device type, NULL where the driver takes the command, else why not. */
static const char *const cmd_refusals[DEVTYPE_COUNT][DEVICE_CMD_N] = {
    [DEV_BATTERY] =
        {
            [DEVICE_CMD_RESET] = "battery has no fault reset (SunSpec 802 has no reset point): "
                                 "its FAULT clears when the cause has gone",
            [DEVICE_CMD_SET_TEMPERATURE] = "battery has no temperature setpoint",
        },
    [DEV_PV] =
        {
            [DEVICE_CMD_RESET] = "PV inverter has no fault reset (SunSpec 701-704 and 123 have "
                                 "no reset point): a trip clears when the cause has gone",
            [DEVICE_CMD_CHARGE] = "PV inverter cannot charge",
            [DEVICE_CMD_DISCHARGE] = "PV inverter cannot discharge: use set_output",
            [DEVICE_CMD_SET_TEMPERATURE] = "PV inverter has no temperature setpoint",
        },
    [DEV_METER] =
        {
            [DEVICE_CMD_START] = "meter has no commands",
            [DEVICE_CMD_STOP] = "meter has no commands",
            [DEVICE_CMD_RESET] = "meter has no commands",
            [DEVICE_CMD_SET_OUTPUT] = "meter has no commands",
            [DEVICE_CMD_CHARGE] = "meter has no commands",
            [DEVICE_CMD_DISCHARGE] = "meter has no commands",
            [DEVICE_CMD_SET_TEMPERATURE] = "meter has no commands",
        },
    [DEV_EVSE] =
        {
            [DEVICE_CMD_CHARGE] = "EV charger: use set_output (W drawn)",
            [DEVICE_CMD_DISCHARGE] = "EV charger cannot discharge",
            [DEVICE_CMD_SET_TEMPERATURE] = "EV charger has no temperature setpoint",
        },
    [DEV_BOILER] =
        {
            [DEVICE_CMD_CHARGE] = "boiler: use set_output (W drawn)",
            [DEVICE_CMD_DISCHARGE] = "boiler cannot discharge",
        },
};

const char *device_cmd_refusal(const struct device_cfg *cfg, enum device_cmd c)
{
    if ((unsigned)cfg->type >= DEVTYPE_COUNT || (unsigned)c >= DEVICE_CMD_N)
        return "unknown command or device type";
    return cmd_refusals[cfg->type][c];
}

/* One register of the mirror written to the device, and kept in the mirror when it took it. */
static int write_one(struct device *d, uint16_t addr, uint16_t value)
{
    d->transactions++;
    int rc = bus_write(d->bus, d->cfg.unit_id, addr, 1, &value);
    if (rc == 0 && addr >= d->mirror_start && (size_t)(addr - d->mirror_start) < d->mirror_count)
        d->mirror[addr - d->mirror_start] = value;
    return rc;
}

/* An enumerated SunSpec point set to one of its symbols. */
static int sunspec_command(struct device *d, uint16_t model, const char *point, const char *sym,
                           char *what, size_t len)
{
    const struct sunspec_found *f = find_model(d, model);
    const struct sunspec_model *m = sunspec_model_find(model);
    const struct sunspec_point *p = m ? sunspec_point_find(m, point) : NULL;
    uint32_t v;
    if (!f || !p || sunspec_symbol_value(p, sym, &v)) {
        snprintf(what, len, "the device has no SunSpec %u.%s", (unsigned)model, point);
        return -ENOTSUP;
    }
    snprintf(what, len, "%u.%s=%s", (unsigned)model, point, sym);
    return write_one(d, (uint16_t)(f->start + p->offset), (uint16_t)v);
}

/* A point of the device's map set to an engineering value. */
static int map_command(struct device *d, const char *point, double v, char *what, size_t len)
{
    const struct sunspec_point *p = devmap_point(d->map, point);
    uint16_t regs[64] = {0}; /* the map from register 0: devmap_set writes at p->offset */
    if (!p || p->size != 1 || p->offset >= 64) {
        snprintf(what, len, "map %s has no %s", d->map->driver, point);
        return -ENOTSUP;
    }
    if (devmap_set(p, regs, v)) {
        snprintf(what, len, "%s %g does not fit the register", point, v);
        return -ERANGE;
    }
    snprintf(what, len, "%s=%g", point, v);
    return write_one(d, p->offset, regs[p->offset]);
}

int device_command(struct device *d, enum device_cmd c, double value, char *what, size_t len)
{
    const char *no = device_cmd_refusal(&d->cfg, c);
    if (no || c == DEVICE_CMD_SET_OUTPUT || c == DEVICE_CMD_CHARGE || c == DEVICE_CMD_DISCHARGE) {
        snprintf(what, len, "%s", no ? no : "a setpoint, not a register command");
        return -ENOTSUP;
    }
    if (!d->discovered) {
        snprintf(what, len, "asset offline");
        return -ENOTCONN;
    }
    if (d->map) {
        if (c == DEVICE_CMD_SET_TEMPERATURE)
            return map_command(d, "TempSetpoint", value, what, len);
        /* the maps' Command: 1 start, 2 stop, 3 reset */
        return map_command(d, "Command",
                           c == DEVICE_CMD_START  ? 1
                           : c == DEVICE_CMD_STOP ? 2
                                                  : 3,
                           what, len);
    }
    int start = c == DEVICE_CMD_START;
    if (d->cfg.type == DEV_BATTERY)
        return sunspec_command(d, 802, "SetOp", start ? "CONNECT" : "DISCONNECT", what, len);
    return sunspec_command(d, 123, "Conn", start ? "CONNECT" : "DISCONNECT", what, len);
}

uint64_t device_transactions(const struct device *d)
{
    return d->transactions;
}

const uint16_t *device_mirror(const struct device *d, uint16_t *start, size_t *count,
                              const uint8_t **valid)
{
    if (!d->discovered)
        return NULL;
    *start = d->mirror_start;
    *count = d->mirror_count;
    if (valid)
        *valid = d->valid;
    return d->mirror;
}

size_t device_polled_blocks(const struct device *d, uint16_t *addr, uint16_t *n, size_t max)
{
    if (!d->discovered)
        return 0;
    if (d->map) {
        if (max > 0) {
            addr[0] = 0;
            n[0] = (uint16_t)d->mirror_count;
        }
        return 1;
    }
    for (size_t i = 0; i < d->n_blocks && i < max; i++) {
        addr[i] = d->blocks[i].addr;
        n[i] = d->blocks[i].n;
    }
    return d->n_blocks;
}

const struct device_cfg *device_cfg(const struct device *d)
{
    return &d->cfg;
}
