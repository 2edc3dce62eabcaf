/* session: one registered gateway stream, and the routing maps site -> session and
 * asset -> session (struct registry). Both are pure data: the transport reaches a session's
 * stream only through its link (a struct of function pointers), so routing is testable
 * without gRPC. The hub owns sessions; the registry only points at them. */
#ifndef HEADEND_SESSION_H
#define HEADEND_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "headend/inventory.h"
#include "proto/der/v1/agent.pb-c.h"

/* How the hub talks to a stream. send packs and queues a message (never blocks); close ends
 * the stream with a gRPC status code and a reason. */
struct session_link_ops {
    int (*send)(void *link, const Der__V1__HeadendMessage *m);
    void (*close)(void *link, int grpc_status, const char *reason);
};

struct session {
    int64_t id; /* store id; 0 before Register */
    char gateway_id[INV_ID_MAX];
    char site_id[INV_ID_MAX];
    char peer[INV_ID_MAX];
    char primary_asset[INV_ID_MAX];
    char software[96];
    size_t site;    /* inventory site index (valid once registered) */
    size_t *assets; /* accepted inventory asset indexes, owned */
    size_t n_assets;
    int registered;
    int ended; /* detached and recorded; the stream may still be closing */
    /* Mutual TLS (docs/protocol.md, "Gateway identity"): the transport verified a client
     * certificate, and cert_identity is the gateway id it names ("" when it names no usable
     * one: cert_problem says why, and every Register is refused). Register must claim exactly
     * that id. cert_auth 0: no client certificate, the claim is taken as it is. */
    int cert_auth;
    char cert_identity[INV_ID_MAX];
    char cert_problem[128];
    int64_t started_ms;
    int64_t last_seen_ms;
    uint64_t in_seq;  /* last AgentMessage.seq seen */
    uint64_t out_seq; /* last HeadendMessage.seq sent */
    uint64_t seq_gaps;
    uint64_t rejected_telemetry;
    uint64_t future_telemetry;
    /* Telemetry acknowledgement (docs/protocol.md): asked for in Register; the AgentMessage
     * seq to acknowledge after the next commit (0 = nothing), the rows received since the
     * last ack, and the session's place in the hub's list awaiting an ack (SIZE_MAX = none). */
    int tel_acks;
    int decisions; /* Register said the gateway sends Decision records */
    uint64_t ack_due_seq;
    size_t unacked_rows;
    size_t ack_idx;
    /* Remote configuration (docs/protocol.md, "Configuration"): the gateway takes ConfigPush
     * (said in Register) and the version it runs (Register, then each APPLIED report). */
    int config_push;
    uint64_t config_version;
    /* Ping, to gateways whose Register said they answer (pong): the nonce and headend time of
     * the Ping awaiting its Pong (0 = none), and when the next periodic one is due. */
    int pong;
    /* The gateway takes per-asset Commands (said in Register; headend/commands.h). */
    int commands;
    uint64_t ping_nonce;
    int64_t ping_sent_ms;
    int64_t ping_due_ms;
    const struct session_link_ops *ops;
    void *link;
};

struct registry;

struct registry *registry_new(size_t n_sites, size_t n_assets);
void registry_free(struct registry *r);
/* Routes s->site and every s->assets[i] to s. When another session held the site (a
 * reconnecting gateway), that session loses all its routes and is returned in *replaced
 * for the caller to close. 0 or -EINVAL (index out of range). */
int registry_attach(struct registry *r, struct session *s, struct session **replaced);
/* Removes the routes that point at s (none when s was already replaced). */
void registry_detach(struct registry *r, struct session *s);
struct session *registry_site(const struct registry *r, size_t site);
struct session *registry_asset(const struct registry *r, size_t asset);
size_t registry_sessions(const struct registry *r);
/* Does s serve asset index a? */
int session_serves(const struct session *s, size_t asset);

#endif
