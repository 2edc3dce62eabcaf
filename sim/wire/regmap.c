/* regmap: the core of the simulator's register maps (see regmap.h and regmap_map.h). It binds an
 * asset type's rows to its image (a SunSpec chain laid out by gateway/devices/sunspec.c, or a
 * device map of gateway/devices/devmap.h at register 0), writes the values the rows name, checks
 * client writes and hands changed control points to the family's control code. Every word goes
 * through gateway/devices/sunspec.c's encoding, the one the gateway decodes with.
 *
 * Writes are checked against a scratch copy of the image with the new words applied, so a
 * write that covers only one word of a 32-bit point is judged with the other word as it
 * stands, and applies at the next regmap_read_controls.
 *
 * Speed: with 1,000 sites in a process, a step's cost is the cache lines it touches. Publish
 * walks a compact array of measurement entries and writes a point only when its value changed
 * (bit for bit); the control code runs only when a control point, its scale factor or a timer
 * can have changed what it would send. */
#include "sim/wire/regmap.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/devtype.h"
#include "sim/wire/regmap_map.h"

/* A row bound to its place in this asset's image. */
struct regmap_resolved {
    uint16_t model_off; /* image index of the model's ID register (0 for a device map) */
    uint16_t sf_at;     /* image index of its sunssf register, when has_sf_reg */
    uint8_t has_sf_reg;
    uint8_t touched; /* an accepted write covered it since the last read */
    uint64_t snap;   /* ROW_CONTROL: the words at the last read_controls */
    const struct row *row;
    const struct sunspec_model *m; /* NULL for a device map */
    const struct sunspec_point *p; /* in the generated tables */
};

/* One ROW_MEASURE row as regmap_publish writes it. An entry remembers what its registers hold,
 * so a step writes only the points whose value changed (for enumerated points: the symbol, a
 * string literal, whose words stand). */
struct regmap_pub {
    union {
        double v;             /* numeric points: the value their words show, when known */
        const char *sym_name; /* enumerated points: the symbol they show */
    } last;
    /* What writing needs, here rather than in st->res, whose entries a step would otherwise
     * fetch one cache miss at a time: the point (in the generated tables, which every site
     * shares) and where its model starts in the image. */
    const struct sunspec_model *m;
    const struct sunspec_point *p;
    uint16_t model_off;
    uint16_t row;  /* index into the map's rows (and st->res): the value source */
    uint8_t flags; /* PUB_* */
};

#define PUB_KNOWN  1 /* last.v is what the words show */
#define PUB_ALWAYS 2 /* another writer may reach its registers: every step in full */

/* ---- the maps ---------------------------------------------------------------------------- */

#define DEVTYPE_MAP_DECL_(NAME, name, proto, driver)                                               \
    extern const struct asset_map regmap_##name##_map;
DEVTYPE_LIST(DEVTYPE_MAP_DECL_)
#undef DEVTYPE_MAP_DECL_

/* Indexed by the device types' enum (sim/scenario/scenario.h derives enum asset_type from the
 * same list). */
#define DEVTYPE_MAP_REF_(NAME, name, proto, driver) &regmap_##name##_map,
static const struct asset_map *const maps[DEVTYPE_COUNT] = {DEVTYPE_LIST(DEVTYPE_MAP_REF_)};
#undef DEVTYPE_MAP_REF_

size_t regmap_map_count(void)
{
    return DEVTYPE_COUNT;
}

const struct asset_map *regmap_map_at(size_t i)
{
    return i < DEVTYPE_COUNT ? maps[i] : NULL;
}

const struct sf_class_info regmap_sf_classes[SFC_N] = {
    [SFC_CONST] = {SUNSPEC_SUNSSF, 0, NULL},
    [SFC_POWER16] = {SUNSPEC_INT16, 0,
                     "chosen at start: the smallest sf >= 0 at which the rated power fits int16 "
                     "(0 up to 32767 W, 1 up to 327.67 kW, ...)"},
    [SFC_RATING16] = {SUNSPEC_UINT16, 0,
                      "chosen at start: the smallest sf >= 0 at which the rated power fits "
                      "uint16"},
    [SFC_AC_A16] = {SUNSPEC_INT16, -2,
                    "chosen at start: the smallest sf >= -2 at which the rated AC current fits "
                    "int16"},
    [SFC_DC_A16] = {SUNSPEC_INT16, -2,
                    "chosen at start: the smallest sf >= -2 at which rated power / voltage_v fits "
                    "int16"},
    [SFC_WH16] = {SUNSPEC_UINT16, 0,
                  "chosen at start: the smallest sf >= 0 at which capacity_wh fits uint16"},
    [SFC_AH16] = {SUNSPEC_UINT16, -1,
                  "chosen at start: the smallest sf >= -1 at which the Ah rating fits uint16"},
};

/* ---- values every map of a kind shares ---------------------------------------------------- */

const char *regmap_t_mn(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "derloop";
}

const char *regmap_t_md(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->map->md;
}

const char *regmap_t_vr(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a, (void)st;
    return "0.1";
}

const char *regmap_t_sn(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->cfg ? a->cfg->id : "";
}

double regmap_v_unit_id(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)st;
    return a->cfg ? a->cfg->unit_id : 1;
}

double regmap_v_map_id(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->devmap->map_id;
}

double regmap_v_map_version(const struct sim_asset *a, const struct regmap_state *st)
{
    (void)a;
    return st->devmap->version;
}

/* ---- resolved rows: reading and writing --------------------------------------------------- */

static uint16_t *regs_of(const struct sim_asset *a)
{
    return regimage_regs(a->img);
}

static int res_value(const struct regmap_resolved *r, const uint16_t *regs, double *v)
{
    return sunspec_read_value(r->m, r->p, regs + r->model_off, v);
}

int regmap_slot_value(const struct regmap_state *st, enum slot s, const uint16_t *regs, double *v)
{
    if (st->slot[s] < 0)
        return -ENOENT;
    return res_value(&st->res[st->slot[s]], regs, v);
}

static uint64_t res_words(const struct regmap_resolved *r, const uint16_t *regs)
{
    uint64_t u = 0;
    for (uint16_t i = 0; i < r->p->size && i < 4; i++)
        u = u << 16 | regs[r->model_off + r->p->offset + i];
    return u;
}

/* Writes v into the model at mr, saturating at the type's limits when it does not fit (a spike
 * of 1 MW on an int16 point reads as the largest value the point can show). NAN writes "not
 * implemented". */
static void point_write(const struct sunspec_model *m, const struct sunspec_point *p, uint16_t *mr,
                        double v)
{
    if (isnan(v)) {
        sunspec_write_na(p, mr);
        return;
    }
    if (sunspec_write_value(m, p, mr, v) != -ERANGE)
        return;
    int64_t lo, hi;
    if (sunspec_type_range(p->type, &lo, &hi) == 0)
        sunspec_write_raw(p, mr, v > 0 ? hi : lo);
}

static void point_symbol(const struct sunspec_point *p, uint16_t *mr, const char *name)
{
    uint32_t v;
    if (sunspec_symbol_value(p, name, &v) == 0)
        sunspec_write_raw(p, mr, v);
    else
        sunspec_write_na(p, mr);
}

static void res_write(const struct regmap_resolved *r, uint16_t *regs, double v)
{
    point_write(r->m, r->p, regs + r->model_off, v);
}

static void res_put(struct sim_asset *a, struct regmap_state *st, const struct regmap_resolved *r)
{
    const struct row *row = r->row;
    uint16_t *regs = regs_of(a);
    if (row->text)
        sunspec_write_string(r->p, regs + r->model_off, row->text(a, st));
    else if (row->sym)
        point_symbol(r->p, regs + r->model_off, row->sym(a, st));
    else if (row->get)
        res_write(r, regs, row->get(a, st));
    else if (row->kind == ROW_SF && row->sfc != SFC_CONST)
        res_write(r, regs, st->sf[row->sfc]);
    else
        res_write(r, regs, row->c);
}

static void control_defaults(struct sim_asset *a, struct regmap_state *st)
{
    for (size_t i = 0; i < st->n_ctl; i++) {
        struct regmap_resolved *r = &st->res[st->ctl[i]];
        res_put(a, st, r);
        r->snap = res_words(r, regs_of(a));
        r->touched = 0;
    }
    for (int g = 0; g < GRP_N; g++)
        st->rvrt_rem_s[g] = 0;
    st->last_writes = a->img->writes;
    st->settled = 0;
}

/* A measurement row as res_put writes it, skipped when its value is, bit for bit, the one its
 * words show (scale factors only change when a spike writes one, and then full is set). */
static void pub_put(struct sim_asset *a, struct regmap_state *st, struct regmap_pub *e, int full)
{
    const struct row *row = &st->map->rows[e->row];
    full |= e->flags & PUB_ALWAYS;
    if (row->sym) {
        const char *name = row->sym(a, st);
        if (full || name != e->last.sym_name)
            point_symbol(e->p, st->regs + e->model_off, name);
        e->last.sym_name = name;
        return;
    }
    if (row->text) {
        res_put(a, st, &st->res[e->row]);
        return;
    }
    double v = row->get ? row->get(a, st) : row->c;
    if (!full && (e->flags & PUB_KNOWN) && !memcmp(&v, &e->last.v, sizeof v))
        return;
    point_write(e->m, e->p, st->regs + e->model_off, v);
    e->last.v = v;
    e->flags |= PUB_KNOWN;
}

/* ---- validation --------------------------------------------------------------------------- */

/* Enumerations: SunSpec's enum types, and a device map's uint16 points with symbols. */
static int takes_symbols(const struct sunspec_point *p)
{
    return p->type == SUNSPEC_ENUM16 || p->type == SUNSPEC_ENUM32 ||
           (p->type == SUNSPEC_UINT16 && p->n_symbols);
}

static int overlaps(uint32_t off, uint32_t size, uint32_t lo, uint32_t hi)
{
    return off < hi && lo < off + size;
}

static int check_control(const struct sim_asset *a, const struct regmap_state *st,
                         const struct regmap_resolved *r, const uint16_t *scratch)
{
    double v;
    if (res_value(r, scratch, &v))
        return 3; /* "not implemented" is no value for a point the device implements */
    if (takes_symbols(r->p) && !sunspec_symbol_name(r->p, (uint32_t)v))
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
        const struct regmap_resolved *r = &st->res[st->ctl[i]];
        if (overlaps(r->model_off + r->p->offset, r->p->size, lo, hi)) {
            int rc = check_control(a, st, r, st->scratch);
            if (rc)
                return rc;
        }
    }
    /* Writable enumerated points the simulator only stores still take only their symbols
     * (or "not implemented"), as a device would. */
    for (size_t k = 0; k < st->n_symw; k++) {
        const struct regmap_symw *w = &st->symw[k];
        if (!overlaps(w->off, w->p->size, lo, hi))
            continue;
        int64_t raw;
        int rc = sunspec_read_raw(w->p, st->scratch + w->off - w->p->offset, &raw);
        if (rc == 0 && !sunspec_symbol_name(w->p, (uint32_t)raw))
            return 3;
    }
    for (size_t i = 0; i < st->n_ctl; i++) {
        struct regmap_resolved *r = &st->res[st->ctl[i]];
        if (overlaps(r->model_off + r->p->offset, r->p->size, lo, hi))
            r->touched = 1;
    }
    return 0;
}

/* ---- for the control code ----------------------------------------------------------------- */

double regmap_slot_or(const struct sim_asset *a, const struct regmap_state *st, enum slot s,
                      double fallback)
{
    double v;
    return regmap_slot_value(st, s, regs_of(a), &v) ? fallback : v;
}

void regmap_slot_put(struct sim_asset *a, struct regmap_state *st, enum slot s, double v)
{
    if (st->slot[s] < 0)
        return;
    struct regmap_resolved *r = &st->res[st->slot[s]];
    res_write(r, regs_of(a), v);
    r->snap = res_words(r, regs_of(a));
}

/* Only control points change (regmap_read_controls), which sums them up per group. */
int regmap_group_changed(const struct regmap_state *st, enum group g)
{
    return (st->changed_groups >> g) & 1u;
}

int regmap_any_changed(const struct regmap_state *st)
{
    return st->any_changed;
}

int regmap_reversion(struct sim_asset *a, struct regmap_state *st, enum group g, enum slot ena_slot,
                     enum slot tms_slot, int64_t now_ms)
{
    int ena = regmap_slot_or(a, st, ena_slot, 0) == 1.0;
    double tms = regmap_slot_or(a, st, tms_slot, 0);
    if (regmap_group_changed(st, g))
        st->grp_write_ms[g] = now_ms;
    st->rvrt_rem_s[g] = 0;
    if (!ena || !(tms > 0))
        return ena;
    st->settled = 0; /* a timer runs: the clock alone can change the outcome */
    int64_t due = st->grp_write_ms[g] + (int64_t)(tms * 1000.0);
    if (now_ms >= due) {
        regmap_slot_put(a, st, ena_slot, 0);
        return 0;
    }
    st->rvrt_rem_s[g] = ceil((double)(due - now_ms) / 1000.0);
    return ena;
}

/* ---- attach -------------------------------------------------------------------------------- */

static const struct asset_map *map_for(enum asset_type t)
{
    return (unsigned)t < DEVTYPE_COUNT ? maps[t] : NULL;
}

/* The smallest scale factor of each chosen class at which the family's full-scale value fits. */
static int choose_sfs(const struct sim_asset *a, struct regmap_state *st, char *err, size_t errlen)
{
    if (!st->map->full_scale)
        return 0;
    double fs[SFC_N] = {0};
    st->map->full_scale(a, fs);
    for (int c = SFC_CONST + 1; c < SFC_N; c++) {
        const struct sf_class_info *k = &regmap_sf_classes[c];
        if (sunspec_choose_sf(k->type, fs[c], k->sf_min, &st->sf[c])) {
            snprintf(err, errlen, "asset %s: rating %g does not fit a SunSpec %s point",
                     a->cfg ? a->cfg->id : "?", fs[c], sunspec_type_name(k->type));
            return -ERANGE;
        }
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
    /* validate's list: every write is checked against these (the models' other points are
     * never looked at again), so a write costs what it touches, not the whole layout */
    size_t nsym = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < st->n_models; k++) {
            const struct sunspec_model *m = sunspec_model_find(st->layout[k].id);
            uint32_t moff = st->layout[k].start - a->img->start;
            for (uint16_t i = 2; m && i < m->n_points; i++) {
                const struct sunspec_point *p = &m->points[i];
                if (!p->writable || !takes_symbols(p))
                    continue;
                if (pass)
                    st->symw[st->n_symw++] = (struct regmap_symw){p, moff + p->offset};
                else
                    nsym++;
            }
        }
        if (!pass && nsym && !(st->symw = calloc(nsym, sizeof *st->symw)))
            return -ENOMEM;
        if (!nsym)
            break;
    }
    for (size_t i = 0; i < st->n_res; i++) {
        const struct regmap_resolved *r = &st->res[i];
        const struct row *row = r->row;
        if (row->kind == ROW_MEASURE) {
            struct regmap_pub *e = &st->pub[st->n_pub++];
            e->row = (uint16_t)i;
            e->m = r->m;
            e->p = r->p;
            e->model_off = r->model_off;
            if (reachable(a, r->model_off + r->p->offset, r->p->size) ||
                (r->has_sf_reg && reachable(a, r->sf_at, 1)))
                e->flags |= PUB_ALWAYS;
        } else if (row->kind == ROW_CONTROL) {
            st->ctl[st->n_ctl++] = (uint16_t)i;
            if (!r->has_sf_reg)
                continue;
            size_t k = 0;
            while (k < st->n_sf_watch && st->sf_watch_at[k] != r->sf_at)
                k++;
            if (k == REGMAP_N(st->sf_watch_at))
                st->settle_never = 1; /* its scale factor would go unwatched */
            else if (k == st->n_sf_watch)
                st->sf_watch_at[st->n_sf_watch++] = r->sf_at;
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
        struct regmap_resolved *r = &st->res[st->n_res];
        const struct sunspec_point *p;
        r->row = row;
        if (row->model) {
            size_t k = 0;
            while (k < st->n_models && st->layout[k].id != row->model)
                k++;
            r->m = sunspec_model_find(row->model);
            p = sunspec_point_find(r->m, row->point);
            if (k == st->n_models || !p) {
                snprintf(err, errlen, "regmap: %s map: no point %d.%s", map->title, row->model,
                         row->point);
                return -EINVAL;
            }
            r->model_off = (uint16_t)(st->layout[k].start - a->img->start);
            if (p->sf_index >= 0) {
                r->has_sf_reg = 1;
                r->sf_at = (uint16_t)(r->model_off + r->m->points[p->sf_index].offset);
            }
        } else {
            p = devmap_point(st->devmap, row->point);
            if (!p) {
                snprintf(err, errlen, "regmap: map %s: no point %s", st->devmap->driver,
                         row->point);
                return -EINVAL;
            }
        }
        r->p = p;
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
        free(st->symw);
        free(st->scratch);
        free(st);
    }
    regimage_free(a->img);
    a->img = NULL;
    a->map_state = NULL;
}

/* The image: a SunSpec chain from 40000 (every point "not implemented", RW points writable),
 * or a device map from 0 (zeros, its RW points writable). */
static int new_image(struct sim_asset *a, struct regmap_state *st, char *err, size_t errlen)
{
    const struct asset_map *map = st->map;
    uint16_t base = 0, count = 0;
    if (map->n_models) {
        base = SUNSPEC_BASE_ADDR;
        st->n_models = map->n_models;
        if (sunspec_layout(map->models, map->n_models, base, st->layout, &count)) {
            snprintf(err, errlen, "regmap: %s: SunSpec layout failed", map->title);
            return -EINVAL;
        }
    } else {
        count = st->devmap->count;
    }
    a->img = regimage_new(base, count);
    st->scratch = calloc(count, sizeof *st->scratch);
    if (!a->img || !st->scratch) {
        snprintf(err, errlen, "regmap: out of memory");
        return -ENOMEM;
    }
    if (!map->n_models) {
        for (size_t i = 0; i < st->devmap->n_points; i++) {
            const struct sunspec_point *p = &st->devmap->points[i];
            for (uint16_t w = 0; w < p->size; w++)
                a->img->writable[p->offset + w] = p->writable;
        }
        return 0;
    }
    sunspec_image_init(regs_of(a), count, base, st->layout, st->n_models);
    for (size_t k = 0; k < st->n_models; k++) {
        const struct sunspec_model *m = sunspec_model_find(st->layout[k].id);
        uint16_t moff = st->layout[k].start - base;
        for (uint16_t i = 2; i < m->n_points; i++)
            for (uint16_t w = 0; w < m->points[i].size; w++)
                a->img->writable[moff + m->points[i].offset + w] = m->points[i].writable;
    }
    return 0;
}

int regmap_attach(struct sim_asset *a, char *err, size_t errlen)
{
    a->img = NULL;
    a->map_state = NULL;
    if (a->type == ASSET_LOAD)
        return 0; /* measured by a load-role meter */
    const struct asset_map *map = map_for(a->type);
    const struct devmap *dm = map && map->devmap ? devmap_find(map->devmap) : NULL;
    if (!map || (map->devmap && !dm)) {
        snprintf(err, errlen, "regmap: no register map for asset type %d", (int)a->type);
        return -EINVAL;
    }
    int rc;
    if (map->check && (rc = map->check(a, err, errlen)))
        return rc;
    /* On a cache-line boundary, so the fields every step reads share as few lines as they
     * can (with 1,000 sites in a process they are fetched from memory at every step). */
    size_t st_size = (sizeof(struct regmap_state) + 63) / 64 * 64;
    struct regmap_state *st = aligned_alloc(64, st_size);
    if (!st)
        return -ENOMEM;
    memset(st, 0, st_size);
    a->map_state = st;
    st->map = map;
    st->devmap = dm;
    if ((rc = choose_sfs(a, st, err, errlen)) || (rc = new_image(a, st, err, errlen)) ||
        (rc = resolve(a, st, err, errlen)))
        goto fail;
    a->img->validate = validate;
    a->img->ctx = a;
    st->regs = regs_of(a);
    st->pub_full = 1;

    if (map->init)
        map->init(a, st);
    /* Scale factors first: every other value is encoded with them. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < st->n_res; i++) {
            enum row_kind k = st->res[i].row->kind;
            if (pass == 0 ? k == ROW_SF : k == ROW_STATIC)
                res_put(a, st, &st->res[i]);
        }
    control_defaults(a, st);
    regmap_publish(a, 0);
    return 0;
fail:
    regmap_detach(a);
    return rc;
}

/* ---- publish, controls, reset -------------------------------------------------------------- */

/* The point a spike overrides: "" = the main power point; "MODEL.Point" picks a model;
 * otherwise the first model of the image (in order) that has the point. */
static const struct regmap_resolved *spike_target(struct regmap_state *st, const char *name,
                                                  struct regmap_resolved *tmp, uint16_t img_start)
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
            tmp->p = p;
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
        struct regmap_resolved tmp = {0};
        const struct regmap_resolved *r = spike_target(st, a->spike_point, &tmp, a->img->start);
        if (r) {
            res_write(r, regs_of(a), a->spike_value);
            /* Words no entry knows about, maybe a scale factor or a control point: the next
             * publish writes everything again, the next read compares the controls. */
            st->pub_full = 1;
            st->maybe_moved = 1;
        }
    }
}

static int model_as_left(const struct sim_asset *a, const struct regmap_state *st)
{
    return !st->map->as_left || st->map->as_left(a, st);
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
    const char *pub = (const char *)st->pub;
    for (size_t b = 0; b < st->n_pub * sizeof *st->pub; b += 64)
        __builtin_prefetch(pub + b);
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
        struct regmap_resolved *r = &st->res[st->ctl[i]];
        uint64_t now_words = res_words(r, regs);
        int changed = now_words != r->snap || (written && r->touched);
        r->snap = now_words;
        r->touched = 0;
        if (changed) {
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
