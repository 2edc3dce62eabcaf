/* fuzz_agentmsg: the headend's handling of what a gateway sends. The input is a stream of
 * AgentMessages, each a 2-byte big-endian length and that many bytes (the last one may be
 * short), fed to hub_on_message on one stream of a fresh hub, 100 ms apart, with hub_tick
 * after each (flush, expiry). Two dispatches are queued first (sp-1 to site s1, sp-2 to
 * s1-bat), so that a Register gets them sent and an ack can name them. The stream ends as the
 * transport would end it: when hub_on_message refuses a message, or after the last one. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hub *h = fuzz_hub_new();
    if (!h)
        return 0;
    int64_t now = FUZZ_T0_MS;
    struct fuzz_link link = {0};
    struct session *s = NULL;
    char id[STORE_ID_MAX], reason[256];
    int state, status;
    hub_lock(h);
    hub_dispatch(h, 0, SIZE_MAX, 1e6, 60, now, id, &state);
    hub_dispatch(h, 0, 0, -2e6, 1, now, id, &state);
    if (hub_stream_open(h, "ipv4:127.0.0.1:1", &fuzz_link_ops, &link, now, &s) < 0) {
        hub_unlock(h);
        hub_free(h);
        return 0;
    }
    size_t off = 0;
    while (off + 2 <= size && !link.closed) {
        size_t n = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (n > size - off)
            n = size - off;
        now += 100;
        int rc = hub_on_message(h, s, data + off, n, now, &status, reason, sizeof(reason));
        off += n;
        hub_tick(h, now);
        if (rc < 0)
            break;
    }
    hub_stream_closed(h, s, "fuzz input done", now + 1);
    hub_tick(h, now + 120000); /* past every ttl: the expiry path */
    hub_unlock(h);
    hub_free(h);
    return 0;
}
