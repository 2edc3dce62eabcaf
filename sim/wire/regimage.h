/* regimage: the holding-register image of one device as served on the wire: a contiguous block
 * [start, start + count) backed by a libmodbus mapping, a writable flag per register, and a
 * validator that refuses bad writes before they land. The Modbus server (mbserver) serves it;
 * the asset's register map (regmap) fills it and reads its control points. The asset that
 * builds it owns it (regimage_free). */
#ifndef DERLOOP_REGIMAGE_H
#define DERLOOP_REGIMAGE_H

#include <stdint.h>

#include <modbus/modbus.h>

struct regimage {
    uint16_t start, count;
    modbus_mapping_t *map; /* map->tab_registers[i] is register start + i */
    uint8_t *writable;     /* count flags */
    /* Checks a write of n registers at addr (already inside the image and writable). values
     * are the new raw words. Returns 0, or a Modbus exception code (3 = illegal value). */
    int (*validate)(void *ctx, uint16_t addr, uint16_t n, const uint16_t *values);
    void *ctx;
    uint64_t writes; /* accepted write requests, for tests and statistics */
};

struct regimage *regimage_new(uint16_t start, uint16_t count);
void regimage_free(struct regimage *img);
static inline uint16_t *regimage_regs(struct regimage *img)
{
    return img->map->tab_registers;
}

/* Checks a client request against the image before libmodbus sees it. Returns 0 when it may
 * be served, or the exception code to answer: 2 outside the image or not writable, 3 refused
 * by the validator. */
int regimage_check_read(const struct regimage *img, uint16_t addr, uint16_t n);
int regimage_check_write(struct regimage *img, uint16_t addr, uint16_t n, const uint16_t *values);

#endif
