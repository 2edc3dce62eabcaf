/* regimage: a device's holding-register block as the Modbus server sees it.
 *
 * The registers live in a libmodbus mapping placed at the image's start address, so that
 * modbus_reply can serve a request straight from it once mbserver has checked the request
 * here. The checks are deliberately ours, not libmodbus's: 3.1.6 stalls on some illegal
 * quantities and had overflows on crafted requests (docs/bus.md). */
#include "sim/wire/regimage.h"

#include <stdlib.h>

/* Modbus application protocol v1.1b3, 6.3 and 6.12: at most 125 registers per read, 123 per
 * write (what fits in a 253-byte PDU). */
#define REGIMAGE_MAX_READ  125
#define REGIMAGE_MAX_WRITE 123

struct regimage *regimage_new(uint16_t start, uint16_t count)
{
    if (count == 0 || (uint32_t)start + count > 0x10000u)
        return NULL;
    struct regimage *img = calloc(1, sizeof(*img));
    if (!img)
        return NULL;
    img->start = start;
    img->count = count;
    img->map = modbus_mapping_new_start_address(0, 0, 0, 0, start, count, 0, 0);
    img->writable = calloc(count, 1);
    if (!img->map || !img->writable) {
        regimage_free(img);
        return NULL;
    }
    return img;
}

void regimage_free(struct regimage *img)
{
    if (!img)
        return;
    if (img->map)
        modbus_mapping_free(img->map);
    free(img->writable);
    free(img);
}

/* True when [addr, addr + n) lies inside the image (computed in 32 bits: addr + n may pass
 * 65535 on the wire). */
static int inside(const struct regimage *img, uint16_t addr, uint16_t n)
{
    return addr >= img->start && (uint32_t)addr + n <= (uint32_t)img->start + img->count;
}

int regimage_check_read(const struct regimage *img, uint16_t addr, uint16_t n)
{
    if (n < 1 || n > REGIMAGE_MAX_READ || !inside(img, addr, n))
        return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
    return 0;
}

int regimage_check_write(struct regimage *img, uint16_t addr, uint16_t n, const uint16_t *values)
{
    if (n < 1 || n > REGIMAGE_MAX_WRITE || !inside(img, addr, n))
        return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
    for (uint16_t i = 0; i < n; i++)
        if (!img->writable[addr - img->start + i])
            return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
    if (img->validate)
        return img->validate(img->ctx, addr, n, values);
    return 0;
}
