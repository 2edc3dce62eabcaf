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

#include "gateway/controller.h"
#include "gateway/duration.h"
#include "gateway/siteconf.h"
#include "gateway/uplink.h"
#include "sim/bus_inproc.h"

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

/* KNOWN ISSUE 3 (tests/fuzz/known-issues.md), not fixed yet: a duration parameter given as a
 * JSON number outside its range is formatted for the error message by casting the double to
 * int64_t (gateway/strategy.c value_text, shared by every param_load table: strategies,
 * safety, arbiter, uplink), undefined from 2^63 on ("window": 1e30). True when any number in
 * the document is that large. */
static int huge_number(const cJSON *j)
{
    if (cJSON_IsNumber(j))
        return fabs(j->valuedouble) >= 9.2e18;
    const cJSON *v;
    cJSON_ArrayForEach(v, j)
    {
        if (huge_number(v))
            return 1;
    }
    return 0;
}

/* KNOWN ISSUE 2 (tests/fuzz/known-issues.md), not fixed yet: siteconf.c sets the default
 * stale_after to 3 x poll_period in int64_t, which overflows for a poll_period over
 * INT64_MAX / 3 ms ("3333333313333351s": UBSan, gateway/siteconf.c). Inputs that would only
 * find issue 2 or 3 again are skipped unless FUZZ_KNOWN=1, so that a run goes on looking for
 * new findings. Remove the guards with the fixes (the issue asks for an upper bound on every
 * duration). */
static int known_issue(const char *text)
{
    const char *k = getenv("FUZZ_KNOWN");
    if (k && !strcmp(k, "1"))
        return 0;
    cJSON *j = cJSON_Parse(text);
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(j, "poll_period");
    int64_t ms = 0;
    int skip =
        cJSON_IsString(pp) && duration_parse(pp->valuestring, &ms) == 0 && ms > INT64_MAX / 3;
    skip = skip || huge_number(j);
    cJSON_Delete(j);
    return skip;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    if (known_issue(text)) {
        free(text);
        return 0;
    }
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
