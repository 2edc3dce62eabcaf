/* assetcfg: an asset of a site, read from its JSON object. Asset parameters are data, not
 * code: one table per asset type (key, kind, offset, default, bounds, kW -> W scale) drives
 * reading, defaults, bounds checks and the unknown-key check. A small per-type function adds
 * what a table cannot say (defaults derived from other keys and relations between keys). The
 * device types come from common/devtype.h (the enum in assetcfg.h, the names); a type's model
 * parameters are its row in asset_kinds below, and the "must be one of" message names them. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "sim/scenario/sections.h"

const char *asset_type_name(enum asset_type t)
{
    if (t == ASSET_LOAD)
        return "load";
    return devtype_json((int)t) ? devtype_json((int)t) : "?";
}

enum fkind {
    F_NUM,     /* double, times scale */
    F_INT,     /* int */
    F_DUR_MS,  /* duration string -> int64_t ms */
    F_DUR_S,   /* duration string -> double s */
    F_PROFILE, /* profile name -> const struct profile * of a kind in `mask` */
    F_ROLE,    /* meter role "grid" | "load" */
    F_OBJ,     /* nested object described by `sub`, stored at base + off */
};

struct field {
    const char *key;
    enum fkind kind;
    size_t off;
    double dflt; /* NAN: derived by the type's check function */
    double lo, hi;
    unsigned fl;
    double scale; /* 0 = 1; kW and kWh in the file -> W and Wh in the structs */
    unsigned mask;
    const struct field *sub;
};

#define KW 1000.0
#define ENDF                                                                                       \
    {                                                                                              \
        NULL, 0, 0, 0, 0, 0, 0, 0, 0, NULL                                                         \
    }

static const struct field response_fields[] = {
    {"latency", F_DUR_MS, offsetof(struct response_params, latency_ms), 0, 0, 0, 0, 0, 0, NULL},
    {"ramp_kw_per_s", F_NUM, offsetof(struct response_params, ramp_w_per_s), 0, 0, 0, B_MIN, KW, 0,
     NULL},
    {"quantum_w", F_NUM, offsetof(struct response_params, quantum_w), 0, 0, 0, B_MIN, 0, 0, NULL},
    ENDF,
};

#define BAT(m) offsetof(struct battery_params, m)
static const struct field battery_fields[] = {
    {"capacity_kwh", F_NUM, BAT(capacity_wh), 0, 0, 0, B_REQ | B_MIN | B_MINX, KW, 0, NULL},
    {"soc_init", F_NUM, BAT(soc_init), 0.5, 0, 1, B_MIN | B_MAX, 0, 0, NULL},
    {"max_charge_kw", F_NUM, BAT(max_charge_w), 0, 0, 0, B_REQ | B_MIN | B_MINX, KW, 0, NULL},
    {"max_discharge_kw", F_NUM, BAT(max_discharge_w), 0, 0, 0, B_REQ | B_MIN | B_MINX, KW, 0, NULL},
    {"eta_charge", F_NUM, BAT(eta_charge), 0.95, 0, 1, B_MIN | B_MINX | B_MAX, 0, 0, NULL},
    {"eta_discharge", F_NUM, BAT(eta_discharge), 0.95, 0, 1, B_MIN | B_MINX | B_MAX, 0, 0, NULL},
    {"soc_low_band", F_NUM, BAT(soc_low_band), 0.05, 0, 0.5, B_MIN | B_MAX | B_MAXX, 0, 0, NULL},
    {"soc_high_band", F_NUM, BAT(soc_high_band), 0.9, 0.5, 1, B_MIN | B_MINX | B_MAX, 0, 0, NULL},
    {"temp_init_c", F_NUM, BAT(temp_init_c), 25, -50, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_ambient_c", F_NUM, BAT(temp_ambient_c), 25, -50, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_tau", F_DUR_S, BAT(temp_tau_s), 1800000, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"temp_rise_c", F_NUM, BAT(temp_rise_c), 15, 0, 0, B_MIN, 0, 0, NULL},
    {"temp_derate_c", F_NUM, BAT(temp_derate_c), 45, 0, 0, 0, 0, 0, NULL},
    {"temp_stop_c", F_NUM, BAT(temp_stop_c), 55, 0, 0, 0, 0, 0, NULL},
    {"voltage_v", F_NUM, BAT(voltage_v), 400, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"response", F_OBJ, BAT(response), 0, 0, 0, 0, 0, 0, response_fields},
    {"start_delay", F_DUR_MS, BAT(op.start_ms), 0, 0, 0, 0, 0, 0, NULL},
    {"stop_delay", F_DUR_MS, BAT(op.stop_ms), 0, 0, 0, 0, 0, 0, NULL},
    ENDF,
};

#define PV(m) offsetof(struct pv_params, m)
static const struct field pv_fields[] = {
    {"peak_kw", F_NUM, PV(peak_w), 0, 0, 0, B_REQ | B_MIN | B_MINX, KW, 0, NULL},
    {"ac_max_kw", F_NUM, PV(ac_max_w), NAN, 0, 0, B_MIN | B_MINX, KW, 0, NULL},
    {"gamma_per_k", F_NUM, PV(gamma_per_k), -0.004, -0.1, 0.1, B_MIN | B_MAX, 0, 0, NULL},
    {"noct_c", F_NUM, PV(noct_c), 45, 20, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_ambient_c", F_NUM, PV(temp_ambient_c), 20, -50, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"system_derate", F_NUM, PV(system_derate), 0.9, 0, 1, B_MIN | B_MINX | B_MAX, 0, 0, NULL},
    {"irradiance", F_PROFILE, PV(irradiance), 0, 0, 0, 0, 0,
     PK(PROFILE_CLEAR_SKY) | PK(PROFILE_SERIES), NULL},
    {"power_profile", F_PROFILE, PV(power), 0, 0, 0, 0, 0, PK(PROFILE_SERIES), NULL},
    {"response", F_OBJ, PV(response), 0, 0, 0, 0, 0, 0, response_fields},
    {"start_delay", F_DUR_MS, PV(op.start_ms), 0, 0, 0, 0, 0, 0, NULL},
    {"stop_delay", F_DUR_MS, PV(op.stop_ms), 0, 0, 0, 0, 0, 0, NULL},
    ENDF,
};

#define MET(m) offsetof(struct meter_params, m)
static const struct field meter_fields[] = {
    {"role", F_ROLE, MET(role), 0, 0, 0, B_REQ, 0, 0, NULL},
    {"refresh", F_DUR_MS, MET(refresh_ms), 0, 0, 0, 0, 0, 0, NULL},
    {"voltage_v", F_NUM, MET(voltage_v), 230, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"nominal_hz", F_NUM, MET(nominal_hz), 50, 0, 0, B_HZ, 0, 0, NULL},
    {"frequency", F_PROFILE, MET(frequency), 0, 0, 0, 0, 0, PK(PROFILE_SERIES), NULL},
    {"phases", F_INT, MET(phases), 3, 0, 0, B_1_3, 0, 0, NULL},
    ENDF,
};

#define LOAD(m) offsetof(struct load_params, m)
static const struct field noise_fields[] = {
    {"phi", F_NUM, LOAD(noise_phi), 0.9, 0, 1, B_MIN | B_MAX | B_MAXX, 0, 0, NULL},
    {"sigma_w", F_NUM, LOAD(noise_sigma_w), 0, 0, 0, B_MIN, 0, 0, NULL},
    ENDF,
};
static const struct field load_fields[] = {
    {"profile", F_PROFILE, LOAD(profile), 0, 0, 0, 0, 0, PK(PROFILE_SERIES), NULL},
    {"scale", F_NUM, LOAD(scale), 1, 0, 0, B_MIN, 0, 0, NULL},
    {"base_w", F_NUM, LOAD(base_w), 0, 0, 0, 0, 0, 0, NULL},
    {"noise", F_OBJ, 0, 0, 0, 0, 0, 0, 0, noise_fields}, /* flat members of load_params */
    ENDF,
};

#define EVSE(m) offsetof(struct evse_params, m)
static const struct field evse_fields[] = {
    {"phases", F_INT, EVSE(phases), 3, 0, 0, B_1_3, 0, 0, NULL},
    {"min_current_a", F_NUM, EVSE(min_current_a), 6, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"max_current_a", F_NUM, EVSE(max_current_a), 16, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"voltage_v", F_NUM, EVSE(voltage_v), 230, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"default_current_a", F_NUM, EVSE(default_current_a), NAN, 0, 0, B_MIN, 0, 0, NULL},
    {"failsafe", F_DUR_MS, EVSE(failsafe_ms), 0, 0, 0, 0, 0, 0, NULL},
    {"failsafe_current_a", F_NUM, EVSE(failsafe_current_a), NAN, 0, 0, B_MIN, 0, 0, NULL},
    {"sessions", F_PROFILE, EVSE(sessions), 0, 0, 0, 0, 0, PK(PROFILE_EV_SESSIONS), NULL},
    {"response", F_OBJ, EVSE(response), 0, 0, 0, 0, 0, 0, response_fields},
    {"start_delay", F_DUR_MS, EVSE(op.start_ms), 0, 0, 0, 0, 0, 0, NULL},
    {"stop_delay", F_DUR_MS, EVSE(op.stop_ms), 0, 0, 0, 0, 0, 0, NULL},
    ENDF,
};

#define BOI(m) offsetof(struct boiler_params, m)
static const struct field boiler_fields[] = {
    {"rated_kw", F_NUM, BOI(rated_w), 0, 0, 0, B_REQ | B_MIN | B_MINX, KW, 0, NULL},
    {"volume_l", F_NUM, BOI(volume_l), 200, 0, 0, B_MIN | B_MINX, 0, 0, NULL},
    {"ua_w_per_k", F_NUM, BOI(ua_w_per_k), 2.0, 0, 0, B_MIN, 0, 0, NULL},
    {"eta", F_NUM, BOI(eta), 0.98, 0, 1, B_MIN | B_MINX | B_MAX, 0, 0, NULL},
    {"temp_init_c", F_NUM, BOI(temp_init_c), 50, 0, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_ambient_c", F_NUM, BOI(temp_ambient_c), 20, -50, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_cold_c", F_NUM, BOI(temp_cold_c), 10, 0, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"setpoint_c", F_NUM, BOI(setpoint_c), 60, 0, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"hysteresis_k", F_NUM, BOI(hysteresis_k), 5, 0, 0, B_MIN, 0, 0, NULL},
    {"temp_max_c", F_NUM, BOI(temp_max_c), 85, 0, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"temp_min_c", F_NUM, BOI(temp_min_c), 40, 0, 100, B_MIN | B_MAX, 0, 0, NULL},
    {"start_delay", F_DUR_MS, BOI(op.start_ms), 10000, 0, 0, 0, 0, 0, NULL},
    {"stop_delay", F_DUR_MS, BOI(op.stop_ms), 5000, 0, 0, 0, 0, 0, NULL},
    {"draw", F_PROFILE, BOI(draw), 0, 0, 0, 0, 0, PK(PROFILE_SERIES), NULL},
    ENDF,
};

static int check_keys_fields(struct scn_ld *L, const cJSON *obj, const char *path,
                             const struct field *f, const char *const *extra)
{
    const char *keys[32];
    size_t n = 0;
    for (; f->key && n < 31; f++)
        keys[n++] = f->key;
    keys[n] = NULL;
    return scn_check_keys(L, obj, path, keys, extra);
}

/* Reads every field of table `f` from obj (NULL: all defaults) into the struct at base. */
static int apply_fields(struct scn_ld *L, const cJSON *obj, const char *path, const struct field *f,
                        unsigned char *base)
{
    char p[SCN_PATH_MAX];
    int rc;
    for (; f->key; f++) {
        void *dst = base + f->off;
        double v;
        int64_t ms;
        const char *s;
        switch (f->kind) {
        case F_NUM:
            if ((rc = scn_get_num(L, obj, path, f->key, f->dflt, f->lo, f->hi, f->fl, &v)))
                return rc;
            *(double *)dst = isnan(v) ? v : v * (f->scale ? f->scale : 1.0);
            break;
        case F_INT:
            if ((rc = scn_get_num(L, obj, path, f->key, f->dflt, f->lo, f->hi, f->fl | B_INT, &v)))
                return rc;
            *(int *)dst = (int)v;
            break;
        case F_DUR_MS:
        case F_DUR_S:
            if ((rc = scn_get_dur(L, obj, path, f->key, (int64_t)f->dflt, (int64_t)f->lo, f->fl,
                                  &ms)))
                return rc;
            if (f->kind == F_DUR_MS)
                *(int64_t *)dst = ms;
            else
                *(double *)dst = (double)ms / 1000.0;
            break;
        case F_PROFILE:
            if ((rc = scn_get_profile_ref(L, obj, path, f->key, f->mask, (f->fl & B_REQ) != 0,
                                          (const struct profile **)dst)))
                return rc;
            break;
        case F_ROLE:
            if ((rc = scn_get_str(L, obj, path, f->key, (f->fl & B_REQ) != 0, &s)))
                return rc;
            if (s && strcmp(s, "grid") == 0)
                *(enum meter_role *)dst = METER_GRID;
            else if (s && strcmp(s, "load") == 0)
                *(enum meter_role *)dst = METER_LOAD;
            else
                return scn_fail(L, scn_pkey(p, path, f->key), scn_item(obj, f->key),
                                "must be \"grid\" or \"load\"");
            break;
        case F_OBJ: {
            const cJSON *sub = scn_item(obj, f->key);
            scn_pkey(p, path, f->key);
            if (sub && ((rc = scn_need_object(L, sub, p)) ||
                        (rc = check_keys_fields(L, sub, p, f->sub, NULL))))
                return rc;
            if ((rc = apply_fields(L, sub, p, f->sub, (unsigned char *)dst)))
                return rc;
            break;
        }
        }
    }
    return 0;
}

/* Relations a table cannot state, and defaults taken from other keys. */
static int check_battery(struct scn_ld *L, struct asset_cfg *a, const cJSON *o, const char *path)
{
    char p[SCN_PATH_MAX];
    const struct battery_params *b = &a->u.battery;
    if (b->temp_stop_c <= b->temp_derate_c)
        return scn_fail(L, scn_pkey(p, path, "temp_stop_c"), scn_item(o, "temp_stop_c"),
                        "must be > temp_derate_c (%g)", b->temp_derate_c);
    return 0;
}

/* A PV asset is driven by irradiance (the array model) or by a power profile (the AC output a
 * site recorded): exactly one. The AC rating defaults to peak_kw; a power profile above it
 * would be clipped without a word, so that is an error naming both. */
static int check_pv(struct scn_ld *L, struct asset_cfg *a, const cJSON *o, const char *path)
{
    char p[SCN_PATH_MAX];
    struct pv_params *v = &a->u.pv;
    if (isnan(v->ac_max_w))
        v->ac_max_w = v->peak_w;
    if (!v->irradiance == !v->power)
        return scn_fail(L, scn_pkey(p, path, v->power ? "power_profile" : "irradiance"), NULL,
                        v->power ? "give irradiance or power_profile, not both"
                                 : "required key missing (or give \"power_profile\": the AC "
                                   "output in W)");
    for (size_t i = 0; v->power && i < v->power->n; i++)
        if (v->power->v[i] > v->ac_max_w)
            return scn_fail(L, scn_pkey(p, path, "power_profile"), scn_item(o, "power_profile"),
                            "profile \"%s\" reaches %g W, above the AC rating %g W (ac_max_kw, "
                            "default peak_kw): the inverter would clip it; raise ac_max_kw",
                            v->power->name, v->power->v[i], v->ac_max_w);
    return 0;
}

static int check_evse(struct scn_ld *L, struct asset_cfg *a, const cJSON *o, const char *path)
{
    char p[SCN_PATH_MAX];
    struct evse_params *e = &a->u.evse;
    if (e->max_current_a < e->min_current_a)
        return scn_fail(L, scn_pkey(p, path, "max_current_a"), scn_item(o, "max_current_a"),
                        "must be >= min_current_a (%g)", e->min_current_a);
    if (isnan(e->default_current_a))
        e->default_current_a = e->max_current_a;
    if (isnan(e->failsafe_current_a))
        e->failsafe_current_a = e->min_current_a;
    /* 0 pauses; anything else must be a current the charger can actually signal. */
    static const char *const keys[] = {"default_current_a", "failsafe_current_a"};
    const double vals[] = {e->default_current_a, e->failsafe_current_a};
    for (size_t k = 0; k < 2; k++)
        if (vals[k] != 0 && (vals[k] < e->min_current_a || vals[k] > e->max_current_a))
            return scn_fail(L, scn_pkey(p, path, keys[k]), scn_item(o, keys[k]),
                            "must be 0 or in [%g, %g]", e->min_current_a, e->max_current_a);
    return 0;
}

static int check_boiler(struct scn_ld *L, struct asset_cfg *a, const cJSON *o, const char *path)
{
    char p[SCN_PATH_MAX];
    const struct boiler_params *b = &a->u.boiler;
    if (b->temp_max_c <= b->setpoint_c)
        return scn_fail(L, scn_pkey(p, path, "temp_max_c"), scn_item(o, "temp_max_c"),
                        "must be > setpoint_c (%g)", b->setpoint_c);
    return 0;
}

struct asset_kind {
    const char *name;
    enum asset_type type;
    const struct field *fields;
    int (*check)(struct scn_ld *L, struct asset_cfg *a, const cJSON *o, const char *path);
};

static const struct asset_kind asset_kinds[] = {
    {"battery", ASSET_BATTERY, battery_fields, check_battery},
    {"pv", ASSET_PV, pv_fields, check_pv},
    {"meter", ASSET_METER, meter_fields, NULL},
    {"load", ASSET_LOAD, load_fields, NULL},
    {"evse", ASSET_EVSE, evse_fields, check_evse},
    {"boiler", ASSET_BOILER, boiler_fields, check_boiler},
};

/* ---- sites --------------------------------------------------------------------------------- */

int scn_parse_asset(struct scn_ld *L, const cJSON *o, const char *path, struct asset_cfg *assets,
                    int idx)
{
    static const char *const common[] = {"id", "type", "unit_id", NULL};
    struct asset_cfg *a = &assets[idx];
    char p[SCN_PATH_MAX];
    const char *type;
    double unit;
    int rc;
    if ((rc = scn_need_object(L, o, path)) ||
        (rc = scn_get_id(L, o, path, "id", a->id, sizeof a->id)) ||
        (rc = scn_get_str(L, o, path, "type", 1, &type)))
        return rc;
    const struct asset_kind *k = NULL;
    for (size_t i = 0; i < sizeof asset_kinds / sizeof asset_kinds[0]; i++)
        if (strcmp(asset_kinds[i].name, type) == 0)
            k = &asset_kinds[i];
    if (!k)
        return scn_fail(L, scn_pkey(p, path, "type"), scn_item(o, "type"),
                        "must be one of battery, pv, meter, load, evse, boiler");
    a->type = k->type;
    if ((rc = check_keys_fields(L, o, path, k->fields, common)) ||
        (rc = scn_get_num(L, o, path, "unit_id", 1 + idx, 1, 247, B_INT | B_MIN | B_MAX, &unit)) ||
        (rc = apply_fields(L, o, path, k->fields, (unsigned char *)&a->u)) ||
        (k->check && (rc = k->check(L, a, o, path))))
        return rc;
    a->unit_id = (int)unit;
    for (int i = 0; i < idx; i++) {
        if (strcmp(assets[i].id, a->id) == 0)
            return scn_fail(L, scn_pkey(p, path, "id"), scn_item(o, "id"),
                            "duplicate asset id in the site");
        if (assets[i].unit_id == a->unit_id)
            return scn_fail(L, scn_pkey(p, path, "unit_id"), NULL,
                            "unit id %d is already used by asset \"%s\"", a->unit_id, assets[i].id);
        if (a->type == ASSET_METER && assets[i].type == ASSET_METER &&
            a->u.meter.role == METER_GRID && assets[i].u.meter.role == METER_GRID)
            return scn_fail(L, scn_pkey(p, path, "role"), scn_item(o, "role"),
                            "a site has at most one grid meter (\"%s\" is one)", assets[i].id);
    }
    return 0;
}
