/* uplink_config: see uplink_config.h. The numbers and booleans are rows of a param table
 * (gateway/control/siteconf.h), shared with `der-gateway --help`; the strings and the tls
 * object are checked here. */
#include "gateway/uplink/uplink_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/duration.h"

const struct param_field uplink_fields[] = {
    {"legacy", PARAM_BOOL, offsetof(struct uplink_cfg, legacy), 0, 0, 1, "",
     "single-asset agent: register only the primary asset, telemetry without asset_id"},
    {"telemetry_period", PARAM_DURATION_MS, offsetof(struct uplink_cfg, telemetry_period_ms), 0, 0,
     86400000, "ms", "telemetry of every asset at most this often (0 = every cycle)"},
    {"decision_period", PARAM_DURATION_MS, offsetof(struct uplink_cfg, decision_period_ms), 60000,
     0, 86400000, "ms",
     "a Decision at least this often (sent at once when it changes; 0 = only on change)"},
    {"heartbeat_period", PARAM_DURATION_MS, offsetof(struct uplink_cfg, heartbeat_period_ms), 10000,
     100, 3600000, "ms", "a Heartbeat on the stream this often"},
    {"keepalive_time", PARAM_DURATION_MS, offsetof(struct uplink_cfg, keepalive_time_ms), 10000,
     100, 3600000, "ms",
     "HTTP/2 ping after this long without data (must be >= the headend's "
     "minimum ping interval)"},
    {"keepalive_timeout", PARAM_DURATION_MS, offsetof(struct uplink_cfg, keepalive_timeout_ms),
     5000, 100, 600000, "ms", "no ping answer within this: the connection is dead"},
    {"backoff_initial", PARAM_DURATION_MS, offsetof(struct uplink_cfg, backoff_initial_ms), 500, 10,
     600000, "ms", "first reconnect delay; doubles per failure, jittered to 50-100 %"},
    {"backoff_max", PARAM_DURATION_MS, offsetof(struct uplink_cfg, backoff_max_ms), 30000, 10,
     3600000, "ms", "the largest reconnect delay"},
    {"spool_max_bytes", PARAM_INT, offsetof(struct uplink_cfg, spool_max_bytes), 16777216, 65536,
     2147483647, "bytes", "disk spool bound; the oldest telemetry is dropped beyond it"},
    {"queue_len", PARAM_INT, offsetof(struct uplink_cfg, queue_len), 1024, 4, 1048576, "",
     "messages in each memory queue (telemetry, acks, setpoints)"},
    {"ack_window", PARAM_INT, offsetof(struct uplink_cfg, ack_window), 512, 16, 65536, "",
     "telemetry messages sent and not yet acknowledged by the headend, at most"},
    {"replay_rate", PARAM_INT, offsetof(struct uplink_cfg, replay_rate), 500, 1, 1000000, "1/s",
     "telemetry messages sent per second at most (paces the replay after an outage)"},
    {"ack_timeout", PARAM_DURATION_MS, offsetof(struct uplink_cfg, ack_timeout_ms), 30000, 1000,
     3600000, "ms",
     "no acknowledgement for this long with telemetry in flight: the stream is restarted"},
};
const size_t uplink_n_fields = sizeof uplink_fields / sizeof uplink_fields[0];

static int load_string(const cJSON *obj, const char *path, const char *key, char *dst, size_t cap,
                       char *err, size_t errlen)
{
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!v)
        return 0;
    if (!cJSON_IsString(v)) {
        char *t = cJSON_PrintUnformatted(v);
        snprintf(err, errlen, "%s.%s: must be a string, got %s", path, key, t ? t : "?");
        cJSON_free(t);
        return -EINVAL;
    }
    if (strlen(v->valuestring) >= cap) {
        snprintf(err, errlen, "%s.%s: must be shorter than %zu characters", path, key, cap);
        return -EINVAL;
    }
    snprintf(dst, cap, "%s", v->valuestring);
    return 0;
}

/* "host:port", "[v6]:port", or a gRPC URI such as "unix:/path" or "dns:///host:port". */
static int target_ok(const char *t)
{
    if (strstr(t, ":/"))
        return 1;
    const char *c = strrchr(t, ':');
    if (!c || c == t || !c[1])
        return 0;
    char *end;
    long port = strtol(c + 1, &end, 10);
    return *end == '\0' && port >= 1 && port <= 65535;
}

/* uplink.tls: {"ca": PATH, "cert": PATH, "key": PATH, "server_name": NAME}. */
static int load_tls(const cJSON *obj, const char *path, struct uplink_tls *t, char *err,
                    size_t errlen)
{
    char p[64];
    snprintf(p, sizeof p, "%s.tls", path);
    if (!cJSON_IsObject(obj)) {
        snprintf(err, errlen, "%s: must be an object {\"ca\", \"cert\", \"key\", \"server_name\"}",
                 p);
        return -EINVAL;
    }
    for (const cJSON *c = obj->child; c; c = c->next)
        if (strcmp(c->string, "ca") && strcmp(c->string, "cert") && strcmp(c->string, "key") &&
            strcmp(c->string, "server_name")) {
            snprintf(err, errlen, "%s.%s: unknown key (ca, cert, key, server_name)", p, c->string);
            return -EINVAL;
        }
    int rc = load_string(obj, p, "ca", t->ca, sizeof t->ca, err, errlen);
    if (!rc)
        rc = load_string(obj, p, "cert", t->cert, sizeof t->cert, err, errlen);
    if (!rc)
        rc = load_string(obj, p, "key", t->key, sizeof t->key, err, errlen);
    if (!rc)
        rc = load_string(obj, p, "server_name", t->server_name, sizeof t->server_name, err, errlen);
    if (rc)
        return rc;
    /* no default roots: a fleet's headend is signed by the fleet's own CA, and what gRPC
     * would fall back to (its roots file, or none on Debian) is not what to trust here */
    if (!t->ca[0]) {
        snprintf(err, errlen, "%s.ca: required (the PEM file of the CA that signed the headend)",
                 p);
        return -EINVAL;
    }
    if (!t->cert[0] != !t->key[0]) {
        snprintf(err, errlen, "%s.%s: cert and key go together", p, t->cert[0] ? "key" : "cert");
        return -EINVAL;
    }
    t->on = 1;
    return 0;
}

int uplink_cfg_load(const cJSON *obj, const char *path, struct uplink_cfg *cfg, char *err,
                    size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (obj && !cJSON_IsObject(obj)) {
        snprintf(err, errlen, "%s: must be an object", path);
        return -EINVAL;
    }
    /* The table knows numbers and booleans; the strings and tls are taken out first. */
    cJSON *rest = obj ? cJSON_Duplicate(obj, 1) : NULL;
    if (obj && !rest) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    int rc = load_string(obj, path, "target", cfg->target, sizeof cfg->target, err, errlen);
    if (!rc)
        rc =
            load_string(obj, path, "spool_dir", cfg->spool_dir, sizeof cfg->spool_dir, err, errlen);
    const cJSON *tls = obj ? cJSON_GetObjectItemCaseSensitive(obj, "tls") : NULL;
    if (!rc && tls)
        rc = load_tls(tls, path, &cfg->tls, err, errlen);
    if (!rc && rest) {
        cJSON_DeleteItemFromObjectCaseSensitive(rest, "target");
        cJSON_DeleteItemFromObjectCaseSensitive(rest, "spool_dir");
        cJSON_DeleteItemFromObjectCaseSensitive(rest, "tls");
    }
    if (!rc)
        rc = param_load(uplink_fields, uplink_n_fields, rest, path, cfg, err, errlen);
    cJSON_Delete(rest);
    if (rc)
        return rc;
    if (cfg->target[0] && !target_ok(cfg->target)) {
        snprintf(err, errlen, "%s.target: must be HOST:PORT, got \"%s\"", path, cfg->target);
        return -EINVAL;
    }
    if (cfg->backoff_max_ms < cfg->backoff_initial_ms) {
        char a[32], b[32];
        snprintf(err, errlen, "%s.backoff_max: must be at least backoff_initial (%s), got %s", path,
                 duration_format(cfg->backoff_initial_ms, a, sizeof a),
                 duration_format(cfg->backoff_max_ms, b, sizeof b));
        return -EINVAL;
    }
    return 0;
}

void uplink_identity_from_site(const struct siteconf *site, const char *software,
                               struct uplink_identity *id)
{
    memset(id, 0, sizeof *id);
    snprintf(id->gateway_id, sizeof id->gateway_id, "%s", site->gateway_id);
    snprintf(id->site_id, sizeof id->site_id, "%s", site->site_id);
    snprintf(id->software, sizeof id->software, "%s", software ? software : "");
    int battery = -1;
    for (size_t i = 0; i < site->n_devices && i < AGENTMSG_MAX_ASSETS; i++) {
        const struct device_cfg *d = &site->devices[i];
        struct agentmsg_asset *a = &id->assets[id->n_assets++];
        snprintf(a->asset_id, sizeof a->asset_id, "%s", d->asset_id);
        switch (d->type) {
        case DEV_BATTERY:
            a->type = AGENTMSG_ASSET_BATTERY;
            a->capacity_wh = d->capacity_wh;
            a->min_power_w = -d->max_charge_w;
            a->max_power_w = d->max_discharge_w;
            if (battery < 0)
                battery = (int)i;
            break;
        case DEV_PV:
            a->type = AGENTMSG_ASSET_PV;
            a->max_power_w = d->peak_w;
            break;
        case DEV_METER:
            a->type = AGENTMSG_ASSET_METER;
            break;
        case DEV_EVSE:
            a->type = AGENTMSG_ASSET_EVSE;
            a->max_power_w = d->max_current_a * 230.0 * (d->phases > 0 ? d->phases : 1);
            break;
        case DEV_BOILER:
            a->type = AGENTMSG_ASSET_BOILER;
            a->max_power_w = d->rated_w;
            break;
        }
    }
    if (id->n_assets)
        snprintf(id->primary_asset_id, sizeof id->primary_asset_id, "%s",
                 id->assets[battery >= 0 ? battery : 0].asset_id);
}
