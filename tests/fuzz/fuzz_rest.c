/* fuzz_rest: the REST API without sockets. The input is a request as text: the method, a
 * space, the raw request target (percent-encoded, with its query) up to the first newline,
 * then the body (any bytes). It goes through rest_handle_url, the listener's own entry point
 * (decoding, route, validation, the hub and the store), on a fresh hub that has one
 * registered gateway with a telemetry sample and a queued dispatch (sp-1), so the read
 * routes have something to show. Every answer must be a status 200..599 with a body, and a
 * JSON body must parse. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "headend/rest.h"
#include "tests/fuzz/fuzz_hub.h"

/* Returns the open session (the caller closes it: hub_free leaves open streams to their
 * transport) or NULL. */
static struct session *populate(struct hub *h, struct fuzz_link *link)
{
    struct session *s = NULL;
    char id[STORE_ID_MAX], reason[128];
    int state, status;
    hub_lock(h);
    hub_dispatch(h, 1, SIZE_MAX, 5e5, 60, FUZZ_T0_MS, id, &state);
    if (hub_stream_open(h, "ipv4:127.0.0.1:1", &fuzz_link_ops, link, FUZZ_T0_MS, &s) < 0) {
        s = NULL;
    } else {
        Der__V1__AssetInfo a = DER__V1__ASSET_INFO__INIT, *ap = &a;
        a.asset_id = "s1-bat";
        Der__V1__Register r = DER__V1__REGISTER__INIT;
        r.gateway_id = "gw1";
        r.site_id = "s1";
        r.n_assets = 1;
        r.assets = &ap;
        Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
        m.seq = 1;
        m.body_case = DER__V1__AGENT_MESSAGE__BODY_REGISTER;
        m.register_ = &r;
        uint8_t buf[512];
        size_t n = der__v1__agent_message__pack(&m, buf);
        hub_on_message(h, s, buf, n, FUZZ_T0_MS, &status, reason, sizeof(reason));
        Der__V1__Telemetry t = DER__V1__TELEMETRY__INIT;
        t.asset_id = "s1-bat";
        t.ts_ms = FUZZ_T0_MS - 5;
        t.telemetry_seq = 1;
        t.power_w = 1234;
        m.seq = 2;
        m.body_case = DER__V1__AGENT_MESSAGE__BODY_TELEMETRY;
        m.telemetry = &t;
        n = der__v1__agent_message__pack(&m, buf);
        hub_on_message(h, s, buf, n, FUZZ_T0_MS, &status, reason, sizeof(reason));
    }
    hub_unlock(h);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t line = nl ? (size_t)(nl - data) : size;
    const uint8_t *sp = memchr(data, ' ', line);
    if (!sp)
        return 0;
    char method[16];
    size_t ml = (size_t)(sp - data);
    if (ml == 0 || ml >= sizeof(method) || memchr(data, 0, ml))
        return 0;
    memcpy(method, data, ml);
    method[ml] = 0;
    const char *url = (const char *)sp + 1;
    size_t url_len = line - ml - 1;
    /* libmicrohttpd never hands over a target with a NUL or without a leading '/'... except
     * the target of OPTIONS may be "*"; the harness takes anything: rest_handle_url must. */
    char *u = malloc(url_len + 1); /* a copy of exactly url_len bytes: ASan sees overreads */
    if (!u)
        return 0;
    memcpy(u, url, url_len);
    u[url_len] = 0;
    const char *body = nl ? (const char *)nl + 1 : NULL;
    size_t body_len = nl ? size - line - 1 : 0;
    char *b = body_len ? malloc(body_len) : NULL;
    if (b)
        memcpy(b, body, body_len);

    struct hub *h = fuzz_hub_new();
    struct fuzz_link link = {0};
    if (h) {
        struct session *s = populate(h, &link);
        struct rest_response r;
        rest_handle_url(h, method, u, url_len, b, b ? body_len : 0, FUZZ_T0_MS + 1000, &r);
        if (r.status < 200 || r.status > 599 || !r.body || !r.content_type)
            __builtin_trap();
        if (!strcmp(r.content_type, "application/json")) {
            cJSON *j = cJSON_Parse(r.body);
            if (!j)
                __builtin_trap(); /* we answered JSON that is not */
            cJSON_Delete(j);
        }
        free(r.body);
        if (s) {
            hub_lock(h);
            hub_stream_closed(h, s, "fuzz input done", FUZZ_T0_MS + 2000);
            hub_unlock(h);
        }
        hub_free(h);
    }
    free(u);
    free(b);
    return 0;
}
