/* fuzz_siteconf: the gateway's site configuration as der-gateway --check takes it:
 * siteconf_parse, then the constructors that validate the rest at start (controller_new:
 * strategy, params, constraints, safety, split and device drivers, over an in-process bus
 * that is never polled; uplink_cfg_load: the uplink section). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gateway/control/controller.h"
#include "common/duration.h"
#include "gateway/control/siteconf.h"
#include "gateway/uplink/uplink.h"
#include "sim/wire/bus_inproc.h"

static struct bus *bus;

static struct bus *idle_bus(void *ctx, const struct device_cfg *d, char *err, size_t errlen)
{
    return ctx;
}

static void no_log(void *ctx, const char *line)
{
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (bus_inproc_new(NULL, &bus) != 0)
        __builtin_trap();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct siteconf *c = NULL;
    char err[1024];
    if (siteconf_parse(text, "fuzz", &c, err, sizeof(err)) == 0) {
        struct controller_opts co = {.open_bus = idle_bus, .bus_ctx = bus, .log = no_log};
        struct controller *ctl = controller_new(c, &co, err, sizeof(err));
        controller_free(ctl);
        struct uplink_cfg uc;
        uplink_cfg_load(c->uplink, "uplink", &uc, err, sizeof(err));
        for (size_t i = 0; i < c->n_devices; i++)
            if (siteconf_find(c, c->devices[i].asset_id) == NULL)
                __builtin_trap();
        siteconf_free(c);
    } else if (c || !err[0]) {
        __builtin_trap(); /* an error leaves no configuration and says why */
    }
    free(text);
    return 0;
}
