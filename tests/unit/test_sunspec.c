/* Unit tests for gateway/devices/sunspec.c and the tables generated from SunSpec's JSON: offsets
 * and lengths against the definitions, encoding round trips, sentinels, discovery and layout. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "gateway/devices/sunspec.h"

static const struct sunspec_point *pt(uint16_t model, const char *name)
{
    return sunspec_point_find(sunspec_model_find(model), name);
}

static void test_tables(void)
{
    /* Lengths: L as SunSpec defines them (701 153, 702 50, 704 65, 713 7 carry it in the
     * JSON; 1 is 66, 802 62, 203 105 by the sum of their points). */
    static const struct {
        uint16_t id, len;
    } lens[] = {{1, 66}, {203, 105}, {701, 153}, {702, 50}, {704, 65}, {713, 7}, {802, 62}};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        const struct sunspec_model *m = sunspec_model_find(lens[i].id);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_EQUAL(m->length, lens[i].len);
    }
    CU_ASSERT_PTR_NULL(sunspec_model_find(999));
    /* Sorted by id. */
    for (size_t i = 1; i < sunspec_model_count(); i++)
        CU_ASSERT(sunspec_model_at(i - 1)->id < sunspec_model_at(i)->id);
    CU_ASSERT_STRING_EQUAL(sunspec_model_find(701)->name, "DERMeasureAC");

    const struct sunspec_point *p = pt(704, "WSet");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->offset, 24);
    CU_ASSERT_EQUAL(p->size, 2);
    CU_ASSERT_EQUAL(p->type, SUNSPEC_INT32);
    CU_ASSERT_TRUE(p->writable);
    CU_ASSERT_STRING_EQUAL(sunspec_model_find(704)->points[p->sf_index].name, "WSet_SF");
    CU_ASSERT_STRING_EQUAL(p->units, "W");

    p = pt(701, "W");
    CU_ASSERT_EQUAL(p->offset, 10);
    CU_ASSERT_EQUAL(p->type, SUNSPEC_INT16);
    CU_ASSERT_FALSE(p->writable);
    CU_ASSERT_EQUAL(pt(701, "W_SF")->offset, 116);
    CU_ASSERT_EQUAL(pt(701, "TotWhInj")->type, SUNSPEC_UINT64);
    CU_ASSERT_EQUAL(pt(203, "W")->offset, 18);
    CU_ASSERT_EQUAL(pt(203, "TotWhImp")->offset, 46);
    CU_ASSERT_EQUAL(pt(203, "TotWhImp")->type, SUNSPEC_ACC32);
    CU_ASSERT_TRUE(pt(203, "TotWhImp")->mandatory);
    CU_ASSERT_EQUAL(pt(1, "SN")->offset, 50);
    CU_ASSERT_EQUAL(pt(1, "SN")->size, 16);
    CU_ASSERT_EQUAL(pt(1, "SN")->type, SUNSPEC_STRING);
    CU_ASSERT_EQUAL(pt(713, "SoC")->offset, 4);
    CU_ASSERT_EQUAL(pt(802, "SoC")->offset, 11);

    /* Groups flattened after the top-level points; their sf link reaches the top level. */
    p = pt(704, "PFWInj.PF");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->offset, 59);
    CU_ASSERT_STRING_EQUAL(sunspec_model_find(704)->points[p->sf_index].name, "PF_SF");
    CU_ASSERT_EQUAL(pt(704, "PFWAbsRvrt.Ext")->offset, 66);
    CU_ASSERT_EQUAL(pt(704, "PFWAbsRvrt.Ext")->offset + 1, 2 + sunspec_model_find(704)->length);

    /* Every model: points contiguous, sizes sum to 2 + L. */
    for (size_t i = 0; i < sunspec_model_count(); i++) {
        const struct sunspec_model *m = sunspec_model_at(i);
        unsigned off = 0;
        for (uint16_t k = 0; k < m->n_points; k++) {
            CU_ASSERT_EQUAL(m->points[k].offset, off);
            off += m->points[k].size;
        }
        CU_ASSERT_EQUAL(off, 2u + m->length);
    }

    /* Symbols. */
    uint32_t v;
    CU_ASSERT_EQUAL(sunspec_symbol_value(pt(704, "WSetMod"), "WATTS", &v), 0);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_STRING_EQUAL(sunspec_symbol_name(pt(701, "InvSt"), 4), "THROTTLED");
    CU_ASSERT_PTR_NULL(sunspec_symbol_name(pt(701, "InvSt"), 42));
    CU_ASSERT_EQUAL(sunspec_symbol_value(pt(701, "InvSt"), "NOPE", &v), -ENOENT);
}

static void test_raw_round_trips(void)
{
    uint16_t regs[16];
    struct sunspec_point p = {.name = "x", .offset = 3};
    static const struct {
        enum sunspec_type t;
        uint16_t size;
        int64_t val;
        uint16_t w0, w1;
    } cases[] = {
        {SUNSPEC_INT16, 1, -2, 0xFFFE, 0},
        {SUNSPEC_UINT16, 1, 65534, 0xFFFE, 0},
        {SUNSPEC_INT32, 2, -100, 0xFFFF, 0xFF9C},
        {SUNSPEC_UINT32, 2, 0x12345678, 0x1234, 0x5678},
        {SUNSPEC_ACC32, 2, 70000, 0x0001, 0x1170},
        {SUNSPEC_ENUM16, 1, 3, 3, 0},
        {SUNSPEC_BITFIELD16, 1, 0x81, 0x81, 0},
        {SUNSPEC_BITFIELD32, 2, 1 << 16, 1, 0},
        {SUNSPEC_SUNSSF, 1, -3, 0xFFFD, 0},
        {SUNSPEC_INT64, 4, -5, 0xFFFF, 0xFFFF},
        {SUNSPEC_UINT64, 4, 1000000000000ll, 0x0000, 0x00E8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(regs, 0xAA, sizeof regs);
        p.type = cases[i].t;
        p.size = cases[i].size;
        CU_ASSERT_EQUAL(sunspec_write_raw(&p, regs, cases[i].val), 0);
        CU_ASSERT_EQUAL(regs[3], cases[i].w0); /* high word first */
        if (cases[i].size == 2)
            CU_ASSERT_EQUAL(regs[4], cases[i].w1);
        CU_ASSERT_EQUAL(regs[2], 0xAAAA); /* nothing outside the point */
        CU_ASSERT_EQUAL(regs[3 + cases[i].size], 0xAAAA);
        int64_t raw = 0;
        CU_ASSERT_EQUAL(sunspec_read_raw(&p, regs, &raw), 0);
        CU_ASSERT_EQUAL(raw, cases[i].val);
    }
    /* Values that collide with "not implemented" or do not fit are refused. */
    p.type = SUNSPEC_INT16, p.size = 1;
    CU_ASSERT_EQUAL(sunspec_write_raw(&p, regs, -32768), -ERANGE);
    CU_ASSERT_EQUAL(sunspec_write_raw(&p, regs, 40000), -ERANGE);
    p.type = SUNSPEC_UINT16;
    CU_ASSERT_EQUAL(sunspec_write_raw(&p, regs, 65535), -ERANGE);
    CU_ASSERT_EQUAL(sunspec_write_raw(&p, regs, -1), -ERANGE);
    p.type = SUNSPEC_INT32, p.size = 2;
    CU_ASSERT_EQUAL(sunspec_write_raw(&p, regs, INT32_MIN), -ERANGE);
    /* Accumulators roll over. */
    p.type = SUNSPEC_ACC32;
    CU_ASSERT_EQUAL(sunspec_write_raw(&p, regs, 0x100000005ll), 0);
    int64_t raw;
    CU_ASSERT_EQUAL(sunspec_read_raw(&p, regs, &raw), 0);
    CU_ASSERT_EQUAL(raw, 5);
    /* A type/size mismatch or a non-integer type is an error, not a guess. */
    p.type = SUNSPEC_STRING;
    CU_ASSERT_EQUAL(sunspec_read_raw(&p, regs, &raw), -EINVAL);
}

static void test_sentinels(void)
{
    uint16_t regs[8];
    static const struct {
        enum sunspec_type t;
        uint16_t size, w0, w1;
    } cases[] = {
        {SUNSPEC_INT16, 1, 0x8000, 0},           {SUNSPEC_UINT16, 1, 0xFFFF, 0},
        {SUNSPEC_ENUM16, 1, 0xFFFF, 0},          {SUNSPEC_BITFIELD16, 1, 0xFFFF, 0},
        {SUNSPEC_SUNSSF, 1, 0x8000, 0},          {SUNSPEC_INT32, 2, 0x8000, 0x0000},
        {SUNSPEC_UINT32, 2, 0xFFFF, 0xFFFF},     {SUNSPEC_ENUM32, 2, 0xFFFF, 0xFFFF},
        {SUNSPEC_BITFIELD32, 2, 0xFFFF, 0xFFFF}, {SUNSPEC_ACC32, 2, 0, 0},
        {SUNSPEC_UINT64, 4, 0xFFFF, 0xFFFF},     {SUNSPEC_INT64, 4, 0x8000, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sunspec_point p = {
            .name = "x", .offset = 1, .size = cases[i].size, .type = cases[i].t};
        memset(regs, 0x11, sizeof regs);
        sunspec_write_na(&p, regs);
        CU_ASSERT_EQUAL(regs[1], cases[i].w0);
        if (p.size > 1)
            CU_ASSERT_EQUAL(regs[2], cases[i].w1);
        CU_ASSERT_TRUE(sunspec_is_na(&p, regs));
        int64_t raw;
        CU_ASSERT_EQUAL(sunspec_read_raw(&p, regs, &raw), -ENODATA);
        double v;
        CU_ASSERT_EQUAL(sunspec_read_value(NULL, &p, regs, &v), -ENODATA);
        CU_ASSERT_EQUAL(sunspec_write_raw(&p, regs, 1), 0);
        CU_ASSERT_FALSE(sunspec_is_na(&p, regs));
    }
    struct sunspec_point s = {.name = "s", .offset = 0, .size = 4, .type = SUNSPEC_STRING};
    sunspec_write_na(&s, regs);
    CU_ASSERT_TRUE(sunspec_is_na(&s, regs));
    struct sunspec_point f = {.name = "f", .offset = 0, .size = 2, .type = SUNSPEC_FLOAT32};
    sunspec_write_na(&f, regs);
    CU_ASSERT_TRUE(sunspec_is_na(&f, regs));
    CU_ASSERT_EQUAL(sunspec_write_float(&f, regs, 2.5), 0);
    double d;
    CU_ASSERT_EQUAL(sunspec_read_float(&f, regs, &d), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, 2.5, 0);
}

static void test_strings(void)
{
    uint16_t regs[70] = {0};
    const struct sunspec_point *sn = pt(1, "SN");
    CU_ASSERT_EQUAL(sunspec_write_string(sn, regs, "bat-1"), 0);
    CU_ASSERT_EQUAL(regs[50], ('b' << 8) | 'a');
    CU_ASSERT_EQUAL(regs[52], ('1' << 8) | 0);
    CU_ASSERT_EQUAL(regs[53], 0);
    char buf[64];
    CU_ASSERT_EQUAL(sunspec_read_string(sn, regs, buf, sizeof buf), 0);
    CU_ASSERT_STRING_EQUAL(buf, "bat-1");
    /* 32 characters fill 16 registers with no NUL; 33 are truncated. */
    const char *s32 = "0123456789abcdef0123456789ABCDEF";
    CU_ASSERT_EQUAL(sunspec_write_string(sn, regs, s32), 0);
    CU_ASSERT_EQUAL(sunspec_read_string(sn, regs, buf, sizeof buf), 0);
    CU_ASSERT_STRING_EQUAL(buf, s32);
    CU_ASSERT_EQUAL(regs[66], 0); /* DA untouched */
    CU_ASSERT_EQUAL(sunspec_write_string(sn, regs, "0123456789abcdef0123456789ABCDEFxyz"), -E2BIG);
    CU_ASSERT_EQUAL(sunspec_read_string(sn, regs, buf, 8), -E2BIG);
    CU_ASSERT_STRING_EQUAL(buf, "0123456");
}

static void test_scale_factors(void)
{
    CU_ASSERT_DOUBLE_EQUAL(sunspec_scale(2300, -1), 230.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(sunspec_scale(-123, 2), -12300.0, 0);
    int64_t raw;
    CU_ASSERT_EQUAL(sunspec_unscale(230.0, -1, SUNSPEC_UINT16, &raw), 0);
    CU_ASSERT_EQUAL(raw, 2300);
    CU_ASSERT_EQUAL(sunspec_unscale(-1234.5, 0, SUNSPEC_INT16, &raw), 0);
    CU_ASSERT_EQUAL(raw, -1235); /* half away from zero */
    CU_ASSERT_EQUAL(sunspec_unscale(-1, 0, SUNSPEC_UINT16, &raw), -ERANGE);
    CU_ASSERT_EQUAL(sunspec_unscale(40000, 0, SUNSPEC_INT16, &raw), -ERANGE);
    CU_ASSERT_EQUAL(sunspec_unscale(NAN, 0, SUNSPEC_INT16, &raw), -ERANGE);

    int16_t sf;
    CU_ASSERT_EQUAL(sunspec_choose_sf(SUNSPEC_INT16, 5000, 0, &sf), 0);
    CU_ASSERT_EQUAL(sf, 0);
    CU_ASSERT_EQUAL(sunspec_choose_sf(SUNSPEC_INT16, 50000, 0, &sf), 0);
    CU_ASSERT_EQUAL(sf, 1);
    CU_ASSERT_EQUAL(sunspec_choose_sf(SUNSPEC_UINT16, 50000, 0, &sf), 0);
    CU_ASSERT_EQUAL(sf, 0);
    CU_ASSERT_EQUAL(sunspec_choose_sf(SUNSPEC_INT16, 14.5, -2, &sf), 0);
    CU_ASSERT_EQUAL(sf, -2);
    CU_ASSERT_EQUAL(sunspec_choose_sf(SUNSPEC_INT16, 400, -2, &sf), 0);
    CU_ASSERT_EQUAL(sf, -1);

    /* Values through a model: 704 WSet with WSet_SF, 701 W with W_SF, 203 energy. */
    const struct sunspec_model *m = sunspec_model_find(704);
    uint16_t regs[80];
    memset(regs, 0, sizeof regs);
    for (uint16_t i = 2; i < m->n_points; i++)
        sunspec_write_na(&m->points[i], regs);
    double v;
    CU_ASSERT_EQUAL(sunspec_read_value(m, pt(704, "WSet"), regs, &v), -ENODATA);
    CU_ASSERT_EQUAL(sunspec_write_value(m, pt(704, "WSet"), regs, 10), -ENODATA); /* no sf yet */
    CU_ASSERT_EQUAL(sunspec_write_raw(pt(704, "WSet_SF"), regs, 1), 0);
    CU_ASSERT_EQUAL(sunspec_write_value(m, pt(704, "WSet"), regs, -123450), 0);
    CU_ASSERT_EQUAL(regs[24], 0xFFFF);
    CU_ASSERT_EQUAL(regs[25], (uint16_t)-12345);
    CU_ASSERT_EQUAL(sunspec_read_value(m, pt(704, "WSet"), regs, &v), 0);
    CU_ASSERT_DOUBLE_EQUAL(v, -123450, 0);
    int sfv;
    CU_ASSERT_EQUAL(sunspec_point_sf(m, pt(704, "WSet"), regs, &sfv), 0);
    CU_ASSERT_EQUAL(sfv, 1);
    CU_ASSERT_EQUAL(sunspec_write_raw(pt(704, "WMaxLimPct_SF"), regs, -1), 0);
    CU_ASSERT_EQUAL(sunspec_write_value(m, pt(704, "WMaxLimPct"), regs, 55.5), 0);
    CU_ASSERT_EQUAL(regs[15], 555);
    CU_ASSERT_EQUAL(sunspec_read_value(m, pt(704, "WMaxLimPct"), regs, &v), 0);
    CU_ASSERT_DOUBLE_EQUAL(v, 55.5, 1e-12);

    /* A literal scale factor in the definition. */
    struct sunspec_point lit = {.name = "l",
                                .offset = 0,
                                .size = 1,
                                .type = SUNSPEC_UINT16,
                                .sf_index = SUNSPEC_SF_FIXED,
                                .sf_fixed = -1};
    CU_ASSERT_EQUAL(sunspec_write_value(NULL, &lit, regs, 16.0), 0);
    CU_ASSERT_EQUAL(regs[0], 160);
    CU_ASSERT_EQUAL(sunspec_read_value(NULL, &lit, regs, &v), 0);
    CU_ASSERT_DOUBLE_EQUAL(v, 16.0, 0);
}

/* An in-memory device: registers at [base, base + n), reads outside answer an error (as a
 * device answers exception 2), counting requests and their largest size. */
struct fake_dev {
    uint16_t base;
    uint16_t regs[1024];
    size_t n;
    int reads, max_read, fail_at_read;
};

static int fake_read(void *ctx, uint16_t addr, uint16_t n, uint16_t *dst)
{
    struct fake_dev *d = ctx;
    d->reads++;
    if (n > d->max_read)
        d->max_read = n;
    if (d->fail_at_read && d->reads == d->fail_at_read)
        return -EIO;
    if (addr < d->base || (size_t)addr + n > (size_t)d->base + d->n)
        return -EFAULT;
    memcpy(dst, d->regs + (addr - d->base), n * sizeof *dst);
    return 0;
}

static void build_dev(struct fake_dev *d, uint16_t base, const uint16_t *ids, size_t n_ids)
{
    struct sunspec_found layout[8];
    uint16_t total;
    memset(d, 0, sizeof *d);
    d->base = base;
    CU_ASSERT_EQUAL_FATAL(sunspec_layout(ids, n_ids, base, layout, &total), 0);
    CU_ASSERT_EQUAL_FATAL(sunspec_image_init(d->regs, total, base, layout, n_ids), 0);
    d->n = total;
}

static void test_layout_and_walk(void)
{
    static const uint16_t ids[] = {1, 701, 702, 704, 713, 802};
    struct sunspec_found layout[8];
    uint16_t total;
    CU_ASSERT_EQUAL(sunspec_layout(ids, 6, 40000, layout, &total), 0);
    CU_ASSERT_EQUAL(layout[0].start, 40002);
    CU_ASSERT_EQUAL(layout[1].start, 40002 + 68);
    CU_ASSERT_EQUAL(layout[1].length, 153);
    CU_ASSERT_EQUAL(layout[2].start, 40070 + 155);
    CU_ASSERT_EQUAL(total, 2 + 68 + 155 + 52 + 67 + 9 + 64 + 2);
    static const uint16_t bad[] = {1, 9999};
    CU_ASSERT_EQUAL(sunspec_layout(bad, 2, 40000, layout, &total), -ENOENT);

    struct fake_dev d;
    build_dev(&d, 40000, ids, 6);
    CU_ASSERT_EQUAL(d.regs[0], 0x5375);
    CU_ASSERT_EQUAL(d.regs[1], 0x6E53);
    CU_ASSERT_EQUAL(d.regs[total - 2], 0xFFFF);
    CU_ASSERT_EQUAL(d.regs[total - 1], 0);
    d.regs[layout[1].start - 40000 + 2 + 10] = 1234; /* 701 W */

    struct sunspec_found found[8];
    size_t n;
    uint16_t base;
    CU_ASSERT_EQUAL(sunspec_walk(fake_read, &d, found, 8, &n, &base, NULL, 0), 0);
    CU_ASSERT_EQUAL(base, 40000);
    CU_ASSERT_EQUAL_FATAL(n, 6);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(found[i].id, ids[i]);
        CU_ASSERT_EQUAL(found[i].start, layout[i].start);
        CU_ASSERT_EQUAL(found[i].length, layout[i].length);
    }
    /* With an image: everything read in blocks of at most 125, never past the end model. */
    uint16_t image[1024];
    d.reads = d.max_read = 0;
    CU_ASSERT_EQUAL(sunspec_walk(fake_read, &d, found, 8, &n, &base, image, 1024), 0);
    CU_ASSERT_EQUAL(n, 6);
    CU_ASSERT(d.max_read <= 125);
    CU_ASSERT_EQUAL(memcmp(image, d.regs, total * sizeof *image), 0);
    CU_ASSERT_EQUAL(image[layout[1].start - 40000 + 12], 1234);
    CU_ASSERT(d.reads <= 12);
    /* Too small a buffer or too many models. */
    CU_ASSERT_EQUAL(sunspec_walk(fake_read, &d, found, 8, &n, &base, image, 100), -EPROTO);
    CU_ASSERT_EQUAL(sunspec_walk(fake_read, &d, found, 3, &n, &base, NULL, 0), -E2BIG);
    /* A read error mid-walk is passed through. */
    d.fail_at_read = 3;
    d.reads = 0;
    CU_ASSERT_EQUAL(sunspec_walk(fake_read, &d, found, 8, &n, &base, NULL, 0), -EIO);
    d.fail_at_read = 0;

    /* Fallback addresses: 0, then 50000. */
    static const uint16_t meter[] = {1, 203};
    build_dev(&d, 0, meter, 2);
    CU_ASSERT_EQUAL(sunspec_walk(fake_read, &d, found, 8, &n, &base, NULL, 0), 0);
    CU_ASSERT_EQUAL(base, 0);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(found[1].id, 203);
    CU_ASSERT_EQUAL(found[1].start, 2 + 68);
    build_dev(&d, 50000, meter, 2);
    CU_ASSERT_EQUAL(sunspec_walk(fake_read, &d, found, 8, &n, &base, image, 1024), 0);
    CU_ASSERT_EQUAL(base, 50000);
    CU_ASSERT_EQUAL(n, 2);

    /* Model 1 of 65 registers (older devices): walked by L, not by the table. */
    d.regs[2 + 1] = 65;
    memmove(d.regs + 2 + 67, d.regs + 2 + 68, (d.n - 70) * sizeof *d.regs);
    d.n--;
    CU_ASSERT_EQUAL(sunspec_walk(fake_read, &d, found, 8, &n, &base, NULL, 0), 0);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(found[0].length, 65);
    CU_ASSERT_EQUAL(found[1].start, 50000 + 2 + 67);

    /* No marker anywhere. */
    build_dev(&d, 40000, meter, 2);
    d.regs[0] = 0x1234;
    CU_ASSERT_EQUAL(sunspec_walk(fake_read, &d, found, 8, &n, &base, NULL, 0), -ENOENT);
    /* A broken chain: an L that runs past the device's map (the next header read fails) or
     * past the address space. */
    build_dev(&d, 40000, meter, 2);
    d.regs[3] = 500;
    CU_ASSERT(sunspec_walk(fake_read, &d, found, 8, &n, &base, NULL, 0) < 0);
    d.regs[3] = 30000;
    CU_ASSERT_EQUAL(sunspec_walk(fake_read, &d, found, 8, &n, &base, NULL, 0), -EPROTO);
}

/* The integer types' ranges, "not implemented" excluded, as the SunSpec Information Model
 * defines them (sunspec.c holds them as a table); non-integer types have none. */
static void test_type_ranges(void)
{
    static const struct {
        enum sunspec_type t;
        int64_t lo, hi;
    } want[] = {
        {SUNSPEC_INT16, -32767, 32767},
        {SUNSPEC_SUNSSF, -32767, 32767},
        {SUNSPEC_UINT16, 0, 65534},
        {SUNSPEC_ENUM16, 0, 65534},
        {SUNSPEC_BITFIELD16, 0, 65534},
        {SUNSPEC_RAW16, 0, 65534},
        {SUNSPEC_ACC16, 0, 65535},
        {SUNSPEC_COUNT, 0, 65535},
        {SUNSPEC_INT32, -2147483647LL, 2147483647LL},
        {SUNSPEC_UINT32, 0, 4294967294LL},
        {SUNSPEC_ENUM32, 0, 4294967294LL},
        {SUNSPEC_BITFIELD32, 0, 4294967294LL},
        {SUNSPEC_ACC32, 0, 4294967295LL},
        {SUNSPEC_IPADDR, 0, 4294967295LL},
        {SUNSPEC_INT64, -INT64_MAX, INT64_MAX},
        {SUNSPEC_UINT64, 0, INT64_MAX},
        {SUNSPEC_BITFIELD64, 0, INT64_MAX},
        {SUNSPEC_ACC64, 0, INT64_MAX},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int64_t lo = 1, hi = -1;
        CU_ASSERT_EQUAL(sunspec_type_range(want[i].t, &lo, &hi), 0);
        CU_ASSERT_EQUAL(lo, want[i].lo);
        CU_ASSERT_EQUAL(hi, want[i].hi);
    }
    static const enum sunspec_type none[] = {SUNSPEC_STRING,  SUNSPEC_PAD,      SUNSPEC_FLOAT32,
                                             SUNSPEC_FLOAT64, SUNSPEC_IPV6ADDR, SUNSPEC_EUI48};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        int64_t lo, hi;
        CU_ASSERT_EQUAL(sunspec_type_range(none[i], &lo, &hi), -EINVAL);
    }
    /* 10^n from the table and past it */
    CU_ASSERT_DOUBLE_EQUAL(sunspec_scale(1, 22), 1e22, 0);
    CU_ASSERT_DOUBLE_EQUAL(sunspec_scale(7, -22), 7 / 1e22, 0);
}

void test_register_sunspec(void)
{
    CU_pSuite s = CU_add_suite("sunspec", NULL, NULL);
    CU_add_test(s, "tables match the JSON", test_tables);
    CU_add_test(s, "raw round trips", test_raw_round_trips);
    CU_add_test(s, "not implemented sentinels", test_sentinels);
    CU_add_test(s, "strings", test_strings);
    CU_add_test(s, "scale factors", test_scale_factors);
    CU_add_test(s, "type ranges", test_type_ranges);
    CU_add_test(s, "layout and walk", test_layout_and_walk);
}
