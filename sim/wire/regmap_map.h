/* regmap_map: what one asset type shows on the wire, as data, and the contract between the
 * register-map core (sim/wire/regmap.c) and the per-family maps (regmap_inverter.c for battery
 * and PV, regmap_meter.c, regmap_evse.c, regmap_boiler.c). reports/regdoc.c prints the same
 * tables as docs/registers.md.
 *
 * Every asset type is one `struct asset_map`: where its image starts, which SunSpec models it
 * presents or which derloop map (gateway/devices/maps/, through gateway/devices/devmap.h), and a
 * table of rows. A row names a point and says what the simulator does with it:
 *   ROW_SF       a scale factor, fixed or chosen once at attach from the ratings;
 *   ROW_STATIC   written once at attach (nameplate, ratings, identity);
 *   ROW_MEASURE  written by every regmap_publish from the model;
 *   ROW_CONTROL  a writable point the simulator implements: default at attach and reset,
 *                validated on every write, read back by regmap_read_controls.
 * A row carries behaviour only: address, type, size, units, scale and access come from the
 * generated SunSpec tables or the generated device maps, so the image cannot drift from the
 * description the gateway decodes with. Every other point the description marks RW is writable
 * and stored as written, without effect; every point nobody fills reads "not implemented".
 *
 * A family file defines `const struct asset_map regmap_<name>_map` for each device type of
 * common/devtype.h (the core finds them through that list); its hooks get the asset and the
 * map state, whose fields below the family may use. */
#ifndef DERLOOP_REGMAP_MAP_H
#define DERLOOP_REGMAP_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/devices/devmap.h"
#include "gateway/devices/sunspec.h"
#include "sim/wire/asset.h"

#define REGMAP_MAX_MODELS 8

enum row_kind { ROW_SF, ROW_STATIC, ROW_MEASURE, ROW_CONTROL };

/* Scale factors chosen at attach: the smallest sf, not below a floor, at which the asset's
 * full-scale value (the family's full_scale hook) fits the point's type (regmap_sf_classes). */
enum sf_class {
    SFC_CONST,
    SFC_POWER16,
    SFC_RATING16,
    SFC_AC_A16,
    SFC_DC_A16,
    SFC_WH16,
    SFC_AH16,
    SFC_N
};

struct sf_class_info {
    enum sunspec_type type;
    int sf_min;
    const char *rule; /* docs/registers.md */
};
extern const struct sf_class_info regmap_sf_classes[SFC_N];

/* Control points that the per-type control code reads by name. */
enum slot {
    SLOT_NONE,
    SLOT_WSET_ENA,
    SLOT_WSET_MOD,
    SLOT_WSET,
    SLOT_WSET_PCT,
    SLOT_WSET_RVRT_TMS,
    SLOT_WMAX,
    SLOT_WCHA_MAX,
    SLOT_WDISCHA_MAX,
    SLOT_WMAXLIM_ENA,
    SLOT_WMAXLIM_PCT,
    SLOT_WMAXLIM_RVRT_TMS,
    SLOT_EV_LIMIT,
    SLOT_EV_ENABLE,
    SLOT_EV_FS_TIMEOUT,
    SLOT_EV_FS_CURRENT,
    SLOT_BO_SETPOINT,
    SLOT_BO_LIMIT,
    SLOT_BO_SG,
    SLOT_BO_CMD,
    SLOT_BAT_SETOP, /* 802 SetOp: CONNECT starts, DISCONNECT stops */
    SLOT_PV_CONN,   /* 123 Conn: CONNECT starts, DISCONNECT stops */
    SLOT_EV_CMD,
    SLOT_N
};

/* Writes to a group restart its reversion timer. */
enum group { GRP_NONE, GRP_WSET, GRP_WMAXLIM, GRP_N };

struct regmap_state;
typedef double (*value_fn)(const struct sim_asset *a, const struct regmap_state *st);
typedef const char *(*sym_fn)(const struct sim_asset *a, const struct regmap_state *st);
typedef const char *(*text_fn)(const struct sim_asset *a, const struct regmap_state *st);
typedef int (*check_fn)(const struct sim_asset *a, const struct regmap_state *st,
                        const uint16_t *scratch, double v);

struct row {
    uint16_t model;    /* SunSpec model id; 0 = a point of the asset type's device map */
    const char *point; /* the point's name in the model or the map */
    enum row_kind kind;
    enum slot slot;
    enum group group;
    /* The value: get(), else the symbol named by sym(), else text(), else the constant c
     * (ROW_SF: the class's chosen sf unless SFC_CONST). NAN = "not implemented". */
    double c;
    enum sf_class sfc;
    value_fn get;
    sym_fn sym;
    text_fn text;
    /* ROW_CONTROL: [min, max] in engineering units when min < max, or check(). Points with
     * symbols (enumerations) also accept only their symbols. */
    double min, max;
    check_fn check;
    const char *doc; /* SunSpec rows: what the simulator shows (maps: the map's own text) */
};

struct asset_map {
    const char *title; /* SunSpec images: their section of docs/registers.md */
    const char *intro;
    const char *md;         /* SunSpec images: the model name in 1.Md ("sim-battery") */
    const uint16_t *models; /* SunSpec models in image order, from 40000 */
    size_t n_models;
    const char *devmap; /* or the driver of a device map at 0 ("derloop-evse") */
    const struct row *rows;
    size_t n_rows;
    /* Refuses an asset the map cannot show (0 or -errno, with err). Optional. */
    int (*check)(const struct sim_asset *a, char *err, size_t errlen);
    /* Full-scale values of the chosen scale-factor classes. Optional (no chosen sf). */
    void (*full_scale)(const struct sim_asset *a, double fs[SFC_N]);
    /* Before the first values are written: the command state as the model starts. Optional. */
    void (*init)(struct sim_asset *a, struct regmap_state *st);
    /* Control points changed (or a timer runs): command the model. Optional. */
    void (*controls)(struct sim_asset *a, struct regmap_state *st, int64_t now_ms);
    /* A device reboot: the model back to its defaults. Optional. */
    void (*reset)(struct sim_asset *a, struct regmap_state *st);
    /* Whether the model still holds what the last control pass gave it, so that a skipped
     * pass leaves it as a full one would. Optional (always). */
    int (*as_left)(const struct sim_asset *a, const struct regmap_state *st);
};

/* The maps in the order of common/devtype.h (docs/registers.md's order). */
size_t regmap_map_count(void);
const struct asset_map *regmap_map_at(size_t i);

struct regmap_resolved;
struct regmap_pub;

struct regmap_state {
    /* What every step reads, first: in the first two cache lines (the state is allocated on
     * a line boundary, regmap_attach). */
    const struct asset_map *map;
    uint16_t *regs; /* the image's registers (libmodbus allocates them once, with the image) */
    struct regmap_pub *pub;
    size_t n_pub;
    uint64_t last_writes;
    int64_t now_ms;
    double rvrt_rem_s[GRP_N];
    uint16_t heartbeat;
    /* Publish writes every measurement in full (at attach, and after a spike wrote into the
     * image). */
    uint8_t pub_full;
    /* The control code has nothing left to do until a control point or its scale factor
     * changes: its last pass left the model in step with the image and started no timer.
     * Cleared at attach and reset. */
    uint8_t settled, settle_never;
    /* Control points may have changed: a client write reached validate, or a spike wrote
     * into the image. Until then their words need no comparing. */
    uint8_t maybe_moved;
    /* The family's command state: what it last sent the model. */
    union {
        double cmd; /* inverters: battery setpoint W, or PV limit % */
        struct {
            int64_t fs_ms_set; /* the failsafe parameters the last control pass set */
            double fs_a_set;
            double limit_a; /* the command as last sent */
            int enable;
            double fs_ms0, fs_a0; /* failsafe parameters at attach, restored by a reset */
        } ev;
        struct {
            double limit_w, setpoint_c;
            int sg;
        } bo;
    } u;
    /* Inverters: the start or stop (enum opstate_cmd) their connect point last sent. */
    enum opstate_cmd op_cmd;

    const struct devmap *devmap; /* the device map, when the map has one */
    struct sunspec_found layout[REGMAP_MAX_MODELS];
    size_t n_models;
    int16_t sf[SFC_N];
    size_t n_res;
    struct regmap_resolved *res;
    int slot[SLOT_N];  /* index into res, -1 when the type has no such point */
    uint16_t *scratch; /* img->count words, for validation */
    int64_t grp_write_ms[GRP_N];
    /* The control rows (indexes into res) and the scale-factor registers they are decoded
     * with; what the last read_controls saw change, per group and at all. */
    uint16_t *ctl;
    size_t n_ctl;
    /* The writable enumerated points of the layout (offset in the image, point), in model
     * and point order: validate checks a write against these only, not every point. */
    struct regmap_symw {
        const struct sunspec_point *p;
        uint32_t off;
    } * symw;
    size_t n_symw;
    uint16_t sf_watch_at[8];
    uint16_t sf_watch_snap[8];
    size_t n_sf_watch;
    unsigned changed_groups;
    int any_changed;
};

/* ---- for the control code of the families ---- */
/* A control point's value in regs: 0, -ENOENT when the type has no such slot, or
 * sunspec_read_value's error. */
int regmap_slot_value(const struct regmap_state *st, enum slot s, const uint16_t *regs, double *v);
/* Its value in the image, or fallback. */
double regmap_slot_or(const struct sim_asset *a, const struct regmap_state *st, enum slot s,
                      double fallback);
/* Writes a control point from the model's side (not a client write). */
void regmap_slot_put(struct sim_asset *a, struct regmap_state *st, enum slot s, double v);
/* What the running read_controls saw change. */
int regmap_group_changed(const struct regmap_state *st, enum group g);
int regmap_any_changed(const struct regmap_state *st);
/* Reversion (704 *RvrtTms): an enabled control lapses tms seconds after the last write to its
 * group; the lapse shows on the wire (the enable point reads DISABLED again). Returns the
 * enable flag after the check. */
int regmap_reversion(struct sim_asset *a, struct regmap_state *st, enum group g, enum slot ena_slot,
                     enum slot tms_slot, int64_t now_ms);

/* ---- rows every map of a kind shares ---- */
/* Model 1 (common), in every SunSpec image. */
const char *regmap_t_mn(const struct sim_asset *a, const struct regmap_state *st);
const char *regmap_t_md(const struct sim_asset *a, const struct regmap_state *st);
const char *regmap_t_vr(const struct sim_asset *a, const struct regmap_state *st);
const char *regmap_t_sn(const struct sim_asset *a, const struct regmap_state *st);
double regmap_v_unit_id(const struct sim_asset *a, const struct regmap_state *st);
/* MapId and MapVersion, the head of every device map. */
double regmap_v_map_id(const struct sim_asset *a, const struct regmap_state *st);
double regmap_v_map_version(const struct sim_asset *a, const struct regmap_state *st);

#define REGMAP_COMMON_ROWS                                                                         \
    {.model = 1, .point = "Mn", .kind = ROW_STATIC, .text = regmap_t_mn, .doc = "\"derloop\""},    \
        {.model = 1,                                                                               \
         .point = "Md",                                                                            \
         .kind = ROW_STATIC,                                                                       \
         .text = regmap_t_md,                                                                      \
         .doc = "\"sim-battery\", \"sim-pv\" or \"sim-meter\""},                                   \
        {.model = 1, .point = "Vr", .kind = ROW_STATIC, .text = regmap_t_vr, .doc = "\"0.1\""},    \
        {.model = 1,                                                                               \
         .point = "SN",                                                                            \
         .kind = ROW_STATIC,                                                                       \
         .text = regmap_t_sn,                                                                      \
         .doc = "the asset id of the scenario"},                                                   \
    {                                                                                              \
        .model = 1, .point = "DA", .kind = ROW_STATIC, .get = regmap_v_unit_id,                    \
        .doc = "the Modbus unit id (writable, stored only)"                                        \
    }

#define REGMAP_DEVMAP_HEAD_ROWS                                                                    \
    {.point = "MapId", .kind = ROW_STATIC, .get = regmap_v_map_id},                                \
    {                                                                                              \
        .point = "MapVersion", .kind = ROW_STATIC, .get = regmap_v_map_version                     \
    }

#define SF_CONST(mdl, pt, v)                                                                       \
    {                                                                                              \
        .model = mdl, .point = pt, .kind = ROW_SF, .c = v, .doc = "fixed"                          \
    }
#define SF_CHOSEN(mdl, pt, cls)                                                                    \
    {                                                                                              \
        .model = mdl, .point = pt, .kind = ROW_SF, .sfc = cls                                      \
    }

#define REGMAP_N(x) (sizeof(x) / sizeof((x)[0]))

#endif
