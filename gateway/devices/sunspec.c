/* sunspec: lookups in the generated model tables and the wire encoding of SunSpec points.
 *
 * The encoding follows the SunSpec Information Model: every value is big-endian, the high
 * word first; scale factors are int16 powers of ten stored in sunssf points of the same
 * model; each type has a "not implemented" value (0x8000 for int16, 0xFFFF for uint16 and
 * enum16, 0 for accumulators, ...) that a reader must treat as "no value", never as a number.
 * Accumulators roll over at their width, so writing one wraps instead of failing.
 *
 * Discovery walks the chain a device presents: the 'SunS' marker, then ID/L headers until the
 * end model 0xFFFF. It never assumes fixed offsets (model 1 is 65 or 66 registers long in the
 * field) and reads at most 125 registers at a time, the FC03 limit. */
#include "gateway/devices/sunspec.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "sunspec_models.h"

size_t sunspec_model_count(void)
{
    return SUNSPEC_N_MODELS;
}

const struct sunspec_model *sunspec_model_at(size_t i)
{
    return i < SUNSPEC_N_MODELS ? &sunspec_models[i] : NULL;
}

const struct sunspec_model *sunspec_model_find(uint16_t id)
{
    size_t lo = 0, hi = SUNSPEC_N_MODELS;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sunspec_models[mid].id == id)
            return &sunspec_models[mid];
        if (sunspec_models[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct sunspec_point *sunspec_point_find(const struct sunspec_model *m, const char *name)
{
    if (!m || !name)
        return NULL;
    for (uint16_t i = 0; i < m->n_points; i++)
        if (!strcmp(m->points[i].name, name))
            return &m->points[i];
    return NULL;
}

static const char *const type_names[] = {
    [SUNSPEC_INT16] = "int16",
    [SUNSPEC_UINT16] = "uint16",
    [SUNSPEC_INT32] = "int32",
    [SUNSPEC_UINT32] = "uint32",
    [SUNSPEC_INT64] = "int64",
    [SUNSPEC_UINT64] = "uint64",
    [SUNSPEC_ACC16] = "acc16",
    [SUNSPEC_ACC32] = "acc32",
    [SUNSPEC_ACC64] = "acc64",
    [SUNSPEC_ENUM16] = "enum16",
    [SUNSPEC_ENUM32] = "enum32",
    [SUNSPEC_BITFIELD16] = "bitfield16",
    [SUNSPEC_BITFIELD32] = "bitfield32",
    [SUNSPEC_BITFIELD64] = "bitfield64",
    [SUNSPEC_SUNSSF] = "sunssf",
    [SUNSPEC_STRING] = "string",
    [SUNSPEC_PAD] = "pad",
    [SUNSPEC_FLOAT32] = "float32",
    [SUNSPEC_FLOAT64] = "float64",
    [SUNSPEC_COUNT] = "count",
    [SUNSPEC_RAW16] = "raw16",
    [SUNSPEC_IPADDR] = "ipaddr",
    [SUNSPEC_IPV6ADDR] = "ipv6addr",
    [SUNSPEC_EUI48] = "eui48",
};

const char *sunspec_type_name(enum sunspec_type t)
{
    if ((size_t)t < sizeof type_names / sizeof type_names[0] && type_names[t])
        return type_names[t];
    return "?";
}

const char *sunspec_symbol_name(const struct sunspec_point *p, uint32_t value)
{
    for (uint16_t i = 0; p && i < p->n_symbols; i++)
        if (p->symbols[i].value == value)
            return p->symbols[i].name;
    return NULL;
}

int sunspec_symbol_value(const struct sunspec_point *p, const char *name, uint32_t *value)
{
    for (uint16_t i = 0; p && name && i < p->n_symbols; i++)
        if (!strcmp(p->symbols[i].name, name)) {
            *value = p->symbols[i].value;
            return 0;
        }
    return -ENOENT;
}

/* ---- integer encoding ------------------------------------------------------------------ */

/* How an integer type is stored: width in registers, signedness, its "not implemented" bit
 * pattern, and whether it is an accumulator (wraps; 0 doubles as "not implemented"). */
struct int_kind {
    int words;
    int is_signed;
    int is_acc;
    uint64_t na;
    /* The writable range in int64_t, "not implemented" excluded (accumulators keep 0: a
     * counter at zero and "not implemented" share the pattern, as the standard has it). */
    int64_t lo, hi;
};

/* The most negative pattern of a signed type is its "not implemented" value; all ones that of
 * an unsigned one; accumulators use their full width. 64-bit ranges end at INT64_MAX. */
#define INT_SIGNED(w, na)                                                                          \
    {                                                                                              \
        w, 1, 0, na, -(int64_t)((1ull << (16 * (w)-1)) - 1), (int64_t)((1ull << (16 * (w)-1)) - 1) \
    }
#define INT_UNSIGNED(w, na)                                                                        \
    {                                                                                              \
        w, 0, 0, na, 0, (w) == 4 ? INT64_MAX : (int64_t)((1ull << (16 * (w) % 64)) - 2)            \
    }
#define INT_ACC(w)                                                                                 \
    {                                                                                              \
        w, 0, 1, 0, 0, (w) == 4 ? INT64_MAX : (int64_t)((1ull << (16 * (w) % 64)) - 1)             \
    }

/* A table, not a switch: the simulator encodes every changed measurement of every image at
 * every step through here (sim/wire/regmap.c). words == 0: not an integer type. */
static const struct int_kind int_kinds[] = {
    [SUNSPEC_INT16] = INT_SIGNED(1, 0x8000),
    [SUNSPEC_SUNSSF] = INT_SIGNED(1, 0x8000),
    [SUNSPEC_UINT16] = INT_UNSIGNED(1, 0xFFFF),
    [SUNSPEC_ENUM16] = INT_UNSIGNED(1, 0xFFFF),
    [SUNSPEC_BITFIELD16] = INT_UNSIGNED(1, 0xFFFF),
    [SUNSPEC_RAW16] = INT_UNSIGNED(1, 0xFFFF),
    [SUNSPEC_ACC16] = INT_ACC(1),
    [SUNSPEC_COUNT] = INT_ACC(1),
    [SUNSPEC_INT32] = INT_SIGNED(2, 0x80000000u),
    [SUNSPEC_UINT32] = INT_UNSIGNED(2, 0xFFFFFFFFu),
    [SUNSPEC_ENUM32] = INT_UNSIGNED(2, 0xFFFFFFFFu),
    [SUNSPEC_BITFIELD32] = INT_UNSIGNED(2, 0xFFFFFFFFu),
    [SUNSPEC_ACC32] = INT_ACC(2),
    [SUNSPEC_IPADDR] = INT_ACC(2),
    [SUNSPEC_INT64] = INT_SIGNED(4, 0x8000000000000000ull),
    [SUNSPEC_UINT64] = INT_UNSIGNED(4, 0xFFFFFFFFFFFFFFFFull),
    [SUNSPEC_BITFIELD64] = INT_UNSIGNED(4, 0xFFFFFFFFFFFFFFFFull),
    [SUNSPEC_ACC64] = INT_ACC(4),
};

static int int_kind(enum sunspec_type t, struct int_kind *k)
{
    if ((unsigned)t >= sizeof int_kinds / sizeof int_kinds[0] || !int_kinds[t].words) {
        *k = (struct int_kind){0};
        return -EINVAL;
    }
    *k = int_kinds[t];
    return 0;
}

static void int_range(const struct int_kind *k, int64_t *lo, int64_t *hi)
{
    *lo = k->lo;
    *hi = k->hi;
}

int sunspec_type_range(enum sunspec_type t, int64_t *lo, int64_t *hi)
{
    struct int_kind k;
    if (int_kind(t, &k))
        return -EINVAL;
    int_range(&k, lo, hi);
    return 0;
}

static uint64_t get_words(const uint16_t *w, int n)
{
    uint64_t u = 0;
    for (int i = 0; i < n; i++)
        u = (u << 16) | w[i];
    return u;
}

static void put_words(uint16_t *w, int n, uint64_t u)
{
    for (int i = n - 1; i >= 0; i--) {
        w[i] = (uint16_t)(u & 0xFFFF);
        u >>= 16;
    }
}

int sunspec_read_raw(const struct sunspec_point *p, const uint16_t *model, int64_t *raw)
{
    struct int_kind k;
    if (int_kind(p->type, &k) || p->size != k.words)
        return -EINVAL;
    uint64_t u = get_words(model + p->offset, k.words);
    int bits = 16 * k.words;
    if (k.is_signed) {
        if (bits < 64 && (u & (1ull << (bits - 1))))
            u |= ~((1ull << bits) - 1); /* sign-extend */
        *raw = (int64_t)u;
    } else if (u > (uint64_t)INT64_MAX) {
        *raw = INT64_MAX;
        return u == k.na ? -ENODATA : -ERANGE;
    } else {
        *raw = (int64_t)u;
    }
    uint64_t mask = bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
    return (u & mask) == k.na ? -ENODATA : 0;
}

int sunspec_write_raw(const struct sunspec_point *p, uint16_t *model, int64_t raw)
{
    struct int_kind k;
    if (int_kind(p->type, &k) || p->size != k.words)
        return -EINVAL;
    int64_t lo, hi;
    int_range(&k, &lo, &hi);
    if (k.is_acc && raw > hi && k.words < 4)
        raw = (int64_t)((uint64_t)raw & ((1ull << (16 * k.words)) - 1)); /* roll over */
    if (raw < lo || raw > hi)
        return -ERANGE;
    put_words(model + p->offset, k.words, (uint64_t)raw);
    return 0;
}

void sunspec_write_na(const struct sunspec_point *p, uint16_t *model)
{
    struct int_kind k;
    uint16_t *w = model + p->offset;
    if (!int_kind(p->type, &k) && p->size == k.words) {
        put_words(w, k.words, k.na);
        return;
    }
    switch (p->type) {
    case SUNSPEC_PAD:
        for (uint16_t i = 0; i < p->size; i++)
            w[i] = 0x8000;
        break;
    case SUNSPEC_FLOAT32:
        w[0] = 0x7FC0;
        w[1] = 0x0000;
        break;
    case SUNSPEC_FLOAT64:
        w[0] = 0x7FF8;
        w[1] = w[2] = w[3] = 0;
        break;
    case SUNSPEC_EUI48:
        for (uint16_t i = 0; i < p->size; i++)
            w[i] = 0xFFFF;
        break;
    default: /* strings, ipv6addr: all zero */
        memset(w, 0, p->size * sizeof *w);
        break;
    }
}

int sunspec_is_na(const struct sunspec_point *p, const uint16_t *model)
{
    uint16_t na[64];
    if (p->size > 64)
        return 0;
    /* Compare with a freshly written "not implemented" pattern; NaN floats of any payload
     * count as "not implemented" too. */
    memset(na, 0, sizeof na);
    struct sunspec_point shifted = *p;
    shifted.offset = 0;
    sunspec_write_na(&shifted, na);
    if (p->type == SUNSPEC_FLOAT32 || p->type == SUNSPEC_FLOAT64) {
        double v;
        return sunspec_read_float(p, model, &v) == -ENODATA;
    }
    if (p->type == SUNSPEC_STRING)
        return model[p->offset] == 0;
    return !memcmp(model + p->offset, na, p->size * sizeof *na);
}

/* ---- strings and floats ---------------------------------------------------------------- */

int sunspec_read_string(const struct sunspec_point *p, const uint16_t *model, char *buf, size_t len)
{
    if (p->type != SUNSPEC_STRING || !len)
        return -EINVAL;
    size_t n = 0;
    for (uint16_t i = 0; i < p->size; i++) {
        char c[2] = {(char)(model[p->offset + i] >> 8), (char)(model[p->offset + i] & 0xFF)};
        for (int j = 0; j < 2; j++) {
            if (!c[j])
                goto done;
            if (n + 1 >= len) {
                buf[n] = '\0';
                return -E2BIG;
            }
            buf[n++] = c[j];
        }
    }
done:
    buf[n] = '\0';
    return n ? 0 : -ENODATA;
}

int sunspec_write_string(const struct sunspec_point *p, uint16_t *model, const char *s)
{
    if (p->type != SUNSPEC_STRING)
        return -EINVAL;
    size_t cap = 2u * p->size, n = strlen(s);
    int rc = 0;
    if (n > cap) {
        n = cap;
        rc = -E2BIG;
    }
    for (uint16_t i = 0; i < p->size; i++) {
        unsigned char hi = 2u * i < n ? (unsigned char)s[2 * i] : 0;
        unsigned char lo = 2u * i + 1 < n ? (unsigned char)s[2 * i + 1] : 0;
        model[p->offset + i] = (uint16_t)(hi << 8 | lo);
    }
    return rc;
}

int sunspec_read_float(const struct sunspec_point *p, const uint16_t *model, double *v)
{
    if (p->type == SUNSPEC_FLOAT32 && p->size == 2) {
        uint32_t u = (uint32_t)get_words(model + p->offset, 2);
        float f;
        memcpy(&f, &u, sizeof f);
        *v = f;
    } else if (p->type == SUNSPEC_FLOAT64 && p->size == 4) {
        uint64_t u = get_words(model + p->offset, 4);
        memcpy(v, &u, sizeof *v);
    } else {
        return -EINVAL;
    }
    return isnan(*v) ? -ENODATA : 0;
}

int sunspec_write_float(const struct sunspec_point *p, uint16_t *model, double v)
{
    if (isnan(v))
        return -ERANGE;
    if (p->type == SUNSPEC_FLOAT32 && p->size == 2) {
        float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        put_words(model + p->offset, 2, u);
    } else if (p->type == SUNSPEC_FLOAT64 && p->size == 4) {
        uint64_t u;
        memcpy(&u, &v, sizeof u);
        put_words(model + p->offset, 4, u);
    } else {
        return -EINVAL;
    }
    return 0;
}

/* ---- scale factors --------------------------------------------------------------------- */

/* 10^n for n in [0, 22] is exact in a double (a table: the products of tens it holds are
 * exact); dividing by it (rather than multiplying by 10^-n) keeps 2300 * 10^-1 == 230 exactly. */
static double pow10i(int n)
{
    static const double p[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    if (n >= 0 && n <= 22)
        return p[n];
    double r = 1.0;
    while (n-- > 0)
        r *= 10.0;
    return r;
}

double sunspec_scale(int64_t raw, int sf)
{
    return sf < 0 ? (double)raw / pow10i(-sf) : (double)raw * pow10i(sf);
}

int sunspec_unscale(double value, int sf, enum sunspec_type t, int64_t *raw)
{
    struct int_kind k;
    if (int_kind(t, &k))
        return -EINVAL;
    if (!isfinite(value) || sf < -22 || sf > 22)
        return -ERANGE;
    double r = sf < 0 ? value * pow10i(-sf) : value / pow10i(sf);
    r = round(r);
    int64_t lo, hi;
    int_range(&k, &lo, &hi);
    if (r < (double)lo || r > (double)hi || r >= 9.2e18 || r <= -9.2e18)
        return -ERANGE;
    *raw = (int64_t)r;
    return 0;
}

int sunspec_choose_sf(enum sunspec_type t, double max_abs, int sf_min, int16_t *sf)
{
    int64_t raw;
    max_abs = fabs(max_abs);
    for (int s = sf_min; s <= 10; s++) {
        if (sunspec_unscale(max_abs, s, t, &raw))
            continue;
        struct int_kind k;
        int_kind(t, &k);
        if (k.is_signed && sunspec_unscale(-max_abs, s, t, &raw))
            continue;
        *sf = (int16_t)s;
        return 0;
    }
    return -ERANGE;
}

int sunspec_point_sf(const struct sunspec_model *m, const struct sunspec_point *p,
                     const uint16_t *model, int *sf)
{
    if (p->sf_index == SUNSPEC_SF_NONE) {
        *sf = 0;
        return 0;
    }
    if (p->sf_index == SUNSPEC_SF_FIXED) {
        *sf = p->sf_fixed;
        return 0;
    }
    if (!m || p->sf_index < 0 || p->sf_index >= m->n_points)
        return -EINVAL;
    int64_t raw;
    int rc = sunspec_read_raw(&m->points[p->sf_index], model, &raw);
    if (rc)
        return rc;
    if (raw < -22 || raw > 22)
        return -ERANGE;
    *sf = (int)raw;
    return 0;
}

int sunspec_read_value(const struct sunspec_model *m, const struct sunspec_point *p,
                       const uint16_t *model, double *value)
{
    if (p->type == SUNSPEC_FLOAT32 || p->type == SUNSPEC_FLOAT64)
        return sunspec_read_float(p, model, value);
    int64_t raw;
    int sf;
    int rc = sunspec_read_raw(p, model, &raw);
    if (rc)
        return rc;
    if ((rc = sunspec_point_sf(m, p, model, &sf)))
        return rc;
    *value = sunspec_scale(raw, sf);
    return 0;
}

int sunspec_write_value(const struct sunspec_model *m, const struct sunspec_point *p,
                        uint16_t *model, double value)
{
    if (p->type == SUNSPEC_FLOAT32 || p->type == SUNSPEC_FLOAT64)
        return sunspec_write_float(p, model, value);
    int sf, rc;
    int64_t raw;
    if ((rc = sunspec_point_sf(m, p, model, &sf)))
        return rc;
    struct int_kind k;
    if (int_kind(p->type, &k))
        return -EINVAL;
    if (k.is_acc && value >= 0) {
        /* Accumulators roll over: unscale against the 64-bit range, then wrap. */
        if ((rc = sunspec_unscale(value, sf, SUNSPEC_ACC64, &raw)))
            return rc;
        return sunspec_write_raw(p, model, raw);
    }
    if ((rc = sunspec_unscale(value, sf, p->type, &raw)))
        return rc;
    return sunspec_write_raw(p, model, raw);
}

/* ---- discovery ------------------------------------------------------------------------- */

/* Reads [addr, addr + n) in requests of at most 125 registers. */
static int read_blocks(sunspec_read_fn read, void *ctx, uint32_t addr, uint32_t n, uint16_t *dst)
{
    while (n > 0) {
        uint16_t chunk = n > SUNSPEC_MAX_READ ? SUNSPEC_MAX_READ : (uint16_t)n;
        int rc = read(ctx, (uint16_t)addr, chunk, dst);
        if (rc < 0)
            return rc;
        addr += chunk;
        dst += chunk;
        n -= chunk;
    }
    return 0;
}

int sunspec_walk(sunspec_read_fn read, void *ctx, struct sunspec_found *found, size_t max,
                 size_t *n_found, uint16_t *base, uint16_t *image, size_t image_cap)
{
    static const uint16_t bases[] = {SUNSPEC_BASE_ADDR, 0, 50000};
    uint16_t w[2];
    int found_marker = 0, rc;
    *n_found = 0;
    for (size_t i = 0; i < sizeof bases / sizeof bases[0] && !found_marker; i++) {
        *base = bases[i];
        rc = read(ctx, bases[i], 2, w);
        found_marker = rc >= 0 && w[0] == SUNSPEC_MARKER_HI && w[1] == SUNSPEC_MARKER_LO;
    }
    if (!found_marker)
        return -ENOENT;
    if (image && image_cap < 4)
        return -EPROTO;
    if (image) {
        image[0] = w[0];
        image[1] = w[1];
    }
    uint32_t cursor = (uint32_t)*base + 2; /* address of the next ID/L header */
    if (cursor + 2 > 0x10000u)
        return -EPROTO;
    if ((rc = read(ctx, (uint16_t)cursor, 2, w)) < 0)
        return rc;
    for (;;) {
        if (image) {
            if (cursor + 2 - *base > image_cap)
                return -EPROTO;
            image[cursor - *base] = w[0];
            image[cursor - *base + 1] = w[1];
        }
        if (w[0] == SUNSPEC_END_ID)
            return 0;
        if (*n_found >= max)
            return -E2BIG;
        uint16_t id = w[0], len = w[1];
        uint32_t next = cursor + 2 + len; /* the next header */
        if (next + 2 > 0x10000u)
            return -EPROTO;
        found[*n_found].id = id;
        found[*n_found].start = (uint16_t)cursor;
        found[*n_found].length = len;
        (*n_found)++;
        if (image) {
            /* The body and the next header in whole blocks: the end model guarantees the
             * header exists, so nothing past the device's map is ever requested. */
            if (next + 2 - *base > image_cap)
                return -EPROTO;
            uint16_t *dst = image + (cursor + 2 - *base);
            if ((rc = read_blocks(read, ctx, cursor + 2, len + 2u, dst)) < 0)
                return rc;
            w[0] = image[next - *base];
            w[1] = image[next - *base + 1];
        } else if ((rc = read(ctx, (uint16_t)next, 2, w)) < 0) {
            return rc;
        }
        cursor = next;
    }
}

int sunspec_layout(const uint16_t *ids, size_t n, uint16_t base, struct sunspec_found *out,
                   uint16_t *total)
{
    uint32_t cursor = (uint32_t)base + 2;
    for (size_t i = 0; i < n; i++) {
        const struct sunspec_model *m = sunspec_model_find(ids[i]);
        if (!m)
            return -ENOENT;
        out[i].id = m->id;
        out[i].start = (uint16_t)cursor;
        out[i].length = m->length;
        cursor += 2u + m->length;
        if (cursor > 0x10000u)
            return -ERANGE;
    }
    cursor += 2; /* end model */
    if (cursor > 0x10000u || cursor - base > 0xFFFFu)
        return -ERANGE;
    *total = (uint16_t)(cursor - base);
    return 0;
}

int sunspec_image_init(uint16_t *regs, size_t total, uint16_t base,
                       const struct sunspec_found *layout, size_t n)
{
    if (total < 4)
        return -EINVAL;
    regs[0] = SUNSPEC_MARKER_HI;
    regs[1] = SUNSPEC_MARKER_LO;
    size_t end = 2;
    for (size_t i = 0; i < n; i++) {
        const struct sunspec_model *m = sunspec_model_find(layout[i].id);
        if (!m || layout[i].start < base)
            return -ENOENT;
        size_t off = layout[i].start - base;
        if (off + 2u + m->length + 2u > total)
            return -ERANGE;
        uint16_t *mr = regs + off;
        mr[0] = m->id;
        mr[1] = m->length;
        for (uint16_t k = 2; k < m->n_points; k++)
            sunspec_write_na(&m->points[k], mr);
        end = off + 2u + m->length;
    }
    regs[end] = SUNSPEC_END_ID;
    regs[end + 1] = 0;
    return 0;
}
