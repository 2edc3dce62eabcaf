/* regmap: what each simulated device shows on the wire (docs/registers.md is printed from the
 * tables below by regmap_markdown).
 *
 * Every asset type is one `struct asset_map`: where its image starts, which SunSpec models it
 * presents (or, for EVSE and boiler, no models but a small map of our own), and a table of rows.
 * A row names a point and says what the simulator does with it:
 *   ROW_SF       a scale factor, fixed or chosen once at attach from the ratings;
 *   ROW_STATIC   written once at attach (nameplate, ratings, identity);
 *   ROW_MEASURE  written by every regmap_publish from the model;
 *   ROW_CONTROL  a writable point the simulator implements: default at attach and reset,
 *                validated on every write, read back by regmap_read_controls.
 * SunSpec rows take address, type, size, units and scale-factor link from the generated model
 * tables (gateway/devices/sunspec.h), so the image cannot drift from SunSpec's own definitions;
 * rows of our own maps carry them inline. Every other point the SunSpec JSON marks RW is writable
 * and stored as written, without effect; every point nobody fills reads "not implemented".
 *
 * Writes are checked against a scratch copy of the image with the new words applied, so a
 * write that covers only one word of a 32-bit point is judged with the other word as it
 * stands, and applies at the next regmap_read_controls. */
#include "sim/wire/regmap.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/devices/sunspec.h"

/* Nominal AC values for the inverters, which have no grid model of their own: 230/400 V and
 * 50 Hz (EN 50160 nominal values of the European low-voltage grid). */
#define AC_LN_V   230.0
#define AC_LL_V   400.0
#define AC_HZ     50.0
#define AC_PHASES 3.0
/* A meter has no rating: its power scale covers a 100 A service on each of its phases, the
 * upper end of residential and small commercial main fuses. */
#define METER_FULL_SCALE_A 100.0
/* Our own maps start with an identifier ("EV", "BO" in ASCII) and a layout version. */
#define EVSE_MAP_ID     0x4556
#define BOILER_MAP_ID   0x424F
#define OWN_MAP_VERSION 1
#define MAX_MODELS      8

enum row_kind { ROW_SF, ROW_STATIC, ROW_MEASURE, ROW_CONTROL };

/* Scale factors chosen at attach: the smallest sf, not below a floor, at which the asset's
 * full-scale value fits the point's type. */
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
    SLOT_N
};

/* Writes to a group restart its reversion timer. */
enum group { GRP_NONE, GRP_WSET, GRP_WMAXLIM, GRP_N };

struct regmap_state;
typedef double (*value_fn)(const struct sim_asset *a, const struct regmap_state *st);
typedef const char *(*sym_fn)(const struct sim_asset *a, const struct regmap_state *st);
typedef const char *(*text_fn)(const struct sim_asset *a);
typedef int (*check_fn)(const struct sim_asset *a, const struct regmap_state *st,
                        const uint16_t *scratch, double v);

struct row {
    uint16_t model;    /* SunSpec model id; 0 = the asset type's own map */
    const char *point; /* SunSpec point name, or our own point's name */
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
    /* ROW_CONTROL: [min, max] in engineering units when min < max, or check(). Enumerated
     * points also accept only their symbols. */
    double min, max;
    check_fn check;
    /* Own maps only (SunSpec rows take these from the generated tables). */
    uint16_t addr, size;
    enum sunspec_type type;
    int8_t sf;
    uint8_t writable;
    const char *unit;
    const char *doc;
};

struct asset_map {
    enum asset_type type;
    const char *title;
    const char *intro;
    uint16_t base;          /* 40000 for SunSpec images, 0 for our own maps */
    const uint16_t *models; /* SunSpec models in image order */
    size_t n_models;
    uint16_t own_count; /* registers of our own map */
    const struct row *rows;
    size_t n_rows;
    void (*controls)(struct sim_asset *a, struct regmap_state *st, int64_t now_ms);
    void (*reset)(struct sim_asset *a, struct regmap_state *st);
};

/* How the integer types the per-step code handles are stored (gateway/devices/sunspec.c has the
 * same facts as code; codec_init checks every row against it and leaves a row it disagrees with to
 * sunspec.c). */
enum enc { ENC_NONE, ENC_I16, ENC_U16, ENC_A16, ENC_I32, ENC_U32, ENC_A32, ENC_U64, ENC_A64 };

static const struct enc_class {
    uint8_t words;
    uint8_t is_acc; /* accumulators roll over instead of saturating */
    int64_t lo, hi; /* the range, "not implemented" excluded */
    uint64_t na;    /* the "not implemented" pattern */
} enc_classes[] = {
    [ENC_NONE] = {0, 0, 0, 0, 0},
    [ENC_I16] = {1, 0, -32767, 32767, 0x8000},
    [ENC_U16] = {1, 0, 0, 65534, 0xFFFF},
    [ENC_A16] = {1, 1, 0, 65535, 0},
    [ENC_I32] = {2, 0, -2147483647, 2147483647, 0x80000000u},
    [ENC_U32] = {2, 0, 0, 4294967294u, 0xFFFFFFFFu},
    [ENC_A32] = {2, 1, 0, 4294967295u, 0},
    [ENC_U64] = {4, 0, 0, INT64_MAX, UINT64_MAX}, /* held in int64_t, as sunspec.c does */
    [ENC_A64] = {4, 1, 0, INT64_MAX, 0},
};

/* A numeric point compiled at attach for the per-step code: where its words and its scale
 * factor sit in the image and how its type is stored, so that publishing and reading need no
 * table lookups and no pow(). enc == ENC_NONE sends a point through gateway/devices/sunspec.c as
 * before. Both paths give the same words: the fast one repeats sunspec_write_value and
 * sunspec_read_value step by step (tests/unit/test_regmap.c holds them to each other). */
struct codec {
    uint16_t at;    /* image index of the point's first word */
    uint16_t sf_at; /* image index of its sunssf register, when sf_reg */
    int8_t sf;      /* the literal scale factor, when !sf_reg */
    uint8_t enc;    /* enum enc */
    uint8_t sf_reg; /* the scale factor is read from the image */
};

/* A row bound to its place in this asset's image. */
struct resolved {
    struct codec c;
    uint8_t touched;    /* an accepted write covered it since the last read */
    uint8_t changed;    /* set by read_controls for the control code */
    uint16_t model_off; /* image index of the model's ID register (0: own map) */
    uint64_t snap;      /* ROW_CONTROL: the words at the last read_controls */
    const struct row *row;
    const struct sunspec_model *m; /* NULL for our own maps */
    struct sunspec_point p;        /* own-map rows get one built from the row */
};

/* One ROW_MEASURE row as regmap_publish writes it, in an array of small entries that a step
 * walks in order: with 1,000 sites in a process, the lines a step touches decide its speed.
 * An entry remembers what its registers hold, so a step writes only the points whose words
 * change (for enumerated points: the symbol, a string literal, whose words stand). */
struct pub {
    union {
        double v;             /* numeric points: the value their words show, when known */
        const char *sym_name; /* enumerated points: the symbol they show */
    } last;
    uint16_t row;  /* index into the map's rows (and st->res): the value source */
    uint16_t at;   /* image index of the point's first word */
    uint8_t enc;   /* its codec's enc (ENC_NONE: res_put) */
    int8_t sf;     /* the scale factor last read from the image, when PUB_SF_OK */
    uint8_t flags; /* PUB_* */
};

#define PUB_SF_OK  1 /* sf is one the fast path takes */
#define PUB_KNOWN  2 /* last.v is what the words show */
#define PUB_ALWAYS 4 /* another writer may reach its registers: every step in full */
#define PUB_SLOW   8 /* a string, or a type without a fast path: res_put as it stands */
/* The scale-factor registers that control points are decoded with: they never change unless
 * a spike hits one, and then the controls must be read again. */
#define MAX_SF_WATCH 8

struct regmap_state {
    /* What every step reads, first: in the first two cache lines (the state is allocated on
     * a line boundary, regmap_attach). */
    const struct asset_map *map;
    uint16_t *regs; /* the image's registers (libmodbus allocates them once, with the image) */
    struct pub *pub;
    size_t n_pub;
    uint64_t last_writes;
    int64_t now_ms;
    double rvrt_rem_s[GRP_N];
    uint16_t heartbeat;
    /* Publish writes every measurement in full and re-reads the scale factors from the image
     * (at attach, and after a spike wrote into the image). */
    uint8_t pub_full;
    /* The control code has nothing left to do until a control point or its scale factor
     * changes: its last pass left the model in step with the image and started no timer.
     * Cleared at attach and reset; never set when a control point has no fast path. */
    uint8_t settled, settle_never;
    /* Control points may have changed: a client write reached validate, or a spike wrote
     * into the image. Until then their words need no comparing. */
    uint8_t maybe_moved;
    int64_t ev_fs_ms_set; /* EVSE: the failsafe parameters the last control pass set */
    double ev_fs_a_set;

    struct sunspec_found layout[MAX_MODELS];
    size_t n_models;
    int16_t sf[SFC_N];
    size_t n_res;
    struct resolved *res;
    int slot[SLOT_N];  /* index into res, -1 when the type has no such point */
    uint16_t *scratch; /* img->count words, for validation */
    int64_t grp_write_ms[GRP_N];
    double cmd;        /* battery setpoint W, or PV limit % */
    double ev_limit_a; /* EVSE command as last sent */
    int ev_enable;
    double fs_ms0, fs_a0; /* EVSE failsafe parameters at attach, restored by a reset */
    double bo_limit_w, bo_setpoint_c;
    int bo_sg;
    /* The control rows (indexes into res) and the scale-factor registers they are decoded
     * with; what the last read_controls saw change, per group and at all. */
    uint16_t *ctl;
    size_t n_ctl;
    uint16_t sf_watch_at[MAX_SF_WATCH];
    uint16_t sf_watch_snap[MAX_SF_WATCH];
    size_t n_sf_watch;
    unsigned changed_groups;
    int any_changed;
};

static const struct asset_map *map_for(enum asset_type t);

/* ---- values published ------------------------------------------------------------------ */

static const char *t_mn(const struct sim_asset *a)
{
    (void)a;
    return "derloop";
}

static const char *t_md(const struct sim_asset *a)
{
    switch (a->type) {
    case ASSET_BATTERY:
        return "sim-battery";
    case ASSET_PV:
        return "sim-pv";
    default:
        return "sim-meter";
    }
}

static const char *t_vr(const struct sim_asset *a)
{
    (void)a;
    return "0.1";
}

static const char *t_sn(const struct sim_asset *a)
{
    return a->cfg ? a->cfg->id : "";
}

static double v_unit_id(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->cfg ? a->cfg->unit_id : 1;
}

static double bat_rated_w(const struct sim_asset *a)
{
    const struct battery_params *p = &a->m.battery.p;
    return p->max_charge_w > p->max_discharge_w ? p->max_charge_w : p->max_discharge_w;
}

static double pv_rated_w(const struct sim_asset *a)
{
    return a->m.pv.p.ac_max_w > 0.0 ? a->m.pv.p.ac_max_w : a->m.pv.p.peak_w;
}

static double bat_dc_v(const struct sim_asset *a)
{
    return a->m.battery.p.voltage_v > 0.0 ? a->m.battery.p.voltage_v : 48.0;
}

/* Active power as the device shows it: battery + discharge, PV + production. */
static double v_ac_w(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->type == ASSET_BATTERY ? a->m.battery.power_w : a->m.pv.power_w;
}

static double v_ac_va(const struct sim_asset *a, const struct regmap_state *st)
{
    return fabs(v_ac_w(a, st));
}

static double v_ac_a(const struct sim_asset *a, const struct regmap_state *st)
{
    return fabs(v_ac_w(a, st)) / (AC_PHASES * AC_LN_V);
}

static double v_inj_wh(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->type == ASSET_BATTERY ? a->m.battery.discharged_wh : a->m.pv.energy_wh;
}

static double v_abs_wh(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->type == ASSET_BATTERY ? a->m.battery.charged_wh : 0.0;
}

static int asset_faulted(const struct sim_asset *a)
{
    return a->type == ASSET_BATTERY ? a->m.battery.state == BATTERY_FAULT : a->m.pv.fault != 0;
}

static const char *s_st(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return asset_faulted(a) ? "OFF" : "ON";
}

static const char *s_conn(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return asset_faulted(a) ? "DISCONNECTED" : "CONNECTED";
}

static const char *s_three_phase(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "THREE_PHASE";
}

static const char *s_bat_invst(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    switch (a->m.battery.state) {
    case BATTERY_RUNNING:
        return "RUNNING";
    case BATTERY_THROTTLED:
        return "THROTTLED";
    case BATTERY_FAULT:
        return "FAULT";
    default:
        return "STANDBY";
    }
}

static const char *s_pv_invst(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct pv *v = &a->m.pv;
    if (v->fault)
        return "FAULT";
    if (!(v->available_w > 0.0))
        return "SLEEPING";
    if (v->limit_pct < 100.0 && v->available_w > v->power_w + 1.0)
        return "THROTTLED";
    return "RUNNING";
}

/* 701 Alrm bit 7 OVER_TEMP for a temperature trip, bit 16 MANUFACTURER_ALRM otherwise. */
static double v_bat_alrm(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct battery *b = &a->m.battery;
    if (b->state != BATTERY_FAULT)
        return 0;
    return b->temp_c >= b->p.temp_stop_c ? (1u << 7) : (1u << 16);
}

static double v_pv_alrm(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.pv.fault ? (1u << 16) : 0;
}

/* 802 Evt1 bit 1 OVER_TEMP_ALARM for a temperature trip, bit 25 OTHER_ALARM otherwise. */
static double v_bat_evt1(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct battery *b = &a->m.battery;
    if (b->state != BATTERY_FAULT)
        return 0;
    return b->temp_c >= b->p.temp_stop_c ? (1u << 1) : (1u << 25);
}

static double v_bat_temp(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.temp_c;
}

static double v_bat_amb(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.p.temp_ambient_c;
}

static double v_pv_amb(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.pv.p.temp_ambient_c;
}

static double v_pv_cell(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.pv.cell_temp_c;
}

static double v_bat_rated(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return bat_rated_w(a);
}

static double v_bat_cha_rtg(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.p.max_charge_w;
}

static double v_bat_dis_rtg(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.p.max_discharge_w;
}

static double v_bat_amax_ac(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return bat_rated_w(a) / (AC_PHASES * AC_LN_V);
}

static double v_pv_rated(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return pv_rated_w(a);
}

static double v_pv_amax_ac(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return pv_rated_w(a) / (AC_PHASES * AC_LN_V);
}

static double v_bat_wh_rtg(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.p.capacity_wh;
}

static double v_bat_ah_rtg(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.p.capacity_wh / bat_dc_v(a);
}

static double v_bat_wh_avail(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.energy_wh;
}

static double v_bat_soc_pct(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.soc * 100.0;
}

static const char *s_bat_sta(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    switch (a->m.battery.state) {
    case BATTERY_FAULT:
        return "ERROR";
    case BATTERY_THROTTLED:
        return "WARNING";
    default:
        return "OK";
    }
}

static const char *s_bat_chast(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct battery *b = &a->m.battery;
    if (b->state == BATTERY_FAULT)
        return "OFF";
    if (b->power_w < 0.0)
        return "CHARGING";
    if (b->power_w > 0.0)
        return "DISCHARGING";
    if (b->soc >= 0.999)
        return "FULL";
    if (b->soc <= 0.001)
        return "EMPTY";
    return "HOLDING";
}

static const char *s_bat_state(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    switch (a->m.battery.state) {
    case BATTERY_FAULT:
        return "FAULT";
    case BATTERY_STANDBY:
        return "STANDBY";
    default:
        return "CONNECTED";
    }
}

static const char *s_lithium(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "LITHIUM_ION";
}

static const char *s_remote(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "REMOTE";
}

static const char *s_connect(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "CONNECT";
}

static const char *s_inv_started(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "INVERTER_STARTED";
}

static double v_bat_dc_v(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return bat_dc_v(a);
}

static double v_bat_dc_a(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.power_w / bat_dc_v(a);
}

static double v_bat_w(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.battery.power_w;
}

static double v_bat_acha_max(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return battery_charge_limit_w(&a->m.battery) / bat_dc_v(a);
}

static double v_bat_adis_max(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return battery_discharge_limit_w(&a->m.battery) / bat_dc_v(a);
}

static double v_bat_ncyc(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct battery *b = &a->m.battery;
    return b->p.capacity_wh > 0.0
               ? floor((b->charged_wh + b->discharged_wh) / (2.0 * b->p.capacity_wh))
               : 0.0;
}

static double v_heartbeat(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->heartbeat;
}

static double v_rvrt_wset(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->rvrt_rem_s[GRP_WSET];
}

static double v_rvrt_wmaxlim(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->rvrt_rem_s[GRP_WMAXLIM];
}

/* Meter: the displayed power (grid role + import, load role + consumption). */
static double meter_phases(const struct sim_asset *a)
{
    return a->m.meter.p.phases == 3 ? 3.0 : 1.0;
}

static double v_m_w(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.shown_w;
}

static double v_m_w_ph(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.shown_w / meter_phases(a);
}

static double v_m_w_ph3(const struct sim_asset *a, const struct regmap_state *st)
{
    return a->m.meter.p.phases == 3 ? v_m_w_ph(a, st) : NAN;
}

static double meter_v(const struct sim_asset *a)
{
    return a->m.meter.voltage_v > 0.0 ? a->m.meter.voltage_v : a->m.meter.p.voltage_v;
}

static double v_m_a(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return fabs(a->m.meter.shown_w) / meter_v(a);
}

static double v_m_a_ph(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return fabs(a->m.meter.shown_w) / meter_phases(a) / meter_v(a);
}

static double v_m_a_ph3(const struct sim_asset *a, const struct regmap_state *st)
{
    return a->m.meter.p.phases == 3 ? v_m_a_ph(a, st) : NAN;
}

static double v_m_v(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return meter_v(a);
}

static double v_m_v3(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.p.phases == 3 ? meter_v(a) : NAN;
}

static double v_m_vll(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.p.phases == 3 ? meter_v(a) * sqrt(3.0) : NAN;
}

static double v_m_hz(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.frequency_hz > 0.0 ? a->m.meter.frequency_hz : a->m.meter.p.nominal_hz;
}

/* 203 Evt: the meter's shown events (meter.c sets M_EVENT_Power_Failure in an outage). */
static double v_m_evt(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.evt;
}

static double v_m_imp(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.import_wh;
}

static double v_m_exp(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.meter.export_wh;
}

/* EVSE */
static double v_ev_state(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return (unsigned char)a->m.evse.state;
}

static double v_ev_phases(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.p.phases;
}

static double v_ev_min(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.p.min_current_a;
}

static double v_ev_max(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.p.max_current_a;
}

static double v_ev_default(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.p.default_current_a;
}

/* The limit in effect: the commanded one, or the failsafe current once the controller has
 * been silent for longer than the failsafe timeout (evse.c applies the same rule). */
static double v_ev_active(const struct sim_asset *a, const struct regmap_state *st)
{
    const struct evse *e = &a->m.evse;
    if (!e->enabled)
        return 0.0;
    if (e->p.failsafe_ms > 0 && st->now_ms - e->last_command_ms > e->p.failsafe_ms)
        return e->p.failsafe_current_a;
    return e->current_limit_a;
}

static double v_ev_power(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.power_w;
}

static double v_ev_current(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.current_a;
}

static double v_ev_session_wh(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.session_energy_wh;
}

static double v_ev_total_wh(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.total_energy_wh;
}

static double v_ev_need_wh(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    const struct evse *e = &a->m.evse;
    if (e->session < 0 || !e->p.sessions || (size_t)e->session >= e->p.sessions->n_sessions)
        return 0.0;
    double need = e->p.sessions->sessions[e->session].energy_wh - e->session_energy_wh;
    return need > 0.0 ? need : 0.0;
}

static double v_ev_fault(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.evse.fault;
}

static double v_ev_fs_s(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->fs_ms0 / 1000.0;
}

static double v_ev_fs_a(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->fs_a0;
}

/* Boiler */
static double v_bo_state(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.state;
}

static double v_bo_temp(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.temp_c;
}

static double v_bo_setpoint0(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.p.setpoint_c;
}

static double v_bo_power(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.power_w;
}

static double v_bo_rated(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.p.rated_w;
}

static double v_bo_fault(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.fault;
}

static double v_bo_tmax(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.p.temp_max_c;
}

static double v_bo_energy(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.energy_wh;
}

static double v_bo_demand(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->m.boiler.heat_demand;
}

/* ---- write checks (engineering units; 0 or Modbus exception 3) ------------------------- */

static int slot_value(const struct regmap_state *st, enum slot s, const uint16_t *regs, double *v);

static int ck_wset(const struct sim_asset *a, const struct regmap_state *st,
                   const uint16_t *scratch, double v)
{
    double wmax;
    if (slot_value(st, SLOT_WMAX, scratch, &wmax))
        wmax = a->m.battery.p.max_discharge_w;
    return fabs(v) > wmax ? 3 : 0;
}

static int ck_bat_wmax(const struct sim_asset *a, const struct regmap_state *st,
                       const uint16_t *scratch, double v)
{
    (void)st, (void)scratch;
    return v < 0.0 || v > a->m.battery.p.max_discharge_w ? 3 : 0;
}

static int ck_bat_wcha(const struct sim_asset *a, const struct regmap_state *st,
                       const uint16_t *scratch, double v)
{
    (void)st, (void)scratch;
    return v < 0.0 || v > a->m.battery.p.max_charge_w ? 3 : 0;
}

/* 0 pauses; otherwise the current must lie in [min, max] (IEC 61851-1: below 6 A a car may
 * not charge at all, so a real charger refuses rather than rounding up). */
static int ck_ev_current(const struct sim_asset *a, const struct regmap_state *st,
                         const uint16_t *scratch, double v)
{
    (void)st, (void)scratch;
    const struct evse_params *p = &a->m.evse.p;
    if (v == 0.0)
        return 0;
    return v < p->min_current_a - 1e-9 || v > p->max_current_a + 1e-9 ? 3 : 0;
}

static int ck_bo_setpoint(const struct sim_asset *a, const struct regmap_state *st,
                          const uint16_t *scratch, double v)
{
    (void)st, (void)scratch;
    return v < 20.0 || v > a->m.boiler.p.temp_max_c - 5.0 ? 3 : 0;
}

static int ck_bo_limit(const struct sim_asset *a, const struct regmap_state *st,
                       const uint16_t *scratch, double v)
{
    (void)st, (void)scratch;
    return v < 0.0 || v > a->m.boiler.p.rated_w ? 3 : 0;
}

/* ---- the maps -------------------------------------------------------------------------- */

#define SF_CONST(mdl, pt, v)                                                                       \
    {                                                                                              \
        .model = mdl, .point = pt, .kind = ROW_SF, .c = v, .doc = "fixed"                          \
    }
#define SF_CHOSEN(mdl, pt, cls)                                                                    \
    {                                                                                              \
        .model = mdl, .point = pt, .kind = ROW_SF, .sfc = cls                                      \
    }

#define COMMON_ROWS                                                                                \
    {.model = 1, .point = "Mn", .kind = ROW_STATIC, .text = t_mn, .doc = "\"derloop\""},           \
        {.model = 1,                                                                               \
         .point = "Md",                                                                            \
         .kind = ROW_STATIC,                                                                       \
         .text = t_md,                                                                             \
         .doc = "\"sim-battery\", \"sim-pv\" or \"sim-meter\""},                                   \
        {.model = 1, .point = "Vr", .kind = ROW_STATIC, .text = t_vr, .doc = "\"0.1\""},           \
        {.model = 1,                                                                               \
         .point = "SN",                                                                            \
         .kind = ROW_STATIC,                                                                       \
         .text = t_sn,                                                                             \
         .doc = "the asset id of the scenario"},                                                   \
    {                                                                                              \
        .model = 1, .point = "DA", .kind = ROW_STATIC, .get = v_unit_id,                           \
        .doc = "the Modbus unit id (writable, stored only)"                                        \
    }

static const uint16_t battery_models[] = {1, 701, 702, 704, 713, 802};
static const struct row battery_rows[] = {
    COMMON_ROWS,
    /* 701 DERMeasureAC */
    {.model = 701,
     .point = "ACType",
     .kind = ROW_STATIC,
     .sym = s_three_phase,
     .doc = "THREE_PHASE"},
    {.model = 701, .point = "St", .kind = ROW_MEASURE, .sym = s_st, .doc = "OFF in FAULT, else ON"},
    {.model = 701,
     .point = "InvSt",
     .kind = ROW_MEASURE,
     .sym = s_bat_invst,
     .doc = "battery state: STANDBY, RUNNING, THROTTLED (limits derated), FAULT"},
    {.model = 701,
     .point = "ConnSt",
     .kind = ROW_MEASURE,
     .sym = s_conn,
     .doc = "DISCONNECTED in FAULT, else CONNECTED"},
    {.model = 701,
     .point = "Alrm",
     .kind = ROW_MEASURE,
     .get = v_bat_alrm,
     .doc = "0; in FAULT bit 7 OVER_TEMP (temperature trip) or bit 16 MANUFACTURER_ALRM"},
    {.model = 701,
     .point = "W",
     .kind = ROW_MEASURE,
     .get = v_ac_w,
     .doc = "AC power, + discharge (injection), - charge (absorption)"},
    {.model = 701, .point = "VA", .kind = ROW_MEASURE, .get = v_ac_va, .doc = "abs(W) (unity PF)"},
    {.model = 701, .point = "Var", .kind = ROW_MEASURE, .c = 0, .doc = "0"},
    {.model = 701, .point = "PF", .kind = ROW_MEASURE, .c = 1, .doc = "1.0"},
    {.model = 701,
     .point = "A",
     .kind = ROW_MEASURE,
     .get = v_ac_a,
     .doc = "abs(W) / (3 x 230 V), per phase"},
    {.model = 701, .point = "LLV", .kind = ROW_MEASURE, .c = AC_LL_V, .doc = "400 V nominal"},
    {.model = 701, .point = "LNV", .kind = ROW_MEASURE, .c = AC_LN_V, .doc = "230 V nominal"},
    {.model = 701, .point = "Hz", .kind = ROW_MEASURE, .c = AC_HZ, .doc = "50 Hz nominal"},
    {.model = 701,
     .point = "TotWhInj",
     .kind = ROW_MEASURE,
     .get = v_inj_wh,
     .doc = "energy discharged (AC side), accumulated"},
    {.model = 701,
     .point = "TotWhAbs",
     .kind = ROW_MEASURE,
     .get = v_abs_wh,
     .doc = "energy charged (AC side), accumulated"},
    {.model = 701,
     .point = "TmpAmb",
     .kind = ROW_STATIC,
     .get = v_bat_amb,
     .doc = "ambient temperature (parameter)"},
    {.model = 701,
     .point = "TmpCab",
     .kind = ROW_MEASURE,
     .get = v_bat_temp,
     .doc = "battery temperature (the model's thermal state)"},
    SF_CHOSEN(701, "A_SF", SFC_AC_A16),
    SF_CONST(701, "V_SF", -1),
    SF_CONST(701, "Hz_SF", -2),
    SF_CHOSEN(701, "W_SF", SFC_POWER16),
    SF_CONST(701, "PF_SF", -3),
    SF_CHOSEN(701, "VA_SF", SFC_POWER16),
    SF_CHOSEN(701, "Var_SF", SFC_POWER16),
    SF_CONST(701, "TotWh_SF", 0),
    SF_CONST(701, "TotVarh_SF", 0),
    SF_CONST(701, "Tmp_SF", -1),
    /* 702 DERCapacity */
    {.model = 702,
     .point = "WMaxRtg",
     .kind = ROW_STATIC,
     .get = v_bat_dis_rtg,
     .doc = "max_discharge_w"},
    {.model = 702,
     .point = "VAMaxRtg",
     .kind = ROW_STATIC,
     .get = v_bat_rated,
     .doc = "max(max_charge_w, max_discharge_w)"},
    {.model = 702,
     .point = "WChaRteMaxRtg",
     .kind = ROW_STATIC,
     .get = v_bat_cha_rtg,
     .doc = "max_charge_w"},
    {.model = 702,
     .point = "WDisChaRteMaxRtg",
     .kind = ROW_STATIC,
     .get = v_bat_dis_rtg,
     .doc = "max_discharge_w"},
    {.model = 702, .point = "VNomRtg", .kind = ROW_STATIC, .c = AC_LN_V, .doc = "230 V"},
    {.model = 702,
     .point = "AMaxRtg",
     .kind = ROW_STATIC,
     .get = v_bat_amax_ac,
     .doc = "rated power / (3 x 230 V)"},
    {.model = 702,
     .point = "WMax",
     .kind = ROW_CONTROL,
     .slot = SLOT_WMAX,
     .get = v_bat_dis_rtg,
     .check = ck_bat_wmax,
     .doc = "default WMaxRtg; 0..WMaxRtg; caps discharge setpoints and bounds abs(WSet)"},
    {.model = 702,
     .point = "WChaRteMax",
     .kind = ROW_CONTROL,
     .slot = SLOT_WCHA_MAX,
     .get = v_bat_cha_rtg,
     .check = ck_bat_wcha,
     .doc = "default max_charge_w; 0..WChaRteMaxRtg; caps charge setpoints"},
    {.model = 702,
     .point = "WDisChaRteMax",
     .kind = ROW_CONTROL,
     .slot = SLOT_WDISCHA_MAX,
     .get = v_bat_dis_rtg,
     .check = ck_bat_wmax,
     .doc = "default max_discharge_w; 0..WDisChaRteMaxRtg; caps discharge setpoints"},
    SF_CHOSEN(702, "W_SF", SFC_RATING16),
    SF_CHOSEN(702, "VA_SF", SFC_RATING16),
    SF_CONST(702, "V_SF", -1),
    SF_CHOSEN(702, "A_SF", SFC_AC_A16),
    SF_CONST(702, "PF_SF", -3),
    SF_CHOSEN(702, "Var_SF", SFC_RATING16),
    /* 704 DERCtlAC */
    {.model = 704,
     .point = "WSetEna",
     .kind = ROW_CONTROL,
     .slot = SLOT_WSET_ENA,
     .group = GRP_WSET,
     .c = 0,
     .doc = "default DISABLED; ENABLED applies the setpoint"},
    {.model = 704,
     .point = "WSetMod",
     .kind = ROW_CONTROL,
     .slot = SLOT_WSET_MOD,
     .group = GRP_WSET,
     .c = 1,
     .doc = "default WATTS (WSet in W); W_MAX_PCT uses WSetPct of WMax"},
    {.model = 704,
     .point = "WSet",
     .kind = ROW_CONTROL,
     .slot = SLOT_WSET,
     .group = GRP_WSET,
     .c = 0,
     .check = ck_wset,
     .doc = "setpoint, + discharge, - charge; default 0; abs(WSet) <= WMax, else exception 3"},
    {.model = 704,
     .point = "WSetPct",
     .kind = ROW_CONTROL,
     .slot = SLOT_WSET_PCT,
     .group = GRP_WSET,
     .c = 0,
     .min = -100,
     .max = 100,
     .doc = "setpoint in % of WMax (W_MAX_PCT mode); default 0; -100..100"},
    {.model = 704,
     .point = "WSetRvrtTms",
     .kind = ROW_CONTROL,
     .slot = SLOT_WSET_RVRT_TMS,
     .group = GRP_WSET,
     .c = 0,
     .doc = "default 0 (never); > 0: the setpoint lapses (WSetEna back to DISABLED, 0 W) this "
            "many seconds after the last write to WSetEna..WSetRvrtTms"},
    {.model = 704,
     .point = "WSetRvrtRem",
     .kind = ROW_MEASURE,
     .get = v_rvrt_wset,
     .doc = "seconds left before the setpoint lapses (0 when no timer runs)"},
    SF_CONST(704, "PF_SF", -3),
    SF_CONST(704, "WMaxLimPct_SF", -1),
    SF_CONST(704, "WSet_SF", 0),
    SF_CONST(704, "WSetPct_SF", -1),
    SF_CONST(704, "VarSet_SF", 0),
    SF_CONST(704, "VarSetPct_SF", -1),
    /* 713 DERStorageCapacity */
    {.model = 713, .point = "WHRtg", .kind = ROW_STATIC, .get = v_bat_wh_rtg, .doc = "capacity_wh"},
    {.model = 713,
     .point = "WHAvail",
     .kind = ROW_MEASURE,
     .get = v_bat_wh_avail,
     .doc = "stored energy"},
    {.model = 713,
     .point = "SoC",
     .kind = ROW_MEASURE,
     .get = v_bat_soc_pct,
     .doc = "state of charge, %"},
    {.model = 713, .point = "SoH", .kind = ROW_STATIC, .c = 100, .doc = "100 %"},
    {.model = 713,
     .point = "Sta",
     .kind = ROW_MEASURE,
     .sym = s_bat_sta,
     .doc = "OK; WARNING when THROTTLED; ERROR in FAULT"},
    SF_CHOSEN(713, "WH_SF", SFC_WH16),
    SF_CONST(713, "Pct_SF", -1),
    /* 802 Battery */
    {.model = 802,
     .point = "AHRtg",
     .kind = ROW_STATIC,
     .get = v_bat_ah_rtg,
     .doc = "capacity_wh / voltage_v"},
    {.model = 802, .point = "WHRtg", .kind = ROW_STATIC, .get = v_bat_wh_rtg, .doc = "capacity_wh"},
    {.model = 802,
     .point = "WChaRteMax",
     .kind = ROW_STATIC,
     .get = v_bat_cha_rtg,
     .doc = "max_charge_w"},
    {.model = 802,
     .point = "WDisChaRteMax",
     .kind = ROW_STATIC,
     .get = v_bat_dis_rtg,
     .doc = "max_discharge_w"},
    {.model = 802, .point = "SoCMax", .kind = ROW_STATIC, .c = 100, .doc = "100 %"},
    {.model = 802, .point = "SoCMin", .kind = ROW_STATIC, .c = 0, .doc = "0 %"},
    {.model = 802,
     .point = "SoC",
     .kind = ROW_MEASURE,
     .get = v_bat_soc_pct,
     .doc = "state of charge, %"},
    {.model = 802, .point = "SoH", .kind = ROW_STATIC, .c = 100, .doc = "100 %"},
    {.model = 802,
     .point = "NCyc",
     .kind = ROW_MEASURE,
     .get = v_bat_ncyc,
     .doc = "equivalent full cycles: (charged + discharged) / (2 x capacity)"},
    {.model = 802,
     .point = "ChaSt",
     .kind = ROW_MEASURE,
     .sym = s_bat_chast,
     .doc =
         "CHARGING / DISCHARGING by the power's sign; idle: FULL, EMPTY or HOLDING; OFF in FAULT"},
    {.model = 802, .point = "LocRemCtl", .kind = ROW_STATIC, .sym = s_remote, .doc = "REMOTE"},
    {.model = 802,
     .point = "Hb",
     .kind = ROW_MEASURE,
     .get = v_heartbeat,
     .doc = "heartbeat: +1 at every refresh of the image (stops when frozen)"},
    {.model = 802, .point = "Typ", .kind = ROW_STATIC, .sym = s_lithium, .doc = "LITHIUM_ION"},
    {.model = 802,
     .point = "State",
     .kind = ROW_MEASURE,
     .sym = s_bat_state,
     .doc = "STANDBY, CONNECTED (running), FAULT"},
    {.model = 802,
     .point = "Evt1",
     .kind = ROW_MEASURE,
     .get = v_bat_evt1,
     .doc = "0; in FAULT bit 1 OVER_TEMP_ALARM (temperature trip) or bit 25 OTHER_ALARM"},
    {.model = 802, .point = "Evt2", .kind = ROW_STATIC, .c = 0, .doc = "0"},
    {.model = 802, .point = "EvtVnd1", .kind = ROW_STATIC, .c = 0, .doc = "0"},
    {.model = 802, .point = "EvtVnd2", .kind = ROW_STATIC, .c = 0, .doc = "0"},
    {.model = 802,
     .point = "V",
     .kind = ROW_STATIC,
     .get = v_bat_dc_v,
     .doc = "nominal DC voltage (voltage_v)"},
    {.model = 802,
     .point = "A",
     .kind = ROW_MEASURE,
     .get = v_bat_dc_a,
     .doc = "DC current W / V, + discharge (802 leaves the sign to vendors)"},
    {.model = 802,
     .point = "AChaMax",
     .kind = ROW_MEASURE,
     .get = v_bat_acha_max,
     .doc = "present charge limit (derated by SoC and temperature) / V"},
    {.model = 802,
     .point = "ADisChaMax",
     .kind = ROW_MEASURE,
     .get = v_bat_adis_max,
     .doc = "present discharge limit (derated by SoC and temperature) / V"},
    {.model = 802,
     .point = "W",
     .kind = ROW_MEASURE,
     .get = v_bat_w,
     .doc = "power, + discharge (as 701 W; 802 leaves the sign to vendors)"},
    {.model = 802,
     .point = "SetOp",
     .kind = ROW_STATIC,
     .sym = s_connect,
     .doc = "CONNECT (writable, stored only)"},
    {.model = 802,
     .point = "SetInvState",
     .kind = ROW_STATIC,
     .sym = s_inv_started,
     .doc = "INVERTER_STARTED (writable, stored only)"},
    SF_CHOSEN(802, "AHRtg_SF", SFC_AH16),
    SF_CHOSEN(802, "WHRtg_SF", SFC_WH16),
    SF_CHOSEN(802, "WChaDisChaMax_SF", SFC_RATING16),
    SF_CONST(802, "SoC_SF", -1),
    SF_CONST(802, "SoH_SF", 0),
    SF_CONST(802, "V_SF", -1),
    SF_CONST(802, "CellV_SF", -3),
    SF_CHOSEN(802, "A_SF", SFC_DC_A16),
    SF_CHOSEN(802, "AMax_SF", SFC_DC_A16),
    SF_CHOSEN(802, "W_SF", SFC_POWER16),
};

static const uint16_t pv_models[] = {1, 701, 702, 704};
static const struct row pv_rows[] = {
    COMMON_ROWS,
    {.model = 701,
     .point = "ACType",
     .kind = ROW_STATIC,
     .sym = s_three_phase,
     .doc = "THREE_PHASE"},
    {.model = 701,
     .point = "St",
     .kind = ROW_MEASURE,
     .sym = s_st,
     .doc = "OFF when tripped, else ON"},
    {.model = 701,
     .point = "InvSt",
     .kind = ROW_MEASURE,
     .sym = s_pv_invst,
     .doc = "SLEEPING without sun; THROTTLED when curtailment cuts the available power; "
            "RUNNING; FAULT when tripped"},
    {.model = 701,
     .point = "ConnSt",
     .kind = ROW_MEASURE,
     .sym = s_conn,
     .doc = "DISCONNECTED when tripped, else CONNECTED"},
    {.model = 701,
     .point = "Alrm",
     .kind = ROW_MEASURE,
     .get = v_pv_alrm,
     .doc = "0; bit 16 MANUFACTURER_ALRM when tripped"},
    {.model = 701,
     .point = "W",
     .kind = ROW_MEASURE,
     .get = v_ac_w,
     .doc = "AC power, + production"},
    {.model = 701, .point = "VA", .kind = ROW_MEASURE, .get = v_ac_va, .doc = "abs(W) (unity PF)"},
    {.model = 701, .point = "Var", .kind = ROW_MEASURE, .c = 0, .doc = "0"},
    {.model = 701, .point = "PF", .kind = ROW_MEASURE, .c = 1, .doc = "1.0"},
    {.model = 701,
     .point = "A",
     .kind = ROW_MEASURE,
     .get = v_ac_a,
     .doc = "abs(W) / (3 x 230 V), per phase"},
    {.model = 701, .point = "LLV", .kind = ROW_MEASURE, .c = AC_LL_V, .doc = "400 V nominal"},
    {.model = 701, .point = "LNV", .kind = ROW_MEASURE, .c = AC_LN_V, .doc = "230 V nominal"},
    {.model = 701, .point = "Hz", .kind = ROW_MEASURE, .c = AC_HZ, .doc = "50 Hz nominal"},
    {.model = 701,
     .point = "TotWhInj",
     .kind = ROW_MEASURE,
     .get = v_inj_wh,
     .doc = "energy produced, accumulated"},
    {.model = 701, .point = "TotWhAbs", .kind = ROW_MEASURE, .get = v_abs_wh, .doc = "0"},
    {.model = 701,
     .point = "TmpAmb",
     .kind = ROW_STATIC,
     .get = v_pv_amb,
     .doc = "ambient temperature (parameter)"},
    {.model = 701,
     .point = "TmpOt",
     .kind = ROW_MEASURE,
     .get = v_pv_cell,
     .doc = "cell temperature (NOCT model)"},
    SF_CHOSEN(701, "A_SF", SFC_AC_A16),
    SF_CONST(701, "V_SF", -1),
    SF_CONST(701, "Hz_SF", -2),
    SF_CHOSEN(701, "W_SF", SFC_POWER16),
    SF_CONST(701, "PF_SF", -3),
    SF_CHOSEN(701, "VA_SF", SFC_POWER16),
    SF_CHOSEN(701, "Var_SF", SFC_POWER16),
    SF_CONST(701, "TotWh_SF", 0),
    SF_CONST(701, "TotVarh_SF", 0),
    SF_CONST(701, "Tmp_SF", -1),
    {.model = 702,
     .point = "WMaxRtg",
     .kind = ROW_STATIC,
     .get = v_pv_rated,
     .doc = "AC rating (ac_max_w, else peak_w)"},
    {.model = 702, .point = "VAMaxRtg", .kind = ROW_STATIC, .get = v_pv_rated, .doc = "AC rating"},
    {.model = 702, .point = "VNomRtg", .kind = ROW_STATIC, .c = AC_LN_V, .doc = "230 V"},
    {.model = 702,
     .point = "AMaxRtg",
     .kind = ROW_STATIC,
     .get = v_pv_amax_ac,
     .doc = "AC rating / (3 x 230 V)"},
    {.model = 702,
     .point = "WMax",
     .kind = ROW_STATIC,
     .get = v_pv_rated,
     .doc = "AC rating (writable, stored only)"},
    SF_CHOSEN(702, "W_SF", SFC_RATING16),
    SF_CHOSEN(702, "VA_SF", SFC_RATING16),
    SF_CONST(702, "V_SF", -1),
    SF_CHOSEN(702, "A_SF", SFC_AC_A16),
    SF_CONST(702, "PF_SF", -3),
    SF_CHOSEN(702, "Var_SF", SFC_RATING16),
    {.model = 704,
     .point = "WMaxLimPctEna",
     .kind = ROW_CONTROL,
     .slot = SLOT_WMAXLIM_ENA,
     .group = GRP_WMAXLIM,
     .c = 0,
     .doc = "default DISABLED; ENABLED applies WMaxLimPct"},
    {.model = 704,
     .point = "WMaxLimPct",
     .kind = ROW_CONTROL,
     .slot = SLOT_WMAXLIM_PCT,
     .group = GRP_WMAXLIM,
     .c = 100,
     .min = 0,
     .max = 100,
     .doc = "curtailment limit, % of WMaxRtg; default 100; 0..100"},
    {.model = 704,
     .point = "WMaxLimPctRvrtTms",
     .kind = ROW_CONTROL,
     .slot = SLOT_WMAXLIM_RVRT_TMS,
     .group = GRP_WMAXLIM,
     .c = 0,
     .doc = "default 0 (never); > 0: the limit lapses (WMaxLimPctEna back to DISABLED, 100 %) "
            "this many seconds after the last write to WMaxLimPctEna..WMaxLimPctRvrtTms"},
    {.model = 704,
     .point = "WMaxLimPctRvrtRem",
     .kind = ROW_MEASURE,
     .get = v_rvrt_wmaxlim,
     .doc = "seconds left before the limit lapses (0 when no timer runs)"},
    SF_CONST(704, "PF_SF", -3),
    SF_CONST(704, "WMaxLimPct_SF", -1),
    SF_CONST(704, "WSet_SF", 0),
    SF_CONST(704, "WSetPct_SF", -1),
    SF_CONST(704, "VarSet_SF", 0),
    SF_CONST(704, "VarSetPct_SF", -1),
};

static const uint16_t meter_models[] = {1, 203};
static const struct row meter_rows[] = {
    COMMON_ROWS,
    {.model = 203, .point = "A", .kind = ROW_MEASURE, .get = v_m_a, .doc = "abs(W) / V, total"},
    {.model = 203,
     .point = "AphA",
     .kind = ROW_MEASURE,
     .get = v_m_a_ph,
     .doc = "abs(W) / phases / V"},
    {.model = 203,
     .point = "AphB",
     .kind = ROW_MEASURE,
     .get = v_m_a_ph3,
     .doc = "as AphA (3 phases only)"},
    {.model = 203,
     .point = "AphC",
     .kind = ROW_MEASURE,
     .get = v_m_a_ph3,
     .doc = "as AphA (3 phases only)"},
    SF_CHOSEN(203, "A_SF", SFC_AC_A16),
    {.model = 203,
     .point = "PhV",
     .kind = ROW_MEASURE,
     .get = v_m_v,
     .doc = "voltage, line to neutral"},
    {.model = 203, .point = "PhVphA", .kind = ROW_MEASURE, .get = v_m_v, .doc = "as PhV"},
    {.model = 203,
     .point = "PhVphB",
     .kind = ROW_MEASURE,
     .get = v_m_v3,
     .doc = "as PhV (3 phases only)"},
    {.model = 203,
     .point = "PhVphC",
     .kind = ROW_MEASURE,
     .get = v_m_v3,
     .doc = "as PhV (3 phases only)"},
    {.model = 203,
     .point = "PPV",
     .kind = ROW_MEASURE,
     .get = v_m_vll,
     .doc = "PhV x sqrt(3) (3 phases only)"},
    SF_CONST(203, "V_SF", -1),
    {.model = 203,
     .point = "Hz",
     .kind = ROW_MEASURE,
     .get = v_m_hz,
     .doc = "frequency (profile or nominal; nominal while islanded)"},
    SF_CONST(203, "Hz_SF", -2),
    {.model = 203,
     .point = "W",
     .kind = ROW_MEASURE,
     .get = v_m_w,
     .doc = "power shown (refreshed every refresh_ms): grid role + import / - export; "
            "load role + consumption"},
    {.model = 203, .point = "WphA", .kind = ROW_MEASURE, .get = v_m_w_ph, .doc = "W / phases"},
    {.model = 203,
     .point = "WphB",
     .kind = ROW_MEASURE,
     .get = v_m_w_ph3,
     .doc = "W / 3 (3 phases only)"},
    {.model = 203,
     .point = "WphC",
     .kind = ROW_MEASURE,
     .get = v_m_w_ph3,
     .doc = "W / 3 (3 phases only)"},
    SF_CHOSEN(203, "W_SF", SFC_POWER16),
    {.model = 203,
     .point = "TotWhExp",
     .kind = ROW_MEASURE,
     .get = v_m_exp,
     .doc = "grid role: energy exported; load role: 0 (acc32, rolls over)"},
    {.model = 203,
     .point = "TotWhImp",
     .kind = ROW_MEASURE,
     .get = v_m_imp,
     .doc = "grid role: energy imported; load role: energy consumed (acc32, rolls over)"},
    SF_CONST(203, "TotWh_SF", 0),
    {.model = 203,
     .point = "Evt",
     .kind = ROW_MEASURE,
     .get = v_m_evt,
     .doc = "grid role: bit 2 M_EVENT_Power_Failure while the site is islanded (a "
            "`grid_outage` event), else 0; load role: 0"},
};

#define OWN(a_, n_, sz, ty, s_, w_, u_)                                                            \
    .model = 0, .point = n_, .addr = a_, .size = sz, .type = ty, .sf = s_, .writable = w_,         \
    .unit = u_

static const struct row evse_rows[] = {
    {OWN(0, "MapId", 1, SUNSPEC_UINT16, 0, 0, ""), .kind = ROW_STATIC, .c = EVSE_MAP_ID,
     .doc = "0x4556 (\"EV\")"},
    {OWN(1, "MapVersion", 1, SUNSPEC_UINT16, 0, 0, ""), .kind = ROW_STATIC, .c = OWN_MAP_VERSION,
     .doc = "1"},
    {OWN(2, "State", 1, SUNSPEC_UINT16, 0, 0, ""), .kind = ROW_MEASURE, .get = v_ev_state,
     .doc = "IEC 61851 state as an ASCII letter: 'A' (65) no vehicle, 'B' connected, "
            "'C' charging, 'E'/'F' fault"},
    {OWN(3, "Phases", 1, SUNSPEC_UINT16, 0, 0, ""), .kind = ROW_STATIC, .get = v_ev_phases,
     .doc = "1 or 3"},
    {OWN(4, "MinCurrent", 1, SUNSPEC_UINT16, -1, 0, "A"), .kind = ROW_STATIC, .get = v_ev_min,
     .doc = "minimum charging current"},
    {OWN(5, "MaxCurrent", 1, SUNSPEC_UINT16, -1, 0, "A"), .kind = ROW_STATIC, .get = v_ev_max,
     .doc = "maximum charging current"},
    {OWN(6, "CurrentLimit", 1, SUNSPEC_UINT16, -1, 1, "A"), .kind = ROW_CONTROL,
     .slot = SLOT_EV_LIMIT, .get = v_ev_default, .check = ck_ev_current,
     .doc = "current limit setpoint: 0 pauses, else MinCurrent..MaxCurrent (exception 3 "
            "otherwise); the charger uses whole amps; default default_current_a"},
    {OWN(7, "Enable", 1, SUNSPEC_UINT16, 0, 1, ""), .kind = ROW_CONTROL, .slot = SLOT_EV_ENABLE,
     .c = 1, .min = 0, .max = 1, .doc = "1 charging allowed, 0 disabled; default 1"},
    {OWN(8, "ActiveCurrentLimit", 1, SUNSPEC_UINT16, -1, 0, "A"), .kind = ROW_MEASURE,
     .get = v_ev_active,
     .doc = "the limit in effect: CurrentLimit, or FailsafeCurrent after FailsafeTimeout "
            "without writes; 0 when disabled"},
    {OWN(9, "Power", 2, SUNSPEC_INT32, 0, 0, "W"), .kind = ROW_MEASURE, .get = v_ev_power,
     .doc = "power drawn, + consumption"},
    {OWN(11, "Current", 1, SUNSPEC_UINT16, -1, 0, "A"), .kind = ROW_MEASURE, .get = v_ev_current,
     .doc = "current per phase"},
    {OWN(12, "SessionEnergy", 2, SUNSPEC_UINT32, 0, 0, "Wh"), .kind = ROW_MEASURE,
     .get = v_ev_session_wh, .doc = "energy delivered in this session"},
    {OWN(14, "TotalEnergy", 2, SUNSPEC_UINT32, 0, 0, "Wh"), .kind = ROW_MEASURE,
     .get = v_ev_total_wh, .doc = "energy delivered, all sessions"},
    {OWN(16, "SessionNeedRemaining", 2, SUNSPEC_UINT32, 0, 0, "Wh"), .kind = ROW_MEASURE,
     .get = v_ev_need_wh, .doc = "energy the car still wants (0 without a car)"},
    {OWN(18, "FaultCode", 1, SUNSPEC_UINT16, 0, 0, ""), .kind = ROW_MEASURE, .get = v_ev_fault,
     .doc = "0 none, else the fault"},
    {OWN(19, "FailsafeTimeout", 1, SUNSPEC_UINT16, 0, 1, "s"), .kind = ROW_CONTROL,
     .slot = SLOT_EV_FS_TIMEOUT, .get = v_ev_fs_s, .min = 0, .max = 3600,
     .doc = "0 off; else after this many seconds without a write the charger falls back to "
            "FailsafeCurrent; 0..3600; default failsafe_ms"},
    {OWN(20, "FailsafeCurrent", 1, SUNSPEC_UINT16, -1, 1, "A"), .kind = ROW_CONTROL,
     .slot = SLOT_EV_FS_CURRENT, .get = v_ev_fs_a, .check = ck_ev_current,
     .doc = "fallback current: 0 or MinCurrent..MaxCurrent; default failsafe_current_a"},
};

static const struct row boiler_rows[] = {
    {OWN(0, "MapId", 1, SUNSPEC_UINT16, 0, 0, ""), .kind = ROW_STATIC, .c = BOILER_MAP_ID,
     .doc = "0x424F (\"BO\")"},
    {OWN(1, "MapVersion", 1, SUNSPEC_UINT16, 0, 0, ""), .kind = ROW_STATIC, .c = OWN_MAP_VERSION,
     .doc = "1"},
    {OWN(2, "State", 1, SUNSPEC_UINT16, 0, 0, ""), .kind = ROW_MEASURE, .get = v_bo_state,
     .doc = "0 IDLE, 1 STARTING, 2 RUNNING, 3 STOPPING, 4 FAULT"},
    {OWN(3, "TankTemp", 1, SUNSPEC_INT16, -1, 0, "C"), .kind = ROW_MEASURE, .get = v_bo_temp,
     .doc = "tank temperature"},
    {OWN(4, "TempSetpoint", 1, SUNSPEC_INT16, -1, 1, "C"), .kind = ROW_CONTROL,
     .slot = SLOT_BO_SETPOINT, .get = v_bo_setpoint0, .check = ck_bo_setpoint,
     .doc = "thermostat target; 20 C..TempMax - 5 C; default setpoint_c"},
    {OWN(5, "Power", 1, SUNSPEC_UINT16, 0, 0, "W"), .kind = ROW_MEASURE, .get = v_bo_power,
     .doc = "power drawn, + consumption"},
    {OWN(6, "PowerLimit", 1, SUNSPEC_UINT16, 0, 1, "W"), .kind = ROW_CONTROL, .slot = SLOT_BO_LIMIT,
     .get = v_bo_rated, .check = ck_bo_limit,
     .doc = "power limit; 0..RatedPower; default RatedPower"},
    {OWN(7, "SgReadyMode", 1, SUNSPEC_UINT16, 0, 1, ""), .kind = ROW_CONTROL, .slot = SLOT_BO_SG,
     .c = 2, .min = 1, .max = 4,
     .doc = "SG-Ready: 1 blocked, 2 normal, 3 encouraged (+5 K), 4 forced (to TempMax - 5 K); "
            "default 2"},
    {OWN(8, "Command", 1, SUNSPEC_UINT16, 0, 1, ""), .kind = ROW_CONTROL, .slot = SLOT_BO_CMD,
     .c = 0, .min = 0, .max = 3,
     .doc = "0 none, 1 start (one heating cycle), 2 stop, 3 reset a FAULT; executed at the "
            "next tick, then cleared to 0"},
    {OWN(9, "FaultCode", 1, SUNSPEC_UINT16, 0, 0, ""), .kind = ROW_MEASURE, .get = v_bo_fault,
     .doc = "0 none, 1 over-temperature, 2 injected"},
    {OWN(10, "TempMax", 1, SUNSPEC_INT16, -1, 0, "C"), .kind = ROW_STATIC, .get = v_bo_tmax,
     .doc = "over-temperature trip"},
    {OWN(11, "RatedPower", 1, SUNSPEC_UINT16, 0, 0, "W"), .kind = ROW_STATIC, .get = v_bo_rated,
     .doc = "element rating (at most 65534 W)"},
    {OWN(12, "Energy", 2, SUNSPEC_UINT32, 0, 0, "Wh"), .kind = ROW_MEASURE, .get = v_bo_energy,
     .doc = "energy drawn, accumulated"},
    {OWN(14, "HeatDemand", 1, SUNSPEC_UINT16, 0, 0, ""), .kind = ROW_MEASURE, .get = v_bo_demand,
     .doc = "thermostat output: 1 wants heat"},
};

#define N(x) (sizeof(x) / sizeof((x)[0]))

/* ---- resolved rows: reading and writing ------------------------------------------------ */

static uint16_t *regs_of(const struct sim_asset *a)
{
    return regimage_regs(a->img);
}

/* 10^n for n in [0, 22]: every entry is exact in a double, as are the products sunspec.c's
 * pow10i forms, so scaling with the table gives the same bits as scaling through sunspec.c. */
static const double pow10_tab[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
#define SF_LIMIT 22 /* sunspec.c refuses scale factors beyond +-22 */

/* round() (half away from zero) without the libm call, for a finite x: x - trunc(x) is exact
 * below 2^52, and from 2^52 on every double is a whole number already. Without branches on
 * the fraction, which a noisy measurement would mispredict half the time. */
static double round_half_away(double x)
{
    if (!(fabs(x) < 4503599627370496.0))
        return x;
    double t = (double)(int64_t)x;
    double d = x - t;
    return t + (double)(d >= 0.5) - (double)(d <= -0.5);
}

/* Fills r->c for the point r->p. The point gets a fast path only when the public SunSpec API
 * agrees with enc_classes about its type (range and "not implemented" words). */
static void codec_init(struct resolved *r)
{
    struct codec *c = &r->c;
    const struct sunspec_point *p = &r->p;
    *c = (struct codec){.at = (uint16_t)(r->model_off + p->offset)};
    enum enc enc;
    switch (p->type) {
    case SUNSPEC_INT16:
    case SUNSPEC_SUNSSF:
        enc = ENC_I16;
        break;
    case SUNSPEC_UINT16:
    case SUNSPEC_ENUM16:
    case SUNSPEC_BITFIELD16:
    case SUNSPEC_RAW16:
        enc = ENC_U16;
        break;
    case SUNSPEC_ACC16:
    case SUNSPEC_COUNT:
        enc = ENC_A16;
        break;
    case SUNSPEC_INT32:
        enc = ENC_I32;
        break;
    case SUNSPEC_UINT32:
    case SUNSPEC_ENUM32:
    case SUNSPEC_BITFIELD32:
        enc = ENC_U32;
        break;
    case SUNSPEC_ACC32:
    case SUNSPEC_IPADDR:
        enc = ENC_A32;
        break;
    case SUNSPEC_UINT64:
    case SUNSPEC_BITFIELD64:
        enc = ENC_U64;
        break;
    case SUNSPEC_ACC64:
        enc = ENC_A64;
        break;
    default:
        return;
    }
    const struct enc_class *k = &enc_classes[enc];
    int64_t lo, hi;
    uint16_t na[4] = {0, 0, 0, 0};
    struct sunspec_point at0 = *p;
    at0.offset = 0;
    if (p->size != k->words || sunspec_type_range(p->type, &lo, &hi) || lo != k->lo || hi != k->hi)
        return;
    sunspec_write_na(&at0, na);
    uint64_t na_words = 0;
    for (int i = 0; i < k->words; i++)
        na_words = na_words << 16 | na[i];
    if (na_words != k->na)
        return;
    if (p->sf_index >= 0) {
        if (!r->m || p->sf_index >= r->m->n_points)
            return;
        const struct sunspec_point *sp = &r->m->points[p->sf_index];
        if (sp->type != SUNSPEC_SUNSSF || sp->size != 1)
            return;
        c->sf_reg = 1;
        c->sf_at = (uint16_t)(r->model_off + sp->offset);
    } else if (p->sf_index == SUNSPEC_SF_FIXED) {
        if (p->sf_fixed < -SF_LIMIT || p->sf_fixed > SF_LIMIT)
            return;
        c->sf = (int8_t)p->sf_fixed;
    } else if (p->sf_index != SUNSPEC_SF_NONE) {
        return;
    }
    c->enc = (uint8_t)enc;
}

static uint64_t codec_get(const struct codec *c, const uint16_t *regs)
{
    const uint16_t *w = regs + c->at;
    switch (enc_classes[c->enc].words) {
    case 1:
        return w[0];
    case 2:
        return (uint32_t)w[0] << 16 | w[1];
    default:
        return (uint64_t)w[0] << 48 | (uint64_t)w[1] << 32 | (uint32_t)w[2] << 16 | w[3];
    }
}

static void put_words(enum enc enc, uint16_t *w, uint64_t u)
{
    for (int i = enc_classes[enc].words - 1; i >= 0; i--, u >>= 16)
        w[i] = (uint16_t)u;
}

/* The scale factor as sunspec_point_sf reads it: 0, or -ENODATA for a "not implemented" sunssf
 * register, 1 for one outside +-22 (left to the slow path, which knows what to do with it). */
static int codec_sf(const struct codec *c, const uint16_t *regs, int *sf)
{
    if (!c->sf_reg) {
        *sf = c->sf;
        return 0;
    }
    uint16_t w = regs[c->sf_at];
    if (w == 0x8000)
        return -ENODATA;
    *sf = (int16_t)w;
    return *sf < -SF_LIMIT || *sf > SF_LIMIT ? 1 : 0;
}

/* sunspec_read_value on the fast path: 0 or a negative error as it returns them; 1 when the
 * point needs the slow path (and for 64-bit points, which no control uses). */
static int codec_read(const struct codec *c, const uint16_t *regs, double *v)
{
    const struct enc_class *k = &enc_classes[c->enc];
    if (k->words != 1 && k->words != 2)
        return 1;
    uint32_t u = (uint32_t)codec_get(c, regs);
    int64_t raw = u;
    if (k->lo < 0)
        raw = k->words == 1 ? (int16_t)u : (int32_t)u;
    if (u == k->na)
        return -ENODATA;
    int sf, rc = codec_sf(c, regs, &sf);
    if (rc)
        return rc;
    *v = sf < 0 ? (double)raw / pow10_tab[-sf] : (double)raw * pow10_tab[sf];
    return 0;
}

/* The words sunspec_write_value (and res_write's saturation when it refuses) gives v at scale
 * factor sf. 0, or 1 when the slow path must decide (infinities, values past 9.2e18). */
static int encode(enum enc enc, int sf, double v, uint64_t *words)
{
    const struct enc_class *k = &enc_classes[enc];
    if (isnan(v)) {
        *words = k->na;
        return 0;
    }
    if (!isfinite(v))
        return 1;
    /* x / 10^0 is x, so only a positive sf needs the division sunspec.c makes. */
    /* |sf| <= SF_LIMIT here: codec_sf sends anything wider to the slow path */
    double x =
        round_half_away(sf <= 0 ? v * pow10_tab[-sf]
                                : v / pow10_tab[sf]); // cppcheck-suppress arrayIndexOutOfBoundsCond
    int64_t raw;
    if (k->is_acc && v >= 0) {
        if (x >= 9.2e18) /* past what sunspec_unscale converts */
            return 1;
        raw = (int64_t)x;
        if (k->words < 4) /* roll over */
            raw &= (int64_t)((1ull << (16 * k->words)) - 1);
    } else if (x < (double)k->lo || x > (double)k->hi || x >= 9.2e18 || x <= -9.2e18) {
        raw = v > 0 ? k->hi : k->lo;
    } else {
        raw = (int64_t)x;
    }
    *words = (uint64_t)raw;
    if (k->words < 4)
        *words &= (1ull << (16 * k->words)) - 1;
    return 0;
}

/* res_write on the fast path: 0 when done, 1 when the point needs the slow path. */
static int codec_write(const struct codec *c, uint16_t *regs, double v)
{
    if (c->enc == ENC_NONE)
        return 1;
    uint64_t words;
    int sf = 0, rc = 0;
    if (!isnan(v)) { /* res_write writes NAN as "not implemented" before any scale factor */
        rc = codec_sf(c, regs, &sf);
        if (rc == -ENODATA)
            return 0; /* no scale factor, no value: sunspec_write_value writes nothing */
        if (rc)
            return 1;
    }
    if (encode(c->enc, sf, v, &words))
        return 1;
    put_words(c->enc, regs + c->at, words);
    return 0;
}

static int res_value(const struct resolved *r, const uint16_t *regs, double *v)
{
    int rc = codec_read(&r->c, regs, v);
    if (rc <= 0)
        return rc;
    return sunspec_read_value(r->m, &r->p, regs + r->model_off, v);
}

static int slot_value(const struct regmap_state *st, enum slot s, const uint16_t *regs, double *v)
{
    if (st->slot[s] < 0)
        return -ENOENT;
    return res_value(&st->res[st->slot[s]], regs, v);
}

static uint64_t res_words(const struct resolved *r, const uint16_t *regs)
{
    if (r->c.enc != ENC_NONE)
        return codec_get(&r->c, regs);
    uint64_t u = 0;
    for (uint16_t i = 0; i < r->p.size && i < 4; i++)
        u = u << 16 | regs[r->model_off + r->p.offset + i];
    return u;
}

/* Writes v, saturating at the type's limits when it does not fit (a spike of 1 MW on an int16
 * point reads as the largest value the point can show). NAN writes "not implemented". */
static void res_write(const struct resolved *r, uint16_t *regs, double v)
{
    if (codec_write(&r->c, regs, v) == 0)
        return;
    uint16_t *mr = regs + r->model_off;
    if (isnan(v)) {
        sunspec_write_na(&r->p, mr);
        return;
    }
    if (sunspec_write_value(r->m, &r->p, mr, v) != -ERANGE)
        return;
    int64_t lo, hi;
    if (sunspec_type_range(r->p.type, &lo, &hi) == 0)
        sunspec_write_raw(&r->p, mr, v > 0 ? hi : lo);
}

static void res_put(struct sim_asset *a, struct regmap_state *st, const struct resolved *r)
{
    const struct row *row = r->row;
    uint16_t *regs = regs_of(a);
    if (row->text) {
        sunspec_write_string(&r->p, regs + r->model_off, row->text(a));
    } else if (row->sym) {
        uint32_t v;
        if (sunspec_symbol_value(&r->p, row->sym(a, st), &v) == 0)
            sunspec_write_raw(&r->p, regs + r->model_off, v);
        else
            sunspec_write_na(&r->p, regs + r->model_off);
    } else if (row->get) {
        res_write(r, regs, row->get(a, st));
    } else if (row->kind == ROW_SF && row->sfc != SFC_CONST) {
        res_write(r, regs, st->sf[row->sfc]);
    } else {
        res_write(r, regs, row->c);
    }
}

static void control_defaults(struct sim_asset *a, struct regmap_state *st)
{
    for (size_t i = 0; i < st->n_ctl; i++) {
        struct resolved *r = &st->res[st->ctl[i]];
        res_put(a, st, r);
        r->snap = res_words(r, regs_of(a));
        r->touched = r->changed = 0;
    }
    for (int g = 0; g < GRP_N; g++)
        st->rvrt_rem_s[g] = 0;
    st->last_writes = a->img->writes;
    st->settled = 0;
}

/* What res_put does for an enumerated point, when its symbol is not the one it shows. */
static void pub_symbol(const struct resolved *r, uint16_t *regs, const char *name)
{
    uint32_t v;
    if (sunspec_symbol_value(&r->p, name, &v) == 0)
        sunspec_write_raw(&r->p, regs + r->model_off, v);
    else
        sunspec_write_na(&r->p, regs + r->model_off);
}

/* A measurement row as res_put writes it. In full, exactly as res_put (fast where it can be),
 * then the entry learns the scale factor and whether its words show the value; otherwise
 * the value is encoded with the remembered scale factor, and written only if it changed. */
static void pub_put(struct sim_asset *a, struct regmap_state *st, struct pub *e, int full)
{
    const struct row *row = &st->map->rows[e->row];
    uint16_t *regs = st->regs;
    full |= e->flags & PUB_ALWAYS;
    if (e->flags & PUB_SLOW) {
        res_put(a, st, &st->res[e->row]);
        return;
    }
    if (row->sym) {
        const char *name = row->sym(a, st);
        if (full || name != e->last.sym_name)
            pub_symbol(&st->res[e->row], regs, name);
        e->last.sym_name = name;
        return;
    }
    double v = row->get ? row->get(a, st) : row->c;
    uint64_t words;
    if (!full && (e->flags & PUB_SF_OK)) {
        /* Bit for bit the value the words show: they stand. */
        if ((e->flags & PUB_KNOWN) && !memcmp(&v, &e->last.v, sizeof v))
            return;
        if (encode(e->enc, e->sf, v, &words) == 0) {
            put_words(e->enc, regs + e->at, words);
            e->last.v = v;
            e->flags |= PUB_KNOWN;
            return;
        }
    }
    const struct resolved *r = &st->res[e->row];
    int sf;
    int sf_ok = codec_sf(&r->c, regs, &sf) == 0;
    int known = codec_write(&r->c, regs, v) == 0 && sf_ok;
    if (!known)
        res_write(r, regs, v);
    e->sf = (int8_t)(sf_ok ? sf : 0);
    e->flags = (uint8_t)((e->flags & (PUB_ALWAYS | PUB_SLOW)) | (sf_ok ? PUB_SF_OK : 0) |
                         (known ? PUB_KNOWN : 0));
    e->last.v = v;
}

/* ---- validation ------------------------------------------------------------------------ */

static int is_enum(enum sunspec_type t)
{
    return t == SUNSPEC_ENUM16 || t == SUNSPEC_ENUM32;
}

static int overlaps(uint32_t off, uint32_t size, uint32_t lo, uint32_t hi)
{
    return off < hi && lo < off + size;
}

static int check_control(const struct sim_asset *a, const struct regmap_state *st,
                         const struct resolved *r, const uint16_t *scratch)
{
    double v;
    if (res_value(r, scratch, &v))
        return 3; /* "not implemented" is no value for a point the device implements */
    if (is_enum(r->p.type) && !sunspec_symbol_name(&r->p, (uint32_t)v))
        return 3;
    if (r->row->check)
        return r->row->check(a, st, scratch, v);
    if (r->row->min < r->row->max && (v < r->row->min || v > r->row->max))
        return 3;
    return 0;
}

static int validate(void *ctx, uint16_t addr, uint16_t n, const uint16_t *values)
{
    struct sim_asset *a = ctx;
    struct regmap_state *st = a->map_state;
    struct regimage *img = a->img;
    uint32_t lo = (uint32_t)addr - img->start, hi = lo + n;
    st->maybe_moved = 1; /* the words may land after this (regmap_read_controls) */
    if (addr < img->start || hi > img->count)
        return 2;
    memcpy(st->scratch, regs_of(a), img->count * sizeof *st->scratch);
    memcpy(st->scratch + lo, values, n * sizeof *values);

    for (size_t i = 0; i < st->n_ctl; i++) {
        const struct resolved *r = &st->res[st->ctl[i]];
        if (overlaps(r->model_off + r->p.offset, r->p.size, lo, hi)) {
            int rc = check_control(a, st, r, st->scratch);
            if (rc)
                return rc;
        }
    }
    /* Writable enumerated points the simulator only stores still take only their symbols
     * (or "not implemented"), as a device would. */
    for (size_t k = 0; k < st->n_models; k++) {
        const struct sunspec_model *m = sunspec_model_find(st->layout[k].id);
        uint32_t moff = st->layout[k].start - img->start;
        for (uint16_t i = 2; m && i < m->n_points; i++) {
            const struct sunspec_point *p = &m->points[i];
            if (!p->writable || !is_enum(p->type) || !overlaps(moff + p->offset, p->size, lo, hi))
                continue;
            int64_t raw;
            int rc = sunspec_read_raw(p, st->scratch + moff, &raw);
            if (rc == 0 && !sunspec_symbol_name(p, (uint32_t)raw))
                return 3;
        }
    }
    for (size_t i = 0; i < st->n_ctl; i++) {
        struct resolved *r = &st->res[st->ctl[i]];
        if (overlaps(r->model_off + r->p.offset, r->p.size, lo, hi))
            r->touched = 1;
    }
    return 0;
}

/* ---- controls -------------------------------------------------------------------------- */

static double slot_or(const struct sim_asset *a, const struct regmap_state *st, enum slot s,
                      double fallback)
{
    double v;
    return slot_value(st, s, regs_of(a), &v) ? fallback : v;
}

static void slot_put(struct sim_asset *a, struct regmap_state *st, enum slot s, double v)
{
    if (st->slot[s] < 0)
        return;
    struct resolved *r = &st->res[st->slot[s]];
    res_write(r, regs_of(a), v);
    r->snap = res_words(r, regs_of(a));
}

/* Only control points change (regmap_read_controls), which sums them up per group. */
static int group_changed(const struct regmap_state *st, enum group g)
{
    return (st->changed_groups >> g) & 1u;
}

static int any_changed(const struct regmap_state *st)
{
    return st->any_changed;
}

/* Reversion (704 *RvrtTms): an enabled control lapses tms seconds after the last write to its
 * group; the lapse shows on the wire (the enable point reads DISABLED again). Returns the
 * enable flag after the check. */
static int reversion(struct sim_asset *a, struct regmap_state *st, enum group g, enum slot ena_slot,
                     enum slot tms_slot, int64_t now_ms)
{
    int ena = slot_or(a, st, ena_slot, 0) == 1.0;
    double tms = slot_or(a, st, tms_slot, 0);
    if (group_changed(st, g))
        st->grp_write_ms[g] = now_ms;
    st->rvrt_rem_s[g] = 0;
    if (!ena || !(tms > 0))
        return ena;
    st->settled = 0; /* a timer runs: the clock alone can change the outcome */
    int64_t due = st->grp_write_ms[g] + (int64_t)(tms * 1000.0);
    if (now_ms >= due) {
        slot_put(a, st, ena_slot, 0);
        return 0;
    }
    st->rvrt_rem_s[g] = ceil((double)(due - now_ms) / 1000.0);
    return ena;
}

static void battery_controls(struct sim_asset *a, struct regmap_state *st, int64_t now_ms)
{
    struct battery *b = &a->m.battery;
    int ena = reversion(a, st, GRP_WSET, SLOT_WSET_ENA, SLOT_WSET_RVRT_TMS, now_ms);
    double wmax = slot_or(a, st, SLOT_WMAX, b->p.max_discharge_w);
    double w = 0.0;
    if (ena) {
        if (slot_or(a, st, SLOT_WSET_MOD, 1) == 1.0) /* WATTS */
            w = slot_or(a, st, SLOT_WSET, 0);
        else /* W_MAX_PCT */
            w = slot_or(a, st, SLOT_WSET_PCT, 0) / 100.0 * wmax;
    }
    double dis_max = slot_or(a, st, SLOT_WDISCHA_MAX, b->p.max_discharge_w);
    double cha_max = slot_or(a, st, SLOT_WCHA_MAX, b->p.max_charge_w);
    if (w > wmax)
        w = wmax;
    if (w > dis_max)
        w = dis_max;
    if (w < -cha_max)
        w = -cha_max;
    if (w != st->cmd || group_changed(st, GRP_WSET)) {
        battery_command(b, now_ms, w);
        st->cmd = w;
    }
}

static void pv_controls(struct sim_asset *a, struct regmap_state *st, int64_t now_ms)
{
    int ena = reversion(a, st, GRP_WMAXLIM, SLOT_WMAXLIM_ENA, SLOT_WMAXLIM_RVRT_TMS, now_ms);
    double pct = ena ? slot_or(a, st, SLOT_WMAXLIM_PCT, 100) : 100.0;
    if (pct != st->cmd || group_changed(st, GRP_WMAXLIM)) {
        pv_command_limit(&a->m.pv, now_ms, pct);
        st->cmd = pct;
    }
}

/* Every accepted write re-sends the command: the model's failsafe watchdog counts writes. */
static void evse_controls(struct sim_asset *a, struct regmap_state *st, int64_t now_ms)
{
    struct evse *e = &a->m.evse;
    double limit = slot_or(a, st, SLOT_EV_LIMIT, e->p.default_current_a);
    int enable = slot_or(a, st, SLOT_EV_ENABLE, 1) != 0.0;
    e->p.failsafe_ms = (int64_t)(slot_or(a, st, SLOT_EV_FS_TIMEOUT, 0) * 1000.0);
    e->p.failsafe_current_a = slot_or(a, st, SLOT_EV_FS_CURRENT, 0);
    st->ev_fs_ms_set = e->p.failsafe_ms;
    st->ev_fs_a_set = e->p.failsafe_current_a;
    if (limit != st->ev_limit_a || enable != st->ev_enable || any_changed(st)) {
        evse_command(e, now_ms, limit, enable);
        st->ev_limit_a = limit;
        st->ev_enable = enable;
    }
}

static void boiler_controls(struct sim_asset *a, struct regmap_state *st, int64_t now_ms)
{
    struct boiler *b = &a->m.boiler;
    double limit = slot_or(a, st, SLOT_BO_LIMIT, b->p.rated_w);
    double setpoint = slot_or(a, st, SLOT_BO_SETPOINT, b->p.setpoint_c);
    int sg = (int)slot_or(a, st, SLOT_BO_SG, 2);
    if (limit != st->bo_limit_w || setpoint != st->bo_setpoint_c || sg != st->bo_sg) {
        boiler_set(b, limit, setpoint, sg);
        st->bo_limit_w = limit;
        st->bo_setpoint_c = setpoint;
        st->bo_sg = sg;
    }
    int cmd = (int)slot_or(a, st, SLOT_BO_CMD, 0);
    if (cmd >= BOILER_CMD_START && cmd <= BOILER_CMD_RESET) {
        boiler_command(b, now_ms, (enum boiler_cmd)cmd);
        slot_put(a, st, SLOT_BO_CMD, 0); /* executed: the register reads 0 again */
    }
}

static void battery_reset_model(struct sim_asset *a, struct regmap_state *st)
{
    battery_reset(&a->m.battery);
    st->cmd = 0.0;
}

static void pv_reset_model(struct sim_asset *a, struct regmap_state *st)
{
    pv_reset(&a->m.pv);
    st->cmd = 100.0;
}

static void evse_reset_model(struct sim_asset *a, struct regmap_state *st)
{
    struct evse *e = &a->m.evse;
    e->p.failsafe_ms = (int64_t)st->fs_ms0;
    e->p.failsafe_current_a = st->fs_a0;
    evse_reset(e);
    st->ev_limit_a = e->p.default_current_a;
    st->ev_enable = 1;
}

static void boiler_reset_model(struct sim_asset *a, struct regmap_state *st)
{
    struct boiler *b = &a->m.boiler;
    boiler_set(b, b->p.rated_w, b->p.setpoint_c, 2);
    st->bo_limit_w = b->p.rated_w;
    st->bo_setpoint_c = b->p.setpoint_c;
    st->bo_sg = 2;
}

static const struct asset_map maps[] = {
    {ASSET_BATTERY, "Battery", "A battery inverter with its battery: SunSpec DER models.", 40000,
     battery_models, N(battery_models), 0, battery_rows, N(battery_rows), battery_controls,
     battery_reset_model},
    {ASSET_PV, "PV", "A PV inverter: SunSpec DER models.", 40000, pv_models, N(pv_models), 0,
     pv_rows, N(pv_rows), pv_controls, pv_reset_model},
    {ASSET_METER, "Meter",
     "A three-phase (wye) meter, in the grid role (`+` import, `-` export) or the load role "
     "(`+` consumption). SunSpec model 203 leaves the sign of W to vendors; the gateway takes "
     "it as a per-device setting.",
     40000, meter_models, N(meter_models), 0, meter_rows, N(meter_rows), NULL, NULL},
    {ASSET_EVSE, "EVSE",
     "An AC charger: our own map in the style of common chargers (IEC 61851 state as a "
     "letter, current limit in 0.1 A, a failsafe current), at holding register 0.",
     0, NULL, 0, 21, evse_rows, N(evse_rows), evse_controls, evse_reset_model},
    {ASSET_BOILER, "Boiler",
     "An electric water heater: our own map in the style of power-controlled heating elements "
     "and SG-Ready, at holding register 0.",
     0, NULL, 0, 15, boiler_rows, N(boiler_rows), boiler_controls, boiler_reset_model},
};

static const struct asset_map *map_for(enum asset_type t)
{
    for (size_t i = 0; i < N(maps); i++)
        if (maps[i].type == t)
            return &maps[i];
    return NULL;
}

/* ---- attach, publish, controls, reset -------------------------------------------------- */

/* The full-scale value of each chosen scale-factor class, the type it must fit and the finest
 * resolution worth showing. */
static int choose_sfs(const struct sim_asset *a, struct regmap_state *st, char *err, size_t errlen)
{
    double p_w = 0, wh = 0, dc_v = 1;
    switch (a->type) {
    case ASSET_BATTERY:
        p_w = bat_rated_w(a);
        wh = a->m.battery.p.capacity_wh;
        dc_v = bat_dc_v(a);
        break;
    case ASSET_PV:
        p_w = pv_rated_w(a);
        break;
    case ASSET_METER:
        p_w = meter_phases(a) * (a->m.meter.p.voltage_v > 0 ? a->m.meter.p.voltage_v : AC_LN_V) *
              METER_FULL_SCALE_A;
        break;
    default:
        return 0;
    }
    struct {
        enum sf_class c;
        enum sunspec_type t;
        double max;
        int sf_min;
    } plan[] = {
        {SFC_POWER16, SUNSPEC_INT16, p_w, 0},
        {SFC_RATING16, SUNSPEC_UINT16, p_w, 0},
        {SFC_AC_A16, SUNSPEC_INT16,
         a->type == ASSET_METER ? METER_FULL_SCALE_A * meter_phases(a)
                                : p_w / (AC_PHASES * AC_LN_V),
         -2},
        {SFC_DC_A16, SUNSPEC_INT16, p_w / dc_v, -2},
        {SFC_WH16, SUNSPEC_UINT16, wh, 0},
        {SFC_AH16, SUNSPEC_UINT16, wh / dc_v, -1},
    };
    for (size_t i = 0; i < N(plan); i++)
        if (sunspec_choose_sf(plan[i].t, plan[i].max, plan[i].sf_min, &st->sf[plan[i].c])) {
            snprintf(err, errlen, "asset %s: rating %g does not fit a SunSpec %s point",
                     a->cfg ? a->cfg->id : "?", plan[i].max, sunspec_type_name(plan[i].t));
            return -ERANGE;
        }
    return 0;
}

/* Whether anything but regmap can write registers [at, at + n): a client, through a
 * writable register. */
static int reachable(const struct sim_asset *a, uint16_t at, uint16_t n)
{
    for (uint16_t w = 0; w < n; w++)
        if (a->img->writable[at + w])
            return 1;
    return 0;
}

/* The per-step plans: the measurement rows publish writes, the control rows read_controls
 * compares, and the scale-factor registers those are decoded with. */
static int plan(struct sim_asset *a, struct regmap_state *st)
{
    st->pub = calloc(st->n_res, sizeof *st->pub);
    st->ctl = calloc(st->n_res, sizeof *st->ctl);
    if (!st->pub || !st->ctl)
        return -ENOMEM;
    for (size_t i = 0; i < st->n_res; i++) {
        const struct resolved *r = &st->res[i];
        const struct row *row = r->row;
        if (row->kind == ROW_MEASURE) {
            struct pub *e = &st->pub[st->n_pub++];
            e->row = (uint16_t)i;
            e->at = r->c.at;
            e->enc = r->c.enc;
            if (reachable(a, r->model_off + r->p.offset, r->p.size) ||
                (r->c.sf_reg && reachable(a, r->c.sf_at, 1)))
                e->flags |= PUB_ALWAYS;
            if (row->text || r->c.enc == ENC_NONE)
                e->flags |= PUB_SLOW;
        } else if (row->kind == ROW_CONTROL) {
            st->ctl[st->n_ctl++] = (uint16_t)i;
            if (r->c.enc == ENC_NONE) {
                st->settle_never = 1; /* its scale factor would go unwatched */
                continue;
            }
            if (!r->c.sf_reg)
                continue;
            size_t k = 0;
            while (k < st->n_sf_watch && st->sf_watch_at[k] != r->c.sf_at)
                k++;
            if (k == MAX_SF_WATCH)
                st->settle_never = 1;
            else if (k == st->n_sf_watch)
                st->sf_watch_at[st->n_sf_watch++] = r->c.sf_at;
        }
    }
    return 0;
}

static int resolve(struct sim_asset *a, struct regmap_state *st, char *err, size_t errlen)
{
    const struct asset_map *map = st->map;
    st->res = calloc(map->n_rows, sizeof *st->res);
    if (!st->res)
        return -ENOMEM;
    for (int s = 0; s < SLOT_N; s++)
        st->slot[s] = -1;
    for (size_t i = 0; i < map->n_rows; i++) {
        const struct row *row = &map->rows[i];
        struct resolved *r = &st->res[st->n_res];
        r->row = row;
        if (row->model) {
            size_t k = 0;
            while (k < st->n_models && st->layout[k].id != row->model)
                k++;
            const struct sunspec_point *p =
                sunspec_point_find(sunspec_model_find(row->model), row->point);
            if (k == st->n_models || !p) {
                snprintf(err, errlen, "regmap: %s map: no point %d.%s", map->title, row->model,
                         row->point);
                return -EINVAL;
            }
            r->m = sunspec_model_find(row->model);
            r->p = *p;
            r->model_off = (uint16_t)(st->layout[k].start - a->img->start);
        } else {
            r->p = (struct sunspec_point){.name = row->point,
                                          .offset = row->addr,
                                          .size = row->size,
                                          .type = row->type,
                                          .writable = row->writable,
                                          .sf_index = SUNSPEC_SF_FIXED,
                                          .sf_fixed = row->sf,
                                          .units = row->unit};
            for (uint16_t w = 0; w < row->size; w++)
                a->img->writable[row->addr + w] = row->writable;
        }
        codec_init(r);
        if (row->slot != SLOT_NONE)
            st->slot[row->slot] = (int)st->n_res;
        st->n_res++;
    }
    return plan(a, st);
}

void regmap_detach(struct sim_asset *a)
{
    struct regmap_state *st = a->map_state;
    if (st) {
        free(st->res);
        free(st->pub);
        free(st->ctl);
        free(st->scratch);
        free(st);
    }
    regimage_free(a->img);
    a->img = NULL;
    a->map_state = NULL;
}

int regmap_attach(struct sim_asset *a, char *err, size_t errlen)
{
    a->img = NULL;
    a->map_state = NULL;
    if (a->type == ASSET_LOAD)
        return 0; /* measured by a load-role meter */
    const struct asset_map *map = map_for(a->type);
    if (!map) {
        snprintf(err, errlen, "regmap: no register map for asset type %d", (int)a->type);
        return -EINVAL;
    }
    if (a->type == ASSET_BOILER && !(a->m.boiler.p.rated_w <= 65534.0)) {
        snprintf(err, errlen, "asset %s: boiler rated_w %g above the map's 65534 W",
                 a->cfg ? a->cfg->id : "?", a->m.boiler.p.rated_w);
        return -ERANGE;
    }
    /* On a cache-line boundary, so the fields every step reads share as few lines as they
     * can (with 1,000 sites in a process they are fetched from memory at every step). */
    size_t st_size = (sizeof(struct regmap_state) + 63) / 64 * 64;
    struct regmap_state *st = aligned_alloc(64, st_size);
    if (!st)
        return -ENOMEM;
    memset(st, 0, st_size);
    a->map_state = st;
    st->map = map;
    int rc = choose_sfs(a, st, err, errlen);
    if (rc)
        goto fail;

    uint16_t count = map->own_count;
    if (map->n_models) {
        st->n_models = map->n_models;
        if ((rc = sunspec_layout(map->models, map->n_models, map->base, st->layout, &count))) {
            snprintf(err, errlen, "regmap: %s: SunSpec layout failed", map->title);
            goto fail;
        }
    }
    rc = -ENOMEM;
    a->img = regimage_new(map->base, count);
    st->scratch = calloc(count, sizeof *st->scratch);
    if (!a->img || !st->scratch) {
        snprintf(err, errlen, "regmap: out of memory");
        goto fail;
    }
    if (map->n_models) {
        sunspec_image_init(regs_of(a), count, map->base, st->layout, st->n_models);
        for (size_t k = 0; k < st->n_models; k++) {
            const struct sunspec_model *m = sunspec_model_find(st->layout[k].id);
            uint16_t moff = st->layout[k].start - map->base;
            for (uint16_t i = 2; i < m->n_points; i++)
                for (uint16_t w = 0; w < m->points[i].size; w++)
                    a->img->writable[moff + m->points[i].offset + w] = m->points[i].writable;
        }
    }
    if ((rc = resolve(a, st, err, errlen)))
        goto fail;
    a->img->validate = validate;
    a->img->ctx = a;
    st->regs = regs_of(a);
    st->pub_full = 1;

    if (a->type == ASSET_EVSE) {
        st->fs_ms0 = (double)a->m.evse.p.failsafe_ms;
        st->fs_a0 = a->m.evse.p.failsafe_current_a;
    }
    /* Scale factors first: every other value is encoded with them. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < st->n_res; i++) {
            enum row_kind k = st->res[i].row->kind;
            if (pass == 0 ? k == ROW_SF : k == ROW_STATIC)
                res_put(a, st, &st->res[i]);
        }
    control_defaults(a, st);
    /* The command state mirrors the model as initialised (battery 0 W, PV 100 %, ...). */
    st->cmd = a->type == ASSET_PV ? 100.0 : 0.0;
    st->ev_limit_a = a->type == ASSET_EVSE ? a->m.evse.p.default_current_a : 0.0;
    st->ev_enable = 1;
    if (a->type == ASSET_BOILER) {
        st->bo_limit_w = a->m.boiler.power_limit_w;
        st->bo_setpoint_c = a->m.boiler.setpoint_c;
        st->bo_sg = a->m.boiler.sg_mode;
    }
    regmap_publish(a, 0);
    return 0;
fail:
    regmap_detach(a);
    return rc;
}

/* The point a spike overrides: "" = the main power point; "MODEL.Point" picks a model;
 * otherwise the first model of the image (in order) that has the point. */
static const struct resolved *spike_target(struct regmap_state *st, const char *name,
                                           struct resolved *tmp, uint16_t img_start)
{
    if (!*name)
        name = st->map->n_models ? "W" : "Power";
    for (size_t i = 0; i < st->n_res; i++)
        if (!st->res[i].row->model && !strcmp(st->res[i].row->point, name))
            return &st->res[i];
    unsigned want = 0;
    const char *dot = strchr(name, '.');
    if (dot && dot > name && strspn(name, "0123456789") == (size_t)(dot - name)) {
        want = (unsigned)atoi(name);
        name = dot + 1;
    }
    for (size_t k = 0; k < st->n_models; k++) {
        if (want && st->layout[k].id != want)
            continue;
        const struct sunspec_model *m = sunspec_model_find(st->layout[k].id);
        const struct sunspec_point *p = sunspec_point_find(m, name);
        if (p && p->type != SUNSPEC_STRING) {
            tmp->m = m;
            tmp->p = *p;
            tmp->model_off = (uint16_t)(st->layout[k].start - img_start);
            return tmp;
        }
    }
    return NULL;
}

void regmap_publish(struct sim_asset *a, int64_t now_ms)
{
    struct regmap_state *st = a->map_state;
    if (!st || !a->img || a->frozen)
        return;
    st->now_ms = now_ms;
    st->heartbeat++;
    int full = st->pub_full;
    st->pub_full = 0;
    for (size_t i = 0; i < st->n_pub; i++)
        pub_put(a, st, &st->pub[i], full);
    if (a->spike) {
        struct resolved tmp = {0};
        const struct resolved *r = spike_target(st, a->spike_point, &tmp, a->img->start);
        if (r) {
            res_write(r, regs_of(a), a->spike_value);
            /* Words no entry knows about, maybe a scale factor or a control point: the next
             * publish writes everything again, the next read compares the controls. */
            st->pub_full = 1;
            st->maybe_moved = 1;
        }
    }
}

/* The EVSE's failsafe parameters are set by every control pass; the model must still hold
 * what the last one gave it for a skipped pass to leave it as a full one would. */
static int model_as_left(const struct sim_asset *a, const struct regmap_state *st)
{
    if (a->type != ASSET_EVSE)
        return 1;
    const struct evse_params *p = &a->m.evse.p;
    return p->failsafe_ms == st->ev_fs_ms_set &&
           !memcmp(&p->failsafe_current_a, &st->ev_fs_a_set, sizeof st->ev_fs_a_set);
}

void regmap_read_controls(struct sim_asset *a, int64_t now_ms)
{
    struct regmap_state *st = a->map_state;
    if (!st || !a->img)
        return;
    /* The site steps every model before it publishes: time enough to fetch the entries
     * publish will walk, which with many sites in a process would otherwise be fetched one
     * miss at a time. */
    __builtin_prefetch((const char *)st + 64);
    for (size_t i = 0; i < st->n_pub; i += 64 / sizeof *st->pub)
        __builtin_prefetch(&st->pub[i]);
    if (!st->map->controls)
        return;
    st->now_ms = now_ms;
    int written = a->img->writes != st->last_writes;
    st->last_writes = a->img->writes;
    /* Nothing the control code reads has moved since its last pass (the image changes only
     * through regmap, spikes included, and through writes validate saw first), and that pass
     * left the model in step and started no timer: this one would send nothing. */
    if (st->settled && !st->maybe_moved && !written && model_as_left(a, st))
        return;
    st->maybe_moved = 0;
    const uint16_t *regs = st->regs;
    st->changed_groups = 0;
    st->any_changed = 0;
    for (size_t i = 0; i < st->n_ctl; i++) {
        struct resolved *r = &st->res[st->ctl[i]];
        uint64_t now_words = res_words(r, regs);
        r->changed = now_words != r->snap || (written && r->touched);
        r->snap = now_words;
        r->touched = 0;
        if (r->changed) {
            st->any_changed = 1;
            st->changed_groups |= 1u << r->row->group;
        }
    }
    int sf_moved = 0;
    for (size_t i = 0; i < st->n_sf_watch; i++)
        if (regs[st->sf_watch_at[i]] != st->sf_watch_snap[i]) {
            st->sf_watch_snap[i] = regs[st->sf_watch_at[i]];
            sf_moved = 1;
        }
    if (st->settled && !st->any_changed && !sf_moved && model_as_left(a, st))
        return; /* a write that changed nothing, or a spike that missed the controls */
    st->settled = !st->settle_never;
    st->map->controls(a, st, now_ms);
    for (size_t i = 0; i < st->n_ctl; i++)
        st->res[st->ctl[i]].changed = 0;
    st->changed_groups = 0;
    st->any_changed = 0;
}

void regmap_reset(struct sim_asset *a, int64_t now_ms)
{
    struct regmap_state *st = a->map_state;
    if (!st || !a->img)
        return;
    st->now_ms = now_ms;
    control_defaults(a, st); /* also unsettles the control code: the model starts afresh */
    for (int g = 0; g < GRP_N; g++)
        st->grp_write_ms[g] = now_ms;
    if (st->map->reset)
        st->map->reset(a, st);
}

/* ---- documentation --------------------------------------------------------------------- */

static const char *sf_rule(const struct row *row)
{
    switch (row->sfc) {
    case SFC_POWER16:
        return "chosen at start: the smallest sf >= 0 at which the rated power fits int16 "
               "(0 up to 32767 W, 1 up to 327.67 kW, ...)";
    case SFC_RATING16:
        return "chosen at start: the smallest sf >= 0 at which the rated power fits uint16";
    case SFC_AC_A16:
        return "chosen at start: the smallest sf >= -2 at which the rated AC current fits "
               "int16";
    case SFC_DC_A16:
        return "chosen at start: the smallest sf >= -2 at which rated power / voltage_v fits "
               "int16";
    case SFC_WH16:
        return "chosen at start: the smallest sf >= 0 at which capacity_wh fits uint16";
    case SFC_AH16:
        return "chosen at start: the smallest sf >= -1 at which the Ah rating fits uint16";
    default:
        return NULL;
    }
}

static const char *kind_access(const struct row *row, int writable)
{
    if (row->kind == ROW_CONTROL)
        return "RW";
    return writable ? "RW (stored)" : "R";
}

static int row_in(const struct asset_map *map, uint16_t model, const char *point)
{
    for (size_t i = 0; i < map->n_rows; i++)
        if (map->rows[i].model == model && !strcmp(map->rows[i].point, point))
            return 1;
    return 0;
}

static void md_sunspec(FILE *out, const struct asset_map *map)
{
    struct sunspec_found layout[MAX_MODELS];
    uint16_t total = 0;
    sunspec_layout(map->models, map->n_models, map->base, layout, &total);
    fprintf(out, "Image: %u registers from %u (marker `SunS` at %u, end model at %u).\n\n",
            (unsigned)total, (unsigned)map->base, (unsigned)map->base,
            (unsigned)(map->base + total - 2));
    fprintf(out, "| model | name | ID at | L | points from |\n|---|---|---|---|---|\n");
    for (size_t k = 0; k < map->n_models; k++) {
        const struct sunspec_model *m = sunspec_model_find(layout[k].id);
        fprintf(out, "| %u | %s | %u | %u | %u |\n", m->id, m->name, layout[k].start, m->length,
                layout[k].start + 2);
    }
    fprintf(out, "| 0xFFFF | end | %u | 0 | |\n\n", (unsigned)(map->base + total - 2));
    fprintf(out, "| address | model | point | type | units | scale | access | content |\n"
                 "|---|---|---|---|---|---|---|---|\n");
    for (size_t k = 0; k < map->n_models; k++) {
        const struct sunspec_model *m = sunspec_model_find(layout[k].id);
        /* Rows in address order within each model. */
        for (uint16_t i = 2; i < m->n_points; i++) {
            const struct sunspec_point *p = &m->points[i];
            for (size_t r = 0; r < map->n_rows; r++) {
                const struct row *row = &map->rows[r];
                if (row->model != m->id || strcmp(row->point, p->name))
                    continue;
                char scale[64] = "";
                if (p->sf_index >= 0)
                    snprintf(scale, sizeof scale, "%s", m->points[p->sf_index].name);
                else if (p->sf_index == SUNSPEC_SF_FIXED)
                    snprintf(scale, sizeof scale, "%d", p->sf_fixed);
                char content[512];
                if (row->kind == ROW_SF && row->sfc == SFC_CONST)
                    snprintf(content, sizeof content, "fixed %g", row->c);
                else if (row->kind == ROW_SF)
                    snprintf(content, sizeof content, "%s", sf_rule(row));
                else
                    snprintf(content, sizeof content, "%s", row->doc ? row->doc : "");
                fprintf(out, "| %u | %u | %s | %s | %s | %s | %s | %s |\n",
                        layout[k].start + p->offset, m->id, p->name, sunspec_type_name(p->type),
                        p->units, scale, kind_access(row, p->writable), content);
            }
        }
    }
    fprintf(out, "\n");
    for (size_t k = 0; k < map->n_models; k++) {
        const struct sunspec_model *m = sunspec_model_find(layout[k].id);
        int first = 1;
        for (uint16_t i = 2; i < m->n_points; i++) {
            const struct sunspec_point *p = &m->points[i];
            if (!p->writable || row_in(map, m->id, p->name))
                continue;
            fprintf(out, "%s`%s` (%u)", first ? "" : ", ", p->name, layout[k].start + p->offset);
            if (first)
                first = 0;
        }
        if (!first)
            fprintf(out, ": model %u, writable and stored without effect.\n\n", m->id);
    }
}

static void md_own(FILE *out, const struct asset_map *map)
{
    fprintf(out, "Image: %u registers from 0.\n\n", map->own_count);
    fprintf(out, "| address | point | size | type | units | scale | access | content |\n"
                 "|---|---|---|---|---|---|---|---|\n");
    for (size_t r = 0; r < map->n_rows; r++) {
        const struct row *row = &map->rows[r];
        fprintf(out, "| %u | %s | %u | %s | %s | %d | %s | %s |\n", row->addr, row->point,
                row->size, sunspec_type_name(row->type), row->unit, row->sf,
                row->kind == ROW_CONTROL ? "RW" : "R", row->doc);
    }
    fprintf(out, "\n");
}

int regmap_markdown(FILE *out)
{
    fputs(
        "# Register maps of the simulated devices\n\n"
        "Generated by `der-sim registers` from the tables in `sim/wire/regmap.c` and SunSpec's own "
        "model definitions (`gateway/devices/sunspec/model_*.json`, compiled into tables at build "
        "time). Do not edit by hand: regenerate with `build/bin/der-sim registers > "
        "docs/registers.md` (`tests/integration/test_registers_doc.sh` fails when they "
        "differ).\n\n"
        "## Conventions\n\n"
        "- Every asset answers on its own Modbus unit id; all points are holding registers "
        "(read with FC03, written with FC06 or FC16). Addresses are 0-based PDU addresses "
        "(`mbpoll -0`; add 1 for 1-based tools).\n"
        "- Battery, PV and meters present SunSpec: the marker `SunS` (0x5375 0x6E53) at "
        "40000, then models one after another, each `ID, L, L registers`, then the end "
        "model 0xFFFF 0x0000. Clients should walk the chain; the addresses below are what "
        "this simulator presents. EVSE and boiler have small maps of our own at register 0.\n"
        "- Multi-register values are big-endian, high word first (`mbpoll -B`). Strings "
        "hold two characters a register, NUL padded.\n"
        "- Scale factors: value = raw x 10^sf, with sf read from the named `*_SF` point of "
        "the same model (our own maps: the fixed exponent in the table). They are chosen "
        "once at start from the ratings and never change while running.\n"
        "- Not implemented: 0x8000 int16, 0xFFFF uint16/enum16/bitfield16, 0x80000000 "
        "int32, 0xFFFFFFFF uint32/enum32/bitfield32, all ones for uint64, 0 for acc32 and "
        "an empty string. Every SunSpec point not listed below reads so. Accumulators roll "
        "over at their width.\n"
        "- Signs: battery `+` discharge / `-` charge (701 W: `+` injection); PV `+` "
        "production; EVSE and boiler `+` consumption; grid meter `+` import / `-` export; "
        "load meter `+` consumption.\n"
        "- Exceptions: 02 (illegal data address) for a read outside the image or a write "
        "that touches a read-only register; 03 (illegal data value) for a value a "
        "controlled point refuses (bounds below) or an enumerated point outside its "
        "symbols; 0B (gateway target failed to respond) for a unit id no asset uses.\n"
        "- Writes: every point the SunSpec definition marks RW is writable. Points listed "
        "RW below take effect at the next simulation step; other writable points are "
        "stored as written, without effect. A write may cover part of a multi-register "
        "point: it is checked with the other words as they stand and applies at the next "
        "step.\n"
        "- Reversion: a 704 `*RvrtTms` above 0 makes the matching control lapse that many "
        "seconds after the last write to its group; the enable point then reads DISABLED "
        "again and `*RvrtRem` counts down to it.\n"
        "- Load assets have no image: a load-role meter measures them.\n\n",
        out);
    for (size_t i = 0; i < N(maps); i++) {
        fprintf(out, "## %s\n\n%s\n\n", maps[i].title, maps[i].intro);
        if (maps[i].n_models)
            md_sunspec(out, &maps[i]);
        else
            md_own(out, &maps[i]);
    }
    return ferror(out) ? -EIO : 0;
}
