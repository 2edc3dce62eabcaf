/* sunspec: SunSpec model tables (generated at build time from SunSpec's JSON definitions,
 * docs/registers.md) and the encoding of their points in a register array: raw values, scale
 * factors, "not implemented" sentinels, strings, the discovery walk of a device's model chain
 * and the layout of a new image. Independent of the simulator: the gateway's drivers use it.
 * Tables are static and never freed; functions return 0 or -errno. */
#ifndef DERLOOP_SUNSPEC_H
#define DERLOOP_SUNSPEC_H

#include <stddef.h>
#include <stdint.h>

#define SUNSPEC_BASE_ADDR 40000  /* first address tried; then 0, then 50000 */
#define SUNSPEC_MARKER_HI 0x5375 /* 'Su' */
#define SUNSPEC_MARKER_LO 0x6E53 /* 'nS' */
#define SUNSPEC_END_ID    0xFFFF
#define SUNSPEC_MAX_READ  125 /* registers per Modbus read (FC03) */

enum sunspec_type {
    SUNSPEC_INT16,
    SUNSPEC_UINT16,
    SUNSPEC_INT32,
    SUNSPEC_UINT32,
    SUNSPEC_INT64,
    SUNSPEC_UINT64,
    SUNSPEC_ACC16,
    SUNSPEC_ACC32,
    SUNSPEC_ACC64,
    SUNSPEC_ENUM16,
    SUNSPEC_ENUM32,
    SUNSPEC_BITFIELD16,
    SUNSPEC_BITFIELD32,
    SUNSPEC_BITFIELD64,
    SUNSPEC_SUNSSF,
    SUNSPEC_STRING,
    SUNSPEC_PAD,
    SUNSPEC_FLOAT32,
    SUNSPEC_FLOAT64,
    SUNSPEC_COUNT,
    SUNSPEC_RAW16,
    SUNSPEC_IPADDR,
    SUNSPEC_IPV6ADDR,
    SUNSPEC_EUI48,
};

struct sunspec_symbol {
    const char *name;
    uint32_t value; /* enum value, or bit number for bitfields */
};

#define SUNSPEC_SF_NONE  (-1) /* sf_index: the point has no scale factor */
#define SUNSPEC_SF_FIXED (-2) /* sf_index: the scale factor is the literal sf_fixed */

struct sunspec_point {
    const char *name; /* group points flattened: "PFWInj.PF" */
    uint16_t offset;  /* from the model's ID register (ID 0, L 1, first point 2) */
    uint16_t size;    /* registers */
    enum sunspec_type type;
    uint8_t writable;  /* access "RW" */
    uint8_t mandatory; /* "M" */
    int16_t sf_index;  /* index of the sunssf point in the same model, or SUNSPEC_SF_* */
    int16_t sf_fixed;  /* when sf_index == SUNSPEC_SF_FIXED */
    const char *units; /* "" when none */
    uint16_t n_symbols;
    const struct sunspec_symbol *symbols;
};

struct sunspec_model {
    uint16_t id;
    const char *name;  /* "DERMeasureAC" */
    uint16_t length;   /* L: registers after ID and L */
    uint16_t n_points; /* ID and L included */
    const struct sunspec_point *points;
};

/* ---- tables ---- */
size_t sunspec_model_count(void);
const struct sunspec_model *sunspec_model_at(size_t i);      /* sorted by id; NULL past end */
const struct sunspec_model *sunspec_model_find(uint16_t id); /* NULL when unknown */
const struct sunspec_point *sunspec_point_find(const struct sunspec_model *m, const char *name);
const char *sunspec_type_name(enum sunspec_type t); /* "int16", ... as in the JSON */
/* Symbol lookups; name NULL / -ENOENT when absent. */
const char *sunspec_symbol_name(const struct sunspec_point *p, uint32_t value);
int sunspec_symbol_value(const struct sunspec_point *p, const char *name, uint32_t *value);

/* ---- raw values ----
 * `model` points at the model's ID register: the point's words are model[p->offset ...],
 * big-endian, high word first. Integer types (int/uint/acc/enum/bitfield/sunssf/count/raw16
 * and the 64-bit ones) go through int64_t. Reads return -ENODATA when the register holds the
 * type's "not implemented" value (*raw is still set), -EINVAL for a non-integer type, -ERANGE
 * for a uint64 above INT64_MAX. Writes return -ERANGE when raw does not fit the type or would
 * read back as "not implemented". */
int sunspec_read_raw(const struct sunspec_point *p, const uint16_t *model, int64_t *raw);
int sunspec_write_raw(const struct sunspec_point *p, uint16_t *model, int64_t raw);
/* The "not implemented" value: 0x8000 int16/sunssf, 0xFFFF uint16/enum16/bitfield16,
 * 0x80000000 int32, 0xFFFFFFFF uint32/enum32/bitfield32, 0 for accumulators, NaN floats, an
 * empty string, 0x8000 pad. */
void sunspec_write_na(const struct sunspec_point *p, uint16_t *model);
int sunspec_is_na(const struct sunspec_point *p, const uint16_t *model);
/* Strings: 2 characters a register, high byte first, NUL padded. Writes truncate to the
 * point's size (returning -E2BIG, the truncated text still written). */
int sunspec_read_string(const struct sunspec_point *p, const uint16_t *model, char *buf,
                        size_t len);
int sunspec_write_string(const struct sunspec_point *p, uint16_t *model, const char *s);
int sunspec_read_float(const struct sunspec_point *p, const uint16_t *model, double *v);
int sunspec_write_float(const struct sunspec_point *p, uint16_t *model, double v);

/* The values an integer type can carry in int64_t, "not implemented" excluded (accumulators
 * keep 0, which doubles as their "not implemented"). -EINVAL for a non-integer type. */
int sunspec_type_range(enum sunspec_type t, int64_t *lo, int64_t *hi);

/* ---- scale factors: value = raw * 10^sf ---- */
double sunspec_scale(int64_t raw, int sf);
/* raw = round(value / 10^sf) (half away from zero); -ERANGE when it does not fit type t or
 * lands on t's "not implemented" value. */
int sunspec_unscale(double value, int sf, enum sunspec_type t, int64_t *raw);
/* The smallest sf in [sf_min, 10] at which +-max_abs fits type t: the scale a device picks
 * once from its ratings. */
int sunspec_choose_sf(enum sunspec_type t, double max_abs, int sf_min, int16_t *sf);
/* The point's scale factor: read from its sunssf point in the same model, or the literal;
 * 0 for a point without one. -ENODATA when the sunssf point is "not implemented". */
int sunspec_point_sf(const struct sunspec_model *m, const struct sunspec_point *p,
                     const uint16_t *model, int *sf);
/* Engineering value of a numeric point (raw scaled by its sf). -ENODATA when the point or its
 * sf is "not implemented". */
int sunspec_read_value(const struct sunspec_model *m, const struct sunspec_point *p,
                       const uint16_t *model, double *value);
/* Writes value with the point's current sf (which must be set first). -ERANGE when it does
 * not fit (nothing written). */
int sunspec_write_value(const struct sunspec_model *m, const struct sunspec_point *p,
                        uint16_t *model, double value);

/* ---- discovery and layout ---- */
struct sunspec_found {
    uint16_t id;
    uint16_t start;  /* address of the model's ID register */
    uint16_t length; /* L */
};

/* Reads n registers at addr into dst; returns 0 or a negative error (passed through). */
typedef int (*sunspec_read_fn)(void *ctx, uint16_t addr, uint16_t n, uint16_t *dst);

/* Discovers a device's models: looks for 'SunS' at 40000, then 0, then 50000, then walks the
 * ID/L headers to the end model 0xFFFF. Every read is at most 125 registers. With image
 * non-NULL it also reads every model's body (with the next header, in whole blocks) into
 * image[addr - *base] for addr below *base + image_cap; without, only the headers are read.
 * Returns 0 and *n_found, -ENOENT without a marker, -EPROTO on a broken chain (a model past
 * the end of the address space or the image buffer), -E2BIG for more than max models, or a
 * read error. */
int sunspec_walk(sunspec_read_fn read, void *ctx, struct sunspec_found *found, size_t max,
                 size_t *n_found, uint16_t *base, uint16_t *image, size_t image_cap);

/* The layout of a new image at base: marker (2 registers), then each model's ID, L and L
 * registers, then the end model 0xFFFF 0x0000. Unknown ids give -ENOENT; *total is the
 * number of registers from base through the end model (-ERANGE past 65535). */
int sunspec_layout(const uint16_t *ids, size_t n, uint16_t base, struct sunspec_found *out,
                   uint16_t *total);
/* Fills regs[0 .. total) for that layout: the marker, every header, every point "not
 * implemented", the end model. */
int sunspec_image_init(uint16_t *regs, size_t total, uint16_t base,
                       const struct sunspec_found *layout, size_t n);

#endif
