/* fuzz_inventory: the headend's assets file (inventory_parse), then every lookup and claim
 * check on what it accepted, with ids taken from the inventory itself and from the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "headend/inventory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    struct inventory *inv = NULL;
    char err[512], why[256];
    if (inventory_parse(text, &inv, err, sizeof(err)) == 0) {
        size_t ns = inventory_site_count(inv), na = inventory_asset_count(inv);
        for (size_t i = 0; i < na; i++) {
            const struct inv_asset *a = inventory_asset_at(inv, i);
            if (inventory_asset(inv, a->id) != a || a->index != i || a->site >= ns)
                __builtin_trap();
            const struct inv_site *s = inventory_site_at(inv, a->site);
            for (size_t g = 0; g < s->n_gateways; g++)
                if (inventory_check_claim(inv, s->gateways[g], s->id, a->id, why, sizeof(why)))
                    __builtin_trap(); /* a listed gateway may claim its site's assets */
            inventory_type_name(a->type);
        }
        for (size_t i = 0; i < ns; i++) {
            const struct inv_site *s = inventory_site_at(inv, i);
            if (inventory_site(inv, s->id) != s)
                __builtin_trap();
            for (size_t k = 0; k < s->n_assets; k++)
                if (s->assets[k] >= na)
                    __builtin_trap();
            inventory_check_gateway(inv, text, s->id, why, sizeof(why));
            inventory_check_claim(inv, text, s->id, text, why, sizeof(why));
        }
        inventory_site(inv, text);
        inventory_asset(inv, text);
        inventory_free(inv);
    } else if (inv || !err[0]) {
        __builtin_trap(); /* an error leaves no inventory and says why */
    }
    free(text);
    return 0;
}
