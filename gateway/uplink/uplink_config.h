/* uplink_config: what the uplink is told. The "uplink" section of a site configuration
 * (docs/gateway-config.md) as struct uplink_cfg, checked with errors naming path.key, and the
 * identity the gateway registers with (struct uplink_identity, from the site configuration).
 * Plain values: nothing here owns memory or touches the network. */
#ifndef DERLOOP_UPLINK_CONFIG_H
#define DERLOOP_UPLINK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "gateway/control/procimg.h"
#include "gateway/control/siteconf.h"
#include "gateway/strategies/strategy.h" /* struct param_field */
#include "gateway/uplink/agentmsg.h"

/* uplink.tls (docs/gateway-config.md): PEM files, read at start and again on uplink_reload.
 * ca is required (the headend's issuer); cert and key go together (mutual TLS: the
 * certificate names the gateway, docs/protocol.md); server_name, when set, is the name the
 * headend's certificate is checked against instead of the target's host (tests). */
struct uplink_tls {
    int on;
    char ca[512], cert[512], key[512];
    char server_name[256];
};

/* The "uplink" section of a site configuration (docs/gateway-config.md). */
struct uplink_cfg {
    char target[256];            /* "host:port" of the headend's gRPC listener; "" = no uplink */
    int legacy;                  /* single-asset agent: Register with primary_asset_id only */
    int64_t telemetry_period_ms; /* 0 = every cycle */
    int64_t decision_period_ms;  /* a Decision at least this often; 0 = only on change */
    int64_t heartbeat_period_ms;
    int64_t keepalive_time_ms, keepalive_timeout_ms;
    int64_t backoff_initial_ms, backoff_max_ms;
    char spool_dir[512]; /* "" = no disk spool: when offline the oldest telemetry is dropped */
    int spool_max_bytes;
    int queue_len; /* telemetry messages, acks and setpoints each */
    /* Delivery (docs/protocol.md): at most ack_window telemetry messages sent and not yet
     * acknowledged, at most replay_rate of them a second, and a stream whose window has not
     * moved for ack_timeout_ms is restarted (its unacknowledged samples go again). */
    int ack_window;
    int replay_rate;
    int64_t ack_timeout_ms;
    struct uplink_tls tls; /* tls.on 0: plaintext */
};

extern const struct param_field uplink_fields[];
extern const size_t uplink_n_fields;

/* Defaults, then obj's members (NULL = defaults). The strings `target` and `spool_dir` and
 * the object `tls` are checked here, the rest by the table; errors name path.key
 * ("uplink.keepalive_time: ..."). Returns 0 or -EINVAL. */
int uplink_cfg_load(const cJSON *obj, const char *path, struct uplink_cfg *cfg, char *err,
                    size_t errlen);

/* Who the gateway is: filled from a site configuration by uplink_identity_from_site. */
struct uplink_identity {
    char gateway_id[SITECONF_ID_MAX], site_id[SITECONF_ID_MAX];
    char software[96];
    size_t n_assets;
    struct agentmsg_asset assets[AGENTMSG_MAX_ASSETS]; /* configuration order */
    char primary_asset_id[PROCIMG_ID_LEN];             /* the first battery, else the first */
};

void uplink_identity_from_site(const struct siteconf *site, const char *software,
                               struct uplink_identity *id);

#endif
