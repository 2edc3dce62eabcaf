/* fuzz_modbus: the simulator's Modbus request handling as a client's byte stream. Frames are
 * cut with mbserver_frame_len (a bad header ends the stream, as the server closes such a
 * client), checked with mbserver_check_request against one of two register images (by the
 * unit id's low bit: a writable block at 40000 with a validator, a read-only one at 0), and
 * answered as the server answers them: mbserver_format_exception, or libmodbus's modbus_reply
 * over a socketpair for a request found good (libmodbus must only ever see those: it had
 * overflows on crafted requests). Every reply is read back and checked: the request's
 * transaction and unit id, an MBAP length that matches, the function byte (the request's for
 * a normal reply, with the high bit set for an exception). */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus/modbus.h>

#include "sim/wire/mbserver.h"
#include "sim/wire/regimage.h"

static struct regimage *img[2];
static modbus_t *ctx;
static int sv[2] = {-1, -1};

static int refuse_over_1000(void *c, uint16_t addr, uint16_t n, const uint16_t *v)
{
    for (uint16_t i = 0; i < n; i++)
        if (v[i] > 1000)
            return 3;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    img[0] = regimage_new(40000, 200);
    img[1] = regimage_new(0, 64);
    ctx = modbus_new_tcp("127.0.0.1", 502); /* never connected: a reply formatter */
    if (!img[0] || !img[1] || !ctx || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        __builtin_trap();
    for (int i = 20; i < 120; i++)
        img[0]->writable[i] = 1;
    img[0]->validate = refuse_over_1000;
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    modbus_set_socket(ctx, sv[0]);
    return 0;
}

static void check_reply(const uint8_t *req, const uint8_t *rsp, size_t n, int exception)
{
    if (n < 9 || rsp[0] != req[0] || rsp[1] != req[1] || rsp[2] || rsp[3] || rsp[6] != req[6])
        __builtin_trap();
    if ((size_t)(rsp[4] << 8 | rsp[5]) + 6 != n)
        __builtin_trap(); /* the MBAP length disagrees with the bytes sent */
    if (exception ? rsp[7] != (req[7] | 0x80) : rsp[7] != req[7])
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        int flen = mbserver_frame_len(data + off, size - off);
        if (flen <= 0)
            break; /* incomplete (the server waits) or a bad header (it closes) */
        const uint8_t *f = data + off;
        off += (size_t)flen;
        struct regimage *im = img[f[6] & 1];
        uint64_t writes = im->writes;
        int code = mbserver_check_request(im, f, (size_t)flen);
        uint8_t rsp[512];
        size_t n;
        if (code) {
            n = mbserver_format_exception(f, code, rsp);
            if (n != MBSERVER_EXC_LEN || rsp[8] < 1 || rsp[8] > 11)
                __builtin_trap();
        } else {
            uint8_t fc = f[7];
            modbus_mapping_t *map = im->map, alias;
            if (fc == 0x04) { /* as mbserver: input registers read the holding image */
                alias = *map;
                alias.start_input_registers = map->start_registers;
                alias.nb_input_registers = map->nb_registers;
                alias.tab_input_registers = map->tab_registers;
                map = &alias;
            }
            if (fc != 0x03 && fc != 0x04 && fc != 0x06 && fc != 0x10)
                __builtin_trap(); /* only these four may pass the check */
            if (modbus_reply(ctx, f, flen, map) < 0)
                __builtin_trap();
            ssize_t r = read(sv[1], rsp, sizeof(rsp));
            if (r <= 0)
                __builtin_trap();
            n = (size_t)r;
        }
        if (im->writes != writes)
            __builtin_trap(); /* checks never count writes; only the server does */
        check_reply(f, rsp, n, code != 0);
    }
    return 0;
}
