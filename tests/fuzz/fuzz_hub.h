/* fuzz_hub.h: what the headend harnesses share: a fresh hub per input (the inventory below,
 * an in-memory SQLite store: every input starts from the same state, so a crash replays from
 * its input alone) and a fake stream link whose send and close only count (send also packs
 * the message, so a HeadendMessage the hub built wrongly shows up here, not on a gateway). */
#ifndef FUZZ_HUB_H
#define FUZZ_HUB_H

#include <stdint.h>
#include <stdlib.h>

#include "headend/config.h"
#include "headend/hub.h"
#include "headend/inventory.h"
#include "common/log.h"
#include "headend/store.h"

/* Two sites; s1 has a battery (the primary), a pv and a meter, s2 one battery. */
static const char FUZZ_INVENTORY[] =
    "{\"sites\":[{\"site_id\":\"s1\",\"gateways\":[\"gw1\"],\"assets\":["
    "{\"asset_id\":\"s1-bat\",\"type\":\"battery\",\"capacity_wh\":10000,"
    "\"min_power_w\":-5000000,\"max_power_w\":5000000},"
    "{\"asset_id\":\"s1-pv\",\"type\":\"pv\",\"min_power_w\":0,\"max_power_w\":1000000},"
    "{\"asset_id\":\"s1-meter\",\"type\":\"meter\"}]},"
    "{\"site_id\":\"s2\",\"gateways\":[\"gw2\"],\"assets\":["
    "{\"asset_id\":\"s2-bat\",\"type\":\"battery\",\"min_power_w\":-1000000,"
    "\"max_power_w\":1000000}]}]}";

#define FUZZ_T0_MS 1700000000000LL

struct fuzz_link {
    unsigned sent, closed;
    int status;
};

static int fuzz_link_send(void *link, const Der__V1__HeadendMessage *m)
{
    struct fuzz_link *f = link;
    size_t n = der__v1__headend_message__get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return -1;
    if (der__v1__headend_message__pack(m, b) != n)
        __builtin_trap(); /* the hub built a message protobuf-c cannot pack */
    free(b);
    f->sent++;
    return 0;
}

static void fuzz_link_close(void *link, int grpc_status, const char *reason)
{
    struct fuzz_link *f = link;
    f->closed++;
    f->status = grpc_status;
}

static const struct session_link_ops fuzz_link_ops = {fuzz_link_send, fuzz_link_close};

/* A hub on the inventory above and an in-memory store; NULL when out of memory. */
static struct hub *fuzz_hub_new(void)
{
    struct headend_config cfg;
    config_defaults(&cfg);
    struct inventory *inv;
    struct store *st;
    char err[256];
    struct hub *h = NULL;
    log_set_level(LOG_ERROR); /* error lines only: the fuzzer output stays readable */
    if (inventory_parse(FUZZ_INVENTORY, &inv, err, sizeof(err)) < 0)
        return NULL;
    if (store_open(":memory:", &st, err, sizeof(err)) < 0) {
        inventory_free(inv);
        return NULL;
    }
    if (hub_new(&cfg, inv, st, FUZZ_T0_MS, &h) < 0)
        return NULL; /* hub_new freed inv and st */
    return h;
}

#endif
